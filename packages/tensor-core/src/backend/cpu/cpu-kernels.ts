// The cpu backend's kernel table: every kernel of `Kernels`, each allocating its outputs and running the typed-
// array kernels of this folder on the inputs' host values (`.buf` downloads a device-resident input). A kernel
// missing here is a type error.

import { isHalf, widenBF16, widenF16 } from "../../dtype.js";
import type { DType, FloatArray } from "../../dtype.js";
import { broadcastStrides, sizeOf, stridesOf } from "../../shape.js";
import { float32BitsToBF16Bits, float32BitsToF16Bits } from "../../safetensors.js";
import { Tensor, bfloat16Tensor, float16Tensor, zeros } from "../../tensor.js";
import type { AdamWHyper, AttentionDims, BinaryOp, GemmDims, KlForward, Kernels, LmHeadDims, LmHeadForward, ReduceOp, UnaryOp } from "../kernels.js";
import { adamwUpdate } from "./adamw.js";
import { attentionBackward, attentionForward } from "./attention.js";
import { binary, powScalar, unary, where } from "./elementwise.js";
import { diffScale, scaleInPlace, scaleInto, sqDiffSum, sumSquares, swigluBackward, swigluForward } from "./fused.js";
import { gemm } from "./gemm.js";
import { lmHeadLossChunked } from "./lm-head.js";
import { quadFormForward } from "./quad-form.js";
import { gatherRows, permute, scatterAddRows, stridedAddInto, stridedCopy } from "./movement.js";
import { reduce } from "./reduce.js";
import { ropeHeadsWasm } from "./rows-wasm.js";
import { vectorKernels, type VectorKernels } from "./wasm-vector.js";
import {
  crossEntropyBackward, crossEntropyForward, klDivBackward, klDivForward, logSoftmaxRows, logSoftmaxRowsBackward,
  rmsNormBackward, rmsNormForward, ropeForward, softmaxRows, softmaxRowsBackward,
} from "./rows.js";

function f(t: Tensor): FloatArray {
  return t.buf as FloatArray;
}

/** The vector module for ropeHeads' fused WebAssembly pass (float32, half a head a multiple of 4 lanes), or null. */
function ropeVector(x: Tensor, cos: Tensor, dh: number): VectorKernels | null {
  return (dh / 2) % 4 === 0 && x.dtype === "float32" && cos.dtype === "float32" ? vectorKernels() : null;
}

/**
 * A float operand that may be bfloat16 or float16: its 16-bit bits (which gemm and gatherRows widen exactly; a
 * float16 tensor's buffer is marked as such, dtype.ts isFloat16Bits), else f(t).
 */
function wide(t: Tensor): FloatArray | Uint16Array {
  return isHalf(t.dtype) ? t.bits : f(t);
}

/** [rows, cols] of a tensor read as rows of its last axis. */
function rowsOf(t: Tensor): [number, number] {
  const cols = t.shape[t.rank - 1]!;
  return [t.size / Math.max(cols, 1), cols];
}

function sliceOffset(shape: readonly number[], starts: readonly number[]): [number, number[]] {
  const strides = stridesOf(shape);
  return [starts.reduce((acc, s, i) => acc + s * strides[i]!, 0), strides];
}

export class CpuKernels implements Kernels {
  unary(op: UnaryOp, x: Tensor): Tensor {
    const out = Tensor.empty(x.shape, x.dtype);
    unary(op, x.buf, out.buf, x.size);
    return out;
  }

  pow(x: Tensor, p: number): Tensor {
    const out = Tensor.empty(x.shape, x.dtype);
    powScalar(x.buf, p, out.buf, x.size);
    return out;
  }

  binary(op: BinaryOp, a: Tensor, b: Tensor, shape: readonly number[], dtype: DType): Tensor {
    const out = Tensor.empty(shape, dtype);
    binary(op, a.buf, a.shape, b.buf, b.shape, out.buf, shape);
    return out;
  }

  where(cond: Tensor, a: Tensor, b: Tensor, dtype: DType): Tensor {
    const out = Tensor.empty(a.shape, dtype);
    where(cond.buf, a.buf, b.buf, out.buf, out.size);
    return out;
  }

