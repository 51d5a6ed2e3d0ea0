// Device identification and the device timing hooks of the gpu backend. `classifyGlDevice` on fixed inputs
// (Mesa llvmpipe under Xvfb as headless-gl sees it, hardware Mesa DRI drivers, NVIDIA's GL libraries, a
// browser's unmasked SwiftShader, nothing identifiable); then, in the GPU.js mode named by LRC_GPU_TEST_MODE
// (default webasm; `gl` runs under `xvfb-run -a`), what the started backend reports about itself (this machine
// has no GPU: software) and what backendUpload / backendDownload / backendFinish do to values and transfer counts.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tensor } from "../../tensor.js";
import * as ops from "../../ops/index.js";
import type { GlStrings, GpuMode, WebGpuAdapterInfo } from "./runtime.js";
import { classifyGlDevice, classifyWebGpuAdapter, createRuntime } from "./runtime.js";
import { isSoftwareRenderer } from "./software.js";
import { backendReport, getBackend, gpuDeviceInfo, backendDownload, backendFinish, backendUpload, initBackend, initBackendFromEnvAsync, setBackend, startedBackend } from "../backend.js";
import type { GpujsBackend } from "./backend.js";

/** What headless-gl's context says on every driver: ANGLE, no WEBGL_debug_renderer_info. */
const headless: GlStrings = { renderer: "ANGLE", vendor: "stack-gl", version: "WebGL 1.0 stack-gl 8.1.6", unmaskedRenderer: null, unmaskedVendor: null };
const lib = "/usr/lib/x86_64-linux-gnu/";
/** Shared objects mapped by headless-gl under xvfb-run on Debian 12 (Mesa 22.3), as read from /proc/self/maps. */
const xvfbLlvmpipe = [`${lib}libLLVM-15.so.1`, `${lib}dri/swrast_dri.so`, `${lib}libdrm_amdgpu.so.1.0.0`, `${lib}libdrm_intel.so.1.0.0`,
  `${lib}libGLX_mesa.so.0.0.0`, `${lib}libGL.so.1.7.0`, `${lib}libc.so.6`];

