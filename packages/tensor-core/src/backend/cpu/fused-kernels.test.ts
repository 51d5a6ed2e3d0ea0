/**
 * Gradient clipping's kernels (sumSquares, scaleInPlace), the MSE's (sqDiffSum, diffScale) and quadFormMse's (dotSum,
 * scaleInto): the float32 wasm paths against float64 references, and on 1 and 2 threads (the worker pool) bit for
 * bit.
 */
import { describe, expect, it } from "vitest";
import { clipGradNorm } from "../../optim/optim.js";
import { tensor } from "../../tensor.js";
import { acquireShared, release } from "./buffer-pool.js";
import { diffScale, dotSum, scaleInPlace, scaleInto, sqDiffSum, sumSquares } from "./fused.js";
import { SUM_CHUNK } from "./rows-runtime.js";
import { getParallelThreshold, getThreadCount, lastParallelRun, setParallelThreshold, setThreadCount, shutdownPool } from "./worker-pool.js";
import { hasSimd } from "./wasm-features.js";
import { setVectorWasmDisabled, vectorKernels } from "./wasm-vector.js";

function data(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 4;
  });
}

const SIZES = [0, 1, 3, 4, 5, 16383, 16384, 16385, 50001];

describe("gradient clipping kernels", () => {
  it("sumSquares matches a float64 sum over odd sizes and chunk boundaries", () => {
    expect(vectorKernels() !== null).toBe(hasSimd());
    for (const n of SIZES) {
      const x = data(n + 7, n + 1); // extra tail elements that must not be counted
      let want = 0;
      for (let i = 0; i < n; i++) want += x[i]! * x[i]!;
      expect(sumSquares(x, n), `n ${n}`).toBeCloseTo(want, Math.max(0, 9 - Math.ceil(Math.log10(want + 1))));
      setVectorWasmDisabled(true);
      try {
        expect(sumSquares(x, n)).toBe(want);
      } finally {
        setVectorWasmDisabled(false);
      }
    }
  });

  it("scaleInPlace is a float32 multiply by fround(c) and leaves elements past n alone", () => {
    for (const n of SIZES) {
      const x = data(n + 7, n + 3);
      const orig = x.slice();
      const c = 0.3712345678;
      scaleInPlace(x, n, c);
      for (let i = 0; i < n; i++) expect(x[i], `n ${n} i ${i}`).toBe(Math.fround(orig[i]! * Math.fround(c)));
      for (let i = n; i < n + 7; i++) expect(x[i]).toBe(orig[i]);
    }
  });

  it("clipGradNorm over several tensors: the norm of all of them, each scaled to the max norm", () => {
    const a = data(20000, 1), b = data(3, 2);
    const ga = tensor(Array.from(a), [20000]), gb = tensor(Array.from(b), [3]);
    let sq = 0;
    for (const v of [...a, ...b]) sq += v * v;
    expect(clipGradNorm([ga, null, gb], 1)).toBeCloseTo(Math.sqrt(sq), 6);
    let after = 0;
    for (const v of [...ga.buf, ...gb.buf]) after += v * v;
    expect(Math.sqrt(after)).toBeCloseTo(1, 5);
  });

  it("sumSquares and scaleInPlace: the same bits on 1 and 2 threads", () => {
    const threshold = getParallelThreshold(), before = getThreadCount();
    try {
      setParallelThreshold(0);
      for (const n of SIZES) {
        const x = acquireShared("float32", n + 7);
        x.set(data(n + 7, n + 9));
        const run = (threads: number): [number, Float32Array] => {
          setThreadCount(threads);
          const y = acquireShared("float32", n + 7);
          y.set(x);
          scaleInPlace(y, n, 0.731);
          const out: [number, Float32Array] = [sumSquares(x, n), y.slice()];
          release(y);
          return out;
        };
        expect(run(2), `n ${n}`).toEqual(run(1));
        release(x);
      }
    } finally {
      setParallelThreshold(threshold);
      setThreadCount(before);
      shutdownPool();
    }
  });

  it("sqDiffSum and diffScale: float64 references, and the same bits on 1 and 2 threads", () => {
    const threshold = getParallelThreshold(), before = getThreadCount();
    try {
      for (const n of SIZES) {
        // shared operands (as tensors of 64 KiB or more are), so the 2-thread runs go to the pool
        const a = acquireShared("float32", n + 7), b = acquireShared("float32", n + 7);
        a.set(data(n + 7, n + 5));
        b.set(data(n + 7, n + 6));
        const run = (threads: number): [number, Float32Array, Float32Array] => {
          setThreadCount(threads);
          const da = acquireShared("float32", n + 7).fill(9), db = acquireShared("float32", n + 7).fill(9);
          const s = sqDiffSum(a, b, n);
          diffScale(a, b, 0.37, da, db, n);
          const out: [number, Float32Array, Float32Array] = [s, da.slice(), db.slice()];
          release(da);
          release(db);
          return out;
        };
        setParallelThreshold(0);
        const one = run(1), two = run(2);
        expect(two, `n ${n}`).toEqual(one);
        let want = 0;
        for (let i = 0; i < n; i++) want += (a[i]! - b[i]!) ** 2;
        expect(Math.abs(one[0] - want)).toBeLessThanOrEqual(1e-6 * want);
        for (let i = 0; i < n; i++) {
          const d = Math.fround(Math.fround(a[i]! - b[i]!) * Math.fround(0.37));
          expect(one[1][i]).toBe(d);
          expect(one[2][i]).toBe(-d);
        }
        for (let i = n; i < n + 7; i++) expect([one[1][i], one[2][i]]).toEqual([9, 9]);
        release(a);
        release(b);
      }
    } finally {
      setParallelThreshold(threshold);
      setThreadCount(before);
      shutdownPool();
    }
  });
});

