// Helpers of the backend parity suites (backend/parity.test.ts, backend/gpujs/parity.test.ts): run the same
// function on cpu and on a backend with the same host inputs and compare the values. Not built into dist.

import { expect } from "vitest";
import { valueAndGrad } from "../autodiff/grad.js";
import { setBackend } from "../backend/backend.js";
import * as ops from "../ops/index.js";
import { rng as makeRng } from "../random.js";
import type { Tensor } from "../tensor.js";
import { scope, tensor } from "../tensor.js";

/** Host copies of the values of ts (read asynchronously: webgpu reads no other way), which are then disposed. */
export async function values(ts: Tensor[]): Promise<Float32Array[]> {
  try {
    const out: Float32Array[] = [];
    for (const t of ts) out.push(Float32Array.from(await t.dataAsync()));
    return out;
  } finally {
    for (const t of ts) t.dispose();
  }
}

/** Runs fn on cpu and on `backend` with the same host inputs; returns the values (host copies) of both. */
export async function both(backend: string, fn: () => Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  setBackend("cpu");
  const c = scope(() => fn().map((t) => Float32Array.from(t.data())));
  setBackend(backend);
  const outs = scope(fn);
  setBackend("cpu");
  return [c, await values(outs)];
}

/** Every output within a relative difference of `tol` (0: bit for bit). */
export function close(name: string, cpu: Float32Array[], other: Float32Array[], tol: number): void {
  expect(other.length).toBe(cpu.length);
  cpu.forEach((c, i) => {
    const g = other[i]!;
    expect(g.length, `${name} output ${i} length`).toBe(c.length);
    if (tol === 0) {
      expect(g, `${name} output ${i}: bit for bit`).toEqual(c);
      return;
    }
    let worst = 0;
    for (let j = 0; j < c.length; j++) worst = Math.max(worst, Math.abs(g[j]! - c[j]!) / (1 + Math.abs(c[j]!)));
    expect(worst, `${name} output ${i}: max relative difference`).toBeLessThan(tol);
  });
}

const r = makeRng(8);
/** A float32 tensor of normal values times `scale` (one seeded stream for the whole suite). */
export function rnd(shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const b = new Float32Array(n);
  for (let i = 0; i < n; i++) b[i] = scale * r.normal();
  return tensor(b, shape);
}

/** Forward value and gradients of sum(f(xs) * w) with respect to every input, on the active backend. */
export function withGrads(f: (...xs: Tensor[]) => Tensor, xs: Tensor[]): Tensor[] {
  const lf = (...a: Tensor[]): Tensor => {
    const y = f(...a);
    return ops.sum(ops.mul(y, wFor(y.shape)));
  };
  const [v, gs] = valueAndGrad(lf, xs.map((_, i) => i))(...xs);
  return [v, ...(gs as Tensor[])];
}

const weights = new Map<string, Float32Array>();
function wFor(shape: readonly number[]): Tensor {
  const key = shape.join(",");
  let w = weights.get(key);
  if (w === undefined) {
    w = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < w.length; i++) w[i] = Math.sin(i + 1);
    weights.set(key, w);
  }
  return tensor(w, [...shape]);
}
