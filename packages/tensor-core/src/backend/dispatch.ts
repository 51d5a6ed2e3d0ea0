// The one place that knows about placement: `dispatch(op, ...args)` runs the active backend's kernel when it
// has one and accepts the arguments, else the cpu kernel (whose `.buf` reads download device-resident inputs).
// While a backend other than cpu is active, every dispatch is counted per backend and op: on its own kernel
// (`device`) or as a cpu fallback (`cpu`), for `backendReport()`.
//
// bfloat16 and float16 (frozen 16-bit weights, dtype.ts) are read by the kernels in HALF_KERNELS only: a call
// of another kernel with such a tensor throws, naming the kernel and the dtype; a call of one of those runs on the
// active backend only when its `accepts` says yes to it (webgpu's gemm and gather read 16-bit buffers), else on
// cpu, counted as a fallback.

import type { DType, HalfDType } from "../dtype.js";
import { isHalf } from "../dtype.js";
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

/** The kernels whose cpu versions read bfloat16 and float16 tensors (widened to float32 exactly). */
const HALF_KERNELS: ReadonlySet<KernelName> = new Set<KernelName>(["gemm", "gather", "lmHeadLoss", "astype"]);

/** The 16-bit storage dtype of a tensor argument, else null. */
function halfOf(x: unknown): HalfDType | null {
  const d = typeof x === "object" && x !== null ? (x as { dtype?: DType }).dtype : undefined;
  return d !== undefined && isHalf(d) ? d : null;
}

/** Whether a call has a bfloat16 or float16 tensor argument (throws, naming the kernel, when that kernel cannot read one). */
function halfCall(op: KernelName, args: readonly unknown[]): boolean {
  const half = args.flatMap((a) => (Array.isArray(a) ? a : [a])).map(halfOf).find((d) => d !== null);
  if (half === undefined) return false;
  if (!HALF_KERNELS.has(op)) {
    const sub = typeof args[0] === "string" ? ` (${args[0]})` : "";
    throw new TypeError(
      `${op}${sub}: does not read ${half} tensors (frozen storage, read only by matmul, gather / embedding, lmHeadLoss and astype); widen with astype("float32")`,
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
  return onBackend(b, op, args, halfCall(op, args));
}

/** Whether backend b runs this call itself (a call with a 16-bit tensor only when b's accepts() takes it). */
function onBackend(b: Backend, op: KernelName, args: readonly unknown[], half: boolean): boolean {
  return b.kernels[op] !== undefined && (b.accepts === undefined ? !half : b.accepts(op, args));
}

/** Runs kernel `op` on the active backend, or on cpu when that backend lacks it or does not accept the call. */
export function dispatch<K extends KernelName>(op: K, ...args: Parameters<Kernels[K]>): ReturnType<Kernels[K]> {
  const b = active;
  const half = halfCall(op, args);
  if (b !== null) {
    const c = countOf(b.name, op);
    if (onBackend(b, op, args, half)) {
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
