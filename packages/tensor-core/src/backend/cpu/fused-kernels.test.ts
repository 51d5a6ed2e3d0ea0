/**
 * Gradient clipping's kernels (sumSquares, scaleInPlace) and the MSE's (sqDiffSum, diffScale): the float32 wasm paths
 * against float64 references, and on 1 and 2 threads (the worker pool) bit for bit.
 */
import { describe, expect, it } from "vitest";
import { clipGradNorm } from "../../optim/optim.js";
import { tensor } from "../../tensor.js";
import { acquireShared, release } from "./buffer-pool.js";
import { diffScale, scaleInPlace, sqDiffSum, sumSquares } from "./fused.js";
import { getParallelThreshold, getThreadCount, setParallelThreshold, setThreadCount, shutdownPool } from "./worker-pool.js";
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
