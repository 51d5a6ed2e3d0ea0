// Backend selection. Kernels are looked up by name on the active backend; `cpu` (TypeScript kernels, plus
// WebAssembly SIMD and worker threads where they pay) implements every kernel. `gpu` runs GPU.js kernels
// (backend/gpujs); GPU.js is imported only by `initBackend("gpu")`, so cpu-only users never load it. An op
// the gpu backend does not handle runs its cpu kernel, its inputs downloaded by `Tensor.buf`; while the gpu
// backend is active every dispatch is counted per op and backend (`backendReport()`).
//
// Timing hooks for device work (benchmarks, profiling): `gpuUpload` / `gpuDownload` move one tensor's values
// host <-> device now, `gpuFinish` waits for queued GPU work, `gpuDeviceInfo` says what the kernels run on.

import type { TypedArray } from "../dtype.js";
import type { Tensor } from "../tensor.js";
import type { GpuOps } from "./gpujs/ops.js";
import type { GpuDeviceInfo, GpuMode, GlStrings } from "./gpujs/runtime.js";

export type BackendName = "cpu" | "gpu";
export type { GpuMode, GpuDeviceInfo, GlStrings };

export interface BackendInfo {
  readonly name: BackendName;
  /** Human-readable description of what actually runs (e.g. threads, SIMD, the GPU.js mode). */
  readonly description: string;
  /** gpu only: the GPU.js mode that runs, and whether it is a software implementation. */
  readonly mode?: GpuMode;
  /** gpu only: true when the kernels run on the CPU (webasm, cpu, or gl on a software rasteriser such as llvmpipe). */
  readonly software?: boolean;
  /** gpu only: the renderer and GL driver the kernels run on, in one line (see `gpuDeviceInfo()`). */
  readonly device?: string;
}

let current: BackendName = "cpu";

/** @internal The active gpu implementation, or null on cpu: the one check an op makes before its cpu kernel. */
export let gpuOps: GpuOps | null = null;
/** The started gpu backend, kept while cpu is selected so `setBackend("gpu")` can switch back. */
let gpuInstance: GpuOps | null = null;

/** Selects the cpu backend (synchronously). The gpu backend needs `await initBackend("gpu")`. */
export function setBackend(name: string): void {
  switch (name) {
    case "cpu":
      current = name;
      gpuOps = null;
      return;
    case "gpu":
      if (gpuInstance !== null) {
        gpuOps = gpuInstance;
        current = "gpu";
        return;
      }
      throw new Error("setBackend: the gpu backend loads GPU.js asynchronously; use `await initBackend('gpu')`");
    default:
      throw new Error(`setBackend: unknown backend '${name}' (known: cpu, gpu)`);
  }
}

const GPU_MODES: ReadonlyArray<GpuMode | "auto"> = ["auto", "webgpu", "gl", "webasm", "cpu"];

export interface InitBackendOptions {
  /**
   * GPU.js mode: "auto" (default: gl, then webasm, the first that really works), or one of webgpu, gl, webasm,
   * cpu. webgpu runs only on request: its values are read with `await t.dataAsync()` (data() and item() throw).
   */
  mode?: GpuMode | "auto";
  /**
   * The caller reads values with dataAsync / itemAsync / toHostAsync (as lrc's trainer, nn's evaluate and
   * generate do): "auto" may then take WebGPU first, when its adapter is a GPU rather than a software one.
   */
  asyncReads?: boolean;
}

/** Selects a backend; for "gpu" loads GPU.js, starts and verifies the mode. Resolves to what runs. */
export async function initBackend(name: string, opts: InitBackendOptions = {}): Promise<BackendInfo> {
  if (name !== "gpu") {
    setBackend(name);
    return getBackend();
  }
  const want = opts.mode ?? "auto";
  if (!GPU_MODES.includes(want)) throw new Error(`initBackend: unknown GPU.js mode '${String(want)}' (known: ${GPU_MODES.join(", ")})`);
  if (gpuInstance === null || (want !== "auto" && gpuInstance.rt.mode !== want)) {
    const [{ createRuntime }, { GpuOps }] = await Promise.all([import("./gpujs/runtime.js"), import("./gpujs/ops.js")]);
    const rt = await createRuntime(want, { asyncReads: opts.asyncReads === true });
    gpuInstance?.rt.destroy();
    gpuInstance = new GpuOps(rt);
  }
  gpuOps = gpuInstance;
  current = "gpu";
  return getBackend();
}

export function getBackend(): BackendInfo {
  if (current === "gpu" && gpuOps !== null) {
    const rt = gpuOps.rt;
    const skipped = rt.skipped.length > 0 ? `; not used: ${rt.skipped.join("; ")}` : "";
    return {
      name: "gpu",
      mode: rt.mode,
      software: rt.software,
      device: rt.device.device,
      description: `gpu: GPU.js ${rt.mode} (${rt.kernelClass}) on ${rt.device.device}${skipped}`,
    };
  }
  return { name: current, description: describeCpu() };
}

export interface BackendReport {
  backend: BackendInfo;
  /** Per op: how many times it ran on the gpu and how many times it fell back to cpu (gpu backend only). */
  ops: Array<{ op: string; gpu: number; cpu: number }>;
  /** gpu only: live device buffers, compiled kernels, calls and transfers. */
  device?: { liveBuffers: number; kernelsCompiled: number; kernelCalls: number; uploads: number; uploadBytes: number; downloads: number; downloadBytes: number };
}

