/** Row kernels against the naive reference, and their backward passes against finite differences. */
import { describe, expect, it } from "vitest";
import {
  crossEntropyBackward, crossEntropyForward, klDivBackward, klDivForward, lmHeadRows, logSoftmaxRows, logSoftmaxRowsBackward,
  rmsNormBackward, rmsNormForward, ropeForward, softmaxRows, softmaxRowsBackward,
} from "./rows.js";
import {
  finiteDiff, maxAbsDiff, refCrossEntropy, refKl, refLogSoftmax, refRmsNorm, refRope, refSoftmax,
} from "../../testing-internal/reference.js";
import { hasSimd } from "./wasm-features.js";
import { setVectorWasmDisabled, vectorKernels } from "./wasm-vector.js";

/** Runs fn with the wasm vector kernels off (the TypeScript reference path), then turns them back on. */
function withoutWasm<T>(fn: () => T): T {
  setVectorWasmDisabled(true);
  try {
    return fn();
  } finally {
    setVectorWasmDisabled(false);
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function rand64(n: number, seed: number, scale = 4): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => r() * scale);
}

const SHAPES: [number, number][] = [[1, 1], [3, 7], [5, 17], [2, 129]];

describe("softmax / log-softmax", () => {
  it("forward matches the reference in float32 and float64", () => {
    for (const [rows, cols] of SHAPES) {
      const x = rand64(rows * cols, rows + cols, 20);
      for (const F of [Float32Array, Float64Array]) {
        const xs = F.from(x);
        const out = new F(rows * cols);
        softmaxRows(xs, out, rows, cols);
        expect(maxAbsDiff(out, refSoftmax(xs, rows, cols))).toBeLessThan(F === Float32Array ? 1e-6 : 1e-14);
        logSoftmaxRows(xs, out, rows, cols);
        expect(maxAbsDiff(out, refLogSoftmax(xs, rows, cols))).toBeLessThan(F === Float32Array ? 1e-5 : 1e-13);
      }
    }
  });

  it("is stable for huge logits and works in place", () => {
    const x = new Float32Array([1000, 1001, -1000, 1002]);
    softmaxRows(x, x, 1, 4);
    expect(maxAbsDiff(x, refSoftmax([1000, 1001, -1000, 1002], 1, 4))).toBeLessThan(1e-6);
  });

  it("backward matches finite differences", () => {
    const rows = 3, cols = 7;
    const x = rand64(rows * cols, 1);
    const w = rand64(rows * cols, 2);
    const y = new Float64Array(rows * cols);
    const dx = new Float64Array(rows * cols);
    softmaxRows(x, y, rows, cols);
    softmaxRowsBackward(y, w, dx, rows, cols);
    expect(maxAbsDiff(dx, finiteDiff((z) => refSoftmax(z, rows, cols), x, w))).toBeLessThan(1e-7);
    logSoftmaxRows(x, y, rows, cols);
    logSoftmaxRowsBackward(y, w, dx, rows, cols);
    expect(maxAbsDiff(dx, finiteDiff((z) => refLogSoftmax(z, rows, cols), x, w))).toBeLessThan(1e-7);
  });
});

describe("cross-entropy", () => {
  const rows = 6, vocab = 17, ignore = -100;
  const targets = Int32Array.from([3, ignore, 0, 16, 5, ignore]);

  it("forward matches the reference, ignores rows, counts valid rows", () => {
    const x = rand64(rows * vocab, 3, 10);
    for (const F of [Float32Array, Float64Array]) {
      const loss = new F(rows), lse = new F(rows);
      const count = crossEntropyForward(F.from(x), targets, rows, vocab, ignore, loss, lse);
      expect(count).toBe(4);
      expect(maxAbsDiff(loss, refCrossEntropy(F.from(x), targets, rows, vocab, ignore))).toBeLessThan(2e-6);
      expect(loss[1]).toBe(0);
    }
  });

  it("backward matches finite differences and zeroes ignored rows", () => {
    const x = rand64(rows * vocab, 4);
    const g = rand64(rows, 5);
    const loss = new Float64Array(rows), lse = new Float64Array(rows), dx = new Float64Array(rows * vocab).fill(9);
    crossEntropyForward(x, targets, rows, vocab, ignore, loss, lse);
    crossEntropyBackward(x, targets, lse, g, dx, rows, vocab, ignore);
    expect(maxAbsDiff(dx, finiteDiff((z) => refCrossEntropy(z, targets, rows, vocab, ignore), x, g))).toBeLessThan(1e-7);
    expect(Array.from(dx.subarray(vocab, 2 * vocab))).toEqual(new Array(vocab).fill(0));
  });

  it("throws a RangeError naming the row for a bad target", () => {
    const x = new Float32Array(2 * 4);
    const out = new Float32Array(2);
    expect(() => crossEntropyForward(x, Int32Array.from([1, 4]), 2, 4, -100, out, out.slice())).toThrow(
      /row 1 is 4, outside \[0, 4\)/,
    );
    expect(() => crossEntropyBackward(x, Int32Array.from([-1, 0]), out, out, x.slice(), 2, 4, -100)).toThrow(
      /row 0 is -1/,
    );
  });
});

