// Functional transforms over the tape, in the style of JAX: valueAndGrad(fn)(...args) -> [value, grads].

import { Tensor } from "../tensor.js";
import { add } from "../ops/elementwise.js";
import { full, keep } from "../tensor.js";
import { backprop, noGrad } from "./tape.js";

type Fn = (...args: any[]) => Tensor;

function tensorArgIndices(args: readonly unknown[]): number[] {
  const idx: number[] = [];
  args.forEach((a, i) => a instanceof Tensor && idx.push(i));
  return idx;
}

/**
 * Returns a function that calls fn and returns [value, grads], grads aligned with argnums (default: every
 * tensor argument). fn must return a scalar tensor. The arguments are not modified (their `.grad` is left
 * alone): gradients are taken with respect to fresh aliases of them.
 */
export function valueAndGrad<F extends Fn>(fn: F, argnums?: number | readonly number[]): (...args: Parameters<F>) => [Tensor, Tensor[]] {
  return (...args: Parameters<F>) => {
    const nums = argnums === undefined ? tensorArgIndices(args) : typeof argnums === "number" ? [argnums] : argnums;
    const aliases = nums.map((i) => {
      const a = args[i];
      if (!(a instanceof Tensor)) throw new TypeError(`valueAndGrad: argument ${i} is not a tensor`);
      if (a.dtype === "int32") throw new TypeError(`valueAndGrad: argument ${i} is int32 and has no gradient`);
      const alias = a.detach();
      alias.requiresGrad = true;
      return alias;
    });
    const callArgs = [...args];
    nums.forEach((i, j) => (callArgs[i] = aliases[j]));
    const value = fn(...callArgs);
    if (!(value instanceof Tensor) || value.size !== 1)
      throw new TypeError(`valueAndGrad: fn must return a scalar tensor, got ${value instanceof Tensor ? `shape [${value.shape}]` : typeof value}`);
    const grads = value.requiresGrad
      ? backprop(value, full(value.shape, 1, { dtype: value.dtype }), aliases, false, add, keep)
      : aliases.map(() => null);
    const out = grads.map((g, j) => g ?? noGrad(() => full(aliases[j]!.shape, 0, { dtype: aliases[j]!.dtype })));
    return [noGrad(() => value.detach()), out];
  };
}

/** Like valueAndGrad but returns only the gradients. */
export function grad<F extends Fn>(fn: F, argnums?: number | readonly number[]): (...args: Parameters<F>) => Tensor[] {
  const vg = valueAndGrad(fn, argnums);
  return (...args: Parameters<F>) => vg(...args)[1];
}