describe("classifyGlDevice", () => {
  it("calls Mesa's swrast with LLVM (llvmpipe, e.g. under Xvfb) software rendering on the CPU", () => {
    expect(classifyGlDevice(headless, xvfbLlvmpipe)).toEqual({
      device: 'WebGL "ANGLE" (stack-gl, WebGL 1.0 stack-gl 8.1.6) via Mesa swrast_dri.so with LLVM (llvmpipe): software rendering on the CPU',
      software: true,
      driver: ["swrast_dri.so"],
    });
  });

  it("trusts a renderer string that names a software rasteriser, with or without the libraries", () => {
    const mesa: GlStrings = { renderer: "llvmpipe (LLVM 15.0.6, 256 bits)", vendor: "Mesa", version: "4.5 (Compatibility Profile) Mesa 22.3.6", unmaskedRenderer: null, unmaskedVendor: null };
    expect(classifyGlDevice(mesa, null)).toMatchObject({ software: true, driver: null });
    const chrome: GlStrings = { renderer: "WebKit WebGL", vendor: "WebKit", version: "WebGL 2.0 (OpenGL ES 3.0 Chromium)",
      unmaskedRenderer: "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)", unmaskedVendor: "Google Inc. (Google)" };
    const r = classifyGlDevice(chrome, null);
    expect(r.software).toBe(true);
    expect(r.device).toBe('WebGL "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)" (Google Inc. (Google), WebGL 2.0 (OpenGL ES 3.0 Chromium)): software rendering on the CPU');
    // zink on lavapipe loads a "hardware" DRI name, but its renderer says what it is.
    expect(classifyGlDevice({ ...headless, unmaskedRenderer: "zink (llvmpipe)" }, [`${lib}dri/zink_dri.so`]).software).toBe(true);
  });

  it("treats a Mesa hardware DRI driver as a GPU", () => {
    for (const drv of ["radeonsi_dri.so", "iris_dri.so"]) {
      const r = classifyGlDevice(headless, [`${lib}libLLVM-15.so.1`, `${lib}dri/${drv}`, `${lib}libGLX_mesa.so.0.0.0`]);
      expect(r).toEqual({ device: `WebGL "ANGLE" (stack-gl, WebGL 1.0 stack-gl 8.1.6) via ${drv}: hardware GPU driver`, software: false, driver: [drv] });
    }
  });

  it("treats NVIDIA's GL libraries as a GPU", () => {
    const nv = [`${lib}libGLX_nvidia.so.550.54.15`, `${lib}libnvidia-glcore.so.550.54.15`, `${lib}libnvidia-tls.so.550.54.15`, `${lib}libGL.so.1.7.0`];
    expect(classifyGlDevice(headless, nv)).toEqual({
      device: 'WebGL "ANGLE" (stack-gl, WebGL 1.0 stack-gl 8.1.6) via libGLX_nvidia.so.550.54.15, libnvidia-glcore.so.550.54.15: hardware GPU driver',
      software: false,
      driver: ["libGLX_nvidia.so.550.54.15", "libnvidia-glcore.so.550.54.15"],
    });
    const unmasked = { ...headless, unmaskedRenderer: "NVIDIA H200/PCIe/SSE2", unmaskedVendor: "NVIDIA Corporation" };
    expect(classifyGlDevice(unmasked, null)).toMatchObject({ software: false, device: expect.stringContaining('"NVIDIA H200/PCIe/SSE2" (NVIDIA Corporation') as unknown });
  });

  it("says when it cannot tell, without calling it software or a verified GPU", () => {
    expect(classifyGlDevice(headless, null)).toEqual({
      device: 'WebGL "ANGLE" (stack-gl, WebGL 1.0 stack-gl 8.1.6) (GL driver not identified: no /proc/self/maps to read; not verified to be a GPU)',
      software: false,
      driver: null,
    });
    // libdrm_* helpers are loaded by every Mesa driver, swrast included: they identify nothing.
    const r = classifyGlDevice(headless, [`${lib}libdrm_intel.so.1.0.0`, `${lib}libGL.so.1.7.0`]);
    expect(r.device).toContain("no known GL driver library is loaded; not verified to be a GPU");
    expect(r.driver).toEqual([]);
  });
});

describe("isSoftwareRenderer", () => {
  it("names Mesa's, Google's and Microsoft's software rasterisers, and no GPU", () => {
    for (const s of ["llvmpipe (LLVM 15.0.6, 256 bits)", "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)",
      "Microsoft Basic Render Driver", "lavapipe", "softpipe"]) expect(isSoftwareRenderer(s), s).toBe(true);
    for (const s of ["ANGLE (NVIDIA, NVIDIA GeForce RTX 4090 Direct3D11 vs_5_0 ps_5_0)", "AMD Radeon Pro 5500M OpenGL Engine", "Apple M2", "ANGLE"])
      expect(isSoftwareRenderer(s), s).toBe(false);
  });
});

describe("classifyWebGpuAdapter", () => {
  /** Dawn's adapter on Mesa 25's lavapipe, as this machine's CI sees it. */
  const lavapipe: WebGpuAdapterInfo = { vendor: "mesa", architecture: "software", device: "llvmpipe-llvm-15-0-6-256-bits-",
    description: "llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1", isFallbackAdapter: true };

  it("calls a fallback adapter, or one whose strings name a software implementation, software", () => {
    expect(classifyWebGpuAdapter(lavapipe)).toEqual({
      device: "WebGPU adapter llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1, llvmpipe-llvm-15-0-6-256-bits-, mesa, software: software rendering on the CPU",
      software: true,
    });
    expect(classifyWebGpuAdapter({ ...lavapipe, isFallbackAdapter: null }).software).toBe(true);
    const swiftshader = { vendor: "google", architecture: "", device: "", description: "SwiftShader Device (Subzero)", isFallbackAdapter: null };
    expect(classifyWebGpuAdapter(swiftshader).software).toBe(true);
  });

  it("takes a non-fallback adapter with a hardware name as a GPU, saying it is the adapter's report", () => {
    const h200 = { vendor: "nvidia", architecture: "hopper", device: "", description: "NVIDIA H200", isFallbackAdapter: false };
    expect(classifyWebGpuAdapter(h200)).toEqual({ device: "WebGPU adapter NVIDIA H200, nvidia, hopper: a hardware GPU by the adapter's report", software: false });
  });
});

