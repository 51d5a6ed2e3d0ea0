/**
 * gemm's matrix-vector shapes (m = 1 or n = 1, a decode step's LM head): they never use the worker pool, match the
 * reference for every transpose, and are bit-identical to the same row / column of a full gemm, run to run and with
 * 1 and 2 threads.
 */
import { afterAll, describe, expect, it } from "vitest";
import { acquire } from "./buffer-pool.js";
import { gemm, type GemmParams } from "./gemm.js";
import type { Float } from "./gemm-runtime.js";
import { maxAbsDiff, refGemm } from "../../testing-internal/reference.js";
import { lastParallelRun, setParallelThreshold, setThreadCount, shutdownPool } from "./worker-pool.js";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function filled(f32: boolean, len: number, r: () => number): Float {
  const arr = f32 ? acquire("float32", len) : acquire("float64", len);
  for (let i = 0; i < len; i++) arr[i] = r();
  return arr;
}

function job(m: number, n: number, k: number, transA: boolean, transB: boolean, f32: boolean, seed: number): GemmParams {
  const r = rng(seed);
  return {
    a: filled(f32, m * k, r), b: filled(f32, k * n, r), c: filled(f32, m * n, r),
    batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, strideC: 0,
  };
}

afterAll(() => {
  setThreadCount(1);
  setParallelThreshold(1 << 23);
  shutdownPool();
});

describe("gemm: matrix-vector shapes", () => {
  it("match the reference, stay on the calling thread, and equal the full product's row / column bit for bit", () => {
    setThreadCount(2);
    setParallelThreshold(0);
    let seed = 1;
    for (const f32 of [true, false])
      for (const k of [1, 5, 257, 600])
        for (const transA of [false, true])
          for (const transB of [false, true]) {
            // full product [m, n], then its row 2 as a 1 x n product and its column 3 as an m x 1 product
            const m = 9, n = 13;
            const full = job(m, n, k, transA, transB, f32, seed++);
            gemm(full);
            expect(maxAbsDiff(full.c, refGemm({ ...full, c: new Float64Array(m * n) }))).toBeLessThanOrEqual(
              f32 ? 2e-6 * (k + 4) : 1e-12 * (k + 4),
            );
            const a = full.a, b = full.b;
            const vec = (len: number, at: (p: number) => number): Float => {
              const v = f32 ? new Float32Array(len) : new Float64Array(len);
              for (let p = 0; p < len; p++) v[p] = at(p);
              return v;
            };
            // op(A) row 2 as a [1, k] (or stored [k, 1]) operand
            const row = vec(k, (p) => a[transA ? p * m + 2 : 2 * k + p]!);
            const rowOut = vec(n, () => 0);
            const before = lastParallelRun();
            gemm({ a: row, b, c: rowOut, batch: 1, m: 1, n, k, transA, transB, strideA: 0, strideB: 0, strideC: 0 });
            // op(B) column 3 as a [k, 1] (or stored [1, k]) operand
            const col = vec(k, (p) => b[transB ? 3 * k + p : p * n + 3]!);
            const colOut = vec(m, () => 0);
            gemm({ a, b: col, c: colOut, batch: 1, m, n: 1, k, transA, transB, strideA: 0, strideB: 0, strideC: 0 });
            expect(lastParallelRun()).toBe(before);
            expect(Array.from(rowOut)).toEqual(Array.from(full.c.subarray(2 * n, 3 * n)));
            expect(Array.from(colOut)).toEqual(Array.from({ length: m }, (_, i) => full.c[i * n + 3]!));
          }
  });

  it("do not go to the pool even above the parallel threshold", () => {
    setThreadCount(2);
    setParallelThreshold(0);
    gemm(job(256, 256, 64, false, true, true, 5));
    const big = lastParallelRun();
    expect(big?.items).toBeGreaterThan(1);
    gemm(job(1, 4096, 256, false, true, true, 6));
    gemm(job(4096, 1, 256, false, false, true, 7));
    expect(lastParallelRun()).toBe(big);
  });
});
