/**
 * The WebAssembly SIMD vector kernels (wasm-vector.ts through rows.ts, fused.ts and adamw.ts) against the TypeScript
 * reference paths they replace for float32: random shapes with odd row lengths and chunk boundaries, rows with
 * non-finite values (handed back to the reference), the exp polynomial's accuracy, and AdamW over several steps.
 */
import { afterEach, describe, expect, it } from "vitest";
import { adamwUpdate } from "./adamw.js";
import { maxAbsDiff, refCrossEntropy, refKl, refSoftmax } from "../../testing-internal/reference.js";
import {
  crossEntropyBackward, crossEntropyForward, klDivBackward, klDivForward, logSoftmaxRows, softmaxRows,
} from "./rows.js";
import { buildVectorWasm, DATA, setVectorWasmDisabled, vectorKernels, type VectorKernels } from "./wasm-vector.js";
import { hasRelaxedSimd } from "./wasm-features.js";
import { instantiate } from "./wasm-instance.js";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function rand32(n: number, seed: number, scale: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * scale);
}

/** Runs fn with the wasm kernels on and off and returns both outputs. */
function both<T>(fn: () => T): { wasm: T; js: T } {
  setVectorWasmDisabled(false);
  const wasm = fn();
  setVectorWasmDisabled(true);
  const js = fn();
  setVectorWasmDisabled(false);
  return { wasm, js };
}

afterEach(() => setVectorWasmDisabled(false));

const SHAPES: [number, number][] = [[1, 1], [2, 2], [3, 3], [1, 5], [4, 7], [3, 17], [2, 129], [3, 4096], [2, 4099], [9, 4097]];

