// Movement ops: reshape (a view), permute/transpose, broadcastTo, slice, concat, stack, squeeze,
// unsqueeze, and gather along an axis (embedding lookup) with its scatter-add gradient.

import { record } from "../autodiff/tape.js";
import { dispatch } from "../backend/dispatch.js";
import { broadcastShapes, checkShape, fmt, normAxis, shapeEq, sizeOf } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { sumTo } from "./reduce.js";

/** Same data, new shape (one dimension may be -1). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const infer = shape.indexOf(-1);
  let sh = [...shape];
  if (infer >= 0) {
    const rest = sizeOf(shape.filter((_, i) => i !== infer));
    if (rest === 0 || x.size % rest !== 0) throw new RangeError(`reshape: cannot reshape ${fmt(x.shape)} to ${fmt(shape)}`);
    sh[infer] = x.size / rest;
  }
  checkShape("reshape", sh);
  if (sizeOf(sh) !== x.size) throw new RangeError(`reshape: cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}`);
  if (shapeEq(sh, x.shape)) return x;
  const out = x.view(sh);
  // d reshape = reshape back
  return record("reshape", out, [x], (dy) => [reshape(dy, x.shape)]);
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || new Set(perm.map((p) => normAxis("permute", p, x.rank))).size !== x.rank)
    throw new RangeError(`permute: ${fmt(perm)} is not a permutation of the axes of ${fmt(x.shape)}`);
  const p = perm.map((a) => normAxis("permute", a, x.rank));
  if (p.every((a, i) => a === i)) return x;
  const out = dispatch("permute", x, p);
  const inv = new Array<number>(p.length);
  p.forEach((a, i) => (inv[a] = i));
  // d permute = the inverse permutation
  return record("permute", out, [x], (dy) => [permute(dy, inv)]);
}

/** Swaps two axes (default the last two). */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  const a = normAxis("transpose", axis0, x.rank), b = normAxis("transpose", axis1, x.rank);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

/** Materialises x broadcast to `shape` (numpy rules). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const target = broadcastShapes("broadcastTo", x.shape, shape);
  if (!shapeEq(target, shape)) throw new RangeError(`broadcastTo: cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
  if (shapeEq(x.shape, shape)) return x;
  const out = dispatch("broadcastTo", x, shape);
  // d broadcast = sum over the broadcast axes
  return record("broadcastTo", out, [x], (dy) => [sumTo(dy, x.shape)]);
}

/**
 * x[starts[0]:ends[0], starts[1]:ends[1], ...]. Missing trailing axes are taken whole; negative indices count
 * from the end; ends default to the full extent.
 */
export function slice(x: Tensor, starts: readonly number[], ends?: readonly number[]): Tensor {
  if (starts.length > x.rank || (ends !== undefined && ends.length > x.rank))
    throw new RangeError(`slice: ${starts.length} starts for a tensor of shape ${fmt(x.shape)}`);
  const st = x.shape.map((d, i) => {
    const s = starts[i] ?? 0;
    return Math.min(Math.max(s < 0 ? s + d : s, 0), d);
  });
  const en = x.shape.map((d, i) => {
    const e = ends?.[i] ?? d;
    return Math.min(Math.max(e < 0 ? e + d : e, st[i]!), d);
  });
  const outShape = st.map((s, i) => en[i]! - s);
  if (shapeEq(outShape, x.shape)) return x;
  const out = dispatch("slice", x, st, outShape);
  // d slice = dy placed back into zeros
  return record("slice", out, [x], (dy) => [dispatch("sliceBackward", dy, x.shape, st)]);
}

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new RangeError("concat: needs at least one tensor");
  const first = xs[0]!;
  const a = normAxis("concat", axis, first.rank);
  for (const t of xs) {
    if (t.rank !== first.rank || t.dtype !== first.dtype || t.shape.some((d, i) => i !== a && d !== first.shape[i]))
      throw new RangeError(`concat: shapes ${fmt(first.shape)} (${first.dtype}) and ${fmt(t.shape)} (${t.dtype}) differ off axis ${a}`);
  }
  const outShape = [...first.shape];
  outShape[a] = xs.reduce((s, t) => s + t.shape[a]!, 0);
  const offsets: number[] = [];
  let col = 0;
  for (const t of xs) {
    offsets.push(col);
    col += t.shape[a]!;
  }
  const out = dispatch("concat", xs, a, outShape);
  // d concat = the matching slices of dy
  return record("concat", out, xs, (dy) =>
    xs.map((t, i) => {
      const s = dy.shape.map(() => 0);
      s[a] = offsets[i]!;
      const e = [...dy.shape];
      e[a] = offsets[i]! + t.shape[a]!;
      return slice(dy, s, e);
    }),
  );
}

/** Stacks equal-shape tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new RangeError("stack: needs at least one tensor");
  const a = normAxis("stack", axis, xs[0]!.rank + 1);
  return concat(xs.map((t) => unsqueeze(t, a)), a);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis("unsqueeze", axis, x.rank + 1);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

/** Removes an axis of size 1 (or all of them when axis is omitted). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const a = normAxis("squeeze", axis, x.rank);
  if (x.shape[a] !== 1) throw new RangeError(`squeeze: axis ${axis} of ${fmt(x.shape)} is not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/**
 * Takes slices of x along `axis` at the int32 `indices` (numpy `take`): the result's shape is
 * x.shape[:axis] + indices.shape + x.shape[axis+1:]. The gradient scatter-adds into x.
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  if (indices.dtype !== "int32") throw new TypeError(`gather: indices must be int32, got ${indices.dtype}`);
  const a = normAxis("gather", axis, x.rank);
  if (a !== 0) {
    // Move the axis to the front, gather, move it back.
    const perm = [a, ...x.shape.map((_, i) => i).filter((i) => i !== a)];
    const g = gather(permute(x, perm), indices, 0); // (idx..., rest...)
    const k = indices.rank;
    const restBefore = a; // the axes that were before `a` sit after the index dims now
    const order = [
      ...Array.from({ length: restBefore }, (_, i) => k + i),
      ...Array.from({ length: k }, (_, i) => i),
      ...Array.from({ length: x.rank - 1 - restBefore }, (_, i) => k + restBefore + i),
    ];
    return permute(g, order);
  }
  const rows = x.shape[0]!;
  const outShape = [...indices.shape, ...x.shape.slice(1)];
  const ids = indices.peek();
  for (let i = 0; i < ids.length; i++)
    if (ids[i]! < 0 || ids[i]! >= rows) throw new RangeError(`gather: index ${ids[i]} at position ${i} is out of range [0, ${rows})`);
  const out = dispatch("gather", x, indices, outShape);
  // d gather = scatter-add dy rows into zeros
  return record("gather", out, [x], (dy) => [dispatch("gatherBackward", dy, indices, x.shape)]);
}

/** Embedding lookup: weight [V, D], ids int32 [...] -> [..., D]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.rank !== 2) throw new RangeError(`embedding: weight must be [V, D], got ${fmt(weight.shape)}`);
  return gather(weight, ids, 0);
}