/** Row counts of [rows, 897] operands (897 = 4 · 224 + 1: every row ends off a vector): one row up to past the pool's default threshold. */
const QF_ROWS = [1, 3, 37, 600];
const QF_K = 897;

/** dotSum's order on the wasm path, modelled in float64: per SUM_CHUNK part four lanes (i mod 4), then (l0 + l2) + (l1 + l3); parts in order. */
function laneOrderDot(a: Float32Array, b: Float32Array, n: number): number {
  let total = 0;
  for (let j0 = 0; j0 < n; j0 += SUM_CHUNK) {
    const lanes = [0, 0, 0, 0];
    for (let i = j0; i < Math.min(n, j0 + SUM_CHUNK); i++) lanes[(i - j0) % 4] += a[i]! * b[i]!;
    total += (lanes[0]! + lanes[2]!) + (lanes[1]! + lanes[3]!);
  }
  return total;
}

/** The first index where a and b differ (NaN equal to NaN), or -1. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

describe("quadFormMse's passes (dotSum, scaleInto)", () => {
  it("dotSum: a float64 sum of the exact products, the same bits on 1 and 2 threads, in the documented order", () => {
    const threshold = getParallelThreshold(), before = getThreadCount();
    try {
      for (const rows of QF_ROWS) {
        const n = rows * QF_K;
        const a = acquireShared("float32", n + 7), b = acquireShared("float32", n + 7);
        a.set(data(n + 7, rows + 11));
        b.set(data(n + 7, rows + 12));
        a.fill(NaN, n); // past n: never read
        let want = 0, mag = 0;
        for (let i = 0; i < n; i++) (want += a[i]! * b[i]!), (mag += Math.abs(a[i]! * b[i]!));
        const run = (threads: number): number => {
          setThreadCount(threads);
          return dotSum(a, b, n);
        };
        setParallelThreshold(0);
        const one = run(1), two = run(2);
        if (hasSimd() && n > SUM_CHUNK) expect(lastParallelRun()).toMatchObject({ kind: "rows", items: Math.ceil(n / SUM_CHUNK) });
        expect(two, `rows ${rows}`).toBe(one);
        // float64 sums of n products: error below n · 2^-53 · Σ|a b|; a lost or float32-rounded product is far above
        expect(Math.abs(one - want), `rows ${rows}`).toBeLessThanOrEqual(n * 2 ** -53 * mag);
        if (hasSimd()) expect(one).toBe(laneOrderDot(a, b, n));
        setParallelThreshold(threshold); // the default: parallel from 524,288 floats
        expect(run(2)).toBe(one);
        setVectorWasmDisabled(true);
        try {
          expect(dotSum(a, b, n)).toBe(want); // the TypeScript loop: index order
          expect(dotSum(Float64Array.from(a), Float64Array.from(b), n)).toBe(want);
        } finally {
          setVectorWasmDisabled(false);
        }
        release(a);
        release(b);
      }
    } finally {
      setParallelThreshold(threshold);
      setThreadCount(before);
      shutdownPool();
    }
  });

  it("dotSum: the lanes past n of a partial vector count nothing, whatever the module's memory held there", () => {
    const before = getThreadCount();
    setThreadCount(1);
    try {
      const poison = new Float32Array(8).fill(NaN);
      expect(Number.isNaN(dotSum(poison, poison, 8))).toBe(true); // leaves NaN in the module's operand regions
      for (const n of [1, 2, 3, 5, 6, 7]) {
        const a = data(n, n), b = data(n, n + 1);
        let want = 0, mag = 0;
        for (let i = 0; i < n; i++) (want += a[i]! * b[i]!), (mag += Math.abs(a[i]! * b[i]!));
        expect(Math.abs(dotSum(a, b, n) - want), `n ${n}`).toBeLessThanOrEqual(n * 2 ** -53 * mag);
      }
    } finally {
      setThreadCount(before);
    }
  });

  it("scaleInto: out = fround(c) x, or out + fround(c) x, each float32-rounded; the same bits on 1 and 2 threads; nothing past n", () => {
    const threshold = getParallelThreshold(), before = getThreadCount();
    const c = -0.000123456789;
    try {
      for (const rows of QF_ROWS) {
        const n = rows * QF_K;
        const x = acquireShared("float32", n + 7), o = acquireShared("float32", n + 7);
        x.set(data(n + 7, rows + 21));
        o.set(data(n + 7, rows + 22));
        for (const add of [false, true]) {
          const run = (threads: number): Float32Array => {
            setThreadCount(threads);
            const out = acquireShared("float32", n + 7);
            out.set(o);
            scaleInto(x, c, out, n, add);
            const copy = out.slice();
            release(out);
            return copy;
          };
          setParallelThreshold(0);
          const one = run(1), two = run(2);
          if (hasSimd() && n > SUM_CHUNK) expect(lastParallelRun()).toMatchObject({ kind: "rows", items: Math.ceil(n / SUM_CHUNK) });
          expect(firstDiff(two, one), `rows ${rows} add ${add}: 2 threads vs 1`).toBe(-1);
          const cc = Math.fround(c), want = o.slice();
          for (let i = 0; i < n; i++) {
            const p = Math.fround(cc * x[i]!);
            want[i] = add ? Math.fround(o[i]! + p) : p;
          }
          expect(firstDiff(one, want), `rows ${rows} add ${add}`).toBe(-1); // past n too: untouched
          setVectorWasmDisabled(true);
          try {
            expect(firstDiff(run(1), one), "the TypeScript loop gives the same bits").toBe(-1);
          } finally {
            setVectorWasmDisabled(false);
          }
          // float64: plain c x (+ out)
          const o64 = Float64Array.from(o), x64 = Float64Array.from(x);
          scaleInto(x64, c, o64, n, add);
          for (let i = 0; i < n; i += 97) expect(o64[i]).toBe(add ? o[i]! + c * x[i]! : c * x[i]!);
        }
        release(x);
        release(o);
      }
    } finally {
      setParallelThreshold(threshold);
      setThreadCount(before);
      shutdownPool();
    }
  });
});
