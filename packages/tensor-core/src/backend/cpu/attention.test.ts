/** Causal GQA attention: forward vs reference, backward vs finite differences, thread-count independence. */
import { afterAll, describe, expect, it } from "vitest";
import { attentionBackward, attentionForward, attentionUsesWasm } from "./attention.js";
import { hasSimd } from "./wasm-features.js";
import { finiteDiff, maxAbsDiff, refAttention } from "../../testing-internal/reference.js";
import { lastParallelRun, setParallelThreshold, setThreadCount, shutdownPool } from "./worker-pool.js";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function rand64(n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => r() * 2);
}

interface Dims { B: number; H: number; Hkv: number; T: number; S: number; dh: number; offset: number }

function inputs(d: Dims, seed: number): { q: Float64Array; k: Float64Array; v: Float64Array } {
  return {
    q: rand64(d.B * d.H * d.T * d.dh, seed),
    k: rand64(d.B * d.Hkv * d.S * d.dh, seed + 1),
    v: rand64(d.B * d.Hkv * d.S * d.dh, seed + 2),
  };
}

describe("attention", () => {
  afterAll(() => {
    setThreadCount(1);
    shutdownPool();
  });

  it("forward matches the reference for GQA ratios 1/2/4, offsets, odd sizes, both dtypes", () => {
    setThreadCount(1);
    for (const Hkv of [4, 2, 1]) {
      for (const [T, offset, dh] of [[1, 0, 3], [7, 0, 5], [5, 4, 8], [70, 3, 17]] as const) {
        const d = { B: 2, H: 4, Hkv, T, S: T + offset, dh, offset };
        const { q, k, v } = inputs(d, T * 10 + Hkv);
        const scale = 1 / Math.sqrt(dh);
        const want = refAttention({ ...d, q, k, v, scale });
        for (const F of [Float64Array, Float32Array]) {
          const out = new F(q.length), lse = new F(d.B * d.H * T);
          attentionForward({ ...d, q: F.from(q), k: F.from(k), v: F.from(v), out, lse, scale });
          const tol = F === Float64Array ? 1e-12 : 2e-5;
          expect(maxAbsDiff(out, want.out)).toBeLessThan(tol);
          expect(maxAbsDiff(lse, want.lse)).toBeLessThan(tol);
        }
      }
    }
  });

  it("backward matches finite differences for dq, dk, dv (GQA, offset)", () => {
    setThreadCount(1);
    for (const [Hkv, T, offset] of [[2, 4, 0], [1, 3, 2], [4, 5, 1]] as const) {
      const d = { B: 2, H: 4, Hkv, T, S: T + offset, dh: 3, offset };
      const { q, k, v } = inputs(d, 100 + Hkv);
      const scale = 0.7;
      const dout = rand64(q.length, 200);
      const out = new Float64Array(q.length), lse = new Float64Array(d.B * d.H * T);
      attentionForward({ ...d, q, k, v, out, lse, scale });
      const dq = new Float64Array(q.length), dk = new Float64Array(k.length).fill(5), dv = new Float64Array(v.length);
      attentionBackward({ ...d, q, k, v, out, lse, scale, dout, dq, dk, dv });
      const f = (qq: Float64Array, kk: Float64Array, vv: Float64Array): Float64Array =>
        refAttention({ ...d, q: qq, k: kk, v: vv, scale }).out;
      expect(maxAbsDiff(dq, finiteDiff((z) => f(z, k, v), q, dout))).toBeLessThan(1e-7);
      expect(maxAbsDiff(dk, finiteDiff((z) => f(q, z, v), k, dout))).toBeLessThan(1e-7);
      expect(maxAbsDiff(dv, finiteDiff((z) => f(q, k, z), v, dout))).toBeLessThan(1e-7);
    }
  });

  it("float32 (wasm kernels: key blocks, query tiles, padding) matches the float64 path, forward and backward", () => {
    setThreadCount(1);
    expect(attentionUsesWasm()).toBe(hasSimd());
    const cases: [number, number, number, number][] = [
      // [Hkv, T, offset, dh]: decode step over several key blocks, odd dh, two query tiles x two key blocks
      [2, 1, 300, 5], [4, 70, 3, 17], [1, 150, 140, 64], [2, 33, 0, 8], [1, 3, 0, 1],
    ];
    for (const [Hkv, T, offset, dh] of cases) {
      const d = { B: 2, H: 4, Hkv, T, S: T + offset, dh, offset };
      const { q, k, v } = inputs(d, 7 * T + dh);
      const dout = rand64(q.length, 11 * T);
      const scale = 1 / Math.sqrt(dh);
      const run = <F extends Float32Array | Float64Array>(A: { from(x: ArrayLike<number>): F; new (n: number): F }): F[] => {
        const out = new A(q.length), lse = new A(d.B * d.H * T);
        // NaN-filled: the backward overwrites all three (cpu-kernels.ts hands it uninitialised pool buffers)
        const dq = new A(q.length), dk = new A(k.length), dv = new A(v.length);
        for (const g of [dq, dk, dv]) g.fill(NaN);
        const args = { ...d, q: A.from(q), k: A.from(k), v: A.from(v), scale };
        attentionForward({ ...args, out, lse });
        attentionBackward({ ...args, out, lse, dout: A.from(dout), dq, dk, dv });
        return [out, lse, dq, dk, dv];
      };
      const want = run(Float64Array);
      const got = run(Float32Array);
      const names = ["out", "lse", "dq", "dk", "dv"];
      for (let i = 0; i < want.length; i++) {
        const mag = Math.max(1, ...Array.from(want[i]!, Math.abs));
        expect(maxAbsDiff(got[i]!, want[i]!) / mag, `${names[i]} Hkv=${Hkv} T=${T} offset=${offset} dh=${dh}`).toBeLessThan(3e-5);
      }
    }
  });

  it("gives bit-identical results with 1, 2 and 4 threads", () => {
    const d = { B: 2, H: 4, Hkv: 2, T: 66, S: 66, dh: 16, offset: 0 };
    const { q, k, v } = inputs(d, 300);
    const dout = Float32Array.from(rand64(q.length, 301));
    const run = (): Float32Array[] => {
      const out = new Float32Array(q.length), lse = new Float32Array(d.B * d.H * d.T);
      const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
      const args = { ...d, q: Float32Array.from(q), k: Float32Array.from(k), v: Float32Array.from(v), scale: 0.25 };
      attentionForward({ ...args, out, lse });
      attentionBackward({ ...args, out, lse, dout, dq, dk, dv });
      return [out, lse, dq, dk, dv];
    };
    setThreadCount(1);
    const serial = run();
    for (const threads of [2, 4]) {
      setThreadCount(threads);
      setParallelThreshold(0);
      let helped = false;
      // Up to 40 tries: on a loaded machine the caller may finish every item before a worker wakes.
      for (let rep = 0; rep < 40 && !helped; rep++) {
        const parallel = run();
        const info = lastParallelRun();
        expect(info?.kind).toBe("attnBwd");
        helped = info !== null && info.localItems < info.items;
        for (let i = 0; i < serial.length; i++) expect(Array.from(parallel[i]!), `${threads} threads`).toEqual(Array.from(serial[i]!));
      }
      // A worker really took items (at 4 threads on a loaded 2-core machine the caller may finish first: the
      // run's split must still have offered items to 3 workers).
      if (threads === 2) expect(helped).toBe(true);
      else expect(lastParallelRun()?.helpers).toBe(threads - 1);
    }
    setThreadCount(1);
  });

  it("rejects bad head counts and offsets", () => {
    const a = new Float32Array(64);
    const base = { q: a, k: a, v: a, out: a, lse: a, B: 1, H: 3, Hkv: 2, T: 2, S: 2, dh: 2, scale: 1, offset: 0 };
    expect(() => attentionForward(base)).toThrow(/multiple of Hkv/);
    expect(() => attentionForward({ ...base, H: 2, offset: 1 })).toThrow(/exceeds S/);
  });
});
