/**
 * In-place AdamW step with PyTorch's `torch.optim.AdamW` semantics (single-tensor path, same op order):
 *
 *   param *= 1 - lr * weightDecay
 *   m = lerp(m, grad, 1 - beta1)                         (= beta1 m + (1 - beta1) grad)
 *   v = beta2 v + (1 - beta2) grad^2
 *   param -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 *
 * which is param -= lr * mhat / (sqrt(vhat) + eps). For float32 storage the decayed parameter is rounded to
 * float32 before the update, as PyTorch's separate `mul_` does.
 *
 * Float32 storage runs a WebAssembly SIMD kernel (wasm-vector.ts) in float32 arithmetic with that op order,
 * streaming param, grad, m and v through the module's memory in chunks on the row runtime (rows-runtime.ts; on
 * the worker pool when the arrays are shared and large); the loop below is the reference and the fallback
 * (float64, no wasm). The two agree to float32 rounding.
 */
import type { Float } from "./gemm-runtime.js";
import { rowsRuntime, runRows } from "./rows-dispatch.js";
import type { AdamWHyper } from "./rows-runtime.js";

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count (after incrementing for this update). */
  step: number;
}

/** Updates param, m and v in place for the first n elements. */
export function adamwUpdate(param: Float, grad: Float, m: Float, v: Float, n: number, opts: AdamWOptions): void {
  const { lr, beta1, beta2, eps, weightDecay, step } = opts;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`adamwUpdate: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`adamwUpdate: step must be an integer >= 1, got ${step}`);
  if (!(beta1 >= 0 && beta1 < 1)) throw new RangeError(`adamwUpdate: beta1 must be in [0, 1), got ${beta1}`);
  if (!(beta2 >= 0 && beta2 < 1)) throw new RangeError(`adamwUpdate: beta2 must be in [0, 1), got ${beta2}`);
  for (const [name, arr] of [["param", param], ["grad", grad], ["m", m], ["v", v]] as const) {
    if (arr.length < n) throw new RangeError(`adamwUpdate: ${name} needs ${n} elements, has ${arr.length}`);
  }
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / (1 - beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
  const w1 = 1 - beta1;
  const w2 = 1 - beta2;
  const f32 = param instanceof Float32Array;
  const lowWeight = w1 < 0.5;
  const rt = f32 && grad instanceof Float32Array && m instanceof Float32Array && v instanceof Float32Array ? rowsRuntime() : null;
  if (rt !== null) {
    const hyper: AdamWHyper = [decay, w1, beta1, beta2, w2, stepSize, bc2Sqrt, eps, lowWeight ? 1 : 0];
    const job = { kind: "adamw", param: param as Float32Array, grad: grad as Float32Array, m: m as Float32Array, v: v as Float32Array, n, hyper } as const;
    runRows(rt, job, n);
    return;
  }
  for (let i = 0; i < n; i++) {
    const g = grad[i];
    const p = f32 ? Math.fround(param[i] * decay) : param[i] * decay;
    const mi = m[i];
    // torch.lerp: weight < 0.5 ? start + w * (end - start) : end - (end - start) * (1 - w)
    const mNew = lowWeight ? mi + w1 * (g - mi) : g - (g - mi) * beta1;
    m[i] = mNew;
    const vNew = v[i] * beta2 + w2 * g * g;
    v[i] = vNew;
    const denom = Math.sqrt(v[i]) / bc2Sqrt + eps;
    param[i] = p - (stepSize * m[i]) / denom;
  }
}