/** Which ops ran where since the gpu backend started (or since `resetBackendReport()`). */
export function backendReport(): BackendReport {
  if (gpuInstance === null) return { backend: getBackend(), ops: [] };
  return { backend: getBackend(), ops: gpuInstance.report(), device: { ...gpuInstance.rt.stats } };
}

export function resetBackendReport(): void {
  gpuInstance?.counts.clear();
}

/** The started gpu backend (active or not); throws naming the caller when it has not been started. */
function startedGpu(caller: string): GpuOps {
  if (gpuInstance === null) throw new Error(`${caller}: the gpu backend has not been started (await initBackend("gpu") first)`);
  return gpuInstance;
}

/** A tensor's storage, holding values on the host or the device; throws naming the caller when it was disposed. */
function liveStorage(caller: string, t: Tensor): NonNullable<Tensor["storage"]> {
  const s = t.storage;
  if (s === null || (s.data === null && s.device === null)) throw new Error(`${caller}: tensor ${t.id} [${t.shape.join(", ")}] was disposed`);
  return s;
}

/**
 * Copies a tensor's host values to the gpu backend's device now (a float32 or int32 tensor), so that the
 * next kernel reads them there instead of uploading them itself. A device copy the tensor already has is
 * replaced (both hold the same values), so every call is one host -> device copy; a tensor whose values live
 * only on the device is left as it is. In gl mode the copy may still be queued: `gpuFinish()` waits for it.
 */
export function gpuUpload(t: Tensor): void {
  const rt = startedGpu("gpuUpload").rt;
  const s = liveStorage("gpuUpload", t);
  if (s.data === null) return;
  if (t.dtype !== "float32" && t.dtype !== "int32")
    throw new Error(`gpuUpload: tensor ${t.id} [${t.shape.join(", ")}] is ${t.dtype}; the gpu backend keeps only float32 and int32 tensors on the device`);
  const old = s.device;
  s.device = rt.upload(s.data, t.size);
  old?.free();
}

/**
 * Copies a tensor's device values to the host now, into `out` (at least t.size long; a new Int32Array or
 * Float32Array of t.size when omitted), and resolves to it. Unlike `t.data()` it neither keeps a host copy in
 * the tensor nor reads one it has, so every call is one device -> host copy. Rejects when the tensor has no
 * device copy (its op ran on the cpu backend, or its host buffer was taken for writing). Asynchronous because
 * WebGPU reads are; in the other modes the copy is made before the call returns.
 */
export async function gpuDownload(t: Tensor, out?: TypedArray): Promise<TypedArray> {
  startedGpu("gpuDownload");
  const s = liveStorage("gpuDownload", t);
  if (s.device === null)
    throw new Error(`gpuDownload: tensor ${t.id} [${t.shape.join(", ")}] has no device copy (its values live on the host: its op ran on the cpu backend, or its host buffer was taken for writing)`);
  const dst = out ?? (t.dtype === "int32" ? new Int32Array(t.size) : new Float32Array(t.size));
  if (dst.length < t.size) throw new RangeError(`gpuDownload: out holds ${dst.length} values, tensor ${t.id} has ${t.size}`);
  await s.device.downloadAsync(dst, t.size);
  return dst;
}

/**
 * Waits until all GPU work queued so far (kernels, uploads) has finished: `gl.finish()` in gl mode (called
 * before this returns its promise); in webgpu mode until every kernel has been submitted, the queue is idle
 * and released buffers are deleted, then rejects with the first kernel failure if one happened; webasm and
 * cpu kernels are synchronous. For timing compute apart from transfers.
 */
export async function gpuFinish(): Promise<void> {
  await startedGpu("gpuFinish").rt.finish();
}

/** What the started gpu backend's kernels run on: mode, renderer strings, GL driver, and whether it is software. */
export function gpuDeviceInfo(): GpuDeviceInfo {
  return startedGpu("gpuDeviceInfo").rt.device;
}

let describeCpu = (): string => "cpu: TypeScript kernels";

/** @internal The cpu kernels register a description of their runtime (threads, SIMD). */
export function setCpuDescription(fn: () => string): void {
  describeCpu = fn;
}

/** Applies LRC_BACKEND from the environment, if set (`cpu` only: use `initBackendFromEnvAsync` for gpu). */
export function initBackendFromEnv(env: Record<string, string | undefined>): BackendInfo {
  const want = env.LRC_BACKEND;
  if (want !== undefined && want !== "") setBackend(want);
  return getBackend();
}

/**
 * Applies LRC_BACKEND (and LRC_GPU_MODE) from the environment, gpu included, and prints what runs (for gpu:
 * the mode, and that it is software when it is).
 */
export async function initBackendFromEnvAsync(
  env: Record<string, string | undefined>,
  log: (line: string) => void = console.error,
  opts: Pick<InitBackendOptions, "asyncReads"> = {},
): Promise<BackendInfo> {
  const want = env.LRC_BACKEND;
  if (want === undefined || want === "") return getBackend();
  const mode = env.LRC_GPU_MODE;
  if (mode !== undefined && mode !== "" && !GPU_MODES.includes(mode as GpuMode))
    throw new Error(`LRC_GPU_MODE: unknown GPU.js mode '${mode}' (known: ${GPU_MODES.join(", ")})`);
  const info = await initBackend(want, { ...opts, ...(mode !== undefined && mode !== "" ? { mode: mode as GpuMode } : {}) });
  log(`lrc backend: ${info.description}`);
  return info;
}
