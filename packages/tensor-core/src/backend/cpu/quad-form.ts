/**
 * The cpu passes of quadFormMse (ops/quad-form-mse.ts): Δ = a − b (the wasm binary kernel, into pooled scratch),
 * F = Δ G (the gemm, on the worker pool), and the float64 sum of F ⊙ Δ; the backward's c F, added into a pending
 * cotangent when there is one. The two elementwise loops are one streaming pass over [rows, k] each (~1 ms at the
 * Qwen2.5-0.5B shape's [1024, 896]); the gemm is the cost.
 */
import type { Float } from "./gemm-runtime.js";
import { acquireForWorkers, release } from "./buffer-pool.js";
import { binary } from "./elementwise.js";
import { gemm } from "./gemm.js";

/** f = (a − b) g for a, b [rows, k] and g [k, k]; returns Σ f ⊙ (a − b), accumulated in float64 in index order. */
export function quadFormForward(a: Float, b: Float, g: Float, f: Float, rows: number, k: number): number {
  const n = rows * k;
  const delta = acquireForWorkers(a instanceof Float32Array ? "float32" : "float64", n);
  try {
    const d = delta.subarray(0, n) as Float;
    binary("sub", a, [n], b, [n], d, [n]);
    gemm({ a: d, b: g, c: f, batch: 1, m: rows, n: k, k, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 });
    let s = 0;
    for (let i = 0; i < n; i++) s += f[i]! * d[i]!;
    return s;
  } finally {
    release(delta);
  }
}

/**
 * out = c f, or out += c f when `add` (c rounded to out's precision first, each product rounded before the sum: the
 * values of a scale then an add).
 */
export function scaleAddInto(f: Float, c: number, out: Float, n: number, add: boolean): void {
  const f32 = out instanceof Float32Array;
  const cc = f32 ? Math.fround(c) : c;
  if (f32) {
    if (add) for (let i = 0; i < n; i++) out[i] += Math.fround(cc * f[i]!);
    else for (let i = 0; i < n; i++) out[i] = cc * f[i]!;
  } else if (add) for (let i = 0; i < n; i++) out[i] += cc * f[i]!;
  else for (let i = 0; i < n; i++) out[i] = cc * f[i]!;
}