describe("wasm vector kernels", () => {
  it("are available on Node", () => {
    expect(vectorKernels()).not.toBeNull();
  });

  it("exp is within a few float32 ulp of Math.exp over [-87, 88], unfused and with fused multiply-adds", () => {
    const n = 100_000;
    const x = Float32Array.from({ length: n }, (_, i) => -87 + (175 * i) / (n - 1));
    const expOf = (k: Pick<VectorKernels, "expaff">, heap: () => Float32Array, ensure: (bytes: number) => void): Float32Array => {
      ensure(DATA + 2 * n * 4);
      heap().set(x, DATA >> 2);
      k.expaff(DATA, DATA + n * 4, n, 1, 0, 1);
      return heap().slice((DATA >> 2) + n, (DATA >> 2) + 2 * n);
    };
    const worst = (out: Float32Array): number => {
      let w = 0;
      for (let i = 0; i < n; i++) w = Math.max(w, Math.abs(out[i]! / Math.exp(x[i]!) - 1));
      return w;
    };
    const variants = hasRelaxedSimd() ? [false, true] : [false];
    const outs = variants.map((fma) => {
      const inst = instantiate<VectorKernels>(buildVectorWasm(fma), 16)!;
      return expOf(inst.exports, () => inst.heap, (b) => inst.ensure(b));
    });
    for (const out of outs) expect(worst(out)).toBeLessThan(4e-7);
    // the module in use is the fused one exactly when relaxed SIMD is on
    const k = vectorKernels()!;
    const used = expOf(k, () => k.heap, (b) => k.ensure(b));
    expect(Buffer.from(used.buffer).equals(Buffer.from(outs[outs.length - 1]!.buffer))).toBe(true);
    if (outs.length === 2) expect(worst(outs[1]!)).toBeLessThanOrEqual(worst(outs[0]!) * 1.25);
  });

  it("softmax / log-softmax rows match the TypeScript path and the float64 reference", () => {
    for (const [rows, cols] of SHAPES) {
      const x = rand32(rows * cols, rows * 7 + cols, 30);
      const r = both(() => {
        const s = new Float32Array(rows * cols), l = new Float32Array(rows * cols);
        softmaxRows(x, s, rows, cols);
        logSoftmaxRows(x, l, rows, cols);
        return { s, l };
      });
      expect(maxAbsDiff(r.wasm.s, r.js.s)).toBeLessThan(1e-6);
      expect(maxAbsDiff(r.wasm.l, r.js.l)).toBeLessThan(2e-5);
      expect(maxAbsDiff(r.wasm.s, refSoftmax(x, rows, cols))).toBeLessThan(1e-6);
    }
  });

  it("softmax works in place and keeps huge logits stable", () => {
    const x = new Float32Array([1000, 1001, -1000, 1002, 3, 3, 3, 3, 3]);
    const want = refSoftmax(x, 1, 9);
    softmaxRows(x, x, 1, 9);
    expect(maxAbsDiff(x, want)).toBeLessThan(1e-6);
  });

  it("cross-entropy forward and backward match (ignored targets, odd vocab)", () => {
    for (const [rows, cols] of SHAPES) {
      const x = rand32(rows * cols, rows + 3 * cols, 16);
      const targets = Int32Array.from({ length: rows }, (_, i) => (i === 1 ? -100 : (i * 7919) % cols));
      const g = rand32(rows, 5, 2);
      const r = both(() => {
        const loss = new Float32Array(rows), lse = new Float32Array(rows), dl = new Float32Array(rows * cols);
        const count = crossEntropyForward(x, targets, rows, cols, -100, loss, lse);
        crossEntropyBackward(x, targets, lse, g, dl, rows, cols, -100);
        return { loss, lse, dl, count };
      });
      expect(r.wasm.count).toBe(r.js.count);
      expect(maxAbsDiff(r.wasm.loss, r.js.loss)).toBeLessThan(2e-5);
      expect(maxAbsDiff(r.wasm.lse, r.js.lse)).toBeLessThan(2e-5);
      expect(maxAbsDiff(r.wasm.dl, r.js.dl)).toBeLessThan(2e-6);
      const ref = refCrossEntropy(x, targets, rows, cols, -100);
      expect(maxAbsDiff(r.wasm.loss, ref)).toBeLessThan(2e-5);
    }
  });

  it("temperature KL forward and student backward match", () => {
    for (const tau of [1, 40]) {
      for (const [rows, cols] of SHAPES) {
        const t = rand32(rows * cols, rows + cols, 20), s = rand32(rows * cols, 2 * rows + cols, 20);
        const g = rand32(rows, 9, 2);
        const r = both(() => {
          const kl = new Float32Array(rows), ds = new Float32Array(rows * cols);
          klDivForward(t, s, rows, cols, tau, kl);
          klDivBackward(t, s, rows, cols, tau, g, ds, null);
          return { kl, ds };
        });
        expect(maxAbsDiff(r.wasm.kl, r.js.kl)).toBeLessThan(2e-6);
        expect(maxAbsDiff(r.wasm.ds, r.js.ds)).toBeLessThan(1e-7);
        expect(maxAbsDiff(r.wasm.kl, refKl(t, s, rows, cols, tau))).toBeLessThan(2e-6);
      }
    }
  });

  it("rows holding -Infinity or NaN take the TypeScript path (exact same results)", () => {
    const rows = 4, cols = 13;
    const x = rand32(rows * cols, 3, 8);
    x[2] = -Infinity; // row 0 masked entry
    x[cols + 5] = Number.NaN; // row 1 NaN
    for (let j = 0; j < cols; j++) x[2 * cols + j] = -Infinity; // row 2 fully masked
    const t = rand32(rows * cols, 4, 8);
    const targets = new Int32Array([0, 1, 2, 3]);
    const g = new Float32Array([1, 1, 1, 1]);
    const r = both(() => {
      const s = new Float32Array(rows * cols), loss = new Float32Array(rows), lse = new Float32Array(rows);
      const dl = new Float32Array(rows * cols), kl = new Float32Array(rows), ds = new Float32Array(rows * cols);
      softmaxRows(x, s, rows, cols);
      crossEntropyForward(x, targets, rows, cols, -100, loss, lse);
      crossEntropyBackward(x, targets, lse, g, dl, rows, cols, -100);
      klDivForward(t, x, rows, cols, 2, kl);
      klDivBackward(t, x, rows, cols, 2, g, ds, null);
      return { s, loss, lse, dl, kl, ds };
    });
    for (const key of ["s", "loss", "lse", "dl", "kl", "ds"] as const) {
      const w = r.wasm[key], j = r.js[key];
      const per = key === "loss" || key === "lse" || key === "kl" ? 1 : cols;
      for (const row of [0, 1, 2]) {
        // the non-finite rows are bit-identical to the reference
        expect(Array.from(w.subarray(row * per, (row + 1) * per))).toEqual(Array.from(j.subarray(row * per, (row + 1) * per)));
      }
      expect(maxAbsDiff(w.subarray(3 * per), j.subarray(3 * per))).toBeLessThan(2e-5);
    }
  });

  it("AdamW in float32 SIMD tracks the reference loop over steps (both lerp forms, chunk boundaries)", () => {
    for (const beta1 of [0.9, 0.3]) {
      for (const n of [1, 37, 16387]) {
        const opts = { lr: 1e-2, beta1, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
        const r = both(() => {
          const p = rand32(n, 1, 2), m = new Float32Array(n), v = new Float32Array(n);
          for (let step = 1; step <= 4; step++) adamwUpdate(p, rand32(n, step + 10, 1), m, v, n, { ...opts, step });
          return { p, m, v };
        });
        expect(maxAbsDiff(r.wasm.p, r.js.p)).toBeLessThan(2e-6);
        expect(maxAbsDiff(r.wasm.m, r.js.m)).toBeLessThan(1e-7);
        expect(maxAbsDiff(r.wasm.v, r.js.v)).toBeLessThan(1e-7);
      }
    }
  });

  it("is deterministic: the same call twice gives the same bits", () => {
    const rows = 5, cols = 4099;
    const x = rand32(rows * cols, 77, 10);
    const a = new Float32Array(rows * cols), b = new Float32Array(rows * cols);
    softmaxRows(x, a, rows, cols);
    softmaxRows(x, b, rows, cols);
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});
