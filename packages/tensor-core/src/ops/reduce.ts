// Reductions: sum, mean, max, min over axes (with keepdims), logsumexp composed from them, argmax, and
// sumTo (the unbroadcast helper).

import { isFloat } from "../dtype.js";
import { record } from "../autodiff/tape.js";
import { dispatch } from "../backend/dispatch.js";
import type { ReduceOp } from "../backend/kernels.js";
import { fmt, normAxes, normAxis, sizeOf } from "../shape.js";
import { Tensor } from "../tensor.js";
import { add, div, eq, exp, log, maximum, minimum, mul, sub } from "./elementwise.js";

/** The largest finite float32. */
const F32_MAX = 3.4028234663852886e38;
import { broadcastTo, reshape } from "./movement.js";

/** Raw reduction (no tape): reduces the given sorted axes one at a time. */
function reduceRaw(op: ReduceOp, x: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
  let shape = [...x.shape];
  let cur: Tensor = x;
  for (let i = axes.length - 1; i >= 0; i--) {
    const a = axes[i]!;
    const outer = sizeOf(shape.slice(0, a));
    const r = shape[a]!;
    const inner = sizeOf(shape.slice(a + 1));
    if (r === 0 && op !== "sum") throw new RangeError(`${op}: cannot reduce an empty axis ${a} of ${fmt(x.shape)}`);
    const nextShape = [...shape];
    nextShape[a] = 1;
    const out = dispatch("reduce", op, cur, outer, r, inner, nextShape);
    if (cur !== x) cur.dispose();
    cur = out;
    shape = nextShape;
  }
  const finalShape = keepdims ? shape : x.shape.filter((_, i) => !axes.includes(i));
  if (cur === x) return x.view(finalShape);
  if (finalShape.length === cur.shape.length) return cur;
  const r = cur.view(finalShape);
  cur.dispose();
  return r;
}

/** The reduced shape with kept (size-1) dims, used to broadcast cotangents back. */
function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

export function sum(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  const ax = normAxes("sum", axes, x.rank);
  const out = reduceRaw("sum", x, ax, keepdims);
  // d sum = broadcast dy back over the reduced axes
  return record("sum", out, [x], (dy) => [broadcastTo(reshape(dy, keptShape(x.shape, ax)), x.shape)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  if (!isFloat(x.dtype)) throw new TypeError(`mean: expects a float tensor, got ${x.dtype}`);
  const ax = normAxes("mean", axes, x.rank);
  const n = ax.reduce((p, a) => p * x.shape[a]!, 1);
  return div(sum(x, ax, keepdims), n);
}

function extreme(op: "max" | "min", x: Tensor, axes: number | readonly number[] | undefined, keepdims: boolean): Tensor {
  const ax = normAxes(op, axes, x.rank);
  const out = reduceRaw(op, x, ax, keepdims);
  // d max = dy shared equally among the maximal entries (torch.amax semantics)
  return record(op, out, [x], (dy) => {
    const ks = keptShape(x.shape, ax);
    const m = eq(x, reshape(out, ks));
    const count = reduceRaw("sum", m, ax, true);
    return [mul(m, div(reshape(dy, ks), count))];
  });
}

export const max = (x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor => extreme("max", x, axes, keepdims);
export const min = (x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor => extreme("min", x, axes, keepdims);

/** log(sum(exp(x))) over axes, stabilised by the (constant) max; its gradient is softmax(x) * dy. */
export function logsumexp(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  const ax = normAxes("logsumexp", axes, x.rank);
  const m = reduceRaw("max", x, ax, true); // no tape: a constant shift
  // A row of -Infinity (or holding +Infinity) has an infinite max; clamped to the largest finite value of the
  // dtype, the shift stays finite and the result is still -Infinity (+Infinity), with no read on the host.
  const big = x.dtype === "float64" ? Number.MAX_VALUE : F32_MAX;
  const mSafe = minimum(maximum(m, -big), big);
  const s = log(sum(exp(sub(x, mSafe)), ax, true));
  const r = add(s, mSafe);
  return keepdims ? r : reshape(r, x.shape.filter((_, i) => !ax.includes(i)));
}

/** Index of the largest entry along an axis (int32, no gradient). */
export function argmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis("argmax", axis, x.rank);
  const outer = sizeOf(x.shape.slice(0, a));
  const r = x.shape[a]!;
  const inner = sizeOf(x.shape.slice(a + 1));
  return dispatch("argmax", x, outer, r, inner, x.shape.filter((_, i) => i !== a));
}

/** Sums x down to `shape` (the inverse of broadcasting x from `shape`). */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  const lead = x.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < x.rank; i++) if (i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1)) axes.push(i);
  const s = axes.length > 0 ? sum(x, axes, true) : x;
  return reshape(s, shape);
}
