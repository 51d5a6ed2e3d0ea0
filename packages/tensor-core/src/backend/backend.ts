// Backend selection: a registry of backends by name. `cpu` (TypeScript kernels, plus WebAssembly SIMD and
// worker threads where they pay) implements every kernel and is always there; `gpu` runs GPU.js kernels
// (backend/gpujs), imported only by `initBackend("gpu")`, so cpu-only users never load GPU.js; `webgpu` runs
// WGSL kernels written for WebGPU (backend/webgpu), imported only by `initBackend("webgpu")`. Another backend
// is a `Backend` (kernels.ts: a `Partial<Kernels>` table and an `accepts` rule) made available with
// `registerBackend(name, loader)`. Ops call `dispatch` (dispatch.ts), which runs the active backend's kernel or
// the cpu one and counts where each ran (`backendReport()`).
//
// Timing hooks for device work (benchmarks, profiling), the same on every device backend: `backendUpload` /
// `backendDownload` move one tensor's values host <-> device now, `backendFinish` waits for queued device work;
// `gpuDeviceInfo` says what the GPU.js kernels run on.

import type { TypedArray } from "../dtype.js";
import type { Tensor } from "../tensor.js";
import { activate, dispatchCounts, resetDispatchCounts } from "./dispatch.js";
import { GPU_MODES, loadGpujs, type GpujsBackend } from "./gpujs/backend.js";
import { autoTakesWebGpu, missingVulkanLoader, webGpuAdapterInfo } from "./auto.js";
import type { Backend, BackendInfo, DeviceStats } from "./kernels.js";
import { autoDeviceWithoutLoading, type GpuDeviceInfo, type GpuMode, type GlStrings } from "./gpujs/runtime.js";

/**
 * A backend's name: the built-in "cpu", "gpu" (GPU.js) and "webgpu" (native WGSL), "auto" (`initBackend`
 * picks one of them), or a name given to `registerBackend` (any string: `string & {}` keeps the built-in names
 * suggested by editors). A name that is not registered is refused with the list of registered ones.
 */
export type BackendName = "cpu" | "gpu" | "webgpu" | "auto" | (string & {});
export type { Backend, BackendInfo, GpuMode, GpuDeviceInfo, GlStrings };

export interface InitBackendOptions {
  /**
   * gpu: the GPU.js mode, "auto" (default: gl, then webasm, the first that really works), or one of webgpu,
   * gl, webasm, cpu. webgpu runs only on request: its values are read with `await t.dataAsync()` (data() and
   * item() throw).
   */
  mode?: GpuMode | "auto";
  /**
   * The caller reads values with dataAsync / itemAsync / toHostAsync (as lrc's trainer, nn's evaluate and
   * generate do): the gpu backend's "auto" may then take WebGPU first, when its adapter is a GPU rather than
   * a software one.
   */
  asyncReads?: boolean;
  /**
   * webgpu: the matmul design, "auto" (default: texture-packed register blocks on a software adapter such as
   * lavapipe, workgroup-memory tiles on a GPU), "timed" (both timed at start-up, the faster kept), "tiled" or
   * "texture".
   */
  matmul?: "auto" | "timed" | "tiled" | "texture";
  /** webgpu: use `shader-f16` (f16 storage of float16 weights) when the adapter has it (default true). */
  f16?: boolean;
  /** webgpu: use `subgroups` (the row reductions) when the adapter has them (default true). */
  subgroups?: boolean;
}

/**
 * Loads a backend: given the options and the instance started before (null the first time), resolves to the
 * backend to use (that one again, or a new one: the registry then disposes the old).
 */
export type BackendLoader = (opts: InitBackendOptions, current: Backend | null) => Backend | Promise<Backend>;

/** The native WebGPU backend (backend/webgpu), imported only when it is started. */
const loadWebGpu: BackendLoader = async (opts, current) => (await import("./webgpu/backend.js")).loadWebGpu(opts, current);

