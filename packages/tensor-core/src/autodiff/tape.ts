// The tape: eager reverse-mode autodiff in the style of micrograd/PyTorch. Every differentiable op that
// runs while grad mode is on and has an input that requires grad records a Node on its output holding the
// inputs and a VJP closure; `backward` walks the nodes in reverse topological order and accumulates
// cotangents (fan-out is handled by adding). VJPs are written in tensor ops, so they run on every backend;
// they run with grad mode off (no higher-order derivatives).

import type { Tensor } from "../tensor.js";

export type Vjp = (dy: Tensor) => ReadonlyArray<Tensor | null>;

export interface Node {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly vjp: Vjp;
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with gradient recording off. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Attaches a tape node to `out` when any input needs a gradient. Returns out. */
export function record(op: string, out: Tensor, inputs: readonly Tensor[], vjp: Vjp): Tensor {
  if (!gradEnabled) return out;
  for (const t of inputs)
    if (t.requiresGrad) {
      out.requiresGrad = true;
      out.node = { op, inputs, vjp };
      return out;
    }
  return out;
}

/** Reverse topological order of the graph below root (root first). */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: Array<[Tensor, number]> = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const c = inputs[i]!;
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

/**
 * Backpropagates `seed` (d root) through the tape. Returns the cotangent reached at each requested tensor
 * (`targets`); leaves that require grad and are not targets accumulate into `.grad` when `accumulate`.
 */
export function backprop(
  root: Tensor,
  seed: Tensor,
  targets: readonly Tensor[],
  accumulate: boolean,
  add: (a: Tensor, b: Tensor) => Tensor,
  keep: (t: Tensor) => void,
): Array<Tensor | null> {
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, seed);
  const targetSet = new Set(targets);
  noGrad(() => {
    for (const t of topoOrder(root)) {
      const g = grads.get(t);
      if (g === undefined) continue;
      const node = t.node;
      if (node === null) {
        if (accumulate && !targetSet.has(t)) {
          t.grad = t.grad === null ? g : add(t.grad, g);
          keep(t.grad);
        }
        continue;
      }
      const gs = node.vjp(g);
      for (let i = 0; i < node.inputs.length; i++) {
        const x = node.inputs[i]!;
        const gx = gs[i];
        if (!x.requiresGrad || gx === null || gx === undefined) continue;
        if (gx.dtype !== x.dtype || gx.shape.length !== x.shape.length || gx.shape.some((d, k) => d !== x.shape[k]))
          throw new Error(`internal: VJP of ${node.op} returned ${gx.dtype}[${gx.shape}] for input ${x.dtype}[${x.shape}]`);
        const prev = grads.get(x);
        grads.set(x, prev === undefined ? gx : add(prev, gx));
      }
    }
  });
  return targets.map((t) => grads.get(t) ?? null);
}
