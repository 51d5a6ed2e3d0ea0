// lmHeadLoss (the chunked LM head + CE + temperature KL) against the unfused ops it replaces (matmul, then
// crossEntropy and klDivergence on the full logits): values and gradients in float32 and float64 for chunks of
// one row, several rows and all rows, with ignored targets; gradients against finite differences (fast-check,
// float64); bad input.
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { valueAndGrad } from "../autodiff/grad.js";
import { backendReport, initBackend, setBackend, type GpuMode } from "../backend/backend.js";
import { noGrad } from "../autodiff/tape.js";
import { rng } from "../random.js";
import { checkGrad } from "../testing.js";
import { Tensor, tensor } from "../tensor.js";
import * as O from "./index.js";
import { uniformTensor } from "../testing-internal/tensors.js";

const randT = (shape: readonly number[], seed: number, dtype: "float32" | "float64", scale = 1): Tensor => uniformTensor(shape, seed, dtype, scale);

function randTargets(shape: readonly number[], V: number, seed: number, ignoreEvery = 3): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const t = new Int32Array(n);
  for (let i = 0; i < n; i++) t[i] = i % ignoreEvery === 1 ? -100 : Math.floor(r.uniform() * V);
  return tensor(t, shape, { dtype: "int32" });
}

interface Case {
  B: number; T: number; d: number; D: number; V: number; tau: number; ceWeight: number; klWeight: number;
  ce: boolean; kd: boolean; ceReduction: "mean" | "sum";
}

/** The unfused form: full logits, then the loss ops. */
function unfused(c: Case, h: Tensor, w: Tensor, tg: Tensor, hT: Tensor, wT: Tensor): { total: Tensor; ce: Tensor | null; kl: Tensor | null } {
  const logits = (x: Tensor, m: Tensor) => O.reshape(O.matmul(O.reshape(x, [c.B * c.T, m.shape[1]!]), m, { transB: true }), [c.B, c.T, c.V]);
  const zS = logits(h, w);
  const ce = c.ce ? O.crossEntropy(zS, tg, { reduction: c.ceReduction }) : null;
  const kl = c.kd ? O.klDivergence(noGrad(() => logits(hT, wT)), zS, { temperature: c.tau, reduction: "batchmean" }) : null;
  const parts = [ce === null ? null : O.mul(ce, c.ceWeight), kl === null ? null : O.mul(kl, c.klWeight)].filter((t) => t !== null);
  return { total: parts.reduce((a, b) => O.add(a, b)), ce, kl };
}

function fused(c: Case, chunkElements: number, h: Tensor, w: Tensor, tg: Tensor, hT: Tensor, wT: Tensor) {
  return O.lmHeadLoss(h, w, {
    ...(c.ce ? { targets: tg, ceWeight: c.ceWeight, ceReduction: c.ceReduction } : {}),
    ...(c.kd ? { teacher: { hidden: hT, weight: wT, temperature: c.tau }, klWeight: c.klWeight } : {}),
    chunkElements,
  });
}

function inputs(c: Case, seed: number, dtype: "float32" | "float64") {
  return {
    h: randT([c.B, c.T, c.d], seed, dtype, 2),
    w: randT([c.V, c.d], seed + 1, dtype, 2),
    tg: randTargets([c.B, c.T], c.V, seed + 2),
    hT: randT([c.B, c.T, c.D], seed + 3, dtype, 2),
    wT: randT([c.V, c.D], seed + 4, dtype, 2),
  };
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0, m = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m / Math.max(scale, 1e-30);
}

const base: Case = { B: 2, T: 5, d: 6, D: 9, V: 37, tau: 4, ceWeight: 1, klWeight: 1, ce: true, kd: true, ceReduction: "mean" };
const cases: Array<[string, Case]> = [
  ["CE + KL", base],
  ["CE only", { ...base, kd: false }],
  ["KL only, τ 40", { ...base, ce: false, tau: 40 }],
  ["weighted, CE summed", { ...base, ceWeight: 0.3, klWeight: 2.5, ceReduction: "sum" }],
];

