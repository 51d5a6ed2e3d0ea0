// Optimisers (PyTorch semantics), gradient clipping and learning-rate schedules. Parameters are updated in
// place; optimiser state is plain typed arrays that can be saved and restored bit for bit.

import { dispatch } from "../backend/dispatch.js";
import type { FloatArray } from "../dtype.js";
import { fmt } from "../shape.js";
import { add } from "../ops/elementwise.js";
import { Tensor, keep } from "../tensor.js";

function gradsOf(op: string, params: readonly Tensor[], grads?: ReadonlyArray<Tensor | null>): Array<Tensor | null> {
  if (grads !== undefined && grads.length !== params.length)
    throw new RangeError(`${op}: ${grads.length} gradients for ${params.length} parameters`);
  return params.map((p, i) => {
    const g = grads !== undefined ? grads[i]! : p.grad;
    if (g !== null && (g.size !== p.size || g.dtype !== p.dtype))
      throw new RangeError(`${op}: gradient ${g.dtype}${fmt(g.shape)} does not match parameter ${i} ${p.dtype}${fmt(p.shape)}`);
    return g;
  });
}

export interface AdamWOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** A parameter group (torch's param_groups): its tensors and the options that differ from the optimizer's. */
export interface AdamWGroup {
  readonly params: readonly Tensor[];
  readonly weightDecay?: number;
}

export interface AdamWState {
  step: number;
  m: Float32Array[] | Float64Array[];
  v: Float32Array[] | Float64Array[];
}

/**
 * AdamW (decoupled weight decay, bias correction), exactly torch.optim.AdamW. Takes the tensors, or parameter
 * groups as torch does (`[{ params: a }, { params: b, weightDecay: 0 }]`): a group's weightDecay overrides the
 * option's; `params` is the groups' tensors in order, which is also the order of step()'s gradients and of
 * the state's slots.
 */
export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly params: readonly Tensor[];
  /** The groups with their options resolved (one group of every tensor when constructed from tensors). */
  readonly groups: ReadonlyArray<{ readonly params: readonly Tensor[]; readonly weightDecay: number }>;
  /** The weight decay of each tensor of `params`. */
  private readonly decay: number[];
  step_ = 0;
  /** The moments, where the adamw kernel keeps them (host or device); read back by `state()`. */
  private m: Tensor[];
  private v: Tensor[];

  constructor(params: readonly Tensor[] | readonly AdamWGroup[], opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const isGroup = (g: Tensor | AdamWGroup): g is AdamWGroup => "params" in g;
    const groups = params.filter(isGroup);
    if (groups.length > 0 && groups.length < params.length) throw new TypeError("AdamW: give tensors or parameter groups, not both");
    this.groups = groups.length > 0
      ? groups.map((g) => ({ params: g.params, weightDecay: g.weightDecay ?? this.weightDecay }))
      : [{ params: params as readonly Tensor[], weightDecay: this.weightDecay }];
    this.params = this.groups.flatMap((g) => g.params);
    this.decay = this.groups.flatMap((g) => g.params.map(() => g.weightDecay));
    if (new Set(this.params).size !== this.params.length) throw new RangeError("AdamW: a tensor appears in more than one place of the parameter groups");
    for (const p of this.params) if (p.dtype === "int32") throw new TypeError("AdamW: int32 parameters cannot be optimised");
    // Moments live in SharedArrayBuffers (where the runtime has them) so the cpu AdamW kernel can split large
    // updates over the worker pool.
    const make = (p: Tensor): Tensor => {
      const bytes = p.size * (p.dtype === "float64" ? 8 : 4);
      const buf = typeof SharedArrayBuffer === "function" ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
      return keep(Tensor.fromBuffer(p.dtype === "float64" ? new Float64Array(buf) : new Float32Array(buf), p.shape));
    };
    this.m = this.params.map(make);
    this.v = this.params.map(make);
  }

  /** One update with the given gradients (default: each parameter's `.grad`; null skips a parameter). */
  step(grads?: ReadonlyArray<Tensor | null>): void {
    const gs = gradsOf("AdamW", this.params, grads);
    this.step_++;
    this.params.forEach((p, i) => {
      const g = gs[i];
      if (g === null || g === undefined) return;
      const hyper = { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.decay[i]!, step: this.step_ };
      dispatch("adamw", p, g, this.m[i]!, this.v[i]!, hyper);
    });
  }

  /** Like state(), awaiting the device's reads where they are asynchronous (webgpu). */
  async stateAsync(): Promise<AdamWState> {
    await Promise.all([...this.m, ...this.v].map((t) => t.toHostAsync()));
    return this.state();
  }

  state(): AdamWState {
    return { step: this.step_, m: this.m.map((t) => t.data()), v: this.v.map((t) => t.data()) } as AdamWState;
  }

  loadState(s: AdamWState): void {
    if (s.m.length !== this.params.length || s.v.length !== this.params.length)
      throw new RangeError(`AdamW.loadState: state has ${s.m.length} slots for ${this.params.length} parameters`);
    s.m.forEach((a, i) => {
      if (a.length !== this.params[i]!.size || s.v[i]!.length !== a.length)
        throw new RangeError(`AdamW.loadState: slot ${i} has ${a.length} values for a parameter of ${this.params[i]!.size}`);
      this.m[i]!.buf.set(a);
      this.v[i]!.buf.set(s.v[i]!);
    });
    this.step_ = s.step;
  }
}

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  weightDecay?: number;
}

