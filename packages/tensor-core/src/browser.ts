// @lrc-ts/tensor-core, platform-neutral entry point: everything except the Node file helpers of
// ./safetensors-node.ts (readSafetensorsFile, writeSafetensorsFile...). Bundlers that set the "browser"
// condition resolve the package here; Node resolves ./index.ts, which re-exports this plus the file helpers.
// Nothing reachable from here imports a Node module (the cpu worker pool finds worker_threads at run time
// through process.getBuiltinModule and runs on one thread where there is none).

export type { DType, HalfDType, TypedArray, FloatArray } from "./dtype.js";
export { isHalf } from "./dtype.js";
export type { Shape } from "./shape.js";
export { Tensor, tensor, bfloat16Tensor, float16Tensor, zeros, ones, full, zerosLike, onesLike, arange, randn, rand, scope, keep } from "./tensor.js";
export type { TensorOptions, RandomOptions } from "./tensor.js";
export { Rng, rng } from "./random.js";
export type { RngState } from "./random.js";
export { noGrad, isGradEnabled, evict } from "./autodiff/tape.js";
export { valueAndGrad, grad } from "./autodiff/grad.js";
export * from "./ops/index.js";
export { setBackend, getBackend, initBackendFromEnv, initBackend, initBackendFromEnvAsync, describeChoice, backendReport, resetBackendReport, registerBackend, registeredBackends } from "./backend/backend.js";
export { gpuDeviceInfo, backendFinish, backendUpload, backendDownload } from "./backend/backend.js";
export { isSoftwareRenderer } from "./backend/gpujs/software.js";
export { autoTakesWebGpu, missingVulkanLoader, webGpuAdapterInfo } from "./backend/auto.js";
export type { LoaderSearch } from "./backend/auto.js";
export type { BackendInfo, BackendLoader, BackendName, BackendReport, GpuMode, GpuDeviceInfo, GlStrings, InitBackendOptions } from "./backend/backend.js";
export type {
  Backend, Kernels, KernelName, UnaryOp, BinaryOp, ReduceOp, GemmDims, AttentionDims, AdamWHyper, KlForward, DeviceStats,
} from "./backend/kernels.js";
export * as optim from "./optim/optim.js";
export { AdamW, SGD, accumulate, clipGradNorm, clipGradNormAsync, schedules } from "./optim/optim.js";
export type { AdamWGroup, AdamWOptions, AdamWState, SGDOptions, Schedule } from "./optim/optim.js";
export {
  SAFETENSORS_DTYPE_SIZE, SAFETENSORS_MAX_HEADER_BYTES, SafetensorsError, parseSafetensors, planSafetensors, serializeSafetensors,
  type SafetensorsDType, type SafetensorsFloatDType, type SafetensorsTensorInfo, type SafetensorsFile, type SafetensorsTensorInput, type SafetensorsLazyTensorInput,
  type SafetensorsTensorMap, type SerializeOptions, type SafetensorsPlan,
} from "./safetensors.js";
/** The CPU buffer pool: its statistics (cached and fresh bytes) and its cache limit (default: LRC_POOL_LIMIT, else half the memory), for memory tuning. */
export { bufferPoolStats, setBufferPoolLimit, parsePoolLimit, memoryLimit, poolBucketBytes } from "./backend/cpu/buffer-pool.js";

