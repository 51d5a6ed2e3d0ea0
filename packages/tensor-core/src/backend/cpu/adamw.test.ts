/** AdamW against the textbook formula (PyTorch semantics) over several steps. */
import { describe, expect, it } from "vitest";
import { adamwUpdate } from "./adamw.js";
import { maxAbsDiff, refAdamW } from "../../testing-internal/reference.js";

describe("adamwUpdate", () => {
  it("matches the reference over three steps in float64 and float32", () => {
    const n = 37;
    const opts = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    for (const F of [Float64Array, Float32Array]) {
      const fill = (f: (i: number) => number): Float32Array | Float64Array => {
        const arr = new F(n);
        for (let i = 0; i < n; i++) arr[i] = f(i);
        return arr;
      };
      const p = fill(Math.sin);
      const m = new F(n), v = new F(n);
      let ref: ReturnType<typeof refAdamW> = { param: Float64Array.from(p), m: new Float64Array(n), v: new Float64Array(n) };
      for (let step = 1; step <= 3; step++) {
        const g = fill((i) => Math.cos(i * step));
        adamwUpdate(p, g, m, v, n, { ...opts, step });
        ref = refAdamW(ref.param, g, ref.m, ref.v, { ...opts, step });
      }
      const tol = F === Float64Array ? 1e-13 : 2e-6;
      expect(maxAbsDiff(p, ref.param)).toBeLessThan(tol);
      expect(maxAbsDiff(m, ref.m)).toBeLessThan(tol);
      expect(maxAbsDiff(v, ref.v)).toBeLessThan(tol);
    }
  });

  it("first step moves each parameter by about lr against the gradient sign", () => {
    const p = new Float64Array([1, 1]);
    adamwUpdate(p, new Float64Array([3, -0.2]), new Float64Array(2), new Float64Array(2), 2, {
      lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1,
    });
    expect(p[0]).toBeCloseTo(0.9, 6);
    expect(p[1]).toBeCloseTo(1.1, 6);
  });

  it("rejects a step below 1 and short arrays", () => {
    const a = new Float32Array(2);
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 0 };
    expect(() => adamwUpdate(a, a, a, a, 2, o)).toThrow(/step must be an integer >= 1/);
    expect(() => adamwUpdate(a, a, a, new Float32Array(1), 2, { ...o, step: 1 })).toThrow(/v needs 2 elements/);
  });
});
