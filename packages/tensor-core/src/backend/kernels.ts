// The kernel interface: every kernel the ops and optimisers run, each a function of Tensors. A backend is a
// table of these (`Backend.kernels`, a `Partial<Kernels>`: what it lacks runs on cpu) plus an `accepts` rule;
// `dispatch` (dispatch.ts) picks the backend's kernel or the cpu one. The cpu backend (`CpuKernels`) implements
// every kernel. Fused backward passes are kernels of their own (`...Backward`), so a backend may provide a
// forward without its backward or the other way round.
//
// Contract: a kernel returns new tensors (never one of its inputs) in the dtype the op asks for; the ones that
// end in `void` (`accumulate`, `scale`, `adamw`) replace their first operands' values in place. Shapes and
// dimensions are checked by the op before it dispatches; the derived numbers passed (`outer`, `GemmDims`, ...)
// are the op's, so a kernel does not recompute them. Inputs are read where they live: a backend uploads what
// it needs (the cpu kernels read `.buf`, which downloads).

import type { DType } from "../dtype.js";
import type { Tensor } from "../tensor.js";

export type UnaryOp =
  | "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "abs" | "tanh" | "sigmoid" | "silu" | "relu" | "sign" | "square" | "reciprocal";
export type BinaryOp = "add" | "sub" | "mul" | "div" | "maximum" | "minimum" | "eq" | "ne" | "lt" | "le" | "gt" | "ge";
export type ReduceOp = "sum" | "max" | "min";

/** One batched product C[batch] = op(A) op(B) of [m, k] x [k, n]; a stride of 0 shares that operand. */
export interface GemmDims {
  batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean; strideA: number; strideB: number;
}

/** Causal GQA attention: q [B, H, T, dh], k/v [B, Hkv, S, dh]; query t sits at absolute position offset + t. */
export interface AttentionDims {
  B: number; H: number; Hkv: number; T: number; S: number; dh: number; scale: number; offset: number;
}

/** One AdamW step's hyper-parameters (torch.optim.AdamW; `step` is 1-based). */
export interface AdamWHyper {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number;
}

/**
 * klDiv's forward: the per-row KL and, when the backend computed them, the rows' log-sum-exps of teacher and
 * student / tau, which its backward may reuse (the cpu backward recomputes them).
 */
export interface KlForward { kl: Tensor; lseT?: Tensor; lseS?: Tensor }

/**
 * lmHeadLoss's derived numbers: hidden [rows, d] and weight [V, d]; the teacher's hidden [rows, D] and weight
 * [V, D]; rows per chunk; the per-row cotangents of the CE and KL sums (the reductions' scales times the terms'
 * weights) that the gradients are computed with; which gradients to compute.
 */
export interface LmHeadDims {
  rows: number; V: number; d: number; D: number; chunk: number; ignore: number; tau: number;
  ceScale: number; klScale: number; wantHidden: boolean; wantWeight: boolean;
}

/**
 * lmHeadLoss's forward: the sums over rows of the CE rows (ignored targets give 0) and of the KL rows (plain
 * numbers, read to the host), and the gradients of ceScale · ceSum + klScale · klSum w.r.t. hidden and weight
 * (null where not wanted).
 */
export interface LmHeadForward { ceSum: number; klSum: number; dHidden: Tensor | null; dWeight: Tensor | null }

export interface Kernels {
  // Elementwise. `shape` / `dtype`: the broadcast result's.
  unary(op: UnaryOp, x: Tensor): Tensor;
  pow(x: Tensor, p: number): Tensor;
  binary(op: BinaryOp, a: Tensor, b: Tensor, shape: readonly number[], dtype: DType): Tensor;
  /** cond ? a : b; all three already of the result's shape. */
  where(cond: Tensor, a: Tensor, b: Tensor, dtype: DType): Tensor;
  /** float -> int truncates toward zero. */
  astype(x: Tensor, dtype: DType): Tensor;

  // Movement.
  permute(x: Tensor, perm: readonly number[]): Tensor;
  broadcastTo(x: Tensor, shape: readonly number[]): Tensor;
  /** x[starts[i] : starts[i] + outShape[i]] on every axis. */
  slice(x: Tensor, starts: readonly number[], outShape: readonly number[]): Tensor;
  /** dy placed at `starts` in zeros of xShape. */
  sliceBackward(dy: Tensor, xShape: readonly number[], starts: readonly number[]): Tensor;
  concat(xs: readonly Tensor[], axis: number, outShape: readonly number[]): Tensor;
  /** Rows of x (along axis 0) at the int32 indices (checked in range by the op). */
  gather(x: Tensor, indices: Tensor, outShape: readonly number[]): Tensor;
  /** dy's rows scatter-added into zeros of xShape. */
  gatherBackward(dy: Tensor, indices: Tensor, xShape: readonly number[]): Tensor;

