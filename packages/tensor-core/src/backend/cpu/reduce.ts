// CPU reductions over one contiguous group of axes, viewed as [outer, r, inner]: the op layer reduces
// several non-adjacent axes one axis at a time.

import type { TypedArray } from "../../dtype.js";

export type ReduceKernel = "sum" | "max" | "min";

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
