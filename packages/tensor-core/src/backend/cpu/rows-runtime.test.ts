/**
 * The row runtime (cross-entropy rows, SwiGLU) on the worker pool: results bit-identical on 1, 2 and 4 threads, rows
 * with -Infinity / NaN handed to the TypeScript reference, ignored rows zero, and agreement with the float64
 * reference; with the wasm vector kernels off the TypeScript loops run instead.
 */
import { afterEach, describe, expect, it } from "vitest";
import { adamwUpdate } from "./adamw.js";
import { acquireShared } from "./buffer-pool.js";
import { swigluBackward, swigluForward } from "./fused.js";
import { maxAbsDiff, refCrossEntropy } from "../../testing-internal/reference.js";
import { crossEntropyBackward, crossEntropyForward, klDivBackward, klDivForward, lmHeadRows } from "./rows.js";
import { rowsRuntime } from "./rows-dispatch.js";
import { hasSimd } from "./wasm-features.js";
import { setVectorWasmDisabled } from "./wasm-vector.js";
import { getParallelThreshold, getThreadCount, lastParallelRun, setParallelThreshold, setThreadCount, shutdownPool } from "./worker-pool.js";

const threads0 = getThreadCount(), threshold0 = getParallelThreshold();
afterEach(() => {
  setParallelThreshold(threshold0);
  shutdownPool();
  setThreadCount(threads0);
  setVectorWasmDisabled(false);
});

function shared(n: number, seed: number, scale = 6): Float32Array {
  const a = acquireShared("float32", n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * scale;
  }
  return a;
}

const ROWS = 300, V = 1001; // 300 x 1001 floats: ten work items of 32 rows (rows padded to 1004 floats)

function crossEntropyCase(threads: number): { loss: number[]; lse: number[]; grad: number[] } {
  setThreadCount(threads);
  setParallelThreshold(0);
  const logits = shared(ROWS * V, 1);
  logits[5 * V + 17] = -Infinity; // a masked logit: the TypeScript reference runs that row
  logits[9 * V + 3] = NaN; // a NaN row
  const targets = Int32Array.from({ length: ROWS }, (_, r) => (r * 37) % V);
  targets[7] = -100; // ignored
  const loss = new Float32Array(ROWS), lse = new Float32Array(ROWS);
  crossEntropyForward(logits, targets, ROWS, V, -100, loss, lse);
  const g = Float32Array.from({ length: ROWS }, (_, r) => 1 / ROWS + r * 1e-5);
  const grad = acquireShared("float32", ROWS * V);
  crossEntropyBackward(logits, targets, lse, g, grad, ROWS, V, -100);
  return { loss: Array.from(loss), lse: Array.from(lse), grad: Array.from(grad) };
}

