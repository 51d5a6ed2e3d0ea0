// The LM head fused with its losses (the idea of Liger-Kernel's fused linear cross-entropy): the student's
// logits z_S = h_S W_Sᵀ, and for distillation the teacher's z_T = h_T W_Tᵀ, are computed a chunk of rows at a
// time and consumed at once by the cross-entropy and the temperature KL, so no [..., V] tensor ever exists (at
// the Qwen2.5 vocabulary, 151,936, one [4, 256, V] float32 tensor is 622 MB). The gradients w.r.t. h_S and W_S
// are computed in the same pass, chunk by chunk (dz of a chunk -> dh rows and a dW accumulation), and kept for
// the backward, which only scales them by the incoming cotangent: the scalar `total` is the op's one output.
//
// Reductions (exactly the unfused ops'): CE is `crossEntropy`'s (mean over the counted positions, or their sum);
// KL is `klDivergence(z_T, z_S, { temperature, reduction: "batchmean" })`: summed over positions and vocabulary
// and divided by the first axis of the hidden states (the number of sequences for [B, T, ·]); no τ² factor.
// The teacher side is constant (no gradient), as for LRC's frozen teacher and plain KD.
//
// The fused pass is the `lmHeadLoss` kernel (the cpu one: lm-head.ts of the cpu backend), dispatched like every
// kernel. Passing the same tensor as `weight` and `teacher.weight` (LRC's factorized head: the student's logits
// (h_S P_lmᵀ) W_Tᵀ) lets the cpu kernel compute both sides' logits with one gemm. On a backend without it (GPU.js, webgpu; `hasKernel`) the op is the composite of matmul, crossEntropy
// and klDivergence over the same row chunks, so the weights stay on the device.

import { isGradEnabled, record } from "../autodiff/tape.js";
import { dispatch, hasKernel } from "../backend/dispatch.js";
import type { LmHeadDims } from "../backend/kernels.js";
import { isHalf, requireFloat } from "../dtype.js";
import { fmt, shapeEq } from "../shape.js";
import { Tensor, tensor } from "../tensor.js";
import { add, div, mul } from "./elementwise.js";
import { matmul } from "./matmul.js";
import { reshape, slice } from "./movement.js";
import { crossEntropy, klDivergence } from "./nn.js";

export interface LmHeadTeacher {
  /** The teacher's final (normed) hidden states [..., D], same leading shape as the student's. */
  readonly hidden: Tensor;
  /** The teacher's LM head [V, D] (HF `lm_head.weight` layout). */
  readonly weight: Tensor;
  /** KL temperature τ (default 1). */
  readonly temperature?: number;
}

export interface LmHeadLossOptions {
  /** int32 next-token targets with the hidden states' leading shape: adds the CE term. */
  readonly targets?: Tensor;
  /** Targets equal to this are not counted (default -100). */
  readonly ignoreIndex?: number;
  /** CE over the counted positions: "mean" (default) or "sum". */
  readonly ceReduction?: "mean" | "sum";
  /** Weight of CE in `total` (default 1). */
  readonly ceWeight?: number;
  /** A frozen teacher: adds the KL_τ(p_T ‖ p_S) term, batchmean. */
  readonly teacher?: LmHeadTeacher;
  /** Weight of KL in `total` (default 1). */
  readonly klWeight?: number;
  /**
   * Logit elements per chunk and side (default 2^25: 128 MiB of float32, at most 220 rows at the Qwen2.5 vocabulary;
   * the rows are cut into equal chunks, lmHeadChunkRows); the chunk is whole rows, at least one. The cpu kernel holds one [chunk, V] buffer per side (the gradient is
   * written over the student's logits). Bigger chunks let each gemm pack the [V, ·] weight for more rows.
   */
  readonly chunkElements?: number;
}

export interface LmHeadLoss {
  /** ceWeight · CE + klWeight · KL, on the tape (differentiate this). */
  readonly total: Tensor;
  /** The CE term's value (a scalar; on the cpu backend not on the tape: use `total`), or null without targets. */
  readonly ce: Tensor | null;
  /** The KL term's value (likewise), or null without a teacher. */
  readonly kl: Tensor | null;
}

