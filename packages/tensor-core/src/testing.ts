// Test helpers shared by every package: closeness checks and a finite-difference gradient check.
// Import from "@lrc-ts/tensor-core/testing".

import { noGrad } from "./autodiff/tape.js";
import { valueAndGrad } from "./autodiff/grad.js";
import type { Rng } from "./random.js";
import { Tensor, tensor } from "./tensor.js";

/** Max |a - b| and whether every element satisfies |a - b| <= atol + rtol |b| (NaN only matches NaN). */
export function allclose(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-5, rtol = 1e-5): { ok: boolean; maxAbs: number; at: number } {
  if (a.length !== b.length) return { ok: false, maxAbs: Infinity, at: -1 };
  let ok = true, maxAbs = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (!(Number.isNaN(x) && Number.isNaN(y))) { ok = false; maxAbs = Infinity; at = i; }
      continue;
    }
    const d = Math.abs(x - y);
    if (d > maxAbs || (x !== y && !Number.isFinite(d))) { maxAbs = d; at = i; }
    if (!(d <= atol + rtol * Math.abs(y)) && x !== y) ok = false;
  }
  return { ok, maxAbs, at };
}

/** Throws with the worst element when a and b are not close. */
export function assertClose(a: Tensor | ArrayLike<number>, b: Tensor | ArrayLike<number>, atol = 1e-5, rtol = 1e-5, what = "values"): void {
  const av = a instanceof Tensor ? a.buf : a;
  const bv = b instanceof Tensor ? b.buf : b;
  if (a instanceof Tensor && b instanceof Tensor && a.shape.join() !== b.shape.join())
    throw new Error(`${what}: shapes [${a.shape}] and [${b.shape}] differ`);
  const r = allclose(av, bv, atol, rtol);
  if (!r.ok) throw new Error(`${what}: not close (atol ${atol}, rtol ${rtol}): max |diff| ${r.maxAbs} at ${r.at}: ${av[r.at]} vs ${bv[r.at]}`);
}

function randomLike(t: Tensor, r: Rng): Tensor {
  const out = new Float64Array(t.size);
  for (let i = 0; i < out.length; i++) out[i] = r.normal();
  return tensor(out, t.shape, { dtype: t.dtype });
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export interface GradCheckResult {
  /** <vjp(v), u> from the tape */
  analytic: number;
  /** <v, (f(x + eps u) - f(x - eps u)) / (2 eps)> */
  numeric: number;
  ok: boolean;
}

/**
 * Checks the VJP of f at xs along a random direction u with a random cotangent v, against central finite
 * differences: <vjp(v), u> ~= <v, (f(x+eps u) - f(x-eps u)) / 2eps>. Use float64 inputs.
 */
export function checkGrad(f: (...xs: Tensor[]) => Tensor, xs: readonly Tensor[], r: Rng, opts: { eps?: number; atol?: number; rtol?: number } = {}): GradCheckResult {
  const eps = opts.eps ?? 1e-6, atol = opts.atol ?? 1e-6, rtol = opts.rtol ?? 1e-5;
  const y0 = noGrad(() => f(...xs));
  const v = randomLike(y0, r);
  const us = xs.map((x) => randomLike(x, r));
  // Scalarise: L(x) = <v, f(x)>, so dL/dx = vjp(v).
  const L = (...args: Tensor[]) => f(...args).mul(v).sum();
  const [, grads] = valueAndGrad(L)(...xs);
  const analytic = grads.reduce((s, g, i) => s + dot(g.buf, us[i]!.buf), 0);
  const shifted = (sgn: number) =>
    noGrad(() => f(...xs.map((x, i) => x.add(us[i]!.mul(sgn * eps)))).buf);
  const yp = shifted(1), ym = shifted(-1);
  let numeric = 0;
  for (let i = 0; i < yp.length; i++) numeric += v.buf[i]! * (yp[i]! - ym[i]!) / (2 * eps);
  const ok = Math.abs(analytic - numeric) <= atol + rtol * Math.max(Math.abs(analytic), Math.abs(numeric));
  return { analytic, numeric, ok };
}