describe("KL divergence with temperature", () => {
  const rows = 4, vocab = 9;
  for (const tau of [1, 2.5]) {
    it(`forward and both gradients match (tau ${tau})`, () => {
      const t = rand64(rows * vocab, 6, 6), s = rand64(rows * vocab, 7, 6), g = rand64(rows, 8);
      const kl = new Float64Array(rows);
      klDivForward(t, s, rows, vocab, tau, kl);
      expect(maxAbsDiff(kl, refKl(t, s, rows, vocab, tau))).toBeLessThan(1e-12);
      const kl32 = new Float32Array(rows);
      klDivForward(Float32Array.from(t), Float32Array.from(s), rows, vocab, tau, kl32);
      expect(maxAbsDiff(kl32, refKl(Float32Array.from(t), Float32Array.from(s), rows, vocab, tau))).toBeLessThan(1e-6);
      const ds = new Float64Array(rows * vocab), dt = new Float64Array(rows * vocab);
      klDivBackward(t, s, rows, vocab, tau, g, ds, dt);
      expect(maxAbsDiff(ds, finiteDiff((z) => refKl(t, z, rows, vocab, tau), s, g))).toBeLessThan(1e-7);
      expect(maxAbsDiff(dt, finiteDiff((z) => refKl(z, s, rows, vocab, tau), t, g))).toBeLessThan(1e-7);
    });
  }

  it("rejects a non-positive temperature", () => {
    const a = new Float32Array(4);
    expect(() => klDivForward(a, a, 1, 4, 0, a)).toThrow(/temperature must be a positive/);
  });
});

describe("fused LM-head rows (lmHeadRows)", () => {
  it("hand-computed CE, KL and gradient, float64 and float32 (the row runtime)", () => {
    // student [0, 0], teacher [ln 3, 0], τ 1, target 0: pS = [1/2, 1/2], pT = [3/4, 1/4]
    for (const A of [Float64Array, Float32Array]) {
      const s = A.from([0, 0, 0, 0]), t = A.from([Math.log(3), 0, 0, 0]);
      const ce = new Float64Array(2), kl = new Float64Array(2);
      lmHeadRows(s, t, Int32Array.from([0, -100]), 2, 2, -100, 1, 2, 3, true, ce, kl);
      const tol = A === Float64Array ? 1e-14 : 1e-6;
      expect(Math.abs(ce[0]! - Math.log(2))).toBeLessThan(tol);
      expect(ce[1]).toBe(0); // ignored target
      expect(Math.abs(kl[0]! - (0.75 * Math.log(1.5) + 0.25 * Math.log(0.5)))).toBeLessThan(tol);
      expect(Math.abs(kl[1]!)).toBeLessThan(tol); // equal rows
      // dz = 2 (pS - onehot) + 3 (pS - pT): row 0 = [2 (-1/2) + 3 (-1/4), 2 (1/2) + 3 (1/4)]; row 1: no CE, pS = pT
      const want = [-1.75, 1.75, 0, 0];
      for (let i = 0; i < 4; i++) expect(Math.abs(s[i]! - want[i]!), `dz[${i}]`).toBeLessThan(tol);
    }
  });

  it("without a teacher, without targets, without grad", () => {
    const s = Float64Array.from([1, 2, 3]);
    const ce = new Float64Array(1), kl = new Float64Array(1).fill(7);
    lmHeadRows(s, null, Int32Array.from([2]), 1, 3, -100, 1, 1, 1, false, ce, kl);
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    expect(Math.abs(ce[0]! - (lse - 3))).toBeLessThan(1e-14);
    expect(kl[0]).toBe(7); // untouched
    expect(Array.from(s)).toEqual([1, 2, 3]); // no gradient written
    lmHeadRows(s, Float64Array.from([1, 2, 3]), null, 1, 3, -100, 2, 1, 1, true, ce, kl);
    expect(ce[0]).toBe(0);
    expect(Math.abs(kl[0]!)).toBeLessThan(1e-14);
    for (const v of s) expect(Math.abs(v)).toBeLessThan(1e-14);
    expect(() => lmHeadRows(s, null, Int32Array.from([3]), 1, 3, -100, 1, 1, 1, true, ce, kl)).toThrow(/lmHeadRows: target at row 0 is 3/);
  });
});