describe("lmHeadLoss against the unfused LM head + crossEntropy + klDivergence", () => {
  for (const dtype of ["float32", "float64"] as const)
    for (const [name, c] of cases)
      for (const rows of [1, 3, 10]) // rows per chunk: one, several (a ragged last chunk), all
        test(`${name}, ${dtype}, ${rows} row(s) per chunk`, () => {
          const x = inputs(c, 7, dtype);
          const [want, [wh, ww]] = valueAndGrad((h: Tensor, w: Tensor) => unfused(c, h, w, x.tg, x.hT, x.wT).total)(x.h, x.w);
          const parts = noGrad(() => unfused(c, x.h, x.w, x.tg, x.hT, x.wT));
          let got: ReturnType<typeof fused> | null = null;
          const [total, [gh, gw]] = valueAndGrad((h: Tensor, w: Tensor) => (got = fused(c, rows * c.V, h, w, x.tg, x.hT, x.wT)).total)(x.h, x.w);
          const tol = dtype === "float32" ? 2e-6 : 1e-13;
          expect(maxRel(total.buf, want.buf)).toBeLessThan(tol);
          expect(maxRel(gh!.buf, wh!.buf)).toBeLessThan(dtype === "float32" ? 1e-5 : 1e-12);
          expect(maxRel(gw!.buf, ww!.buf)).toBeLessThan(dtype === "float32" ? 1e-5 : 1e-12);
          const g = got!;
          expect(g.ce === null).toBe(!c.ce);
          expect(g.kl === null).toBe(!c.kd);
          if (g.ce !== null) expect(maxRel(g.ce.buf, parts.ce!.buf)).toBeLessThan(tol);
          if (g.kl !== null) expect(maxRel(g.kl.buf, parts.kl!.buf)).toBeLessThan(tol);
        });

  test("under noGrad: the same values, no gradient work, no tape", () => {
    const x = inputs(base, 3, "float32");
    const r = noGrad(() => fused(base, 2 * base.V, x.h, x.w, x.tg, x.hT, x.wT));
    const want = noGrad(() => unfused(base, x.h, x.w, x.tg, x.hT, x.wT));
    expect(r.total.node).toBeNull();
    expect(maxRel(r.total.buf, want.total.buf)).toBeLessThan(2e-6);
  });

  test("a weight used twice (tied embedding): the tape adds the LM head's gradient to the other use's", () => {
    const c = { ...base, kd: false };
    const x = inputs(c, 5, "float64");
    const f = (fn: (h: Tensor, w: Tensor) => Tensor) => (h: Tensor, w: Tensor) => O.add(fn(h, w), O.sum(O.square(w)));
    const [, [, want]] = valueAndGrad(f((h, w) => unfused(c, h, w, x.tg, x.hT, x.wT).total))(x.h, x.w);
    const [, [, got]] = valueAndGrad(f((h, w) => fused(c, c.V, h, w, x.tg, x.hT, x.wT).total))(x.h, x.w);
    expect(maxRel(got!.buf, want!.buf)).toBeLessThan(1e-12);
  });
});

