// Fused neural-network ops: each is one kernel forward and one kernel backward (the VJP), because these
// are the hot spots of a transformer step. The composed (primitive-op) versions live in the tests as
// their oracles.

import { requireFloat } from "../dtype.js";
import { evict, noGrad, record } from "../autodiff/tape.js";
import { dispatch, hasKernel } from "../backend/dispatch.js";
import { fmt, normAxis, shapeEq } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { div } from "./elementwise.js";
import { matmul } from "./matmul.js";
import { permute, reshape, transpose } from "./movement.js";
import { mean, sum } from "./reduce.js";

/** Applies a last-axis row op along any axis by moving that axis last. */
function alongAxis(x: Tensor, axis: number, fn: (x: Tensor) => Tensor, op: string): Tensor {
  const a = normAxis(op, axis, x.rank);
  if (a === x.rank - 1) return fn(x);
  return transpose(fn(transpose(x, a, -1)), a, -1);
}

/**
 * softmax, or log(softmax) when `log`, along an axis (moved last for the row kernels).
 * Backward: softmax dx = y * (dy - sum(dy * y)); logSoftmax dx = dy - exp(y) * sum(dy).
 */
function softmaxAlong(x: Tensor, axis: number, log: boolean): Tensor {
  const name = log ? "logSoftmax" : "softmax";
  requireFloat(name, x);
  return alongAxis(x, axis, (x) => {
    const y = dispatch("softmax", x, log);
    return record(name, y, [x], (dy) => [dispatch("softmaxBackward", y, dy, log)]);
  }, name);
}

/** softmax along an axis (default last). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxAlong(x, axis, false);
}

/** log(softmax(x)) along an axis (default last), computed stably. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxAlong(x, axis, true);
}

/**
 * RMSNorm over the last axis as HF transformers computes it: x * rsqrt(mean(x^2) + eps), then * weight.
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  requireFloat("rmsNorm", x, weight);
  const dim = x.shape[x.rank - 1]!;
  if (weight.rank !== 1 || weight.shape[0] !== dim)
    throw new RangeError(`rmsNorm: weight ${fmt(weight.shape)} does not match the last axis of ${fmt(x.shape)}`);
  const [out, rstd] = dispatch("rmsNorm", x, weight, eps);
  // dx = rstd * (w dy - x * rstd^2 * mean(w dy x)),  dw = sum_rows(dy * x * rstd); dx added in the same pass into
  // the cotangent pending for x when the tape offers it (x is a residual stream, which has one more use)
  return record("rmsNorm", out, [x, weight], (dy, into) => dispatch("rmsNormBackward", dy, x, weight, rstd, into(0)));
}

/**
 * Rotary embedding in HF's rotate-half layout: x [..., T, dh], cos/sin [T, dh];
 * out = x * cos + rotate_half(x) * sin with rotate_half(x) = concat(-x2, x1).
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  requireFloat("rope", x, cos, sin);
  if (x.rank < 2) throw new RangeError(`rope: x must be [..., T, dh], got ${fmt(x.shape)}`);
  const T = x.shape[x.rank - 2]!, dh = x.shape[x.rank - 1]!;
  if (!shapeEq(cos.shape, [T, dh]) || !shapeEq(sin.shape, [T, dh]))
    throw new RangeError(`rope: cos ${fmt(cos.shape)} / sin ${fmt(sin.shape)} must be [T, dh] = [${T}, ${dh}] for x ${fmt(x.shape)}`);
  if (dh % 2 !== 0) throw new RangeError(`rope: head dim ${dh} must be even`);
  checkRotateHalf(cos, "cos");
  checkRotateHalf(sin, "sin");
  const out = dispatch("rope", x, cos, sin);
  // The rotation is orthogonal: its VJP is the inverse rotation (sin -> -sin).
  return record("rope", out, [x], (dy) => [dispatch("ropeBackward", dy, cos, sin)]);
}

/**
 * RoPE of x [B, T, H·dh] split into `heads` heads: rope(permute(reshape(x, [B, T, H, dh]), [0, 2, 1, 3]), cos, sin),
 * [B, H, T, dh], in one pass: the head-split copy is never made. VJP: the inverse rotation of dy merged back to
 * [B, T, H·dh] in one pass, added into the cotangent pending for x when the tape offers it (x is also a clone term's
 * input in LRC). On a backend without the fused kernels, the composite (its head-split copy freed at once: rope's
 * VJP does not read it).
 */