/** SGD with optional momentum and (coupled, L2) weight decay, as torch.optim.SGD. */
export class SGD {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  private buf: Array<FloatArray | null>;

  constructor(readonly params: readonly Tensor[], opts: SGDOptions = {}) {
    this.lr = opts.lr ?? 1e-2;
    this.momentum = opts.momentum ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.buf = params.map(() => null);
  }

  step(grads?: ReadonlyArray<Tensor | null>): void {
    const gs = gradsOf("SGD", this.params, grads);
    this.params.forEach((p, i) => {
      const g = gs[i];
      if (g === null || g === undefined) return;
      const w = p.buf, gb = g.buf;
      const n = p.size;
      let b = this.buf[i] ?? null;
      if (this.momentum !== 0 && b === null) {
        b = p.dtype === "float64" ? new Float64Array(n) : new Float32Array(n);
        for (let j = 0; j < n; j++) b[j] = gb[j]! + this.weightDecay * w[j]!;
        this.buf[i] = b;
        for (let j = 0; j < n; j++) w[j] -= this.lr * b[j]!;
        return;
      }
      for (let j = 0; j < n; j++) {
        let d = gb[j]! + this.weightDecay * w[j]!;
        if (b !== null) {
          b[j] = this.momentum * b[j]! + d;
          d = b[j]!;
        }
        w[j] -= this.lr * d;
      }
    });
  }
}

/**
 * Scales gradients in place so their global L2 norm is at most maxNorm (torch clip_grad_norm_; a buffer two
 * gradients share, e.g. a view of another, is scaled once). Returns the
 * norm before clipping. Non-finite norms are returned unchanged (and nothing is scaled) so the caller can stop.
 * The sums of squares and the scaling run where the gradients live (`sumSquares`, `scale`): a device backend
 * reads one number per gradient, not the gradients. Reads synchronously: on webgpu use `clipGradNormAsync`.
 */
export function clipGradNorm(grads: ReadonlyArray<Tensor | null>, maxNorm: number): number {
  const sq = sumOfSquares(grads);
  const norm = Math.sqrt(sq?.item() ?? 0);
  sq?.dispose();
  return clipTo(grads, norm, maxNorm);
}

/** `clipGradNorm` with an asynchronous read of the sum of squares (one read of one number, webgpu included). */
export async function clipGradNormAsync(grads: ReadonlyArray<Tensor | null>, maxNorm: number): Promise<number> {
  const sq = sumOfSquares(grads);
  try {
    return clipTo(grads, Math.sqrt(sq === null ? 0 : await sq.itemAsync()), maxNorm);
  } finally {
    sq?.dispose();
  }
}

/**
 * The gradients' sums of squares added in gradient order, a scalar where they live (float64 on cpu, so the sum
 * is the float64 one of the host loop); null without gradients.
 */
function sumOfSquares(grads: ReadonlyArray<Tensor | null>): Tensor | null {
  let total: Tensor | null = null;
  for (const g of grads) {
    if (g === null) continue;
    const s = dispatch("sumSquares", g);
    if (total === null) total = s;
    else {
      const next = add(total, s);
      total.dispose();
      s.dispose();
      total = next;
    }
  }
  return total;
}

/** Scales each gradient buffer once (two gradients may share one: a view of another, or the same tensor). */
function clipTo(grads: ReadonlyArray<Tensor | null>, norm: number, maxNorm: number): number {
  if (!Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (!(coef < 1)) return norm;
  const scaled = new Set<unknown>();
  for (const g of grads) {
    if (g === null || scaled.has(g.storage)) continue;
    scaled.add(g.storage);
    dispatch("scale", g, coef);
  }
  return norm;
}

/**
 * acc += g / divisor, in place, where acc lives (on the device on a gpu backend, so gradients summed over
 * micro-batches are not read back one by one). Shapes and dtypes must match.
 */
export function accumulate(acc: Tensor, g: Tensor, divisor = 1): void {
  if (acc.size !== g.size || acc.dtype !== g.dtype)
    throw new RangeError(`accumulate: gradient ${g.dtype}${fmt(g.shape)} does not match accumulator ${acc.dtype}${fmt(acc.shape)}`);
  dispatch("accumulate", acc, g, divisor);
}

export type Schedule = (step: number) => number;

/** Learning-rate schedules: functions from the 0-based step to the learning rate. */
export const schedules = {
  constant: (lr: number): Schedule => () => lr,
  /** Linear warmup from 0 over `warmup` steps, then linear decay to 0 at `total` (HF get_linear_schedule_with_warmup). */
  warmupLinear: (lr: number, warmup: number, total: number): Schedule => (step) => {
    if (step < warmup) return (lr * step) / Math.max(1, warmup);
    return lr * Math.max(0, (total - step) / Math.max(1, total - warmup));
  },
  /** Linear warmup, then cosine decay to `minLr` at `total` (HF get_cosine_schedule_with_warmup with a floor). */
  warmupCosine: (lr: number, warmup: number, total: number, minLr = 0): Schedule => (step) => {
    if (step < warmup) return (lr * step) / Math.max(1, warmup);
    const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
    return minLr + (lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * p));
  },
};
