// Fused neural-network ops: each is one kernel forward and one kernel backward (the VJP), because these
// are the hot spots of a transformer step. The composed (primitive-op) versions live in the tests as
// their oracles.

import { requireFloat } from "../dtype.js";
import { record } from "../autodiff/tape.js";
import { gpuOps as gpuOpsLive } from "../backend/backend.js";
import { diffScale, sqDiffSum, swigluBackward, swigluForward } from "../backend/cpu/fused.js";
import { gpuOps } from "../backend/backend.js";
import {
  attentionBackward, attentionForward, crossEntropyBackward, crossEntropyForward, klDivBackward, klDivForward,
  logSoftmaxRows, logSoftmaxRowsBackward, rmsNormBackward, rmsNormForward, ropeForward, softmaxRows,
  softmaxRowsBackward,
} from "../backend/cpu/kernels.js";
import { fmt, normAxis, shapeEq } from "../shape.js";
import { Tensor, zeros } from "../tensor.js";
import type { FloatArray } from "../dtype.js";
import { div, mul, silu, square, sub } from "./elementwise.js";
import { transpose } from "./movement.js";
import { mean, sum } from "./reduce.js";

function f(t: Tensor): FloatArray {
  return t.buf as FloatArray;
}

/** Applies a last-axis row op along any axis by moving that axis last. */
function alongAxis(x: Tensor, axis: number, fn: (x: Tensor) => Tensor, op: string): Tensor {
  const a = normAxis(op, axis, x.rank);
  if (a === x.rank - 1) return fn(x);
  return transpose(fn(transpose(x, a, -1)), a, -1);
}

/**
 * softmax, or log(softmax) when `log`, along an axis: the GPU kernel when there is one, else the CPU row kernels.
 * Backward: softmax dx = y * (dy - sum(dy * y)); logSoftmax dx = dy - exp(y) * sum(dy).
 */
