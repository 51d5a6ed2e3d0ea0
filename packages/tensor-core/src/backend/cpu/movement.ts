// CPU data-movement kernels: permute (general transpose), strided copy for expand/slice, concat,
// gather along axis 0 with its scatter-add transpose.

import type { TypedArray } from "../../dtype.js";
import { float16Table, isFloat16Bits } from "../../dtype.js";
import type { Shape } from "../../shape.js";
import { stridesOf } from "../../shape.js";
import { DATA, vectorKernels } from "./wasm-vector.js";

/** Below this many elements the JavaScript loop is as fast as a round trip through the wasm memory. */
const WASM_COPY_MIN = 4096;

/** out = x.permute(perm): out dim i is x dim perm[i]. */
export function permute(x: TypedArray, shape: Shape, perm: readonly number[], out: TypedArray): void {
  const xs = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]!);
  const src = perm.map((p) => xs[p]!); // source stride for each out dim
  stridedCopy(x, 0, src, out, outShape);
}

/**
 * Collapses a strided view to at most 4 dims (dropping size-1 dims, merging a dim into the next when it steps
 * exactly over it), padded at the front with size-1 dims; null when more than 4 remain or a stride is negative.
 */
function collapse4(shape: Shape, strides: readonly number[]): { n: number[]; s: number[] } | null {
  const n: number[] = [];
  const s: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (strides[d]! < 0) return null;
    if (shape[d] === 1) continue;
    const last = n.length - 1;
    if (last >= 0 && s[last] === strides[d]! * shape[d]!) {
      n[last] = n[last]! * shape[d]!;
      s[last] = strides[d]!;
    } else {
      n.push(shape[d]!);
      s.push(strides[d]!);
    }
  }
  if (n.length > 4) return null;
  while (n.length < 4) {
    n.unshift(1);
    s.unshift(0);
  }
  return { n, s };
}

/**
 * Float32 strided copy through the wasm vector module (its `scopy` kernel): the source extent is copied into the
 * module's memory, gathered there, and copied out. JavaScript element loops over float32 arrays run at ~2 ns per
 * element here; this is ~4x faster for a head transpose. Returns false when it does not apply.
 */
function stridedCopyWasm(x: Float32Array, offset: number, src: readonly number[], out: Float32Array, outShape: Shape): boolean {
  const k = vectorKernels();
  if (k === null) return false;
  const c = collapse4(outShape, src);
  if (c === null) return false;
  let extent = 1;
  for (let d = 0; d < 4; d++) extent += (c.n[d]! - 1) * c.s[d]!;
  const n = out.length;
  if (extent > 4 * n || offset + extent > x.length) return false;
  const dst = DATA + Math.ceil(extent / 4) * 16;
  k.ensure(dst + n * 4);
  k.heap.set(x.subarray(offset, offset + extent), DATA >> 2);
  k.scopy(DATA, dst, c.n[0]!, c.n[1]!, c.n[2]!, c.n[3]!, c.s[0]!, c.s[1]!, c.s[2]!, c.s[3]!);
  out.set(k.heap.subarray(dst >> 2, (dst >> 2) + n));
  return true;
}

/** Copies a strided view of x (starting at `offset`, strides `src` over `outShape`) into contiguous out. */
export function stridedCopy(x: TypedArray, offset: number, src: readonly number[], out: TypedArray, outShape: Shape): void {
  const rank = outShape.length;
  const n = out.length;
  if (n === 0) return;
  if (n >= WASM_COPY_MIN && x instanceof Float32Array && out instanceof Float32Array && stridedCopyWasm(x, offset, src, out, outShape)) {
    return;
  }
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

/**
 * out[i, :] = x[idx[i], :] for a [rows, cols] table; throws on an index out of range. A Uint16Array x holds BF16
 * bit patterns, or float16 ones where dtype.ts isFloat16Bits says so (a frozen embedding kept in its checkpoint
 * dtype), widened exactly into a Float32Array out.
 */
export function gatherRows(x: TypedArray | Uint16Array, rows: number, cols: number, idx: Int32Array, out: TypedArray, op: string): void {
  const half = x instanceof Uint16Array;
  const f16 = half && isFloat16Bits(x) ? float16Table() : null;
  if (half && !(out instanceof Float32Array)) throw new TypeError(`${op}: a ${f16 !== null ? "float16" : "BF16"} table gathers into float32 only`);
  const dst = half ? new Uint32Array(out.buffer, out.byteOffset, out.length) : out;
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    if (r < 0 || r >= rows) throw new RangeError(`${op}: index ${r} at position ${i} is out of range [0, ${rows})`);
    const s = r * cols;
    if (f16 !== null) for (let j = 0; j < cols; j++) dst[i * cols + j] = f16[x[s + j]!]!;
    else if (half) for (let j = 0; j < cols; j++) dst[i * cols + j] = x[s + j]! << 16;
    else for (let j = 0; j < cols; j++) dst[i * cols + j] = x[s + j]!;
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
