// quadFormMse and gramMatrix: gradients against finite differences (float64, random shapes), values and gradients
// against a float64 reference of the projected form mse(a Wᵀ, b Wᵀ), the float32 kernel against the projected form
// at a real-ish shape (a bfloat16 W of 896 x 896, 1,024 rows), the fused backward's add into a pending cotangent,
// the composite on the gpu backend against the cpu kernel, and the argument checks.
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { backendReport, initBackend, setBackend, type GpuMode } from "../backend/backend.js";
import { valueAndGrad } from "../autodiff/grad.js";
import { rng } from "../random.js";
import { checkGrad } from "../testing.js";
import type { Tensor } from "../tensor.js";
import * as O from "./index.js";
import { uniformTensor } from "../testing-internal/tensors.js";

const randT = (shape: readonly number[], seed: number, dtype: "float32" | "float64", scale = 1): Tensor => uniformTensor(shape, seed, dtype, scale);

/** The float64 reference: mse(a Wᵀ, b Wᵀ) and its gradient w.r.t. a, by plain loops over the projections. */
function reference(a: ArrayLike<number>, b: ArrayLike<number>, w: ArrayLike<number>, rows: number, k: number, m: number): { loss: number; da: Float64Array } {
  const da = new Float64Array(rows * k);
  let loss = 0;
  const n = rows * m;
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < m; o++) {
      let e = 0;
      for (let j = 0; j < k; j++) e += (a[r * k + j]! - b[r * k + j]!) * w[o * k + j]!;
      loss += e * e;
      for (let j = 0; j < k; j++) da[r * k + j] += (2 * e * w[o * k + j]!) / n;
    }
  return { loss: loss / n, da };
}

function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0, diff = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
  return diff / Math.max(scale, 1e-30);
}

const dimsArb = fc.record({
  lead: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 2 }),
  k: fc.integer({ min: 1, max: 9 }), m: fc.integer({ min: 1, max: 9 }),
});