const mode = (process.env.LRC_GPU_TEST_MODE ?? "webasm") as GpuMode;
/** xvfb-run puts its Xauthority file in a directory named xvfb-run.*; Xvfb offers only Mesa's software GL. */
const underXvfb = /xvfb-run/.test(process.env.XAUTHORITY ?? "");

describe(`gpu device info and timing hooks (GPU.js ${mode})`, () => {
  beforeAll(async () => {
    await initBackend("gpu", { mode });
  }, 60_000);
  afterAll(() => setBackend("cpu"));

  it("says which mode runs, on what, and that it is software", () => {
    const b = getBackend();
    const d = gpuDeviceInfo();
    expect(b).toMatchObject({ name: "gpu", mode, software: d.software, device: d.device });
    expect(b.description).toContain(d.device);
    if (mode === "webgpu") {
      expect(d.webgpu).not.toBeNull();
      expect(b.description).toMatch(/^gpu: GPU\.js webgpu \(WebGPUKernel\) on WebGPU adapter /);
      // This machine (and CI): Dawn on Mesa's lavapipe, the Vulkan software rasteriser.
      if (/llvmpipe|lavapipe/.test(d.webgpu?.description ?? "")) expect(d.software).toBe(true);
    }
    if (mode === "webasm") {
      expect(d).toEqual({ mode, software: true, gl: null, driver: null, device: "the CPU (GPU.js WebAssembly kernels, one thread): software, not a GPU" });
      expect(b.description).toMatch(/^gpu: GPU\.js webasm \(WebAssemblyKernel\) on the CPU .*: software, not a GPU/);
    }
    if (mode === "gl") {
      expect(d.gl?.renderer).not.toBe("");
      if (process.platform === "linux") expect(d.driver).not.toBeNull();
      if (underXvfb) {
        // This machine (and CI): headless-gl under Xvfb draws with Mesa's llvmpipe.
        expect(d.software).toBe(true);
        expect(d.driver).toContain("swrast_dri.so");
        expect(b.description).toMatch(/^gpu: GPU\.js gl \(HeadlessGLKernel\) on WebGL "ANGLE" .*via Mesa swrast_dri\.so.*: software rendering on the CPU/);
      }
    }
  });

  it("backendUpload copies host values to the device once per call; backendDownload reads them back without caching", async () => {
    const x = tensor(new Float32Array([1.5, -2, 3.25, 7]), [2, 2]);
    await backendFinish();
    const before = backendReport().device!;
    backendUpload(x);
    backendUpload(x);
    await backendFinish();
    const mid = backendReport().device!;
    expect(mid.uploads - before.uploads).toBe(2);
    expect(mid.liveBuffers - before.liveBuffers).toBe(1); // the second upload replaced the first copy
    const y = ops.mul(x, x); // reads x's device copy: no further upload
    expect(backendReport().device!.uploads).toBe(mid.uploads);
    const out = new Float32Array(4);
    expect(await backendDownload(y, out)).toBe(out);
    expect(Array.from(out)).toEqual([2.25, 4, 10.5625, 49]);
    expect(Array.from(await backendDownload(y))).toEqual([2.25, 4, 10.5625, 49]);
    expect(backendReport().device!.downloads - mid.downloads).toBe(2);
    y.dispose();
    x.dispose();
    await backendFinish(); // webgpu deletes a buffer once the kernels reading it were submitted
    expect(backendReport().device!.liveBuffers).toBe(before.liveBuffers);
  });

  it("the hooks name what is wrong", async () => {
    const host = tensor(new Float32Array([1, 2]));
    await expect(backendDownload(host)).rejects.toThrow(/backendDownload: tensor \d+ \[2\] has no device copy/);
    backendUpload(host);
    await expect(backendDownload(host, new Float32Array(1))).rejects.toThrow(/out holds 1 values, tensor \d+ has 2/);
    host.dispose();
    expect(() => backendUpload(host)).toThrow(/backendUpload: tensor \d+ \[2\] was disposed/);
    const f64 = tensor(new Float64Array([1]));
    expect(() => backendUpload(f64)).toThrow(/is float64; the gpu backend keeps only float32 and int32/);
    f64.dispose();
  });

  it("a kernel that fails says which, with its source: at the call in the synchronous modes, at the next read or backendFinish in webgpu", async () => {
    const rt = (startedBackend("gpu") as GpujsBackend).rt;
    const x = rt.upload(new Float32Array([1, 2, 3]), 3);
    const bad = (): ReturnType<typeof rt.run> => rt.run("test:bad", 3, () => "function (a) { return notAFunction(a[this.thread.x]); }", [x.handle]);
    if (mode !== "webgpu") expect(bad).toThrow(/gpu backend: kernel test:bad failed in GPU\.js .*notAFunction/s);
    else {
      const out = bad();
      await expect(out.downloadAsync(new Float32Array(3), 3)).rejects.toThrow(/gpu backend: kernel test:bad failed in GPU\.js webgpu.*notAFunction/s);
      const again = bad();
      await expect(backendFinish()).rejects.toThrow(/kernel test:bad failed/);
      await backendFinish(); // thrown once
      again.free();
      out.free();
    }
    x.free();
  });
});

