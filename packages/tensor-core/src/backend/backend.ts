// Backend selection. Kernels are looked up by name on the active backend; `cpu` (TypeScript kernels, plus
// WebAssembly SIMD and worker threads where they pay) implements every kernel. The GPU.js backend is
// tracked separately (issue 8) and plugs in behind the same names; until then selecting it is an error,
// never a silent fallback.

export type BackendName = "cpu" | "gpu";

export interface BackendInfo {
  readonly name: BackendName;
  /** Human-readable description of what actually runs (e.g. threads, SIMD). */
  readonly description: string;
}

let current: BackendName = "cpu";

export function setBackend(name: string): void {
  switch (name) {
    case "cpu":
      current = name;
      return;
    case "gpu":
      throw new Error("setBackend: the gpu (GPU.js) backend is not available in this build yet; use 'cpu'");
    default:
      throw new Error(`setBackend: unknown backend '${name}' (known: cpu, gpu)`);
  }
}

export function getBackend(): BackendInfo {
  return { name: current, description: describeCpu() };
}

let describeCpu = (): string => "cpu: TypeScript kernels";

/** @internal The cpu kernels register a description of their runtime (threads, SIMD). */
export function setCpuDescription(fn: () => string): void {
  describeCpu = fn;
}

/** Applies LRC_BACKEND from the environment, if set. */
export function initBackendFromEnv(env: Record<string, string | undefined>): BackendInfo {
  const want = env.LRC_BACKEND;
  if (want !== undefined && want !== "") setBackend(want);
  return getBackend();
}
