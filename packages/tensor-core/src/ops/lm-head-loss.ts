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
// On the gpu backend the op is the composite of matmul, crossEntropy and klDivergence over the same row chunks.

import { isGradEnabled, record } from "../autodiff/tape.js";
import { activeBackend } from "../backend/dispatch.js";
import { binary } from "../backend/cpu/elementwise.js";
import { scaleInPlace } from "../backend/cpu/fused.js";
import { acquire, release } from "../backend/cpu/buffer-pool.js";
import { crossEntropyBackward, crossEntropyForward, gemm, klDivBackward, klDivForward } from "../backend/cpu/index.js";
import { requireFloat } from "../dtype.js";
import type { FloatArray } from "../dtype.js";
import { fmt, shapeEq } from "../shape.js";
import { Tensor, tensor, zeros } from "../tensor.js";
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
  /** Logit elements per chunk and side (default 2^23: 32 MiB of float32); the chunk is whole rows, at least one. */
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

export const DEFAULT_CHUNK_ELEMENTS = 1 << 23;

/**
 * CE and / or KL of the logits `hidden Wᵀ` (hidden [..., d], weight [V, d]) without materialising them.
 * VJP: with dz = ceWeight · dCE/dz + klWeight · dKL/dz per chunk, dh = dz W and dW = Σ_chunks dzᵀ h, both
 * computed in the forward and scaled by the cotangent of `total`. The backward can run once.
 */
export function lmHeadLoss(hidden: Tensor, weight: Tensor, opts: LmHeadLossOptions): LmHeadLoss {
  const { targets, teacher } = opts;
  if (targets === undefined && teacher === undefined) throw new RangeError("lmHeadLoss: neither targets (CE) nor a teacher (KL) given");
  requireFloat("lmHeadLoss", hidden, weight);
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
    requireFloat("lmHeadLoss", hidden, teacher.hidden, teacher.weight);
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
  const chunk = Math.max(1, Math.floor(chunkElements / Math.max(V, 1)));
  const tg = targets === undefined ? null : (targets.peek() as Int32Array);
  let counted = 0;
  if (tg !== null) for (let i = 0; i < rows; i++) if (tg[i] !== ignore) counted++;

  if (activeBackend() !== null) {
    // The composite over the same row chunks, on the gpu backend's gemm and loss kernels (their tensors stay on
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

  const dtype = hidden.dtype;
  const h = hidden.buf as FloatArray, w = weight.buf as FloatArray;
  const hT = teacher === undefined ? null : (teacher.hidden.buf as FloatArray);
  const wT = teacher === undefined ? null : (teacher.weight.buf as FloatArray);
  const ceScale = ceWeight * (ceMean ? 1 / Math.max(counted, 1) : 1);
  const klScale = klWeight / batch;
  const wantGrad = isGradEnabled() && (hidden.requiresGrad || weight.requiresGrad);
  const dh = wantGrad && hidden.requiresGrad ? Tensor.empty(hidden.shape, dtype) : null;
  const dw = wantGrad && weight.requiresGrad ? zeros(weight.shape, { dtype }) : null;

  const R = Math.min(chunk, rows);
  const scratch = (n: number): FloatArray => acquire(dtype as "float32" | "float64", n) as FloatArray;
  const zS = scratch(R * V), zT = hT === null ? null : scratch(R * V);
  const dz = wantGrad ? scratch(R * V) : null;
  const dzKl = wantGrad && tg !== null && zT !== null ? scratch(R * V) : null;
  const perRow = scratch(R), lse = scratch(R), gRow = scratch(R);
  let ceSum = 0, klSum = 0;
  try {
    for (let s = 0; s < rows; s += R) {
      const r = Math.min(R, rows - s), n = r * V;
      const z = zS.subarray(0, n) as FloatArray;
      gemm({ a: h, b: w, c: z, batch: 1, m: r, n: V, k: d, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0, offsetA: s * d });
      const g = dz === null ? null : (dz.subarray(0, n) as FloatArray);
      if (tg !== null) {
        const t = tg.subarray(s, s + r);
        crossEntropyForward(z, t, r, V, ignore, perRow, lse);
        for (let i = 0; i < r; i++) ceSum += perRow[i]!;
        if (g !== null) {
          gRow.fill(ceScale);
          crossEntropyBackward(z, t, lse, gRow, g, r, V, ignore);
        }
      }
      if (zT !== null) {
        const zt = zT.subarray(0, n) as FloatArray;
        gemm({ a: hT!, b: wT!, c: zt, batch: 1, m: r, n: V, k: D, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0, offsetA: s * D });
        klDivForward(zt, z, r, V, tau, perRow);
        for (let i = 0; i < r; i++) klSum += perRow[i]!;
        if (g !== null) {
          gRow.fill(klScale);
          const into = dzKl === null ? g : (dzKl.subarray(0, n) as FloatArray);
          klDivBackward(zt, z, r, V, tau, gRow, into, null);
          if (dzKl !== null) binary("add", g, [n], into, [n], g, [n]);
        }
      }
      if (g === null) continue;
      // dh[s:s+r] = dz W;  dW += dzᵀ h[s:s+r]
      if (dh !== null)
        gemm({ a: g, b: w, c: dh.buf as FloatArray, batch: 1, m: r, n: d, k: V, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0, offsetC: s * d });
      if (dw !== null)
        gemm({ a: g, b: h, c: dw.buf as FloatArray, batch: 1, m: V, n: d, k: r, transA: true, transB: false, strideA: 0, strideB: 0, strideC: 0, offsetB: s * d, accumulate: true });
    }
  } finally {
    for (const a of [zS, zT, dz, dzKl, perRow, lse, gRow]) if (a !== null) release(a);
  }

  const ceVal = tg === null ? null : ceMean ? ceSum / Math.max(counted, 1) : ceSum;
  const klVal = zT === null ? null : klSum / batch;
  const total = tensor((ceVal === null ? 0 : ceWeight * ceVal) + (klVal === null ? 0 : klWeight * klVal), [], { dtype });
  const ce = ceVal === null ? null : tensor(ceVal, [], { dtype });
  const kl = klVal === null ? null : tensor(klVal, [], { dtype });
  if (!wantGrad) return { total, ce, kl };
  let used = false;
  // The stored gradients leave as fresh views (the tape frees them once consumed); the closure's refs are dropped.
  const take = (t: Tensor | null, c: number): Tensor | null => {
    if (t === null) return null;
    if (c !== 1) scaleInPlace(t.buf as FloatArray, t.size, c);
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
