/**
 * Barrel of the cpu backend's typed-array kernels for the scripts (benchmarks, profiling): pure synchronous
 * functions over typed arrays, no Tensor dependency (the Tensor-level table is CpuKernels, cpu-kernels.ts).
 * gemm (blocked, WebAssembly SIMD for float32, worker-parallel), attention, fused row kernels, AdamW, the worker
 * pool controls and the buffer pool; the elementwise `binary` (the tape's in-place host add of cotangents).
 */
export type { Float } from "./gemm-runtime.js";
export { gemm, gemmUsesWasm, type GemmParams } from "./gemm.js";
export { gemmUsesRelaxedSimd } from "./wasm-gemm.js";
export { hasSimd, hasRelaxedSimd } from "./wasm-features.js";
export {
  attentionForward,
  attentionBackward,
  type AttentionForwardParams,
  type AttentionBackwardParams,
} from "./attention.js";
export {
  softmaxRows,
  logSoftmaxRows,
  softmaxRowsBackward,
  logSoftmaxRowsBackward,
  crossEntropyForward,
  crossEntropyBackward,
  klDivForward,
  klDivBackward,
  rmsNormForward,
  rmsNormBackward,
  ropeForward,
} from "./rows.js";
export { adamwUpdate, type AdamWOptions } from "./adamw.js";
export { scaleInPlace, sumSquares } from "./fused.js";
export { binary } from "./elementwise.js";
export {
  getThreadCount,
  setThreadCount,
  getParallelThreshold,
  setParallelThreshold,
  shutdownPool,
  lastParallelRun,
  type ParallelRunInfo,
} from "./worker-pool.js";
export {
  acquire,
  acquireZeroed,
  acquireShared,
  release,
  isShared,
  setBufferPoolLimit,
  clearBufferPool,
  bufferPoolStats,
  SHARED_MIN_BYTES,
  type PoolDtype,
  type PoolArray,
} from "./buffer-pool.js";
