// lrc-ts-webgpu: the kernel cases and the e2e training steps on tensor-core's native WebGPU backend
// (initBackend("webgpu"): WGSL kernels), the same ops, shapes and seeds as the lrc-ts column. Training steps are
// timed as the lrc-ts column times them (each step awaits its loss and gradient reads). Timed: compute alone, on inputs already on the device
// (the untimed first run uploads them and compiles the kernels), waited for with `backendFinish()` (every
// kernel submitted, the queue idle); results not read back. Kernel cases also time upload (`backendUpload` of
// the inputs, then `backendFinish()`) and download (`backendDownload` of the results) apart, for the GPU table.
// What ran, and on which adapter (with its optional features: --webgpu-features on|off), goes into the child's
// description. Only tensor-core's public API is used.

import { backendReport, getBackend, initBackend, resetBackendReport } from "@lrc-ts/tensor-core";
import type { BenchCase } from "../cases.js";
import type { WebGpuFeaturesArg } from "../cli.js";
import type { Implementation, Prepared } from "../impl.js";
import { SkipCase } from "../impl.js";
import { prepareKernelOnDevice } from "../device-kernels.js";

/** The e2e training steps (pretrain, distill): lrc's `Trainer.step1()` on the webgpu backend, as the lrc-ts column runs it on cpu. */
async function prepareTraining(c: BenchCase): Promise<Prepared> {
  if (c.spec.kind !== "pretrain" && c.spec.kind !== "distill") throw new SkipCase(`lrc-ts-webgpu does not run ${c.spec.kind} cases`);
  const p = await (await import("../lrcts/training.js")).prepareTrainingCase(c.spec);
  await p.run();
  resetBackendReport();
  await p.run();
  const fallbacks = backendReport().ops.filter((o) => o.cpu > 0).map((o) => `${o.op} ×${o.cpu}`);
  return fallbacks.length > 0 ? { ...p, note: `${p.note ?? ""}; ran on the cpu backend (fallback) per step: ${fallbacks.join(", ")}` } : p;
}

async function prepare(c: BenchCase): Promise<Prepared> {
  if (c.suite === "e2e") return prepareTraining(c);
  const b = getBackend();
  return prepareKernelOnDevice(c, {
    computeNote: "column = compute only: inputs already on the device, kernels waited for with backendFinish(), results not read back; upload and download in the GPU table",
    countTraffic: false,
    mode: "native webgpu",
    device: b.device ?? b.description,
    software: b.software === true,
    cannotRun: "the webgpu backend cannot run it",
  });
}

/** The column; features "off" starts the backend without shader-f16 and subgroups (the plain kernels). */
export function lrcTsWebGpu(features: WebGpuFeaturesArg = "on"): Implementation {
  return {
    async init(threads: number): Promise<string> {
      await initBackend("webgpu", features === "off" ? { f16: false, subgroups: false } : {});
      const b = getBackend();
      return `${b.description}${b.software === true ? " (GPU speed unmeasured on this machine)" : ""}; LRC_THREADS=${threads} for cpu fallbacks`;
    },
    prepare,
  };
}