  astype(x: Tensor, dtype: DType): Tensor {
    if (isHalf(dtype)) {
      if (x.dtype !== "float32") throw new TypeError(`astype: ${dtype} is made from float32 only, got ${x.dtype}`);
      const xs = f(x), src = new Uint32Array(xs.buffer, xs.byteOffset, x.size);
      const bits = new Uint16Array(x.size);
      const round = dtype === "float16" ? float32BitsToF16Bits : float32BitsToBF16Bits; // to nearest even
      for (let i = 0; i < bits.length; i++) bits[i] = round(src[i]!);
      return (dtype === "float16" ? float16Tensor : bfloat16Tensor)(bits, x.shape);
    }
    const out = Tensor.empty(x.shape, dtype);
    const dst = out.buf;
    if (isHalf(x.dtype)) {
      // Exact: a BF16 value is the float32 of its bits shifted left by 16, an F16 one the table's.
      const f32 = dtype === "float32" ? (dst as Float32Array) : new Float32Array(x.size);
      (x.dtype === "float16" ? widenF16 : widenBF16)(x.bits, f32);
      if (dtype === "float64") dst.set(f32);
      else if (dtype === "int32") for (let i = 0; i < f32.length; i++) dst[i] = Math.trunc(f32[i]!);
      return out;
    }
    const src = x.buf;
    if (dtype === "int32") for (let i = 0; i < src.length; i++) dst[i] = Math.trunc(src[i]!);
    else dst.set(src);
    return out;
  }

  permute(x: Tensor, perm: readonly number[]): Tensor {
    const out = Tensor.empty(perm.map((a) => x.shape[a]!), x.dtype);
    permute(x.buf, x.shape, perm, out.buf);
    return out;
  }

  broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
    const out = Tensor.empty(shape, x.dtype);
    stridedCopy(x.buf, 0, broadcastStrides(x.shape, shape), out.buf, shape);
    return out;
  }

  slice(x: Tensor, starts: readonly number[], outShape: readonly number[]): Tensor {
    const [offset, strides] = sliceOffset(x.shape, starts);
    const out = Tensor.empty(outShape, x.dtype);
    stridedCopy(x.buf, offset, strides, out.buf, outShape);
    return out;
  }

  sliceBackward(dy: Tensor, xShape: readonly number[], starts: readonly number[]): Tensor {
    const [offset, strides] = sliceOffset(xShape, starts);
    const dx = zeros(xShape, { dtype: dy.dtype });
    stridedAddInto(dy.buf, dy.shape, dx.buf, offset, strides);
    return dx;
  }

  concat(xs: readonly Tensor[], axis: number, outShape: readonly number[]): Tensor {
    const out = Tensor.empty(outShape, xs[0]!.dtype);
    const outer = sizeOf(outShape.slice(0, axis));
    const inner = sizeOf(outShape.slice(axis + 1));
    const rowOut = outShape[axis]! * inner;
    const ob = out.buf;
    let col = 0;
    for (const t of xs) {
      const w = t.shape[axis]! * inner;
      const tb = t.peek();
      for (let o = 0; o < outer; o++) ob.set(tb.subarray(o * w, o * w + w), o * rowOut + col * inner);
      col += t.shape[axis]!;
    }
    return out;
  }

  gather(x: Tensor, indices: Tensor, outShape: readonly number[]): Tensor {
    const out = Tensor.empty(outShape, isHalf(x.dtype) ? "float32" : x.dtype);
    gatherRows(wide(x), x.shape[0]!, sizeOf(x.shape.slice(1)), indices.peek() as Int32Array, out.buf, "gather");
    return out;
  }

  gatherBackward(dy: Tensor, indices: Tensor, xShape: readonly number[]): Tensor {
    const dx = zeros(xShape, { dtype: dy.dtype });
    scatterAddRows(dy.buf, sizeOf(xShape.slice(1)), indices.peek() as Int32Array, dx.buf);
    return dx;
  }

  reduce(op: ReduceOp, x: Tensor, outer: number, r: number, inner: number, outShape: readonly number[]): Tensor {
    const out = Tensor.empty(outShape, x.dtype);
    reduce(op, x.buf, out.buf, outer, r, inner);
    return out;
  }

  argmax(x: Tensor, outer: number, r: number, inner: number, outShape: readonly number[]): Tensor {
    const out = Tensor.empty(outShape, "int32");
    const b = x.peek(), o = out.buf;
    for (let p = 0; p < outer; p++)
      for (let q = 0; q < inner; q++) {
        let best = 0, bv = -Infinity;
        for (let j = 0; j < r; j++) {
          const v = b[(p * r + j) * inner + q]!;
          if (v > bv) { bv = v; best = j; }
        }
        o[p * inner + q] = best;
      }
    return out;
  }

  gemm(a: Tensor, b: Tensor, p: GemmDims, outShape: readonly number[]): Tensor {
    // A bfloat16 / float16 operand multiplies a float32 one (checked by matmul) into float32.
    const out = Tensor.empty(outShape, isHalf(a.dtype) ? (isHalf(b.dtype) ? "float32" : b.dtype) : a.dtype);
    gemm({ a: wide(a), b: wide(b), c: f(out), ...p, strideC: p.m * p.n });
    return out;
  }

  softmax(x: Tensor, log: boolean): Tensor {
    const [rows, cols] = rowsOf(x);
    const out = Tensor.empty(x.shape, x.dtype);
    (log ? logSoftmaxRows : softmaxRows)(f(x), f(out), rows, cols);
    return out;
  }

  softmaxBackward(y: Tensor, dy: Tensor, log: boolean): Tensor {
    const [rows, cols] = rowsOf(y);
    const dx = Tensor.empty(y.shape, y.dtype);
    (log ? logSoftmaxRowsBackward : softmaxRowsBackward)(f(y), f(dy), f(dx), rows, cols);
    return dx;
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): [Tensor, Tensor] {
    const [rows, dim] = rowsOf(x);
    const out = Tensor.empty(x.shape, x.dtype);
    const rstd = Tensor.empty([rows], x.dtype);
    rmsNormForward(f(x), f(weight), f(out), f(rstd), rows, dim, eps);
    return [out, rstd];
  }

  rmsNormBackward(dy: Tensor, x: Tensor, weight: Tensor, rstd: Tensor, into?: Tensor | null): [Tensor, Tensor] {
    const [rows, dim] = rowsOf(x);
    const dx = into ?? Tensor.empty(x.shape, x.dtype);
    const dw = zeros(weight.shape, { dtype: weight.dtype });
    rmsNormBackward(f(dy), f(x), f(weight), f(rstd), f(dx), f(dw), rows, dim, into != null);
    return [dx, dw];
  }

  rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    return rotate(x, cos, sin, false);
  }

  ropeBackward(dy: Tensor, cos: Tensor, sin: Tensor): Tensor {
    return rotate(dy, cos, sin, true);
  }

  ropeHeads(x: Tensor, cos: Tensor, sin: Tensor, heads: number): Tensor {
    const [B, T, HD] = x.shape as [number, number, number];
    const dh = HD / heads;
    const out = Tensor.empty([B, heads, T, dh], x.dtype);
    const k = ropeVector(x, cos, dh);
    if (k !== null) ropeHeadsWasm(k, f(x) as Float32Array, f(cos) as Float32Array, f(sin) as Float32Array, f(out) as Float32Array, B, T, heads, dh, 1, false, false);
    else {
      const split = Tensor.empty([B, heads, T, dh], x.dtype);
      permute(x.buf, [B, T, heads, dh], [0, 2, 1, 3], split.buf);
      ropeForward(f(split), f(cos), f(sin), f(out), B * heads, T, dh, false);
      split.dispose();
    }
    return out;
  }

  ropeHeadsBackward(dy: Tensor, cos: Tensor, sin: Tensor, into?: Tensor | null): Tensor {
    const [B, H, T, dh] = dy.shape as [number, number, number, number];
    const dx = into ?? Tensor.empty([B, T, H * dh], dy.dtype);
    const k = ropeVector(dy, cos, dh);
    if (k !== null) ropeHeadsWasm(k, f(dy) as Float32Array, f(cos) as Float32Array, f(sin) as Float32Array, f(dx) as Float32Array, B, T, H, dh, -1, true, into != null);
    else {
      const rotated = rotate(dy, cos, sin, true);
      const merged = Tensor.empty([B, T, H * dh], dy.dtype);
      permute(rotated.buf, [B, H, T, dh], [0, 2, 1, 3], merged.buf);
      if (into != null) binary("add", dx.buf, dx.shape, merged.buf, merged.shape, dx.buf, dx.shape);
      else dx.buf.set(merged.buf);
      rotated.dispose();
      merged.dispose();
    }
    return dx;
  }

  attention(q: Tensor, k: Tensor, v: Tensor, d: AttentionDims): [Tensor, Tensor] {
    const out = Tensor.empty(q.shape, q.dtype);
    const lse = Tensor.empty([d.B, d.H, d.T], q.dtype);
    attentionForward({ q: f(q), k: f(k), v: f(v), out: f(out), lse: f(lse), ...d });
    return [out, lse];
  }

  attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dy: Tensor, d: AttentionDims): [Tensor, Tensor, Tensor] {
    // the kernel overwrites all three (attention.ts)
    const dq = Tensor.empty(q.shape, q.dtype);
    const dk = Tensor.empty(k.shape, k.dtype);
    const dv = Tensor.empty(v.shape, v.dtype);
    attentionBackward({ q: f(q), k: f(k), v: f(v), out: f(out), lse: f(lse), dout: f(dy), dq: f(dq), dk: f(dk), dv: f(dv), ...d });
    return [dq, dk, dv];
  }

  crossEntropy(logits: Tensor, targets: Tensor, ignore: number): [Tensor, Tensor] {
    const rows = targets.size, V = logits.shape[logits.rank - 1]!;
    const perRow = Tensor.empty(targets.shape, logits.dtype);
    const lse = Tensor.empty([rows], logits.dtype);
    crossEntropyForward(f(logits), targets.peek() as Int32Array, rows, V, ignore, f(perRow), f(lse));
    return [perRow, lse];
  }

  crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, dy: Tensor, ignore: number): Tensor {
    const rows = targets.size, V = logits.shape[logits.rank - 1]!;
    const dl = Tensor.empty(logits.shape, logits.dtype);
    crossEntropyBackward(f(logits), targets.peek() as Int32Array, f(lse), f(dy), f(dl), rows, V, ignore);
    return dl;
  }

  klDiv(teacher: Tensor, student: Tensor, tau: number): KlForward {
    const [rows, V] = rowsOf(student);
    const kl = Tensor.empty(student.shape.slice(0, -1), student.dtype);
    klDivForward(f(teacher), f(student), rows, V, tau, f(kl));
    return { kl };
  }

  klDivBackward(teacher: Tensor, student: Tensor, _fwd: KlForward, dy: Tensor, tau: number, wantTeacher: boolean): [Tensor | null, Tensor] {
    const [rows, V] = rowsOf(student);
    const dS = Tensor.empty(student.shape, student.dtype);
    const dT = wantTeacher ? Tensor.empty(teacher.shape, teacher.dtype) : null;
    klDivBackward(f(teacher), f(student), rows, V, tau, f(dy), f(dS), dT === null ? null : f(dT));
    return [dT, dS];
  }

  lmHeadLoss(hidden: Tensor, weight: Tensor, targets: Tensor | null, teacherHidden: Tensor | null, teacherWeight: Tensor | null, p: LmHeadDims): LmHeadForward {
    const dtype = hidden.dtype;
    const dHidden = p.wantHidden ? Tensor.empty(hidden.shape, dtype) : null;
    const dWeight = p.wantWeight ? zeros(weight.shape, { dtype }) : null;
    const w = wide(weight);
    const { ceSum, klSum } = lmHeadLossChunked({
      dtype: dtype as "float32" | "float64",
      h: f(hidden), w,
      targets: targets === null ? null : (targets.peek() as Int32Array),
      // the same weight on both sides: the same array (one gemm over the stacked rows)
      hT: teacherHidden === null ? null : f(teacherHidden), wT: teacherWeight === null ? null : teacherWeight === weight ? w : wide(teacherWeight),
      rows: p.rows, V: p.V, d: p.d, D: p.D, chunk: p.chunk, ignore: p.ignore, tau: p.tau, ceScale: p.ceScale, klScale: p.klScale,
      dh: dHidden === null ? null : f(dHidden), dw: dWeight === null ? null : f(dWeight),
    });
    return { ceSum, klSum, dHidden, dWeight };
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    const out = Tensor.empty(gate.shape, gate.dtype);
    swigluForward(f(gate), f(up), f(out), out.size);
    return out;
  }

  swigluBackward(gate: Tensor, up: Tensor, dy: Tensor, into?: readonly [Tensor | null, Tensor | null], product = false): [Tensor, Tensor, Tensor?] {
    const [ig, iu] = into ?? [null, null];
    const dg = ig ?? Tensor.empty(gate.shape, gate.dtype);
    const du = iu ?? Tensor.empty(up.shape, up.dtype);
    const prod = product ? Tensor.empty(gate.shape, gate.dtype) : null;
    swigluBackward(f(gate), f(up), f(dy), f(dg), f(du), gate.size, ig !== null, iu !== null, prod === null ? null : f(prod));
    return prod === null ? [dg, du] : [dg, du, prod];
  }

  mse(a: Tensor, b: Tensor): Tensor {
    const out = Tensor.empty([], a.dtype);
    out.buf[0] = sqDiffSum(f(a), f(b), a.size) / a.size;
    return out;
  }

  mseBackward(a: Tensor, b: Tensor, dy: Tensor, wantA: boolean, wantB: boolean): [Tensor | null, Tensor | null] {
    const n = a.size;
    const c = (2 * dy.item()) / n;
    const da = wantA ? Tensor.empty(a.shape, a.dtype) : null;
    const db = wantB ? Tensor.empty(b.shape, b.dtype) : null;
    diffScale(f(a), f(b), c, da === null ? null : f(da), db === null ? null : f(db), n);
    return [da, db];
  }

  quadFormMse(a: Tensor, b: Tensor, gram: Tensor, count: number): [Tensor, Tensor] {
    const [rows, k] = rowsOf(a);
    const fOut = Tensor.empty(a.shape, a.dtype);
    const loss = Tensor.empty([], a.dtype);
    loss.buf[0] = quadFormForward(f(a), f(b), f(gram), f(fOut), rows, k) / count;
    return [loss, fOut];
  }

  quadFormMseBackward(fIn: Tensor, dy: Tensor, count: number, negate: boolean, into?: Tensor | null): Tensor {
    const out = into ?? Tensor.empty(fIn.shape, fIn.dtype);
    scaleInto(f(fIn), ((negate ? -2 : 2) * dy.item()) / count, f(out), fIn.size, into != null);
    return out;
  }

  accumulate(acc: Tensor, g: Tensor, divisor: number): void {
    const a = acc.buf, gb = g.buf, n = acc.size;
    for (let j = 0; j < n; j++) a[j] += gb[j]! / divisor;
  }

  sumSquares(x: Tensor): Tensor {
    const out = Tensor.empty([], "float64");
    out.buf[0] = sumSquares(f(x), x.size);
    return out;
  }

  scale(x: Tensor, c: number): void {
    scaleInPlace(f(x), x.size, c);
  }

  adamw(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: AdamWHyper): void {
    adamwUpdate(f(p), f(g), f(m), f(v), p.size, h);
  }
}

/** Rotate-half rope of x [..., T, dh] (the inverse rotation when `inverse`). */
function rotate(x: Tensor, cos: Tensor, sin: Tensor, inverse: boolean): Tensor {
  const T = x.shape[x.rank - 2]!, dh = x.shape[x.rank - 1]!;
  const out = Tensor.empty(x.shape, x.dtype);
  ropeForward(f(x), f(cos), f(sin), f(out), x.size / (T * dh), T, dh, inverse);
  return out;
}
