// The tape: eager reverse-mode autodiff in the style of micrograd/PyTorch. Every differentiable op that
// runs while grad mode is on and has an input that requires grad records a Node on its output holding the
// inputs and a VJP closure; `backward` walks the nodes in reverse topological order and accumulates
// cotangents (fan-out is handled by adding). VJPs are written in tensor ops, so they run on every backend;
// they run with grad mode off (no higher-order derivatives).
//
// Memory: each VJP runs inside its own `scope`, so its temporaries are freed as soon as it returns, and a
// cotangent is disposed once its node has consumed it (or once it has been summed into a fan-out total), unless
// it is still referenced: the same tensor object may be the pending cotangent of several inputs (add's VJP
// returns dy twice), be returned to a target, or become a leaf's `.grad`. Only tensors created during this
// backward pass are ever disposed here (ids at or above the first id made inside it), so a VJP that returns a
// forward tensor or the caller's seed never loses it; views share reference-counted storage, so disposing a
// cotangent whose view lives on (reshape's VJP) keeps the data. Where two cotangents of one tensor meet, the second
// is added into the first in place when nothing else can see the first (made in this pass, held once, alone on
// its storage, on the host), so a fan-in of k paths holds one buffer, not k (a tied [V, d] embedding: one less).
// A VJP may also add its result into such a pending cotangent itself, in its own kernel (`into`, see Vjp):
// SwiGLU's does, so an MLP's gate and up gradients meet their clone terms' without a pass of their own.

import type { Tensor } from "../tensor.js";
import { scope } from "../tensor.js";
import { activeBackend } from "../backend/dispatch.js";
import { binary } from "../backend/cpu/index.js";
import { releaseStorage } from "../storage.js";

/**
 * dy -> one cotangent per input (null: none). `into(i)` offers the cotangent already pending for input i when the
 * VJP may add its own into it in place (a fused kernel saves writing its result and the pass that adds the two); a
 * VJP that takes it must return that same tensor, holding the sum, as input i's cotangent. null when there is
 * nothing pending, or it cannot be written (see addInPlace), or the input appears twice among the inputs.
 */
export type Vjp = (dy: Tensor, into: (i: number) => Tensor | null) => ReadonlyArray<Tensor | null>;

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

/**
 * Whether prev, a pending cotangent, may be written in place: nothing else can see it (made during this pass,
 * id >= firstId, held by one entry, the only tensor on its storage), it is on the host (the cpu backend), and it has
 * `like`'s shape and dtype.
 */
function writable(prev: Tensor, like: Tensor, firstId: number, holds: number): boolean {
  const s = prev.storage;
  if (activeBackend() !== null || prev.id < firstId || prev.kept || holds !== 1 || s === null || s.refs !== 1 || s.data === null || s.device !== null) return false;
  return like.dtype === prev.dtype && like.shape.length === prev.shape.length && like.shape.every((d, k) => d === prev.shape[k]);
}

/** prev += gx in place when prev is writable; false otherwise. */
function addInPlace(prev: Tensor, gx: Tensor, firstId: number, holds: number): boolean {
  if (!writable(prev, gx, firstId, holds)) return false;
  const a = prev.buf;
  binary("add", a, prev.shape, gx.peek(), gx.shape, a, prev.shape);
  return true;
}

/** Evicted tensors and how to recompute their values (see evict). */
const evicted = new WeakMap<Tensor, () => Tensor>();

/**
 * Frees t's values now and recomputes them in the backward pass, just for the VJPs that read them: while the
 * node of a tensor that has t among its inputs runs its VJP, t holds `recompute()`'s values (run with grad mode
 * off; it must give t's shape and dtype, and the same values for the gradients to be the same), which are freed
 * again right after. t keeps its place on the tape (its own node still passes the gradient on, and must not
 * read t: a matmul's does not, a tanh's does); any other read of t fails as for a disposed tensor. For a tensor
 * that is cheap to recompute from tensors kept anyway, e.g. a weight generated from frozen ones (LRC's
 * W_teacher P) that the VJP of the matmul using it needs for dx.
 * Without `recompute` the values are dropped for good: for a tensor whose consumers' VJPs never read it (the
 * input of `rope`, whose VJP is the inverse rotation of dy); one that does read it fails as for a disposed tensor.
 */
export function evict(t: Tensor, recompute?: () => Tensor): void {
  if (t.storage === null) throw new Error(`evict: tensor ${t.id} [${t.shape.join(", ")}] was disposed`);
  releaseStorage(t.storage);
  t.storage = null;
  if (recompute !== undefined) evicted.set(t, recompute);
}

