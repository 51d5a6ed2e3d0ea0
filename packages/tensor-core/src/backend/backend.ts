// Backend selection. Kernels are looked up by name on the active backend; `cpu` (TypeScript kernels, plus
// WebAssembly SIMD and worker threads where they pay) implements every kernel. `gpu` runs GPU.js kernels
// (backend/gpujs); GPU.js is imported only by `initBackend("gpu")`, so cpu-only users never load it. An op
// the gpu backend does not handle runs its cpu kernel, its inputs downloaded by `Tensor.buf`; while the gpu
// backend is active every dispatch is counted per op and backend (`backendReport()`).

import type { GpuOps } from "./gpujs/ops.js";
import type { GpuMode } from "./gpujs/runtime.js";

export type BackendName = "cpu" | "gpu";
export type { GpuMode };

export interface BackendInfo {
  readonly name: BackendName;
  /** Human-readable description of what actually runs (e.g. threads, SIMD, the GPU.js mode). */
  readonly description: string;
  /** gpu only: the GPU.js mode that runs, and whether it is a software implementation. */
  readonly mode?: Exclude<GpuMode, "webgpu">;
  readonly software?: boolean;
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

export interface InitBackendOptions {
  /** GPU.js mode: "auto" (default: webgpu, then gl, then webasm, the first that really works), or one of them. */
  mode?: GpuMode | "auto";
}

/** Selects a backend; for "gpu" loads GPU.js, starts and verifies the mode. Resolves to what runs. */
export async function initBackend(name: string, opts: InitBackendOptions = {}): Promise<BackendInfo> {
  if (name !== "gpu") {
    setBackend(name);
    return getBackend();
  }
  const want = opts.mode ?? "auto";
  if (gpuInstance === null || (want !== "auto" && gpuInstance.rt.mode !== want)) {
    const [{ createRuntime }, { GpuOps }] = await Promise.all([import("./gpujs/runtime.js"), import("./gpujs/ops.js")]);
    const rt = await createRuntime(want);
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
      description: `gpu: GPU.js ${rt.mode} (${rt.kernelClass}${rt.software ? ", software: kernels run on the CPU" : ""})${skipped}`,
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
export async function initBackendFromEnvAsync(env: Record<string, string | undefined>, log: (line: string) => void = console.error): Promise<BackendInfo> {
  const want = env.LRC_BACKEND;
  if (want === undefined || want === "") return getBackend();
  const mode = env.LRC_GPU_MODE;
  const info = await initBackend(want, mode !== undefined && mode !== "" ? { mode: mode as GpuMode } : {});
  log(`lrc backend: ${info.description}`);
  return info;
}