  // Reductions over the middle axis of [outer, r, inner].
  reduce(op: ReduceOp, x: Tensor, outer: number, r: number, inner: number, outShape: readonly number[]): Tensor;
  /** int32 index of the first largest entry. */
  argmax(x: Tensor, outer: number, r: number, inner: number, outShape: readonly number[]): Tensor;

  gemm(a: Tensor, b: Tensor, p: GemmDims, outShape: readonly number[]): Tensor;

  // Row ops over the last axis.
  softmax(x: Tensor, log: boolean): Tensor;
  /** From y = softmax(x) (or logSoftmax when `log`) and dy. */
  softmaxBackward(y: Tensor, dy: Tensor, log: boolean): Tensor;
  /** [out, rstd [rows]]. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): [Tensor, Tensor];
  /** [dx, dweight]. */
  /**
   * [dx, dweight]. With `into` (cpu only, as swigluBackward's), a pending cotangent of x: dx is added into it in place
   * and it is returned as dx.
   */
  rmsNormBackward(dy: Tensor, x: Tensor, weight: Tensor, rstd: Tensor, into?: Tensor | null): [Tensor, Tensor];
  /** Rotate-half rotary embedding: x [..., T, dh], cos / sin [T, dh]. */
  rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor;
  /** The inverse rotation of dy. */
  ropeBackward(dy: Tensor, cos: Tensor, sin: Tensor): Tensor;
  /**
   * rope of x [B, T, H·dh] split into `heads` heads: [B, H, T, dh] (the head split and the rotation in one pass).
   * Optional: the op composes reshape, permute and rope on a backend without it (`hasKernel`).
   */
  ropeHeads(x: Tensor, cos: Tensor, sin: Tensor, heads: number): Tensor;
  /**
   * The inverse rotation of dy [B, H, T, dh] merged back to [B, T, H·dh]; with `into` (cpu only, as swigluBackward's)
   * added into that pending cotangent in place, which is returned.
   */
  ropeHeadsBackward(dy: Tensor, cos: Tensor, sin: Tensor, into?: Tensor | null): Tensor;
  /** [out, lse [B, H, T]]. */
  attention(q: Tensor, k: Tensor, v: Tensor, d: AttentionDims): [Tensor, Tensor];
  /** [dq, dk, dv], probabilities recomputed from lse. */
  attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dy: Tensor, d: AttentionDims): [Tensor, Tensor, Tensor];
  /** [per-row loss (targets' shape), lse [rows]]; rows whose target is `ignore` give 0. */
  crossEntropy(logits: Tensor, targets: Tensor, ignore: number): [Tensor, Tensor];
  crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, dy: Tensor, ignore: number): Tensor;
  /** KL(softmax(teacher / tau) || softmax(student / tau)) per row. */
  klDiv(teacher: Tensor, student: Tensor, tau: number): KlForward;
  /** [dteacher (null unless wantTeacher), dstudent]. */
  klDivBackward(teacher: Tensor, student: Tensor, fwd: KlForward, dy: Tensor, tau: number, wantTeacher: boolean): [Tensor | null, Tensor];
  /**
   * The LM head fused with CE and / or temperature KL, a chunk of rows at a time, with its gradients computed
   * in the same pass (no [rows, V] tensor). targets: int32 [rows] or null (no CE); teacherHidden /
   * teacherWeight: null for no KL. Optional: the op runs a composite of matmul, crossEntropy and klDiv over the
   * same row chunks on a backend without it (`hasKernel`).
   */
  lmHeadLoss(hidden: Tensor, weight: Tensor, targets: Tensor | null, teacherHidden: Tensor | null, teacherWeight: Tensor | null, p: LmHeadDims): LmHeadForward;

  // Fused elementwise.
  /** silu(gate) * up. */
  swiglu(gate: Tensor, up: Tensor): Tensor;
  /**
   * [dgate, dup]. With `into` (cpu only: the tape offers pending cotangents on the cpu backend alone, so other
   * backends never get one), a non-null entry is a pending cotangent of that input: the gradient is added into it
   * in place and it is returned in that slot. With `product`, a backend may also return silu(gate) * up (`swiglu`'s
   * values, recomputed in the same pass) third; one that does not leaves it to the caller.
   */
  swigluBackward(gate: Tensor, up: Tensor, dy: Tensor, into?: readonly [Tensor | null, Tensor | null], product?: boolean): [Tensor, Tensor, Tensor?];
  /** mean((a - b)^2), a scalar. */
  mse(a: Tensor, b: Tensor): Tensor;
  /** [da, db] for the scalar cotangent dy; null where not wanted. */
  mseBackward(a: Tensor, b: Tensor, dy: Tensor, wantA: boolean, wantB: boolean): [Tensor | null, Tensor | null];
  /**
   * quadFormMse's forward: with Δ = a − b (read as [rows, k]) and the symmetric gram [k, k], [the scalar
   * Σ (Δ gram) ⊙ Δ / count, F = Δ gram] (F in a's shape, kept for the backward). Optional: the op composes sub,
   * matmul, mul and sum on a backend without it (`hasKernel`).
   */
  quadFormMse(a: Tensor, b: Tensor, gram: Tensor, count: number): [Tensor, Tensor];
  /**
   * quadFormMse's VJP from its F: (2 dy / count) F for a, its negation for b (`negate`); with `into` (cpu only, as
   * swigluBackward's) added into that pending cotangent in place, which is returned.
   */
  quadFormMseBackward(f: Tensor, dy: Tensor, count: number, negate: boolean, into?: Tensor | null): Tensor;

  // Training.
  /** acc += g / divisor, in place (gradient accumulation, on the device where acc lives). */
  accumulate(acc: Tensor, g: Tensor, divisor: number): void;
  /**
   * sum(x^2) as a scalar tensor where x lives: float64 on cpu (accumulated in float64), float32 on a device
   * backend (read once per step by the gradient clip, not the whole gradient).
   */
  sumSquares(x: Tensor): Tensor;
  /** x *= c, in place. */
  scale(x: Tensor, c: number): void;
  /** One AdamW step: p, m and v updated in place from the gradient g. */
  adamw(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: AdamWHyper): void;
}