export const DEFAULT_CHUNK_ELEMENTS = 1 << 25;

/**
 * Rows per chunk of `lmHeadLoss` over `rows` rows of a `vocab` vocabulary: the rows cut into the fewest chunks of
 * at most `chunkElements / vocab` rows (at least one row), all of one size but the last, which is shorter by less
 * than the chunk count (1,024 rows at the Qwen2.5 vocabulary and 2^25: five chunks of 205 rows, not four of 220
 * and one of 144). The memory estimate of packages/lrc (plan.ts) sizes the logits scratch with it.
 */
export function lmHeadChunkRows(rows: number, vocab: number, chunkElements: number = DEFAULT_CHUNK_ELEMENTS): number {
  const most = Math.max(1, Math.floor(chunkElements / Math.max(vocab, 1)));
  return rows <= most ? Math.max(rows, 1) : Math.ceil(rows / Math.ceil(rows / most));
}

/**
 * CE and / or KL of the logits `hidden Wᵀ` (hidden [..., d], weight [V, d]) without materialising them.
 * VJP: with dz = ceWeight · dCE/dz + klWeight · dKL/dz per chunk, dh = dz W and dW = Σ_chunks dzᵀ h, both
 * computed in the forward and scaled by the cotangent of `total`. The backward can run once.
 */