describe("rmsNorm", () => {
  const eps = 1e-6;
  it("forward matches the reference (odd dims, both dtypes) and saves rstd", () => {
    for (const [rows, dim] of SHAPES) {
      const x = rand64(rows * dim, dim), w = rand64(dim, dim + 1);
      for (const F of [Float32Array, Float64Array]) {
        const out = new F(rows * dim), rstd = new F(rows);
        rmsNormForward(F.from(x), F.from(w), out, rstd, rows, dim, eps);
        expect(maxAbsDiff(out, refRmsNorm(F.from(x), F.from(w), rows, dim, eps))).toBeLessThan(
          F === Float32Array ? 5e-6 : 1e-13,
        );
      }
    }
  });

  it("float32 follows HF rounding: each step rounded to float32", () => {
    const x = Float32Array.from([0.1, -0.7, 1.3]), w = Float32Array.from([1.5, 0.25, -2]);
    const out = new Float32Array(3), rstd = new Float32Array(1);
    rmsNormForward(x, w, out, rstd, 1, 3, eps);
    const f = Math.fround;
    const rs = f(1 / Math.sqrt(f(f((x[0]! ** 2 + x[1]! ** 2 + x[2]! ** 2) / 3) + eps)));
    expect(rstd[0]).toBe(rs);
    expect(Array.from(out)).toEqual(Array.from(x, (v, i) => f(w[i]! * f(v * rs))));
  });

  it("backward matches finite differences for x and w", () => {
    const rows = 3, dim = 7;
    const x = rand64(rows * dim, 9), w = rand64(dim, 10), dy = rand64(rows * dim, 11);
    const out = new Float64Array(rows * dim), rstd = new Float64Array(rows);
    rmsNormForward(x, w, out, rstd, rows, dim, eps);
    const dx = new Float64Array(rows * dim), dw = new Float64Array(dim);
    rmsNormBackward(dy, x, w, rstd, dx, dw, rows, dim);
    expect(maxAbsDiff(dx, finiteDiff((z) => refRmsNorm(z, w, rows, dim, eps), x, dy))).toBeLessThan(1e-7);
    expect(maxAbsDiff(dw, finiteDiff((z) => refRmsNorm(x, z, rows, dim, eps), w, dy))).toBeLessThan(1e-7);
  });
});

describe("rmsNorm float32 wasm kernels", () => {
  const eps = 1e-5;
  it("forward and backward match the TypeScript path (odd dims, several chunks, dw skipped)", () => {
    expect(vectorKernels() !== null).toBe(hasSimd());
    for (const [rows, dim] of [[1, 1], [5, 17], [3, 256], [300, 130], [2, 40000]] as const) {
      const x = Float32Array.from(rand64(rows * dim, dim)), w = Float32Array.from(rand64(dim, dim + 1));
      const dy = Float32Array.from(rand64(rows * dim, dim + 2));
      const run = (): Float32Array[] => {
        const out = new Float32Array(rows * dim), rstd = new Float32Array(rows);
        rmsNormForward(x, w, out, rstd, rows, dim, eps);
        const dx = new Float32Array(rows * dim), dw = new Float32Array(dim), dx2 = new Float32Array(rows * dim);
        rmsNormBackward(dy, x, w, rstd, dx, dw, rows, dim);
        rmsNormBackward(dy, x, w, rstd, dx2, null, rows, dim);
        return [out, rstd, dx, dw, dx2];
      };
      const want = withoutWasm(run);
      const got = run();
      for (let i = 0; i < want.length; i++) {
        const mag = Math.max(1, ...Array.from(want[i]!, Math.abs));
        expect(maxAbsDiff(got[i]!, want[i]!) / mag, `output ${i} [${rows}, ${dim}]`).toBeLessThan(2e-6);
      }
      // out = (x rstd) w exactly as the reference rounds it, given the same rstd
      for (let j = 0; j < Math.min(dim, 64); j++) expect(got[0]![j]).toBe(Math.fround(w[j]! * Math.fround(x[j]! * got[1]![0]!)));
    }
  });
});

