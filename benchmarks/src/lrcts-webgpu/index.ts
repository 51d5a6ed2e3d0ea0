// lrc-ts-webgpu: the kernel cases and the e2e training steps on tensor-core's native WebGPU backend
// (initBackend("webgpu"): WGSL kernels), the same ops, shapes and seeds as the lrc-ts column. Training steps are
// timed as the lrc-ts column times them (each step awaits its loss and gradient reads). Timed: compute alone, on inputs already on the device
// (the untimed first run uploads them and compiles the kernels), waited for with `backendFinish()` (every
// kernel submitted, the queue idle); results not read back. What ran, and on which adapter, goes into the
// child's description. Only tensor-core's public API is used.

import { backendFinish, backendReport, getBackend, initBackend, resetBackendReport, scope } from "@lrc-ts/tensor-core";
import type { BenchCase } from "../cases.js";
import type { Implementation, Prepared } from "../impl.js";
import { SkipCase } from "../impl.js";
import { kernelWork } from "../lrcts/kernels.js";

const firstLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0]!;

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
  const dc = kernelWork(c.spec);
  const timed = async (): Promise<void> => {
    scope(() => {
      dc.compute();
    });
    await backendFinish();
  };
  const disposeAll = (): void => {
    for (const t of dc.inputs) t.dispose();
  };
  try {
    await timed();
    resetBackendReport();
    await timed();
    const fallbacks = backendReport().ops.filter((o) => o.cpu > 0).map((o) => `${o.op} ×${o.cpu}`);
    const notes = ["column = compute only: inputs already on the device, kernels waited for with backendFinish(), results not read back"];
    if (fallbacks.length > 0) notes.push(`ran on the cpu backend (fallback): ${fallbacks.join(", ")}`);
    return { run: timed, dispose: disposeAll, note: notes.join("; ") };
  } catch (e) {
    disposeAll();
    throw new SkipCase(`the webgpu backend cannot run it: ${firstLine(e)}`);
  }
}

export const lrcTsWebGpu: Implementation = {
  async init(threads: number): Promise<string> {
    await initBackend("webgpu");
    const b = getBackend();
    return `${b.description}${b.software === true ? " (GPU speed unmeasured on this machine)" : ""}; LRC_THREADS=${threads} for cpu fallbacks`;
  },
  prepare,
};