describe("GPU.js mode selection", () => {
  it("rejects an unknown mode, from initBackend and from LRC_GPU_MODE", async () => {
    await expect(initBackend("gpu", { mode: "vulkan" as GpuMode })).rejects.toThrow(/initBackend: unknown GPU\.js mode 'vulkan' \(known: auto, webgpu, gl, webasm, cpu\)/);
    await expect(initBackendFromEnvAsync({ LRC_BACKEND: "gpu", LRC_GPU_MODE: "metal" }, () => {})).rejects.toThrow(/LRC_GPU_MODE: unknown GPU\.js mode 'metal'/);
    setBackend("cpu");
  });

  it("auto with asyncReads takes WebGPU only on a GPU adapter: here (none, or lavapipe) it says why not", async () => {
    const rt = await createRuntime("auto", { asyncReads: true });
    rt.destroy();
    expect(rt.mode).not.toBe("webgpu");
    expect(rt.skipped[0]).toMatch(mode === "webgpu"
      ? /^webgpu: its adapter is software \(WebGPU adapter llvmpipe.*\), and auto takes WebGPU only on a GPU$/
      : /^webgpu: (no WebGPU adapter|Node has no navigator\.gpu)/);
  });

  it("auto does not pick webgpu, and says why among the modes not used", async () => {
    const rt = await createRuntime("auto");
    rt.destroy();
    expect(rt.mode).not.toBe("webgpu");
    // webgpu test runs have navigator.gpu (Dawn) and an adapter; the others have none in Node.
    expect(rt.skipped[0]).toMatch(mode === "webgpu" ? /^webgpu: a WebGPU adapter answers, but webgpu is used only on request/ : /^webgpu: /);
    expect(rt.skipped[0]).toMatch(/^webgpu: (used only on request \(mode "webgpu"\): its values are read back asynchronously|no WebGPU adapter|a WebGPU adapter answers)/);
  });
});