/** Gives evicted tensors among `ts` their values back; returns those it restored. */
function restore(ts: Iterable<Tensor>): Tensor[] {
  const done: Tensor[] = [];
  for (const t of ts) {
    const recompute = evicted.get(t);
    if (recompute === undefined || t.storage !== null) continue;
    const v = noGrad(recompute);
    if (v.dtype !== t.dtype || v.shape.length !== t.shape.length || v.shape.some((d, k) => d !== t.shape[k]))
      throw new Error(`evict: recompute gave ${v.dtype}[${v.shape}] for ${t.dtype}[${t.shape}]`);
    if (v.storage === null) throw new Error("evict: recompute gave a disposed tensor");
    t.storage = v.storage; // the reference moves from v to t
    v.storage = null;
    done.push(t);
  }
  return done;
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
  /** How many pending `grads` entries hold each cotangent object. */
  const uses = new Map<Tensor, number>();
  const targetSet = new Set(targets);
  // Everything a VJP closure can capture existed when root was made; the seed may be newer (valueAndGrad's).
  const firstId = Math.max(root.id, seed.id) + 1;
  const hold = (g: Tensor): void => void uses.set(g, (uses.get(g) ?? 0) + 1);
  /** Drops one hold on g; frees g when nothing holds it any more and it was made during this pass. */
  const release = (g: Tensor): void => {
    const n = (uses.get(g) ?? 0) - 1;
    if (n > 0) {
      uses.set(g, n);
      return;
    }
    uses.delete(g);
    if (g.id >= firstId && !g.kept) g.dispose();
  };
  /** Frees a fresh tensor that nothing holds (a VJP output nobody needs). */
  const dropUnheld = (g: Tensor): void => {
    if (!uses.has(g) && g.id >= firstId && !g.kept) g.dispose();
  };
  grads.set(root, seed);
  hold(seed);
  noGrad(() => {
    for (const t of topoOrder(root)) {
      const g = grads.get(t);
      if (g === undefined) continue;
      const node = t.node;
      if (node === null) {
        if (accumulate && !targetSet.has(t)) {
          grads.delete(t);
          if (t.grad === null) {
            t.grad = g;
            keep(g);
            release(g);
          } else {
            t.grad = add(t.grad, g);
            release(g);
          }
          keep(t.grad);
        }
        continue;
      }
      const restored = restore(node.inputs);
      // Inputs whose pending cotangent the VJP took (into) and returned with its own added.
      const taken = new Set<number>();
      const into = (i: number): Tensor | null => {
        const x = node.inputs[i];
        const prev = x === undefined || !x.requiresGrad ? undefined : grads.get(x);
        if (prev === undefined || node.inputs.indexOf(x!) !== node.inputs.lastIndexOf(x!) || !writable(prev, x!, firstId, uses.get(prev) ?? 0)) return null;
        taken.add(i);
        return prev;
      };
      const gs = scope(() => node.vjp(g, into));
      for (const x of restored) {
        releaseStorage(x.storage!);
        x.storage = null;
      }
      for (let i = 0; i < node.inputs.length; i++) {
        const x = node.inputs[i]!;
        const gx = gs[i];
        if (gx === null || gx === undefined) continue;
        if (!x.requiresGrad) continue;
        if (gx.dtype !== x.dtype || gx.shape.length !== x.shape.length || gx.shape.some((d, k) => d !== x.shape[k]))
          throw new Error(`internal: VJP of ${node.op} returned ${gx.dtype}[${gx.shape}] for input ${x.dtype}[${x.shape}]`);
        const prev = grads.get(x);
        if (taken.has(i)) {
          if (gx !== prev) throw new Error(`internal: VJP of ${node.op} took input ${i}'s pending cotangent but returned another`);
        } else if (prev === undefined) {
          grads.set(x, gx);
          hold(gx);
        } else if (gx !== prev && addInPlace(prev, gx, firstId, uses.get(prev) ?? 0)) {
          dropUnheld(gx); // prev now holds the sum (one buffer fewer at a fan-in, e.g. a tied embedding's two uses)
        } else {
          const total = add(prev, gx);
          grads.set(x, total);
          hold(total);
          release(prev);
          dropUnheld(gx);
        }
      }
      for (const gx of gs) if (gx !== null && gx !== undefined && gx !== g) dropUnheld(gx);
      if (!targetSet.has(t)) {
        grads.delete(t);
        release(g);
      }
    }
  });
  return targets.map((t) => grads.get(t) ?? null);
}