export function lmHeadLoss(hidden: Tensor, weight: Tensor, opts: LmHeadLossOptions): LmHeadLoss {
  const { targets, teacher } = opts;
  if (targets === undefined && teacher === undefined) throw new RangeError("lmHeadLoss: neither targets (CE) nor a teacher (KL) given");
  // A bfloat16 / float16 LM head (frozen weights, dtype.ts) is read as float32: with float32 hidden states only.
  const asF32 = (w: Tensor) => (isHalf(w.dtype) ? { dtype: "float32" as const } : w);
  requireFloat("lmHeadLoss", hidden, asF32(weight));
  if (hidden.rank < 1 || weight.rank !== 2 || weight.shape[1] !== hidden.shape[hidden.rank - 1])
    throw new RangeError(`lmHeadLoss: weight ${fmt(weight.shape)} must be [V, d] for hidden ${fmt(hidden.shape)}`);
  const lead = hidden.shape.slice(0, -1);
  const [V, d] = weight.shape as [number, number];
  const rows = hidden.size / Math.max(d, 1);
  if (targets !== undefined) {
    if (targets.dtype !== "int32") throw new TypeError(`lmHeadLoss: targets must be int32, got ${targets.dtype}`);
    if (!shapeEq(targets.shape, lead)) throw new RangeError(`lmHeadLoss: targets ${fmt(targets.shape)} do not match hidden ${fmt(hidden.shape)}`);
  }
  let D = 0;
  if (teacher !== undefined) {
    requireFloat("lmHeadLoss", hidden, teacher.hidden, asF32(teacher.weight));
    D = teacher.weight.shape[1]!;
    if (teacher.weight.rank !== 2 || teacher.weight.shape[0] !== V || !shapeEq(teacher.hidden.shape, [...lead, D]))
      throw new RangeError(`lmHeadLoss: teacher hidden ${fmt(teacher.hidden.shape)} / weight ${fmt(teacher.weight.shape)} must be [${lead.join(", ")}, D] / [${V}, D]`);
    if (isGradEnabled() && (teacher.hidden.requiresGrad || teacher.weight.requiresGrad))
      throw new TypeError("lmHeadLoss: the teacher side is constant (run the teacher under noGrad and freeze its LM head)");
  }
  const tau = teacher?.temperature ?? 1;
  if (!(tau > 0) || !Number.isFinite(tau)) throw new RangeError(`lmHeadLoss: temperature must be > 0, got ${tau}`);
  const ceWeight = targets === undefined ? 0 : opts.ceWeight ?? 1;
  const klWeight = teacher === undefined ? 0 : opts.klWeight ?? 1;
  const ignore = opts.ignoreIndex ?? -100;
  const ceMean = (opts.ceReduction ?? "mean") === "mean";
  const batch = hidden.rank > 1 ? hidden.shape[0]! : 1;

  const chunkElements = opts.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
  if (!Number.isInteger(chunkElements) || chunkElements < 1) throw new RangeError(`lmHeadLoss: chunkElements must be a positive integer, got ${chunkElements}`);
  const chunk = lmHeadChunkRows(rows, V, chunkElements);
  const tg = targets === undefined ? null : (targets.peek() as Int32Array);
  let counted = 0;
  if (tg !== null) for (let i = 0; i < rows; i++) if (tg[i] !== ignore) counted++;

  const dtype = hidden.dtype;
  const wantGrad = isGradEnabled() && (hidden.requiresGrad || weight.requiresGrad);
  const p: LmHeadDims = {
    rows, V, d, D, chunk, ignore, tau,
    ceScale: ceWeight * (ceMean ? 1 / Math.max(counted, 1) : 1),
    klScale: klWeight / batch,
    wantHidden: wantGrad && hidden.requiresGrad,
    wantWeight: wantGrad && weight.requiresGrad,
  };
  const args = [hidden, weight, targets ?? null, teacher?.hidden ?? null, teacher?.weight ?? null, p] as const;
  if (!hasKernel("lmHeadLoss", ...args)) {
    // The composite over the same row chunks, on the backend's gemm and loss kernels (their tensors stay on
    // the device); with grad on, the tape keeps each chunk's logits for the backward.
    const rowsOf = (x: Tensor, s: number, e: number) => slice(reshape(x, [rows, x.shape[x.rank - 1]!]), [s, 0], [e, x.shape[x.rank - 1]!]);
    let ceSum: Tensor | null = null, klSum: Tensor | null = null;
    for (let s = 0; s < rows; s += chunk) {
      const e = Math.min(rows, s + chunk);
      const zS = matmul(rowsOf(hidden, s, e), weight, { transB: true });
      if (tg !== null) {
        const t = crossEntropy(zS, tensor(tg.subarray(s, e), [e - s], { dtype: "int32" }), { ignoreIndex: ignore, reduction: "sum" });
        ceSum = ceSum === null ? t : add(ceSum, t);
      }
      if (teacher !== undefined) {
        const t = klDivergence(matmul(rowsOf(teacher.hidden, s, e), teacher.weight, { transB: true }), zS, { temperature: tau, reduction: "sum" });
        klSum = klSum === null ? t : add(klSum, t);
      }
    }
    const ce = ceSum === null ? null : ceMean ? div(ceSum, Math.max(counted, 1)) : ceSum;
    const kl = klSum === null ? null : div(klSum, batch);
    const parts = [ce === null ? null : mul(ce, ceWeight), kl === null ? null : mul(kl, klWeight)].filter((t) => t !== null);
    return { total: parts.reduce((a, b) => add(a, b)), ce, kl };
  }
  const { ceSum, klSum, dHidden: dh, dWeight: dw } = dispatch("lmHeadLoss", ...args);

  const ceVal = tg === null ? null : ceMean ? ceSum / Math.max(counted, 1) : ceSum;
  const klVal = teacher === undefined ? null : klSum / batch;
  const total = tensor((ceVal === null ? 0 : ceWeight * ceVal) + (klVal === null ? 0 : klWeight * klVal), [], { dtype });
  const ce = ceVal === null ? null : tensor(ceVal, [], { dtype });
  const kl = klVal === null ? null : tensor(klVal, [], { dtype });
  if (!wantGrad) return { total, ce, kl };
  let used = false;
  // The stored gradients leave as fresh views (the tape frees them once consumed); the closure's refs are dropped.
  const take = (t: Tensor | null, c: number): Tensor | null => {
    if (t === null) return null;
    if (c !== 1) dispatch("scale", t, c);
    const out = t.detach();
    t.dispose();
    return out;
  };
  return {
    total: record("lmHeadLoss", total, [hidden, weight], (dy) => {
      if (used) throw new Error("lmHeadLoss: its backward already ran (the gradients are computed in the forward and used once)");
      used = true;
      const c = dy.item();
      return [take(dh, c), take(dw, c)];
    }),
    ce,
    kl,
  };
}
