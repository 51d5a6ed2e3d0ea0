// CPU data-movement kernels: permute (general transpose), strided copy for expand/slice, concat,
// gather along axis 0 with its scatter-add transpose.

import type { TypedArray } from "../../dtype.js";
import type { Shape } from "../../shape.js";
import { stridesOf } from "../../shape.js";

/** out = x.permute(perm): out dim i is x dim perm[i]. */
export function permute(x: TypedArray, shape: Shape, perm: readonly number[], out: TypedArray): void {
  const xs = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]!);
  const src = perm.map((p) => xs[p]!); // source stride for each out dim
  stridedCopy(x, 0, src, out, outShape);
}

/** Copies a strided view of x (starting at `offset`, strides `src` over `outShape`) into contiguous out. */
export function stridedCopy(x: TypedArray, offset: number, src: readonly number[], out: TypedArray, outShape: Shape): void {
  const rank = outShape.length;
  const n = out.length;
  if (n === 0) return;
  if (rank === 0) {
    out[0] = x[offset]!;
    return;
  }
  const last = outShape[rank - 1]!;
  const sl = src[rank - 1]!;
  const idx = new Array<number>(rank).fill(0);
  let base = offset;
  for (let o = 0; o < n; o += last) {
    if (sl === 1) for (let i = 0; i < last; i++) out[o + i] = x[base + i]!;
    else if (sl === 0) out.fill(x[base]!, o, o + last);
    else for (let i = 0; i < last; i++) out[o + i] = x[base + i * sl]!;
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      base += src[d]!;
      if (idx[d]! < outShape[d]!) break;
      base -= src[d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
}

/** Adds contiguous `src` (shape srcShape) into a strided region of `dst` (offset, strides). */
export function stridedAddInto(src: TypedArray, srcShape: Shape, dst: TypedArray, offset: number, strides: readonly number[]): void {
  const rank = srcShape.length;
  const n = src.length;
  if (n === 0) return;
  if (rank === 0) {
    dst[offset] += src[0]!;
    return;
  }
  const last = srcShape[rank - 1]!;
  const sl = strides[rank - 1]!;
  const idx = new Array<number>(rank).fill(0);
  let base = offset;
  for (let o = 0; o < n; o += last) {
    for (let i = 0; i < last; i++) dst[base + i * sl] += src[o + i]!;
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      base += strides[d]!;
      if (idx[d]! < srcShape[d]!) break;
      base -= strides[d]! * srcShape[d]!;
      idx[d] = 0;
    }
  }
}

/** out[i, :] = x[idx[i], :] for a [rows, cols] table; throws on an index out of range. */
export function gatherRows(x: TypedArray, rows: number, cols: number, idx: Int32Array, out: TypedArray, op: string): void {
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    if (r < 0 || r >= rows) throw new RangeError(`${op}: index ${r} at position ${i} is out of range [0, ${rows})`);
    const s = r * cols;
    for (let j = 0; j < cols; j++) out[i * cols + j] = x[s + j]!;
  }
}

/** dx[idx[i], :] += dy[i, :] (the transpose of gatherRows). */
export function scatterAddRows(dy: TypedArray, cols: number, idx: Int32Array, dx: TypedArray): void {
  for (let i = 0; i < idx.length; i++) {
    const d = idx[i]! * cols;
    const s = i * cols;
    for (let j = 0; j < cols; j++) dx[d + j] += dy[s + j]!;
  }
}
