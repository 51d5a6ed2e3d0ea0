// The "auto" backend choice: the decision on fake adapter reports (a hardware adapter cannot be had here), and
// the real path: on lavapipe (software) or with no adapter, auto does not take the native WebGPU backend.

import { createRequire } from "node:module";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { autoTakesWebGpu, missingVulkanLoader, webGpuAdapterInfo } from "./auto.js";
import { describeChoice, getBackend, initBackend, initBackendFromEnvAsync, registerBackend, setBackend } from "./backend.js";
import { loadGpujs } from "./gpujs/backend.js";
import { autoDeviceWithoutLoading, type WebGpuAdapterInfo } from "./gpujs/runtime.js";
import { webgpuRequired } from "./webgpu/test-device.js";

const adapter = (a: Partial<WebGpuAdapterInfo>): WebGpuAdapterInfo =>
  ({ vendor: "", architecture: "", device: "", description: "", isFallbackAdapter: null, ...a });

afterAll(() => setBackend("cpu"));

describe("autoTakesWebGpu", () => {
  it("takes hardware adapters", () => {
    for (const a of [
      adapter({ vendor: "nvidia", architecture: "hopper", description: "NVIDIA H100 80GB HBM3" }),
      adapter({ vendor: "apple", architecture: "metal-3", isFallbackAdapter: false }),
      adapter({ vendor: "intel", architecture: "gen-12lp", description: "Intel(R) Iris(R) Xe Graphics" }),
      adapter({ vendor: "amd", architecture: "rdna-3" }),
    ]) {
      const pick = autoTakesWebGpu(a);
      expect(pick.take, JSON.stringify(a)).toBe(true);
      expect(pick.why).toMatch(/hardware GPU/);
    }
  });

  it("leaves software and fallback adapters, and no adapter", () => {
    for (const a of [
      adapter({ vendor: "mesa", architecture: "", description: "llvmpipe (LLVM 15.0.6, 256 bits)", device: "lavapipe" }),
      adapter({ vendor: "google", architecture: "swiftshader", description: "SwiftShader Device (Subzero)" }),
      adapter({ vendor: "microsoft", description: "Microsoft Basic Render Driver" }),
      adapter({ vendor: "microsoft", architecture: "warp" }),
      adapter({ vendor: "nvidia", description: "some adapter", isFallbackAdapter: true }),
    ]) {
      const pick = autoTakesWebGpu(a);
      expect(pick.take, JSON.stringify(a)).toBe(false);
      expect(pick.why).toMatch(/software rendering on the CPU, not taken automatically/);
    }
    expect(autoTakesWebGpu(null)).toEqual({ take: false, why: "no WebGPU adapter" });
  });
});

describe("missingVulkanLoader (Linux: auto passes over webgpu without asking Dawn, which would print its warning)", () => {
  const search = (o: { platform?: string; ld?: string; files?: string[]; cache?: string | null }) => ({
    platform: o.platform ?? "linux", env: o.ld === undefined ? {} : { LD_LIBRARY_PATH: o.ld },
    exists: (f: string) => (o.files ?? []).includes(f), linkerCache: () => (o.cache === undefined ? "" : o.cache),
  });
  it("finds the loader on LD_LIBRARY_PATH, in a default directory or in the linker's cache", () => {
    expect(missingVulkanLoader(search({ ld: "/opt/a::/opt/mesa/lib", files: ["/opt/mesa/lib/libvulkan.so.1"] }))).toBeNull();
    expect(missingVulkanLoader(search({ files: ["/usr/lib/x86_64-linux-gnu/libvulkan.so.1"] }))).toBeNull();
    expect(missingVulkanLoader(search({ cache: "ld.so-1.7.0\0libvulkan.so.1\0/usr/lib/libvulkan.so.1" }))).toBeNull();
  });
  it("says why when it is nowhere; asks Dawn off Linux, in a browser, or when the cache cannot be read", () => {
    expect(missingVulkanLoader(search({ ld: "/opt/a", cache: "libc.so.6" }))).toBe("no Vulkan loader (libvulkan.so.1), which Dawn needs for a WebGPU adapter on Linux");
    expect(missingVulkanLoader(search({ platform: "darwin" }))).toBeNull();
    expect(missingVulkanLoader(search({ cache: null }))).toBeNull();
    expect(missingVulkanLoader(null)).toBeNull();
  });
  it("auto's note says so on a machine without the loader", async () => {
    if (missingVulkanLoader() === null) return;
    const chosen = await initBackend("auto");
    expect(chosen.autoNotes?.[0]).toBe("webgpu: no Vulkan loader (libvulkan.so.1), which Dawn needs for a WebGPU adapter on Linux");
    setBackend("cpu");
  });
});

