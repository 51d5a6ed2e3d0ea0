// The one place that knows about placement: `dispatch(op, ...args)` runs the active backend's kernel when it
// has one and accepts the arguments, else the cpu kernel (whose `.buf` reads download device-resident inputs).
// While a backend other than cpu is active, every dispatch is counted per backend and op: on its own kernel
// (`device`) or as a cpu fallback (`cpu`), for `backendReport()`.
//
// bfloat16 (frozen 16-bit weights, dtype.ts) is read by the kernels in BF16_KERNELS only: a call of another
// kernel with a bfloat16 tensor throws, naming the kernel; a call of one of those runs on the active backend
// only when its `accepts` says yes to it (webgpu's gemm and gather read bfloat16 buffers), else on cpu, counted
// as a fallback.

import { CpuKernels } from "./cpu/cpu-kernels.js";
import type { Backend, KernelName, Kernels } from "./kernels.js";

/** Made on first use: cpu-kernels.ts and the ops import each other (through tensor.ts). */
let cpuKernels: Kernels | null = null;

/** The active backend; null is cpu. */
let active: Backend | null = null;

export interface OpCount { device: number; cpu: number }
/** backend name -> op -> counts. */
const counts = new Map<string, Map<string, OpCount>>();

/** @internal Makes `b` the backend ops dispatch to (null: cpu). Used by the registry in backend.ts. */
export function activate(b: Backend | null): void {
  active = b;
}

/** @internal The active backend, or null on cpu. */
export function activeBackend(): Backend | null {
  return active;
}

type Fn = (...args: unknown[]) => unknown;

/** The kernels whose cpu versions read bfloat16 tensors (widened to float32 exactly). */
const BF16_KERNELS: ReadonlySet<KernelName> = new Set<KernelName>(["gemm", "gather", "lmHeadLoss", "astype"]);

const isBF16 = (x: unknown): boolean => typeof x === "object" && x !== null && (x as { dtype?: unknown }).dtype === "bfloat16";

/** Whether a call has a bfloat16 tensor argument (throws, naming the kernel, when that kernel cannot read one). */
function bf16Call(op: KernelName, args: readonly unknown[]): boolean {
  if (!args.some((a) => isBF16(a) || (Array.isArray(a) && a.some(isBF16)))) return false;
  if (!BF16_KERNELS.has(op)) {
    const sub = typeof args[0] === "string" ? ` (${args[0]})` : "";
    throw new TypeError(
      `${op}${sub}: does not read bfloat16 tensors (frozen storage, read only by matmul, gather / embedding, lmHeadLoss and astype); widen with astype("float32")`,
    );
  }
  return true;
}

/**
 * Whether `dispatch(op, ...args)` would run on the active backend's own kernel: true on cpu (which has every
 * kernel), else when the backend has `op` and accepts these arguments. For ops that run another way (a
 * composite of other kernels) rather than fall back to cpu. Counts nothing.
 */
export function hasKernel<K extends KernelName>(op: K, ...args: Parameters<Kernels[K]>): boolean {
  const b = active;
  if (b === null) return true;
  return onBackend(b, op, args, bf16Call(op, args));
}

/** Whether backend b runs this call itself (a call with a bfloat16 tensor only when b's accepts() takes it). */
function onBackend(b: Backend, op: KernelName, args: readonly unknown[], bf16: boolean): boolean {
  return b.kernels[op] !== undefined && (b.accepts === undefined ? !bf16 : b.accepts(op, args));
}

/** Runs kernel `op` on the active backend, or on cpu when that backend lacks it or does not accept the call. */
export function dispatch<K extends KernelName>(op: K, ...args: Parameters<Kernels[K]>): ReturnType<Kernels[K]> {
  const b = active;
  const bf16 = bf16Call(op, args);
  if (b !== null) {
    const c = countOf(b.name, op);
    if (onBackend(b, op, args, bf16)) {
      c.device++;
      return (b.kernels[op] as Fn).apply(b.kernels, args) as ReturnType<Kernels[K]>;
    }
    c.cpu++;
  }
  const cpu = (cpuKernels ??= new CpuKernels());
  return (cpu[op] as Fn).apply(cpu, args) as ReturnType<Kernels[K]>;
}

function countOf(backend: string, op: string): OpCount {
  let byOp = counts.get(backend);
  if (byOp === undefined) counts.set(backend, (byOp = new Map()));
  let c = byOp.get(op);
  if (c === undefined) byOp.set(op, (c = { device: 0, cpu: 0 }));
  return c;
}

/** @internal Per-op counts of one backend, sorted by op name. */
export function dispatchCounts(backend: string): Array<{ op: string } & OpCount> {
  const byOp = counts.get(backend);
  if (byOp === undefined) return [];
  return [...byOp.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([op, c]) => ({ op, ...c }));
}

/** @internal Forgets the counts of every backend. */
export function resetDispatchCounts(): void {
  counts.clear();
}