describe("one frozen weight on both sides (LRC's factorized head: one gemm over the stacked rows)", () => {
  // The student's rows are u = h P_lmᵀ, of the teacher's width: weight and teacher.weight are the same [V, D] tensor.
  const c: Case = { ...base, d: 9, D: 9 };
  for (const dtype of ["float32", "float64"] as const)
    for (const rows of [1, 3, 10])
      test(`${dtype}, ${rows} row(s) per chunk: the unfused values and dh; bit-identical to two separate weights`, () => {
        const x = inputs(c, 11, dtype);
        const w = x.wT, copy = O.add(x.wT, 0);
        const [want, [wh]] = valueAndGrad((h: Tensor) => unfused(c, h, w, x.tg, x.hT, w).total)(x.h);
        const [got, [gh]] = valueAndGrad((h: Tensor) => fused(c, rows * c.V, h, w, x.tg, x.hT, w).total)(x.h);
        const [two, [th]] = valueAndGrad((h: Tensor) => fused(c, rows * c.V, h, w, x.tg, x.hT, copy).total)(x.h);
        expect(maxRel(got.buf, want.buf)).toBeLessThan(dtype === "float32" ? 2e-6 : 1e-13);
        expect(maxRel(gh!.buf, wh!.buf)).toBeLessThan(dtype === "float32" ? 1e-5 : 1e-12);
        expect(Array.from(got.buf)).toEqual(Array.from(two.buf));
        expect(Array.from(gh!.buf)).toEqual(Array.from(th!.buf));
      });

  test("a vocabulary of many k blocks (dh = dz W, one gemm with k = V = 16,421): the unfused values and gradient", () => {
    const cv: Case = { ...base, B: 2, T: 3, d: 5, D: 5, V: 2 * 8192 + 37 };
    for (const dtype of ["float32", "float64"] as const) {
      const x = inputs(cv, 13, dtype);
      const w = x.wT;
      const [want, [wh]] = valueAndGrad((h: Tensor) => unfused(cv, h, w, x.tg, x.hT, w).total)(x.h);
      const [got, [gh]] = valueAndGrad((h: Tensor) => fused(cv, 4 * cv.V, h, w, x.tg, x.hT, w).total)(x.h);
      expect(maxRel(got.buf, want.buf)).toBeLessThan(dtype === "float32" ? 2e-6 : 1e-13);
      expect(maxRel(gh!.buf, wh!.buf)).toBeLessThan(dtype === "float32" ? 1e-5 : 1e-12);
    }
  });

  test("gradients against finite differences (float64, fast-check)", () => {
    fc.assert(
      fc.property(
        fc.record({
          B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 4 }), D: fc.integer({ min: 1, max: 6 }),
          V: fc.integer({ min: 2, max: 12 }), tau: fc.double({ min: 0.5, max: 8, noNaN: true }),
          ceWeight: fc.double({ min: 0.1, max: 2, noNaN: true }), klWeight: fc.double({ min: 0.1, max: 2, noNaN: true }),
          ce: fc.boolean(), ceReduction: fc.constantFrom("mean" as const, "sum" as const),
        }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 1 << 30 }),
        (r, rows, seed) => {
          const cc: Case = { ...r, d: r.D, kd: true };
          const x = inputs(cc, seed, "float64");
          const res = checkGrad((h) => fused(cc, rows * cc.V, h, x.wT, x.tg, x.hT, x.wT).total, [x.h], rng(seed));
          if (!res.ok) throw new Error(`analytic ${res.analytic} vs numeric ${res.numeric}`);
        },
      ),
      { numRuns: 30, seed: 17 },
    );
  });
});

describe(`lmHeadLoss on the gpu backend (GPU.js ${process.env.LRC_GPU_TEST_MODE ?? "webasm"}): the chunked composite`, () => {
  afterAll(() => setBackend("cpu"));
  test("the same values and gradients as the cpu kernel", async () => {
    await initBackend("gpu", { mode: (process.env.LRC_GPU_TEST_MODE ?? "webasm") as GpuMode });
    const c = { ...base, ceWeight: 0.7 };
    const run = () => {
      const x = inputs(c, 9, "float32");
      const [v, [gh, gw]] = valueAndGrad((h: Tensor, w: Tensor) => fused(c, 3 * c.V, h, w, x.tg, x.hT, x.wT).total)(x.h, x.w);
      return [v, gh!, gw!].map((t) => Float64Array.from(t.buf));
    };
    const gpu = run();
    for (const op of ["gemm", "crossEntropy", "klDiv"]) expect(backendReport().ops.find((o) => o.op === op)?.device ?? 0, op).toBeGreaterThan(0);
    setBackend("cpu");
    const cpu = run();
    for (let i = 0; i < 3; i++) expect(maxRel(gpu[i]!, cpu[i]!)).toBeLessThan(1e-4);
  }, 60_000);
});