describe("row runtime on the worker pool", () => {
  it("cross-entropy forward and backward: bit-identical on 1, 2 and 4 threads, the parallel path really ran", () => {
    expect(rowsRuntime() !== null).toBe(hasSimd());
    const one = crossEntropyCase(1);
    expect(crossEntropyCase(4)).toEqual(one);
    const two = crossEntropyCase(2);
    if (hasSimd()) expect(lastParallelRun()?.kind).toBe("rows");
    expect(two.loss).toEqual(one.loss);
    expect(two.lse).toEqual(one.lse);
    expect(two.grad).toEqual(one.grad);
    // the NaN row stays NaN, the ignored row has zero loss and zero gradient, the masked logit gets gradient 0
    expect(Number.isNaN(two.loss[9])).toBe(true);
    expect(two.loss[7]).toBe(0);
    expect(two.grad.slice(7 * V, 8 * V).every((v) => v === 0)).toBe(true);
    expect(two.grad[5 * V + 17]).toBe(0);
  });

  it("cross-entropy agrees with the float64 reference (finite rows) and with the TypeScript path", () => {
    const { loss, grad } = crossEntropyCase(2);
    const logits = shared(ROWS * V, 1);
    const targets = Int32Array.from({ length: ROWS }, (_, r) => (r * 37) % V);
    const ref = refCrossEntropy(Float64Array.from(logits), targets, ROWS, V, -100);
    const finite = (r: number): boolean => r !== 5 && r !== 9 && r !== 7;
    for (let r = 0; r < ROWS; r++) if (finite(r)) expect(Math.abs(loss[r]! - ref[r]!), `row ${r}`).toBeLessThan(1e-5);
    setVectorWasmDisabled(true); // the TypeScript loops
    const plain = crossEntropyCase(2);
    let worst = 0;
    for (let i = 0; i < grad.length; i++) {
      if (Math.floor(i / V) === 9) continue; // NaN row
      worst = Math.max(worst, Math.abs(grad[i]! - plain.grad[i]!) / Math.max(Math.abs(plain.grad[i]!), 1e-12));
    }
    expect(worst).toBeLessThan(1e-5);
  });

  it("SwiGLU forward and backward: bit-identical on 1, 2 and 4 threads, and equal to the TypeScript loops within float32", () => {
    const n = 100_003;
    const run = (threads: number): number[][] => {
      setThreadCount(threads);
      setParallelThreshold(0);
      const g = shared(n, 2), u = shared(n, 3), dy = shared(n, 4);
      const out = acquireShared("float32", n), dg = acquireShared("float32", n), du = acquireShared("float32", n);
      swigluForward(g, u, out, n);
      swigluBackward(g, u, dy, dg, du, n);
      return [Array.from(out), Array.from(dg), Array.from(du)];
    };
    const one = run(1), two = run(2);
    expect(two).toEqual(one);
    expect(run(4)).toEqual(one);
    setVectorWasmDisabled(true);
    const plain = run(1);
    for (let i = 0; i < 3; i++) expect(maxAbsDiff(Float64Array.from(plain[i]!), Float64Array.from(two[i]!))).toBeLessThan(1e-4);
  });

  it("AdamW: bit-identical on 1, 2 and 4 threads, and equal to the TypeScript loop within float32", () => {
    const n = 70_001;
    const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3 };
    const run = (threads: number): number[][] => {
      setThreadCount(threads);
      setParallelThreshold(0);
      const p = shared(n, 5, 0.1), g = shared(n, 6, 0.01), m = shared(n, 7, 0.001), v = shared(n, 8, 1e-4);
      for (let i = 0; i < n; i++) v[i] = Math.abs(v[i]!);
      adamwUpdate(p, g, m, v, n, opts);
      return [Array.from(p), Array.from(m), Array.from(v)];
    };
    const one = run(1);
    shutdownPool();
    const two = run(2);
    if (hasSimd()) expect(lastParallelRun()).toMatchObject({ kind: "rows", items: 3 });
    expect(two).toEqual(one);
    expect(run(4)).toEqual(one);
    setVectorWasmDisabled(true);
    const plain = run(1);
    for (let i = 0; i < 3; i++) expect(maxAbsDiff(Float64Array.from(plain[i]!), Float64Array.from(two[i]!))).toBeLessThan(1e-6);
  });

  it("temperature KL rows and student gradient: bit-identical on 1, 2 and 4 threads, non-finite rows to the reference", () => {
    const run = (threads: number): number[][] => {
      setThreadCount(threads);
      setParallelThreshold(0);
      const t = shared(ROWS * V, 11), st = shared(ROWS * V, 12);
      st[4 * V + 2] = -Infinity; // a masked student logit: that row goes to the TypeScript reference
      const kl = new Float64Array(ROWS);
      klDivForward(t, st, ROWS, V, 2, kl);
      const g = Float32Array.from({ length: ROWS }, (_, r) => 1 + r / ROWS);
      const d = acquireShared("float32", ROWS * V);
      klDivBackward(t, st, ROWS, V, 2, g, d, null);
      return [Array.from(kl), Array.from(d)];
    };
    const one = run(1), two = run(2);
    if (hasSimd()) expect(lastParallelRun()?.kind).toBe("rows");
    expect(two).toEqual(one);
    expect(run(4)).toEqual(one);
    expect(two[0]![4]).toBe(Infinity); // KL against a zero student probability
    setVectorWasmDisabled(true);
    const plain = run(1);
    let worst = 0;
    for (let r = 0; r < ROWS; r++) if (r !== 4) worst = Math.max(worst, Math.abs(plain[0]![r]! - two[0]![r]!) / Math.max(plain[0]![r]!, 1e-6));
    expect(worst).toBeLessThan(1e-4);
    expect(maxAbsDiff(Float64Array.from(plain[1]!), Float64Array.from(two[1]!))).toBeLessThan(1e-6);
  });

  it("fused LM-head rows (CE + KL and their gradient in one pass): bit-identical on 1, 2 and 4 threads, equal to the four unfused kernels", () => {
    const tau = 3, ceScale = 0.25, klScale = 0.5;
    const targets = Int32Array.from({ length: ROWS }, (_, r) => (r % 7 === 3 ? -100 : (r * 37) % V));
    const run = (threads: number, grad: boolean): number[][] => {
      setThreadCount(threads);
      setParallelThreshold(0);
      const t = shared(ROWS * V, 21), st = shared(ROWS * V, 22);
      st[5 * V + 9] = NaN; // a non-finite row goes to the TypeScript reference
      const ce = new Float64Array(ROWS), kl = new Float64Array(ROWS);
      lmHeadRows(st, t, targets, ROWS, V, -100, tau, ceScale, klScale, grad, ce, kl);
      return [Array.from(ce), Array.from(kl), grad ? Array.from(st) : []];
    };
    const one = run(1, true), two = run(2, true);
    if (hasSimd()) expect(lastParallelRun()?.kind).toBe("rows");
    expect(two).toEqual(one);
    expect(run(4, true)).toEqual(one);
    expect(run(2, false).slice(0, 2)).toEqual(one.slice(0, 2)); // the forward alone gives the same rows
    expect(Number.isNaN(one[0]![5]!)).toBe(true);
    // The unfused kernels on the same logits (float32, the row runtime too).
    setThreadCount(1);
    const t = shared(ROWS * V, 21), st = shared(ROWS * V, 22);
    const ceRow = new Float64Array(ROWS), lse = new Float64Array(ROWS), kl = new Float64Array(ROWS);
    crossEntropyForward(st, targets, ROWS, V, -100, ceRow, lse);
    klDivForward(t, st, ROWS, V, tau, kl);
    const dCe = new Float32Array(ROWS * V), dKl = new Float32Array(ROWS * V);
    crossEntropyBackward(st, targets, lse, new Float64Array(ROWS).fill(ceScale), dCe, ROWS, V, -100);
    klDivBackward(t, st, ROWS, V, tau, new Float64Array(ROWS).fill(klScale), dKl, null);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);
    for (let r = 0; r < ROWS; r++) {
      if (r === 5) continue;
      expect(rel(one[0]![r]!, ceRow[r]!), `ce row ${r}`).toBeLessThan(1e-6);
      expect(rel(one[1]![r]!, kl[r]!), `kl row ${r}`).toBeLessThan(1e-6);
    }
    let worst = 0;
    for (let i = 0; i < ROWS * V; i++) if (Math.floor(i / V) !== 5) worst = Math.max(worst, Math.abs(one[2]![i]! - (dCe[i]! + dKl[i]!)));
    expect(worst).toBeLessThan(1e-7); // |dz| <= 0.25 + 0.5 / 3: a few float32 ulps
    // And the TypeScript reference (no wasm) within float32.
    setVectorWasmDisabled(true);
    const plain = run(1, true);
    for (let r = 0; r < ROWS; r++) if (r !== 5) expect(rel(plain[0]![r]!, one[0]![r]!) + rel(plain[1]![r]!, one[1]![r]!)).toBeLessThan(2e-6);
    expect(maxAbsDiff(Float64Array.from(plain[2]!.filter((_, i) => Math.floor(i / V) !== 5)), Float64Array.from(one[2]!.filter((_, i) => Math.floor(i / V) !== 5)))).toBeLessThan(1e-7);
  });
  it("fused LM-head rows: the KL (summed as Σ eT (t - s) / τ / Σ eT - (lseT - lseS)) as close to a float64 reference as the unfused KL kernel", () => {
    // τ 40 and a student near its teacher (the KL 1e-4 to 1e-6 of a row, far below the logits' size): both sums
    // cancel, so both are limited by the float32 logits / τ; the fused sum must not be worse than the klrow one.
    const Vb = 4099, R = 6, tau = 40;
    for (const eps of [0.1, 0.01]) {
      const t = shared(R * Vb, 31, 40), s = shared(R * Vb, 32, 40);
      for (let i = 0; i < R * Vb; i++) s[i] = t[i]! + eps * s[i]!;
      let errFused = 0, errKl = 0;
      const kl = new Float64Array(R), ce = new Float64Array(R), klRef = new Float64Array(R);
      klDivForward(t, s, R, Vb, tau, klRef);
      lmHeadRows(Float32Array.from(s), t, null, R, Vb, -100, tau, 1, 1, true, ce, kl);
      for (let r = 0; r < R; r++) {
        const o = r * Vb;
        let mt = -Infinity, ms = -Infinity;
        for (let j = 0; j < Vb; j++) (mt = Math.max(mt, t[o + j]! / tau)), (ms = Math.max(ms, s[o + j]! / tau));
        let zt = 0, zs = 0;
        for (let j = 0; j < Vb; j++) (zt += Math.exp(t[o + j]! / tau - mt)), (zs += Math.exp(s[o + j]! / tau - ms));
        const lt = mt + Math.log(zt), ls = ms + Math.log(zs);
        let want = 0;
        for (let j = 0; j < Vb; j++) want += Math.exp(t[o + j]! / tau - lt) * (t[o + j]! / tau - lt - (s[o + j]! / tau - ls));
        errFused += Math.abs(kl[r]! - want) / want;
        errKl += Math.abs(klRef[r]! - want) / want;
      }
      expect(errFused / R, `eps ${eps}`).toBeLessThan(Math.max(4 * (errKl / R), 1e-6));
    }
  });
});
