// CPU reductions over one contiguous group of axes, viewed as [outer, r, inner]: the op layer reduces
// several non-adjacent axes one axis at a time. A float32 sum over rows (inner > 1: a bias's gradient, summed over
// the tokens) adds whole rows with the WebAssembly SIMD vector module's add: the same float32 additions in the same
// order as the loop below, so the same bits.

import type { TypedArray } from "../../dtype.js";
import { copyIn, layout, rowPtr } from "./rows-wasm.js";
import { DATA, vectorKernels } from "./wasm-vector.js";

export type ReduceKernel = "sum" | "max" | "min";

/** Below this many elements the loop below is as fast as a round trip through the wasm memory. */
const WASM_MIN = 4096;

/** out[o] = x[o, 0] + x[o, 1] + ... (rows of `inner` floats added in order, float32); false when it does not apply. */
function sumRowsWasm(x: TypedArray, out: TypedArray, outer: number, r: number, inner: number): boolean {
  if (!(x instanceof Float32Array) || !(out instanceof Float32Array) || r < 2 || outer * r * inner < WASM_MIN) return false;
  const k = vectorKernels();
  if (k === null) return false;
  const L = layout(k, 1, inner);
  const acc = DATA + L.regionBytes;
  k.ensure(acc + L.stride * 4);
  for (let o = 0; o < outer; o++) {
    const rows = x.subarray(o * r * inner, (o + 1) * r * inner);
    k.heap.set(rows.subarray(0, inner), acc >> 2);
    for (let j0 = 1; j0 < r; j0 += L.rowsPerChunk) {
      const j1 = Math.min(r, j0 + L.rowsPerChunk);
      copyIn(k, L, 0, rows, j0, j1, inner);
      for (let j = j0; j < j1; j++) k.badd(acc, rowPtr(L, 0, j - j0), acc, inner, 0);
    }
    out.set(k.heap.subarray(acc >> 2, (acc >> 2) + inner), o * inner);
  }
  return true;
}

export function reduce(op: ReduceKernel, x: TypedArray, out: TypedArray, outer: number, r: number, inner: number): void {
  if (inner === 1) {
    for (let o = 0; o < outer; o++) {
      const base = o * r;
      let acc = op === "sum" ? 0 : x[base]!;
      if (op === "sum") for (let j = 0; j < r; j++) acc += x[base + j]!;
      else if (op === "max") for (let j = 1; j < r; j++) { const v = x[base + j]!; if (v > acc || Number.isNaN(v)) acc = v; }
      else for (let j = 1; j < r; j++) { const v = x[base + j]!; if (v < acc || Number.isNaN(v)) acc = v; }
      out[o] = r === 0 ? (op === "sum" ? 0 : op === "max" ? -Infinity : Infinity) : acc;
    }
    return;
  }
  if (op === "sum" && sumRowsWasm(x, out, outer, r, inner)) return;
  for (let o = 0; o < outer; o++) {
    const ob = o * inner, xb = o * r * inner;
    if (r === 0) {
      out.fill(op === "sum" ? 0 : op === "max" ? -Infinity : Infinity, ob, ob + inner);
      continue;
    }
    for (let i = 0; i < inner; i++) out[ob + i] = x[xb + i]!;
    for (let j = 1; j < r; j++) {
      const row = xb + j * inner;
      if (op === "sum") for (let i = 0; i < inner; i++) out[ob + i] += x[row + i]!;
      else if (op === "max") for (let i = 0; i < inner; i++) { const v = x[row + i]!; if (v > out[ob + i]! || Number.isNaN(v)) out[ob + i] = v; }
      else for (let i = 0; i < inner; i++) { const v = x[row + i]!; if (v < out[ob + i]! || Number.isNaN(v)) out[ob + i] = v; }
    }
  }
}