const loaders = new Map<BackendName, BackendLoader>([["gpu", loadGpujs], ["webgpu", loadWebGpu]]);
/** The started backends other than cpu, kept while another is selected so `setBackend` can switch back. */
const started = new Map<BackendName, Backend>();
let current: BackendName = "cpu";
/** The last backend other than cpu that was selected: what `backendReport()` counts. */
let lastDevice: Backend | null = null;
/**
 * What "auto" chose in this process and why it passed over the others: kept so a later `initBackend("auto")`
 * (each CLI command run in one process) does not probe the adapters again, and so `getBackend()` can say why
 * while it is selected. Forgotten when a backend is registered.
 */
let autoChoice: { name: BackendName; notes: readonly string[]; opts: string } | null = null;

/** The error for a name no backend is registered under, naming the registered ones. */
function unknownBackend(caller: string, name: string): Error {
  return new Error(`${caller}: unknown backend '${name}' (registered: ${registeredBackends().join(", ")}; or auto)`);
}

/** Makes a backend available to `initBackend(name)` (a name registered before is replaced; "cpu" is built in). */
export function registerBackend(name: BackendName, loader: BackendLoader): void {
  if (name === "cpu" || name === "auto") throw new Error(`registerBackend: '${name}' is built in`);
  loaders.set(name, loader);
  autoChoice = null;
  const old = started.get(name);
  if (old !== undefined) {
    if (current === name) setBackend("cpu");
    started.delete(name);
    old.dispose?.();
  }
}

/** The registered backends' names, "cpu" first. */
export function registeredBackends(): BackendName[] {
  return ["cpu", ...loaders.keys()];
}

function select(name: BackendName, b: Backend | null): void {
  activate(b);
  current = name;
  if (b !== null) lastDevice = b;
}

/** Selects a started backend (synchronously): cpu always; another once `await initBackend(name)` started it. */
export function setBackend(name: BackendName): void {
  autoChoice = null;
  if (name === "cpu") return select("cpu", null);
  const b = started.get(name);
  if (b !== undefined) return select(name, b);
  if (loaders.has(name) || name === "auto") throw new Error(`setBackend: the ${name} backend loads asynchronously; use \`await initBackend('${name}')\``);
  throw unknownBackend("setBackend", name);
}

/**
 * Selects a backend, loading and starting it first when needed (for "gpu": GPU.js in the mode asked for).
 * Resolves to what runs. "auto" (backend/auto.ts) takes the native WebGPU backend on a hardware adapter, else
 * GPU.js where it runs on a GPU, else cpu; the info's `autoNotes` say why the others were not taken.
 */
export async function initBackend(name: BackendName, opts: InitBackendOptions = {}): Promise<BackendInfo> {
  if (name === "auto") return initAuto(opts);
  autoChoice = null;
  if (name === "cpu") {
    setBackend(name);
    return getBackend();
  }
  const loader = loaders.get(name);
  if (loader === undefined) throw unknownBackend("initBackend", name);
  const old = started.get(name) ?? null;
  const b = await loader(opts, old);
  if (old !== null && b !== old) old.dispose?.();
  started.set(name, b);
  select(name, b);
  return getBackend();
}

async function initAuto(opts: InitBackendOptions): Promise<BackendInfo> {
  const before = autoChoice, key = JSON.stringify(opts);
  if (before !== null && before.opts === key && (before.name === "cpu" || started.has(before.name))) {
    setBackend(before.name);
    autoChoice = before;
    return getBackend();
  }
  const info = await probeAuto(opts);
  autoChoice = { name: info.name, notes: info.autoNotes ?? [], opts: key };
  return getBackend();
}