export function ropeHeads(x: Tensor, heads: number, cos: Tensor, sin: Tensor): Tensor {
  requireFloat("ropeHeads", x, cos, sin);
  if (x.rank !== 3 || !(heads > 0) || x.shape[2]! % heads !== 0)
    throw new RangeError(`ropeHeads: x ${fmt(x.shape)} must be [B, T, H·dh] with H = ${heads} dividing its last axis`);
  const [B, T, HD] = x.shape as [number, number, number];
  const dh = HD / heads;
  if (!hasKernel("ropeHeads", x, cos, sin, heads)) {
    const split = permute(reshape(x, [B, T, heads, dh]), [0, 2, 1, 3]);
    const out = rope(split, cos, sin);
    if (split.requiresGrad) evict(split);
    return out;
  }
  if (!shapeEq(cos.shape, [T, dh]) || !shapeEq(sin.shape, [T, dh]))
    throw new RangeError(`ropeHeads: cos ${fmt(cos.shape)} / sin ${fmt(sin.shape)} must be [T, dh] = [${T}, ${dh}] for x ${fmt(x.shape)}`);
  if (dh % 2 !== 0) throw new RangeError(`ropeHeads: head dim ${dh} must be even`);
  checkRotateHalf(cos, "cos");
  checkRotateHalf(sin, "sin");
  const out = dispatch("ropeHeads", x, cos, sin, heads);
  return record("ropeHeads", out, [x], (dy, into) => [dispatch("ropeHeadsBackward", dy, cos, sin, into(0))]);
}

/** The VJP below (the inverse rotation) relies on HF's layout, where both halves of each cos/sin row agree. */
function checkRotateHalf(t: Tensor, name: string): void {
  const [T, dh] = t.shape as [number, number];
  const b = t.peek(), half = dh / 2;
  for (let r = 0; r < T; r++)
    for (let i = 0; i < half; i++)
      if (b[r * dh + i] !== b[r * dh + half + i])
        throw new RangeError(`rope: ${name}[${r}] is not in the rotate-half layout (its two halves must be equal, as HF builds them)`);
}

export interface AttentionOptions {
  /** Score scale, default 1 / sqrt(dh). */
  scale?: number;
  /** Absolute position of the first query (KV-cache decoding); default S - T. */
  offset?: number;
}

/**
 * Causal grouped-query attention: q [B, H, T, dh], k/v [B, Hkv, S, dh] -> [B, H, T, dh]. Query head h uses
 * kv head floor(h / (H / Hkv)); query t (at absolute position offset + t) attends to keys 0..offset + t.
 */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  requireFloat("causalAttention", q, k, v);
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4 || !shapeEq(k.shape, v.shape))
    throw new RangeError(`causalAttention: q ${fmt(q.shape)} must be [B,H,T,dh] and k ${fmt(k.shape)} = v ${fmt(v.shape)} [B,Hkv,S,dh]`);
  const [B, H, T, dh] = q.shape as [number, number, number, number];
  const [B2, Hkv, S, dh2] = k.shape as [number, number, number, number];
  if (B2 !== B || dh2 !== dh || H % Hkv !== 0)
    throw new RangeError(`causalAttention: q ${fmt(q.shape)} and k ${fmt(k.shape)} are incompatible (batch, head dim, or H not a multiple of Hkv)`);
  const offset = opts.offset ?? S - T;
  if (offset < 0 || offset + T > S) throw new RangeError(`causalAttention: offset ${offset} with T=${T} exceeds S=${S}`);
  const scale = opts.scale ?? 1 / Math.sqrt(dh);
  const dims = { B, H, Hkv, T, S, dh, scale, offset };
  const [out, lse] = dispatch("attention", q, k, v, dims);
  // Flash-attention backward: probabilities recomputed from lse.
  return record("causalAttention", out, [q, k, v], (dy) => dispatch("attentionBackward", q, k, v, out, lse, dy, dims));
}

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (no loss, no gradient, not counted in the mean). */
  ignoreIndex?: number;
  /** "mean" over counted rows (default), "sum", or "none" (per-row losses, shape of targets). */
  reduction?: "mean" | "sum" | "none";
}

/** Softmax cross-entropy: logits [..., V], int32 targets [...]. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  requireFloat("crossEntropy", logits);
  if (targets.dtype !== "int32") throw new TypeError(`crossEntropy: targets must be int32, got ${targets.dtype}`);
  const V = logits.shape[logits.rank - 1]!;
  if (!shapeEq(logits.shape.slice(0, -1), targets.shape))
    throw new RangeError(`crossEntropy: logits ${fmt(logits.shape)} and targets ${fmt(targets.shape)} do not match`);
  const rows = targets.size;
  const ignore = opts.ignoreIndex ?? -100;
  const tb = targets.peek();
  for (let i = 0; i < rows; i++)
    if (tb[i] !== ignore && !(tb[i]! >= 0 && tb[i]! < V)) throw new RangeError(`crossEntropy: target ${tb[i]} at row ${i} is out of range [0, ${V})`);
  const [perRow, lse] = dispatch("crossEntropy", logits, targets, ignore);
  // d/dlogits = (softmax(logits) - onehot(target)) * dy_row
  const losses = record("crossEntropy", perRow, [logits], (dy) => [dispatch("crossEntropyBackward", logits, targets, lse, dy, ignore)]);
  const reduction = opts.reduction ?? "mean";
  if (reduction === "none") return losses;
  if (reduction === "sum") return sum(losses);
  let count = 0;
  for (let i = 0; i < rows; i++) if (tb[i] !== ignore) count++;
  return div(sum(losses), Math.max(count, 1));
}

export interface KlOptions {
  /** Softmax temperature applied to both sides (default 1). */
  temperature?: number;
  /**
   * "batchmean" (default): sum over all positions and vocab divided by the first dimension (torch
   * `F.kl_div(..., reduction="batchmean")`, what LRC uses); "sum"; "rowmean": mean over rows; "none": per-row.
   */
  reduction?: "batchmean" | "sum" | "rowmean" | "none";
}