describe('initBackend("auto") here', () => {
  it("does not take the native webgpu backend on a software adapter (lavapipe) or without one", async () => {
    let info: WebGpuAdapterInfo | null = null;
    try {
      info = await webGpuAdapterInfo();
    } catch (e) {
      if (webgpuRequired) throw e;
    }
    if (webgpuRequired) expect(info, "LRC_WEBGPU_TEST=1 wants an adapter").not.toBeNull();
    if (info !== null && !autoTakesWebGpu(info).take) {
      const chosen = await initBackend("auto");
      expect(chosen.name).not.toBe("webgpu");
      expect(chosen.autoNotes?.[0]).toMatch(/^webgpu: .*software rendering on the CPU, not taken automatically/);
      expect(describeChoice(chosen)).toContain("(auto: webgpu: ");
      expect(getBackend().name).toBe(chosen.name);
      if (chosen.name === "cpu") expect(chosen.software).toBeUndefined();
      else expect(chosen.software).toBe(false);
    }
  }, 120_000);

  it("is the fallback of initBackendFromEnvAsync when LRC_BACKEND is unset; LRC_BACKEND=cpu still forces cpu; the choice is remembered with its reasons until another selection", async () => {
    const lines: string[] = [];
    const first = await initBackendFromEnvAsync({}, (l) => lines.push(l), { fallback: "auto" });
    expect(first.autoNotes?.length, "auto says why it passed over webgpu (and GPU.js)").toBeGreaterThan(0);
    expect(lines).toEqual([describeChoice(first)]);
    expect(lines[0]).toMatch(/^lrc backend: .* \(auto: webgpu: /);
    // getBackend() keeps the reasons while auto's choice is selected; a second auto gives the same choice.
    expect(getBackend().autoNotes).toEqual(first.autoNotes);
    expect(await initBackend("auto")).toEqual(first);
    const forced = await initBackendFromEnvAsync({ LRC_BACKEND: "cpu" }, (l) => lines.push(l), { fallback: "auto" });
    expect(forced.name).toBe("cpu");
    expect(forced.autoNotes).toBeUndefined();
    expect(lines[1]).toMatch(/^lrc backend: cpu: [^(]*$/);
    // Without a fallback and LRC_BACKEND unset nothing is selected or printed.
    expect(await initBackendFromEnvAsync({}, (l) => lines.push(l))).toEqual(getBackend());
    expect(lines).toHaveLength(2);
    setBackend("cpu");
  }, 120_000);
});

describe("auto without loading GPU.js where it could only run on the CPU", () => {
  /** Whether gpu.js (CommonJS) is in Node's module cache. */
  const gpuJsLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes(`${path.sep}gpu.js${path.sep}`));

  afterEach(() => {
    vi.unstubAllEnvs();
    setBackend("cpu");
  });

  it("chooses and explains exactly as when it starts GPU.js", async () => {
    vi.stubEnv("DISPLAY", "");
    const loadedBefore = gpuJsLoaded();
    const quick = await initBackend("auto", { asyncReads: true });
    if (!loadedBefore) expect(gpuJsLoaded(), "auto loaded gpu.js").toBe(false);
    registerBackend("gpu", (o, c) => loadGpujs(o, c)); // not the built-in loader: auto starts GPU.js to see
    try {
      expect(await initBackend("auto", { asyncReads: true })).toEqual(quick);
    } finally {
      registerBackend("gpu", loadGpujs);
    }
    expect(quick.autoNotes?.at(-1)).toMatch(/^gpu: the CPU \(GPU\.js WebAssembly kernels, one thread\): software, not a GPU, not taken automatically$/);
  }, 120_000);

  it("knows GPU.js's device without a display (webasm, what GPU.js reports when started), and not with one", async () => {
    vi.stubEnv("DISPLAY", ":99");
    expect(autoDeviceWithoutLoading()).toBeNull();
    vi.stubEnv("DISPLAY", "");
    const known = autoDeviceWithoutLoading();
    expect(known).toMatchObject({ mode: "webasm", software: true });
    const started = await initBackend("gpu", { asyncReads: true });
    expect(started).toMatchObject({ mode: "webasm", software: true, device: known!.device });
  }, 120_000);
});
