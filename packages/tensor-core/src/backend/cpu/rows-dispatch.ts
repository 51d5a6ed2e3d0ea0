/**
 * Runs a row job of rows-runtime.ts (cross-entropy rows, SwiGLU) on the calling thread's row runtime, spread over
 * the worker pool when it is large enough and its arrays are SharedArrayBuffer-backed (pool buffers of 64 KiB or
 * more are). Results are the same either way.
 */
import { createRowsRuntime, STREAMING_KINDS, type RowsJob, type RowsRuntime } from "./rows-runtime.js";
import { VECTOR_LAYOUT, vectorInstance, vectorKernels } from "./wasm-vector.js";
import { getParallelThreshold, getThreadCount, poolAvailable, runParallel, unsharedField } from "./worker-pool.js";

/**
 * A row job counts as this many gemm flops per element against the pool's threshold (`getParallelThreshold()`,
 * default 2^23): with the default it goes parallel from 131,072 floats (a parallel call costs ~25 us, about what
 * one thread spends on 30,000 floats of exp), and `setParallelThreshold(0)` forces it, as for gemm.
 */
const FLOPS_PER_ELEMENT = 64;

/**
 * The streaming jobs (rows-runtime.ts's STREAMING_KINDS: a copy in, a few flops, bound by memory) count this many
 * instead: parallel from 524,288 floats, where a second thread's memory traffic pays for the
 * parallel call.
 */
const STREAM_FLOPS_PER_ELEMENT = 16;

let runtime: RowsRuntime | null | undefined;

/** The calling thread's row runtime, or null when the wasm vector kernels are unavailable or switched off. */
export function rowsRuntime(): RowsRuntime | null {
  if (vectorKernels() === null) return null;
  if (runtime === undefined) {
    const rt = createRowsRuntime(vectorInstance(), VECTOR_LAYOUT);
    runtime = rt.wasm ? rt : null;
  }
  return runtime;
}

/** Runs `job` (`elements` = its size in floats) with `rt`; on the pool when it pays and can. */
export function runRows(rt: RowsRuntime, job: RowsJob, elements: number): void {
  const items = rt.itemCount(job);
  const flops = elements * (STREAMING_KINDS.has(job.kind) ? STREAM_FLOPS_PER_ELEMENT : FLOPS_PER_ELEMENT);
  if (getThreadCount() > 1 && items > 1 && flops >= getParallelThreshold() && unsharedField(job) === null && poolAvailable()) {
    runParallel("rows", job, items, (claim) => rt.runItems(job, claim));
    return;
  }
  let next = 0;
  rt.runItems(job, () => next++);
}