describe("rope", () => {
  it("float32 wasm kernel matches the TypeScript path (offset, inverse, in place, several chunks)", () => {
    const f32 = (a: Float64Array): Float32Array => Float32Array.from(a);
    for (const [outer, T, dh, off] of [[3, 5, 8, 4], [33, 128, 64, 0], [2, 7, 16, 9], [1, 1, 24, 0]] as const) {
      const t64 = tables(T + off, dh);
      const cos = f32(t64.cos), sin = f32(t64.sin);
      const x = f32(rand64(outer * T * dh, outer + T));
      for (const inverse of [false, true]) {
        const want = new Float32Array(x.length), got = new Float32Array(x.length), inPlace = x.slice();
        withoutWasm(() => ropeForward(x, cos, sin, want, outer, T, dh, inverse, off));
        ropeForward(x, cos, sin, got, outer, T, dh, inverse, off);
        ropeForward(inPlace, cos, sin, inPlace, outer, T, dh, inverse, off);
        expect(maxAbsDiff(got, want)).toBeLessThan(4e-6);
        expect(Array.from(inPlace)).toEqual(Array.from(got));
      }
    }
  });

  function tables(P: number, dh: number): { cos: Float64Array; sin: Float64Array } {
    const cos = new Float64Array(P * dh), sin = new Float64Array(P * dh);
    for (let p = 0; p < P; p++) {
      for (let i = 0; i < dh / 2; i++) {
        const ang = p / 10000 ** ((2 * i) / dh);
        cos[p * dh + i] = cos[p * dh + i + dh / 2] = Math.cos(ang);
        sin[p * dh + i] = sin[p * dh + i + dh / 2] = Math.sin(ang);
      }
    }
    return { cos, sin };
  }

  it("forward matches the reference, with a position offset, in both dtypes", () => {
    const outer = 3, T = 5, dh = 8, off = 4;
    const { cos, sin } = tables(T + off, dh);
    const x = rand64(outer * T * dh, 12);
    for (const F of [Float32Array, Float64Array]) {
      const out = new F(outer * T * dh);
      ropeForward(F.from(x), F.from(cos), F.from(sin), out, outer, T, dh, false, off);
      expect(maxAbsDiff(out, refRope(F.from(x), F.from(cos), F.from(sin), outer, T, dh, off))).toBeLessThan(1e-6);
    }
  });

  it("inverse undoes forward and is the backward (finite differences)", () => {
    const outer = 2, T = 3, dh = 6;
    const { cos, sin } = tables(T, dh);
    const x = rand64(outer * T * dh, 13), dy = rand64(outer * T * dh, 14);
    const y = new Float64Array(x.length), back = new Float64Array(x.length);
    ropeForward(x, cos, sin, y, outer, T, dh, false);
    ropeForward(y, cos, sin, back, outer, T, dh, true);
    expect(maxAbsDiff(back, x)).toBeLessThan(1e-12);
    const dx = new Float64Array(x.length);
    ropeForward(dy, cos, sin, dx, outer, T, dh, true);
    expect(maxAbsDiff(dx, finiteDiff((z) => refRope(z, cos, sin, outer, T, dh), x, dy))).toBeLessThan(1e-7);
  });

  it("rejects an odd head dim", () => {
    const a = new Float32Array(9);
    expect(() => ropeForward(a, a, a, a, 1, 3, 3, false)).toThrow(/dh must be even/);
  });
});
