/** Gradient clipping's kernels (sumSquares, scaleInPlace): the float32 wasm paths against float64 references. */
import { describe, expect, it } from "vitest";
import { clipGradNorm } from "../../optim/optim.js";
import { tensor } from "../../tensor.js";
import { scaleInPlace, sumSquares } from "./fused.js";
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
});
