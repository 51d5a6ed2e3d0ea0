// Tests of the lrc-ts-gpu implementation: the device record a run carries (tensor-core's `gpuDeviceInfo()`,
// whose GL driver classification is tested in tensor-core, plus the xvfb-run note), and small cases end to end
// in the GPU.js mode named by LRC_GPU_TEST_MODE (default webasm, no native dependency; `gl` runs under
// `xvfb-run -a`, as tensor-core's gpu tests do): the device results match the cpu backend, and the upload /
// download hooks move what they claim to.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { matmul, setBackend } from "@lrc-ts/tensor-core";
import type { GpuDeviceInfo } from "@lrc-ts/tensor-core";
import type { BenchCase } from "../cases.js";
import type { GpuModeArg } from "../cli.js";
import { SkipCase } from "../impl.js";
import { kernelWork } from "../lrcts/kernels.js";
import { expectAttentionTransfers } from "../testing-internal/transfers.js";
import { benchDevice, lrcTsGpu } from "./index.js";

describe("benchDevice", () => {
  const gl = { renderer: "ANGLE", vendor: "stack-gl", version: "WebGL 1.0 stack-gl 8.1.6", unmaskedRenderer: null, unmaskedVendor: null };
  const nvidia: GpuDeviceInfo = { mode: "gl", device: 'WebGL "ANGLE" via libGLX_nvidia.so.0: hardware GPU driver', software: false, gl, driver: ["libGLX_nvidia.so.0"] };
  it("keeps tensor-core's identification on a real display", () => {
    expect(benchDevice(nvidia, false)).toEqual({ mode: "gl", device: nvidia.device, software: false, xvfbNote: "" });
  });
  it("says the display is Xvfb, and that this is software, when run.ts started xvfb-run", () => {
    const d = benchDevice(nvidia, true);
    expect(d.software).toBe(true);
    expect(d.device).toBe(`${nvidia.device}; X display from xvfb-run (Xvfb offers only Mesa's software GLX)`);
    const webasm: GpuDeviceInfo = { mode: "webasm", device: "the CPU", software: true, gl: null, driver: null };
    expect(benchDevice(webasm, true)).toEqual({ mode: "webasm", device: "the CPU", software: true, xvfbNote: "" });
  });
});

const mode = (process.env["LRC_GPU_TEST_MODE"] ?? "webasm") as GpuModeArg;

describe(`lrc-ts-gpu on GPU.js ${mode}`, () => {
  const impl = lrcTsGpu(mode);
  let description = "";
  beforeAll(async () => {
    description = await impl.init(1);
  });
  afterAll(() => setBackend("cpu"));

  it("says which mode runs and that it is software", () => {
    // This suite runs where there is no GPU: webasm, or gl on Mesa's software rasteriser under Xvfb.
    expect(description).toMatch({
      webasm: /^gpu: GPU\.js webasm \(WebAssemblyKernel\) on the CPU \(GPU\.js WebAssembly kernels, one thread\): software, not a GPU.* \(GPU speed unmeasured on this machine\)/,
      gl: /^gpu: GPU\.js gl \(HeadlessGLKernel\) on WebGL "ANGLE" .*via Mesa swrast_dri\.so.*: software rendering on the CPU.*\(GPU speed unmeasured on this machine\)/,
      webgpu: /^gpu: GPU\.js webgpu \(WebGPUKernel\) on WebGPU adapter llvmpipe.*: software rendering on the CPU.*\(GPU speed unmeasured on this machine\)/,
    }[mode as "webasm" | "gl" | "webgpu"]);
  });

  it("computes on the device what the cpu backend computes", async () => {
    const spec = { kind: "matmul", m: 5, k: 7, n: 3, transA: true, transB: false } as const;
    const dc = kernelWork(spec);
    const [out] = dc.compute();
    const gpu = await out!.dataAsync();
    setBackend("cpu");
    const [a, b] = dc.inputs;
    const want = matmul(a!, b!, { transA: true }).data();
    setBackend("gpu");
    for (const t of [out!, ...dc.inputs]) t.dispose();
    expect(gpu).toHaveLength(15);
    expect(Math.max(...Array.from(gpu, (v, i) => Math.abs(v - want[i]!)))).toBeLessThan(mode === "webasm" ? 1e-4 : 2e-3);
  });

  it("times upload and download as the transfers of the inputs and the results", async () => {
    await expectAttentionTransfers(impl, mode, /^column = compute only/);
  });

  it("skips what is not a kernel case, saying why", async () => {
    const c = { suite: "gradients", name: "x", spec: { kind: "gradCheck", B: 1, T: 2, D: 4, H: 2, Hkv: 1 } } as const satisfies BenchCase;
    await expect(impl.prepare(c)).rejects.toThrow(SkipCase);
    await expect(impl.prepare(c)).rejects.toThrow(/not a kernel case: gradCheck/);
  });
});