export type KernelName = keyof Kernels;

/** A device backend's counters since it started (`backendReport().device`). */
export interface DeviceStats {
  /** Device buffers not yet deleted (webgpu: a freed buffer counts until the kernels reading it were submitted). */
  liveBuffers: number;
  kernelsCompiled: number;
  kernelCalls: number;
  uploads: number;
  uploadBytes: number;
  downloads: number;
  downloadBytes: number;
}

/** What a backend says about itself (`getBackend()`). */
export interface BackendInfo {
  /** The registered name. */
  readonly name: string;
  /** Human-readable description of what actually runs (e.g. threads, SIMD, the GPU.js mode). */
  readonly description: string;
  /** gpu only: the GPU.js mode that runs. */
  readonly mode?: string;
  /** true when the kernels run on the CPU (webasm, or gl on a software rasteriser such as llvmpipe). */
  readonly software?: boolean;
  /** The device the kernels run on, in one line. */
  readonly device?: string;
  /** Chosen by "auto": why each backend tried before this one was not taken (empty when the first was). */
  readonly autoNotes?: readonly string[];
}

/**
 * A backend: a table of kernels (what it lacks runs on cpu, its inputs downloaded) and the rule saying which
 * calls its kernels take. `registerBackend(name, loader)` makes it available to `initBackend(name)`.
 */
export interface Backend {
  readonly name: string;
  readonly kernels: Partial<Kernels>;
  /**
   * Whether this backend's kernel takes these arguments (e.g. not float64 or empty operands); when false the
   * call runs on cpu and counts as a fallback. Default: every call to a kernel it has.
   */
  accepts?(op: KernelName, args: readonly unknown[]): boolean;
  /** Default: `{ name, description: name }`. */
  info?(): BackendInfo;
  /** Device counters for `backendReport()` (live buffers, transfers, ...). */
  stats?(): DeviceStats;
  /** Waits for queued device work. */
  finish?(): Promise<void>;
  /** Copies a tensor's host values to the device now, replacing its device copy (`backendUpload`). */
  upload?(t: Tensor): void;
  /** Releases the device; called when the registry replaces this backend. */
  dispose?(): void;
}
