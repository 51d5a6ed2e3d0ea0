/**
 * The cpu passes of quadFormMse (ops/quad-form-mse.ts): Δ = a − b (the wasm binary kernel, into pooled scratch),
 * F = Δ G (the gemm, on the worker pool), and the float64 sum of F ⊙ Δ (fused.ts's dotSum); the backward's c F,
 * added into a pending cotangent when there is one, is fused.ts's scaleInto. Both streaming passes run on the row
 * runtime (wasm, the worker pool) for float32; the gemm is the cost.
 */
import type { Float } from "./gemm-runtime.js";
import { acquireForWorkers, release } from "./buffer-pool.js";
import { binary } from "./elementwise.js";
import { dotSum } from "./fused.js";
import { gemm } from "./gemm.js";

/** f = (a − b) g for a, b [rows, k] and g [k, k]; returns Σ f ⊙ (a − b), accumulated in float64 (dotSum's order). */
export function quadFormForward(a: Float, b: Float, g: Float, f: Float, rows: number, k: number): number {
  const n = rows * k;
  const delta = acquireForWorkers(a instanceof Float32Array ? "float32" : "float64", n);
  try {
    const d = delta.subarray(0, n) as Float;
    binary("sub", a, [n], b, [n], d, [n]);
    gemm({ a: d, b: g, c: f, batch: 1, m: rows, n: k, k, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 });
    return dotSum(f, d, n);
  } finally {
    release(delta);
  }
}