async function probeAuto(opts: InitBackendOptions): Promise<BackendInfo> {
  const notes: string[] = [];
  const failed = (what: string, e: unknown) => notes.push(`${what}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
  const noLoader = missingVulkanLoader();
  if (noLoader !== null) notes.push(`webgpu: ${noLoader}`);
  else
    try {
      const pick = autoTakesWebGpu(await webGpuAdapterInfo());
      if (pick.take) return { ...(await initBackend("webgpu", opts)), autoNotes: notes };
      notes.push(`webgpu: ${pick.why}`);
    } catch (e) {
      failed("webgpu", e);
    }
  if (loaders.has("gpu")) {
    // GPU.js is not loaded where it is known to run on the CPU; the note is the one it gives when started.
    const cpuOnly = loaders.get("gpu") === loadGpujs && (opts.mode ?? "auto") === "auto" ? autoDeviceWithoutLoading() : null;
    if (cpuOnly !== null) notes.push(`gpu: ${cpuOnly.device}, not taken automatically`);
    else
      try {
        const info = await initBackend("gpu", opts);
        if (info.software !== true) return { ...info, autoNotes: notes };
        notes.push(`gpu: ${info.device ?? info.description}, not taken automatically`);
      } catch (e) {
        failed("gpu", e);
      }
    setBackend("cpu");
    const g = started.get("gpu");
    if (g !== undefined) {
      started.delete("gpu");
      if (lastDevice === g) lastDevice = null;
      g.dispose?.();
    }
  }
  return { ...getBackend(), autoNotes: notes };
}

/** What runs now; chosen by "auto", with its `autoNotes` (why the backends tried before it were not taken). */
export function getBackend(): BackendInfo {
  const b = current === "cpu" ? null : started.get(current)!;
  const info = b === null ? { name: "cpu", description: describeCpu() } : (b.info?.() ?? { name: current, description: current });
  return autoChoice !== null && autoChoice.name === current ? { ...info, autoNotes: autoChoice.notes } : info;
}

export interface BackendReport {
  backend: BackendInfo;
  /**
   * Per op (kernel name) of the last backend other than cpu that was selected: how many dispatches ran on its
   * own kernels (`device`) and how many fell back to the cpu kernels (`cpu`).
   */
  ops: Array<{ op: string; device: number; cpu: number }>;
  /** That backend's device counters, when it keeps them (gpu: live buffers, compiled kernels, calls and transfers). */
  device?: DeviceStats;
}

/** Which kernels ran where since a backend other than cpu was first selected (or since `resetBackendReport()`). */
export function backendReport(): BackendReport {
  const b = lastDevice;
  if (b === null) return { backend: getBackend(), ops: [] };
  const stats = b.stats?.();
  return { backend: getBackend(), ops: dispatchCounts(b.name), ...(stats !== undefined ? { device: stats } : {}) };
}

export function resetBackendReport(): void {
  resetDispatchCounts();
}

/** @internal A started backend other than cpu (active or not), by name. */
export function startedBackend(name: BackendName): Backend | undefined {
  return started.get(name);
}

/** The started gpu backend (active or not); throws naming the caller when it has not been started. */
function startedGpu(caller: string): GpujsBackend {
  const b = started.get("gpu");
  if (b === undefined) throw new Error(`${caller}: the gpu backend has not been started (await initBackend("gpu") first)`);
  return b as GpujsBackend;
}

/** A tensor's storage, holding values on the host or the device; throws naming the caller when it was disposed. */
function liveStorage(caller: string, t: Tensor): NonNullable<Tensor["storage"]> {
  const s = t.storage;
  if (s === null || (s.data === null && s.device === null)) throw new Error(`${caller}: tensor ${t.id} [${t.shape.join(", ")}] was disposed`);
  return s;
}

/** One device -> host copy of t's values into out (new when omitted); rejects, naming the caller, without a device copy. */
async function downloadTo(caller: string, t: Tensor, out?: TypedArray): Promise<TypedArray> {
  const s = liveStorage(caller, t);
  if (s.device === null)
    throw new Error(`${caller}: tensor ${t.id} [${t.shape.join(", ")}] has no device copy (its values live on the host: its op ran on the cpu backend, or its host buffer was taken for writing)`);
  const dst = out ?? (t.dtype === "int32" ? new Int32Array(t.size) : new Float32Array(t.size));
  if (dst.length < t.size) throw new RangeError(`${caller}: out holds ${dst.length} values, tensor ${t.id} has ${t.size}`);
  await s.device.downloadAsync(dst, t.size);
  return dst;
}

/**
 * Waits until the work queued on the selected backend (or, with cpu selected, the last other one) has finished,
 * then rejects with the first kernel failure if one happened; resolves at once on cpu. For timing device compute
 * apart from reads. webgpu: every kernel submitted and the queue idle (released buffers deleted); gpu (GPU.js):
 * `gl.finish()` in gl mode, the same as webgpu in its webgpu mode, nothing in the synchronous webasm/cpu modes.
 */
export async function backendFinish(): Promise<void> {
  await lastDevice?.finish?.();
}

/**
 * Copies a tensor's host values (float32 or int32) to the device of the selected backend (or, with cpu
 * selected, the last other one) now, so the next kernel reads them there instead of uploading them itself. The
 * device copy it had is replaced (both hold the same values): every call is one host -> device copy (it may
 * still be queued: `backendFinish()` waits for it). A tensor whose values live only on the device is left as
 * it is. For timing transfers apart from compute (benchmarks).
 */
export function backendUpload(t: Tensor): void {
  const s = liveStorage("backendUpload", t);
  if (s.data === null) return;
  if (lastDevice?.upload === undefined) throw new Error(`backendUpload: the ${lastDevice?.name ?? "cpu"} backend has no upload (start one that has: await initBackend("webgpu"))`);
  lastDevice.upload(t);
}

/**
 * Copies a tensor's device values to the host now, into `out` (at least t.size long; a new Int32Array or
 * Float32Array of t.size when omitted), and resolves to it. Unlike `t.data()` it neither keeps a host copy in
 * the tensor nor reads one it has: every call is one device -> host copy. Rejects when the tensor has no device
 * copy (its op ran on the cpu backend, or its host buffer was taken for writing). Any backend's device copy
 * (gpu, webgpu); asynchronous because WebGPU reads are.
 */
export async function backendDownload(t: Tensor, out?: TypedArray): Promise<TypedArray> {
  return downloadTo("backendDownload", t, out);
}

/** What the started gpu backend's kernels run on: mode, renderer strings, GL driver, and whether it is software. */
export function gpuDeviceInfo(): GpuDeviceInfo {
  return startedGpu("gpuDeviceInfo").rt.device;
}

/** One line saying what runs, and for "auto" why the backends before it were not taken: `lrc backend: ...`. */
export function describeChoice(info: BackendInfo): string {
  const why = info.autoNotes !== undefined && info.autoNotes.length > 0 ? ` (auto: ${info.autoNotes.join("; ")})` : "";
  return `lrc backend: ${info.description}${why}`;
}

let describeCpu = (): string => "cpu: TypeScript kernels";

/** @internal The cpu kernels register a description of their runtime (threads, SIMD). */
export function setCpuDescription(fn: () => string): void {
  describeCpu = fn;
}

/** Applies LRC_BACKEND from the environment, if set (`cpu` only: use `initBackendFromEnvAsync` for gpu). */
export function initBackendFromEnv(env: Record<string, string | undefined>): BackendInfo {
  const want = envBackend(env);
  if (want !== null) setBackend(want);
  return getBackend();
}

/** LRC_BACKEND (null when unset or empty); a name that is not registered is refused, naming the registered ones. */
function envBackend(env: Record<string, string | undefined>): BackendName | null {
  const want = env.LRC_BACKEND;
  if (want === undefined || want === "") return null;
  if (want !== "cpu" && want !== "auto" && !loaders.has(want)) throw unknownBackend("LRC_BACKEND", want);
  return want;
}

/**
 * Applies LRC_BACKEND (and LRC_GPU_MODE) from the environment, gpu included, else `opts.fallback` (the lrc CLI
 * and the distill-qwen example pass "auto"), and prints what runs and, for auto, why (`describeChoice`). With
 * neither, the selected backend stays and nothing is printed.
 */
export async function initBackendFromEnvAsync(
  env: Record<string, string | undefined>,
  log: (line: string) => void = console.error,
  opts: Pick<InitBackendOptions, "asyncReads"> & { fallback?: BackendName } = {},
): Promise<BackendInfo> {
  const { fallback, ...init } = opts;
  const want = envBackend(env) ?? fallback ?? null;
  if (want === null) return getBackend();
  const mode = env.LRC_GPU_MODE;
  if (mode !== undefined && mode !== "" && !GPU_MODES.includes(mode as GpuMode))
    throw new Error(`LRC_GPU_MODE: unknown GPU.js mode '${mode}' (known: ${GPU_MODES.join(", ")})`);
  const info = await initBackend(want, { ...init, ...(mode !== undefined && mode !== "" ? { mode: mode as GpuMode } : {}) });
  log(describeChoice(info));
  return info;
}