describe("quadFormMse", () => {
  test("gradients w.r.t. a and b against finite differences (float64)", () => {
    fc.assert(
      fc.property(dimsArb, fc.integer({ min: 0, max: 1 << 30 }), ({ lead, k, m }, seed) => {
        const g = O.gramMatrix(randT([m, k], seed + 2, "float64"));
        const res = checkGrad((a, b) => O.quadFormMse(a, b, g, m), [randT([...lead, k], seed, "float64"), randT([...lead, k], seed + 1, "float64")], rng(seed));
        if (!res.ok) throw new Error(`analytic ${res.analytic} vs numeric ${res.numeric}`);
      }),
      { numRuns: 40, seed: 5 },
    );
  });

  test("value and gradient against the float64 projected form, float64 and float32", () => {
    fc.assert(
      fc.property(dimsArb, fc.integer({ min: 0, max: 1 << 30 }), ({ lead, k, m }, seed) => {
        const rows = lead.reduce((x, y) => x * y, 1);
        for (const dtype of ["float64", "float32"] as const) {
          const a = randT([...lead, k], seed, dtype), b = randT([...lead, k], seed + 1, dtype), w = randT([m, k], seed + 2, dtype);
          const want = reference(a.peek(), b.peek(), w.peek(), rows, k, m);
          const [v, [ga, gb]] = valueAndGrad((x: Tensor, y: Tensor) => O.quadFormMse(x, y, O.gramMatrix(w), m))(a, b);
          const tol = dtype === "float64" ? 1e-12 : 1e-5;
          expect(Math.abs(v.item() - want.loss) / Math.max(want.loss, 1e-30)).toBeLessThan(tol);
          expect(maxRel(ga!.peek(), want.da)).toBeLessThan(tol);
          expect(maxRel(gb!.peek(), want.da.map((x) => -x))).toBeLessThan(tol);
        }
      }),
      { numRuns: 30, seed: 6 },
    );
  });

  test("float32 at a real-ish shape (bfloat16 W 896 x 896, 1,024 rows): the projected form's value and gradient", () => {
    const rows = 1024, D = 896;
    const w = O.astype(randT([D, D], 1, "float32", 0.05), "bfloat16");
    const a = randT([4, rows / 4, D], 2, "float32"), b = randT([4, rows / 4, D], 3, "float32");
    const projected = (x: Tensor, y: Tensor) => O.mse(O.matmul(x, w, { transB: true }), O.matmul(y, w, { transB: true }));
    const g = O.gramMatrix(w);
    expect(g.dtype).toBe("float32");
    const [v, [ga]] = valueAndGrad((x: Tensor) => O.quadFormMse(x, b, g, D))(a);
    const [v0, [ga0]] = valueAndGrad((x: Tensor) => projected(x, b))(a);
    expect(Math.abs(v.item() - v0.item()) / v0.item()).toBeLessThan(2e-5);
    expect(maxRel(ga!.peek(), ga0!.peek())).toBeLessThan(2e-4);
  });

  test("the backward adds into a cotangent pending for a (the tape's into) as a separate add would", () => {
    const a = randT([5, 7], 1, "float32"), b = randT([5, 7], 2, "float32"), w = randT([3, 7], 3, "float32"), u = randT([5, 7], 4, "float32");
    const g = O.gramMatrix(w);
    // a's other use runs first in the backward (its node is recorded later), so its cotangent is pending.
    const fused = valueAndGrad((x: Tensor) => O.add(O.quadFormMse(x, b, g, 3), O.sum(O.mul(O.tanh(x), u))))(a);
    const separate = valueAndGrad((x: Tensor) => O.add(O.quadFormMse(O.mul(x, 1), b, g, 3), O.sum(O.mul(O.tanh(x), u))))(a);
    expect(Array.from(fused[1][0]!.peek())).toEqual(Array.from(separate[1][0]!.peek()));
  });

  test("gramMatrix is Wᵀ W, exactly symmetric, float32 from a bfloat16 weight", () => {
    const w = randT([6, 4], 7, "float64");
    const g = O.gramMatrix(w).peek(), wv = w.peek();
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 4; j++) {
        let s = 0;
        for (let r = 0; r < 6; r++) s += wv[r * 4 + i]! * wv[r * 4 + j]!;
        expect(Math.abs(g[i * 4 + j]! - s)).toBeLessThan(1e-14);
        expect(g[i * 4 + j]).toBe(g[j * 4 + i]);
      }
  });

  test("bad arguments name what is wrong", () => {
    const a = randT([2, 3], 1, "float32"), g = O.gramMatrix(randT([4, 3], 2, "float32"));
    expect(() => O.quadFormMse(a, randT([3, 2], 1, "float32"), g, 4)).toThrow(/a \[2, 3\] and b \[3, 2\]/);
    expect(() => O.quadFormMse(a, a, randT([2, 2], 1, "float32"), 4)).toThrow(/gram \[2, 2\] must be \[k, k\] = \[3, 3\]/);
    expect(() => O.quadFormMse(a, a, randT([3, 3], 5, "float32"), 4)).toThrow(/not symmetric/);
    expect(() => O.quadFormMse(a, a, g, 0)).toThrow(/outFeatures/);
    const trained = randT([3, 3], 1, "float32");
    trained.requiresGrad = true;
    expect(() => O.quadFormMse(a, a, O.gramMatrix(randT([3, 3], 3, "float32")), 0)).toThrow(/outFeatures/);
    expect(() => valueAndGrad((t: Tensor) => O.quadFormMse(a, a, t, 3))(trained)).toThrow(/constant/);
  });
});

describe(`quadFormMse on the gpu backend (GPU.js ${process.env.LRC_GPU_TEST_MODE ?? "webasm"}): the composite`, () => {
  afterAll(() => setBackend("cpu"));
  test("the same values and gradients as the cpu kernel", async () => {
    await initBackend("gpu", { mode: (process.env.LRC_GPU_TEST_MODE ?? "webasm") as GpuMode });
    const run = () => {
      const a = randT([3, 5, 11], 1, "float32"), b = randT([3, 5, 11], 2, "float32"), w = randT([13, 11], 3, "float32");
      const [v, [ga, gb]] = valueAndGrad((x: Tensor, y: Tensor) => O.quadFormMse(x, y, O.gramMatrix(w), 13))(a, b);
      return Promise.all([v, ga!, gb!].map(async (t) => Float64Array.from(await t.dataAsync())));
    };
    const gpu = await run();
    for (const op of ["gemm", "binary", "reduce"]) expect(backendReport().ops.find((o) => o.op === op)?.device ?? 0, op).toBeGreaterThan(0);
    expect(backendReport().ops.find((o) => o.op === "quadFormMse")).toBeUndefined();
    setBackend("cpu");
    const cpu = await run();
    for (let i = 0; i < 3; i++) expect(maxRel(gpu[i]!, cpu[i]!)).toBeLessThan(1e-4);
  }, 60_000);
});