/** KL(p_teacher || p_student) with p = softmax(logits / temperature) over the last axis; no tau^2 factor. */
export function klDivergence(teacherLogits: Tensor, studentLogits: Tensor, opts: KlOptions = {}): Tensor {
  requireFloat("klDivergence", teacherLogits, studentLogits);
  if (!shapeEq(teacherLogits.shape, studentLogits.shape))
    throw new RangeError(`klDivergence: teacher ${fmt(teacherLogits.shape)} and student ${fmt(studentLogits.shape)} differ`);
  const tau = opts.temperature ?? 1;
  if (!(tau > 0)) throw new RangeError(`klDivergence: temperature must be > 0, got ${tau}`);
  const fwd = dispatch("klDiv", teacherLogits, studentLogits, tau);
  const kl = record("klDivergence", fwd.kl, [teacherLogits, studentLogits], (dy) =>
    dispatch("klDivBackward", teacherLogits, studentLogits, fwd, dy, tau, teacherLogits.requiresGrad));
  switch (opts.reduction ?? "batchmean") {
    case "none": return kl;
    case "sum": return sum(kl);
    case "rowmean": return mean(kl);
    case "batchmean": return div(sum(kl), studentLogits.rank > 1 ? studentLogits.shape[0]! : 1);
  }
}

/** Mean squared error over all elements (torch `nn.MSELoss()` default), in one pass. VJP: da = 2 (a - b) dy / N, db = -da. */
export function mse(a: Tensor, b: Tensor): Tensor {
  if (!shapeEq(a.shape, b.shape)) throw new RangeError(`mse: shapes ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
  requireFloat("mse", a, b);
  const out = dispatch("mse", a, b);
  return record("mse", out, [a, b], (dy) => dispatch("mseBackward", a, b, dy, a.requiresGrad, b.requiresGrad));
}

/**
 * SwiGLU: silu(gate) * up, in one pass. VJP with s = sigmoid(gate): dgate = dy up s (1 + gate (1 - s)),
 * dup = dy gate s, added in the same pass into the cotangents already pending for gate and up when the tape offers
 * them (an LRC student's gate and up also feed their clone terms). (The composite form is its test oracle,
 * fused.test.ts.)
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (!shapeEq(gate.shape, up.shape)) throw new RangeError(`swiglu: shapes ${fmt(gate.shape)} and ${fmt(up.shape)} differ`);
  requireFloat("swiglu", gate, up);
  const out = dispatch("swiglu", gate, up);
  return record("swiglu", out, [gate, up], (dy, into) => {
    const [dg, du] = dispatch("swigluBackward", gate, up, dy, [into(0), into(1)]);
    return [dg, du];
  });
}

/**
 * An MLP's down projection of its SwiGLU product: swiglu(gate, up) @ wᵀ (gate, up [N, F], w [D, F] -> [N, D]; w may
 * be a frozen bfloat16 / float16 weight, as matmul), the same values and gradients as `matmul(swiglu(gate, up), w,
 * { transB: true })` without ever keeping the product ([N, F], the largest activation of a layer): the forward frees
 * it once the gemm has read it, and the VJP takes dproduct = dy w first, then recomputes the product in the pass
 * that computes dgate and dup (added into the cotangents pending for gate and up, as swiglu's), for dw = dyᵀ product.
 */
export function swigluLinear(gate: Tensor, up: Tensor, w: Tensor): Tensor {
  if (!shapeEq(gate.shape, up.shape) || gate.rank !== 2 || w.rank !== 2 || w.shape[1] !== gate.shape[1])
    throw new RangeError(`swigluLinear: gate ${fmt(gate.shape)} and up ${fmt(up.shape)} must be [N, F] and w ${fmt(w.shape)} [D, F]`);
  requireFloat("swigluLinear", gate, up);
  const product = dispatch("swiglu", gate, up);
  const out = noGrad(() => matmul(product, w, { transB: true }));
  product.dispose();
  return record("swigluLinear", out, [gate, up, w], (dy, into) => {
    const dProduct = matmul(dy, w);
    const [dg, du, recomputed] = dispatch("swigluBackward", gate, up, dProduct, [into(0), into(1)], w.requiresGrad);
    const dw = w.requiresGrad ? matmul(dy, recomputed ?? dispatch("swiglu", gate, up), { transA: true }) : null;
    return [dg, du, dw];
  });
}
