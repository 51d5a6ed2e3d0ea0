// lrc-ts-gpu: the kernel cases on tensor-core's gpu backend (GPU.js kernels), each timed in three parts:
// upload (the inputs host -> device, `backendUpload`), compute (the same ops as the lrc-ts column, on inputs
// already on the device, waited for with `backendFinish()`: gl.finish() in gl mode, the queue idle in webgpu;
// results not read back) and download (one run's results device -> host, `backendDownload`). Shapes and seeds
// are the lrc-ts column's.
// Only tensor-core's public API is used; what the device is comes from `gpuDeviceInfo()`.
//
// The mode is the one asked for (--gpu-mode; auto: gl when an X display is set and gl loads, else
// webasm); which one ran, the device it ran on and whether that is software (it always is on a machine
// without a GPU) go into every record and the child's description.

import { gpuDeviceInfo, initBackend } from "@lrc-ts/tensor-core";
import type { GpuDeviceInfo } from "@lrc-ts/tensor-core";
import type { BenchCase } from "../cases.js";
import type { GpuModeArg } from "../cli.js";
import type { Implementation, Prepared } from "../impl.js";
import { firstLine, prepareKernelOnDevice } from "../device-kernels.js";

/** The device as this harness ran it: tensor-core's identification, plus that run.ts started Xvfb. */
export interface BenchDevice {
  mode: GpuDeviceInfo["mode"];
  device: string;
  software: boolean;
  /** "" or "; X display from xvfb-run (...)": what the device line adds to tensor-core's. */
  xvfbNote: string;
}

/**
 * The device record of a run: `gpuDeviceInfo()`, and when run.ts started the child under xvfb-run
 * (LRC_BENCH_XVFB=1) in gl mode a note saying so, with software forced (Xvfb offers only Mesa's software GLX).
 */
export function benchDevice(info: GpuDeviceInfo, underXvfb: boolean): BenchDevice {
  if (!underXvfb || info.mode !== "gl") return { mode: info.mode, device: info.device, software: info.software, xvfbNote: "" };
  const xvfbNote = "; X display from xvfb-run (Xvfb offers only Mesa's software GLX)";
  return { mode: info.mode, device: `${info.device}${xvfbNote}`, software: true, xvfbNote };
}

function computeNote(info: BenchDevice): string {
  const waited = info.mode === "gl" ? "gl.finish()" : info.mode === "webgpu" ? "backendFinish() (every kernel submitted, the queue idle)" : null;
  return waited !== null
    ? `column = compute only: inputs already on the device, kernels waited for with ${waited}, results not read back; upload and download in the GPU table`
    : `column = compute only (GPU.js ${info.mode} runs on the CPU and is synchronous: each kernel call copies its arguments into and its result out of WebAssembly memory, which is part of compute; upload and download, in the GPU table, are the backend's host-side copies)`;
}

/** The lrc-ts-gpu implementation in the given GPU.js mode ("auto": gl where it starts, else webasm). */
export function lrcTsGpu(mode: GpuModeArg): Implementation {
  let info: BenchDevice | null = null;
  return {
    async init(threads: number): Promise<string> {
      const backend = await initBackend("gpu", { mode }).catch((e: unknown) => {
        const display = process.env["DISPLAY"] ?? "";
        const hint = mode === "gl" && display !== "" && process.env["LRC_BENCH_XVFB"] !== "1"
          ? ` (DISPLAY is "${display}": headless-gl needs a working X display there; unset DISPLAY to have pnpm bench start xvfb-run -a, or use --gpu-mode webasm)`
          : "";
        throw new Error(`${firstLine(e)}${hint}`);
      });
      info = benchDevice(gpuDeviceInfo(), process.env["LRC_BENCH_XVFB"] === "1");
      const speed = info.software ? "GPU speed unmeasured on this machine" : "a GPU";
      return `${backend.description}${info.xvfbNote} (${speed}); --gpu-mode ${mode}; LRC_THREADS=${threads} for cpu fallbacks`;
    },
    async prepare(c: BenchCase): Promise<Prepared> {
      if (info === null) throw new Error("lrc-ts-gpu: prepare before init");
      return prepareKernelOnDevice(c, {
        computeNote: computeNote(info),
        countTraffic: true,
        mode: info.mode,
        device: info.device,
        software: info.software,
        cannotRun: `the gpu backend cannot run it in GPU.js ${info.mode}`,
      });
    },
  };
}
