/** The float32 wasm strided copy (permute, slice, expand) against the TypeScript loop, on random views. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { gatherRows, permute, stridedCopy } from "./movement.js";
import { hasSimd } from "./wasm-features.js";
import { setVectorWasmDisabled, vectorKernels } from "./wasm-vector.js";

function reference(x: Float32Array, offset: number, src: number[], shape: number[]): Float32Array {
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  setVectorWasmDisabled(true);
  try {
    stridedCopy(x, offset, src, out, shape);
  } finally {
    setVectorWasmDisabled(false);
  }
  return out;
}

/** Every element is its own index, so a wrong gather cannot coincide with the right one. */
const iota = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => i);

describe("strided copy through the wasm vector module", () => {
  it("permutes of rank 1-6 (odd sizes, head transposes) match the TypeScript loop", () => {
    expect(vectorKernels() !== null).toBe(hasSimd());
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 6 }).chain((shape) =>
          fc.tuple(fc.constant(shape), fc.shuffledSubarray([...shape.keys()], { minLength: shape.length }))),
        ([shape, perm]) => {
          // scale one dim up so the case is big enough for the wasm path (>= 4096 elements)
          const big = shape.map((d, i) => (i === 0 ? d * Math.ceil(4096 / shape.reduce((a, b) => a * b, 1)) : d));
          const n = big.reduce((a, b) => a * b, 1);
          const x = iota(n);
          const out = new Float32Array(n);
          permute(x, big, perm, out);
          const strides = big.map((_, d) => big.slice(d + 1).reduce((a, b) => a * b, 1));
          expect(Array.from(out)).toEqual(Array.from(reference(x, 0, perm.map((p) => strides[p]!), perm.map((p) => big[p]!))));
        },
      ),
      { numRuns: 60 },
    );
  });

  it("the attention head transpose [B, T, H, dh] -> [B, H, T, dh] and back", () => {
    const shape = [8, 128, 4, 64];
    const x = iota(8 * 128 * 4 * 64);
    const y = new Float32Array(x.length), back = new Float32Array(x.length);
    permute(x, shape, [0, 2, 1, 3], y);
    expect(y[64]).toBe(4 * 64); // (b 0, h 0, t 1, c 0) comes from (b 0, t 1, h 0, c 0)
    permute(y, [8, 4, 128, 64], [0, 2, 1, 3], back);
    expect(Array.from(back)).toEqual(Array.from(x));
  });

  it("slices with an offset and broadcasts with zero strides match the TypeScript loop", () => {
    const x = iota(100 * 70);
    const cases: [number, number[], number[]][] = [
      [7 * 70 + 3, [70, 1], [80, 61]], // rows 7.., columns 3..
      [0, [0, 1], [300, 70]], // a row expanded 300 times
      [5, [1, 0], [64, 90]], // a column-like broadcast along the last dim
      [13, [140, 2], [50, 33]], // every other row and column
    ];
    for (const [offset, src, shape] of cases) {
      const out = new Float32Array(shape[0]! * shape[1]!);
      stridedCopy(x, offset, src, out, shape);
      expect(Array.from(out), `${offset} ${src} ${shape}`).toEqual(Array.from(reference(x, offset, src, shape)));
    }
  });
});

describe("gatherRows", () => {
  it("widens a BF16 (Uint16Array) table exactly: the rows of the float32 table of the same bits", () => {
    const rows = 7, cols = 5;
    const hi = Uint16Array.from({ length: rows * cols }, (_, i) => (i * 2654435761) >>> 16);
    const wide = new Float32Array(rows * cols);
    new Uint32Array(wide.buffer).set(Array.from(hi, (h) => h << 16));
    const idx = Int32Array.from([6, 0, 3, 3]);
    const want = new Float32Array(idx.length * cols), got = new Float32Array(idx.length * cols);
    gatherRows(wide, rows, cols, idx, want, "test");
    gatherRows(hi, rows, cols, idx, got, "test");
    expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(want.buffer));
    expect(() => gatherRows(hi, rows, cols, idx, new Float64Array(20), "embed")).toThrow(/embed: a BF16 table gathers into float32 only/);
    expect(() => gatherRows(hi, rows, cols, Int32Array.from([7]), got, "embed")).toThrow(/embed: index 7/);
  });
});