function softmaxAlong(x: Tensor, axis: number, log: boolean): Tensor {
  const name = log ? "logSoftmax" : "softmax";
  const forward = log ? logSoftmaxRows : softmaxRows;
  const backward = log ? logSoftmaxRowsBackward : softmaxRowsBackward;
  requireFloat(name, x);
  return alongAxis(x, axis, (x) => {
    const cols = x.shape[x.rank - 1]!, rows = x.size / Math.max(cols, 1);
    let out = gpuOps === null ? null : gpuOps.softmax(x, log);
    if (out === null) {
      out = Tensor.empty(x.shape, x.dtype);
      forward(f(x), f(out), rows, cols);
    }
    const y = out;
    return record(name, out, [x], (dy) => {
      const g = gpuOps === null ? null : gpuOps.softmaxBackward(y, dy, log);
      if (g !== null) return [g];
      const dx = Tensor.empty(x.shape, x.dtype);
      backward(f(y), f(dy), f(dx), rows, cols);
      return [dx];
    });
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
  const rows = x.size / Math.max(dim, 1);
  const onGpu = gpuOps === null ? null : gpuOps.rmsNorm(x, weight, eps, rows, dim);
  let out: Tensor, rstd: Tensor;
  if (onGpu !== null) [out, rstd] = onGpu;
  else {
    out = Tensor.empty(x.shape, x.dtype);
    rstd = Tensor.empty([rows], x.dtype);
    rmsNormForward(f(x), f(weight), f(out), f(rstd), rows, dim, eps);
  }
  // dx = rstd * (w dy - x * rstd^2 * mean(w dy x)),  dw = sum_rows(dy * x * rstd)
  return record("rmsNorm", out, [x, weight], (dy) => {
    const g = gpuOps === null ? null : gpuOps.rmsNormBackward(dy, x, weight, rstd, rows, dim);
    if (g !== null) return g;
    const dx = Tensor.empty(x.shape, x.dtype);
    const dw = zeros(weight.shape, { dtype: weight.dtype });
    rmsNormBackward(f(dy), f(x), f(weight), f(rstd), f(dx), f(dw), rows, dim);
    return [dx, dw];
  });
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
  const outer = x.size / (T * dh);
  let out = gpuOps === null ? null : gpuOps.rope(x, cos, sin, T, dh, false);
  if (out === null) {
    out = Tensor.empty(x.shape, x.dtype);
    ropeForward(f(x), f(cos), f(sin), f(out), outer, T, dh, false);
  }
  // The rotation is orthogonal: its VJP is the inverse rotation (sin -> -sin).
  return record("rope", out, [x], (dy) => {
    const g = gpuOps === null ? null : gpuOps.rope(dy, cos, sin, T, dh, true);
    if (g !== null) return [g];
    const dx = Tensor.empty(x.shape, x.dtype);
    ropeForward(f(dy), f(cos), f(sin), f(dx), outer, T, dh, true);
    return [dx];
  });
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
  const onGpu = gpuOps === null ? null : gpuOps.attention(q, k, v, { ...dims, G: H / Hkv });
  let out: Tensor, lse: Tensor;
  if (onGpu !== null) [out, lse] = onGpu;
  else {
    out = Tensor.empty(q.shape, q.dtype);
    lse = Tensor.empty([B, H, T], q.dtype);
    attentionForward({ q: f(q), k: f(k), v: f(v), out: f(out), lse: f(lse), ...dims });
  }
  // Flash-attention backward: probabilities recomputed from lse.
  return record("causalAttention", out, [q, k, v], (dy) => {
    const g = gpuOps === null ? null : gpuOps.attentionBackward(q, k, v, out, lse, dy, { ...dims, G: H / Hkv });
    if (g !== null) return g;
    const dq = Tensor.empty(q.shape, q.dtype);
    const dk = zeros(k.shape, { dtype: k.dtype });
    const dv = zeros(v.shape, { dtype: v.dtype });
    attentionBackward({ q: f(q), k: f(k), v: f(v), out: f(out), lse: f(lse), dout: f(dy), dq: f(dq), dk: f(dk), dv: f(dv), ...dims });
    return [dq, dk, dv];
  });
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
  const onGpu = gpuOps === null ? null : gpuOps.crossEntropy(logits, targets, rows, V, ignore);
  let perRow: Tensor, lse: Tensor;
  if (onGpu !== null) {
    for (let i = 0; i < rows; i++)
      if (tb[i] !== ignore && !(tb[i]! >= 0 && tb[i]! < V)) throw new RangeError(`crossEntropy: target ${tb[i]} at row ${i} is out of range [0, ${V})`);
    [perRow, lse] = onGpu;
  } else {
    perRow = Tensor.empty(targets.shape, logits.dtype);
    lse = Tensor.empty([rows], logits.dtype);
    crossEntropyForward(f(logits), tb as Int32Array, rows, V, ignore, f(perRow), f(lse));
  }
  // d/dlogits = (softmax(logits) - onehot(target)) * dy_row
  const losses = record("crossEntropy", perRow, [logits], (dy) => {
    const g = gpuOps === null ? null : gpuOps.crossEntropyBackward(logits, targets, lse, dy, V, ignore);
    if (g !== null) return [g];
    const dl = Tensor.empty(logits.shape, logits.dtype);
    crossEntropyBackward(f(logits), targets.peek() as Int32Array, f(lse), f(dy), f(dl), rows, V, ignore);
    return [dl];
  });
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
  const V = studentLogits.shape[studentLogits.rank - 1]!;
  const rows = studentLogits.size / Math.max(V, 1);
  const rowShape = studentLogits.shape.slice(0, -1);
  const onGpu = gpuOps === null ? null : gpuOps.klDiv(teacherLogits, studentLogits, rows, V, tau, rowShape);
  let perRow: Tensor;
  if (onGpu !== null) perRow = onGpu.kl;
  else {
    perRow = Tensor.empty(rowShape, studentLogits.dtype);
    klDivForward(f(teacherLogits), f(studentLogits), rows, V, tau, f(perRow));
  }
  const kl = record("klDivergence", perRow, [teacherLogits, studentLogits], (dy) => {
    const g = onGpu === null || gpuOps === null ? null
      : gpuOps.klDivBackward(teacherLogits, studentLogits, onGpu.lseT, onGpu.lseS, onGpu.kl, dy, V, tau, teacherLogits.requiresGrad);
    if (g !== null) return g;
    const dS = Tensor.empty(studentLogits.shape, studentLogits.dtype);
    const dT = teacherLogits.requiresGrad ? Tensor.empty(teacherLogits.shape, teacherLogits.dtype) : null;
    klDivBackward(f(teacherLogits), f(studentLogits), rows, V, tau, f(dy), f(dS), dT === null ? null : f(dT));
    return [dT, dS];
  });
  switch (opts.reduction ?? "batchmean") {
    case "none": return kl;
    case "sum": return sum(kl);
    case "rowmean": return mean(kl);
    case "batchmean": return div(sum(kl), studentLogits.rank > 1 ? studentLogits.shape[0]! : 1);
  }
}

/** Mean squared error over all elements (torch `nn.MSELoss()` default). */
export function mse(a: Tensor, b: Tensor): Tensor {
  if (!shapeEq(a.shape, b.shape)) throw new RangeError(`mse: shapes ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
  return fusedMse(a, b);
}

/** SwiGLU: silu(gate) * up. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (!shapeEq(gate.shape, up.shape)) throw new RangeError(`swiglu: shapes ${fmt(gate.shape)} and ${fmt(up.shape)} differ`);
  return fusedSwiglu(gate, up);
}

// ---------------------------------------------------------------------------------------------------
// Fused CPU ops (one kernel pass forward, one backward) for what the composite forms spend several full-size
// passes and temporaries on. `swiglu` and `mse` above run these; the composite forms are their test oracles
// (fused.test.ts). On the gpu backend they defer to the composite ops.

/** silu(gate) * up in one pass. VJP with s = sigmoid(gate): dgate = dy up s (1 + gate (1 - s)), dup = dy gate s. */
export function fusedSwiglu(gate: Tensor, up: Tensor): Tensor {
  if (!shapeEq(gate.shape, up.shape)) throw new RangeError(`swiglu: shapes ${fmt(gate.shape)} and ${fmt(up.shape)} differ`);
  requireFloat("swiglu", gate, up);
  if (gpuOpsLive !== null) return mul(silu(gate), up);
  const out = Tensor.empty(gate.shape, gate.dtype);
  swigluForward(f(gate), f(up), f(out), out.size);
  return record("swiglu", out, [gate, up], (dy) => {
    const dg = Tensor.empty(gate.shape, gate.dtype);
    const du = Tensor.empty(up.shape, up.dtype);
    swigluBackward(f(gate), f(up), f(dy), f(dg), f(du), out.size);
    return [dg, du];
  });
}

/** mean((a - b)^2) over all elements in one pass. VJP: da = 2 (a - b) dy / N, db = -da. */
export function fusedMse(a: Tensor, b: Tensor): Tensor {
  if (!shapeEq(a.shape, b.shape)) throw new RangeError(`mse: shapes ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
  requireFloat("mse", a, b);
  if (gpuOpsLive !== null) return mean(square(sub(a, b)));
  const n = a.size;
  const out = Tensor.empty([], a.dtype);
  out.buf[0] = sqDiffSum(f(a), f(b), n) / n;
  return record("mse", out, [a, b], (dy) => {
    const c = (2 * dy.item()) / n;
    const da = a.requiresGrad ? Tensor.empty(a.shape, a.dtype) : null;
    const db = b.requiresGrad ? Tensor.empty(b.shape, b.dtype) : null;
    diffScale(f(a), f(b), c, da === null ? null : f(da), db === null ? null : f(db), n);
    return [da, db];
  });
}