describe("lmHeadLoss gradients against finite differences (float64)", () => {
  test("random shapes, weights, temperatures and chunk sizes", () => {
    fc.assert(
      fc.property(
        fc.record({
          B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 4 }), d: fc.integer({ min: 1, max: 5 }),
          D: fc.integer({ min: 1, max: 6 }), V: fc.integer({ min: 2, max: 12 }), tau: fc.double({ min: 0.5, max: 8, noNaN: true }),
          ceWeight: fc.double({ min: 0.1, max: 2, noNaN: true }), klWeight: fc.double({ min: 0.1, max: 2, noNaN: true }),
          ce: fc.boolean(), kd: fc.boolean(), ceReduction: fc.constantFrom("mean" as const, "sum" as const),
        }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 1 << 30 }),
        (c, rows, seed) => {
          if (!c.ce && !c.kd) return;
          const x = inputs(c, seed, "float64");
          const res = checkGrad((h, w) => fused(c, rows * c.V, h, w, x.tg, x.hT, x.wT).total, [x.h, x.w], rng(seed));
          if (!res.ok) throw new Error(`analytic ${res.analytic} vs numeric ${res.numeric}`);
        },
      ),
      { numRuns: 40, seed: 16 },
    );
  });
});

describe("lmHeadChunkRows: the rows cut into the fewest chunks of at most chunkElements / V rows, equal but the last", () => {
  test.each([
    [1024, 151_936, 1 << 25, 205], // at most 220: five chunks of 205 (the last 204), not 4 x 220 + 144
    [1024, 151_936, 1 << 26, 342], // at most 441: three chunks
    [200, 151_936, 1 << 25, 200], // one chunk of all the rows
    [10, 37, 3 * 37, 3], // at most 3: four chunks, 3 + 3 + 3 + 1
    [5, 37, 10, 1], // a chunk smaller than a row: one row
    [0, 37, 1 << 25, 1],
  ])("%i rows, V %i, %i elements: %i rows", (rows, V, elements, want) => {
    expect(O.lmHeadChunkRows(rows, V, elements)).toBe(want);
    const most = Math.max(1, Math.floor(elements / V));
    expect(want).toBeLessThanOrEqual(Math.max(most, 1));
    expect(Math.ceil(rows / want)).toBe(Math.ceil(rows / most)); // no more chunks than needed
  });
});

describe("lmHeadLoss bad input", () => {
  const x = inputs(base, 1, "float32");
  test.each([
    ["neither CE nor KL", () => O.lmHeadLoss(x.h, x.w, {}), /neither targets/],
    ["weight width", () => O.lmHeadLoss(x.h, x.wT, { targets: x.tg }), /weight \[37, 9\] must be \[V, d\]/],
    ["targets shape", () => O.lmHeadLoss(x.h, x.w, { targets: randTargets([2, 4], 37, 1) }), /targets \[2, 4\] do not match/],
    ["targets dtype", () => O.lmHeadLoss(x.h, x.w, { targets: x.h }), /targets must be int32/],
    ["target out of range", () => O.lmHeadLoss(x.h, x.w, { targets: tensor(new Int32Array(10).fill(37), [2, 5], { dtype: "int32" }) }), /out of range|outside/],
    ["teacher shape", () => O.lmHeadLoss(x.h, x.w, { teacher: { hidden: x.h, weight: x.wT } }), /teacher hidden/],
    ["temperature", () => O.lmHeadLoss(x.h, x.w, { teacher: { hidden: x.hT, weight: x.wT, temperature: 0 } }), /temperature must be > 0/],
    ["chunk size", () => O.lmHeadLoss(x.h, x.w, { targets: x.tg, chunkElements: 0.5 }), /chunkElements must be a positive integer, got 0.5/],
    ["dtype mix", () => O.lmHeadLoss(x.h, randT([37, 6], 1, "float64"), { targets: x.tg }), /dtype mismatch/],
  ])("%s", (_, fn, msg) => expect(fn).toThrow(msg));

  test("a teacher that requires grad", () => {
    const wT = randT([37, 9], 2, "float32");
    wT.requiresGrad = true;
    expect(() => valueAndGrad((h: Tensor) => O.lmHeadLoss(h, x.w, { teacher: { hidden: x.hT, weight: wT } }).total)(x.h)).toThrow(/teacher side is constant/);
  });
});
