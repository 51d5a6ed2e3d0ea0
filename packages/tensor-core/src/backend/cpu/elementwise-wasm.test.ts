/**
 * The float32 wasm binary-op fast paths and row sums against the TypeScript loops: bit-identical, special values
 * included.
 */
import { describe, expect, it } from "vitest";
import { binary, type BinaryKernel } from "./elementwise.js";
import { reduce } from "./reduce.js";
import { hasSimd } from "./wasm-features.js";
import { setVectorWasmDisabled, vectorKernels } from "./wasm-vector.js";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const SPECIAL = [0, -0, Infinity, -Infinity, NaN, 1e-40, 3.4e38];

function data(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = Float32Array.from({ length: n }, () => r() * 8);
  for (let i = 0; i < n; i += 97) a[i] = SPECIAL[(i / 97) % SPECIAL.length]!;
  return a;
}

const size = (s: number[]): number => s.reduce((x, y) => x * y, 1);

describe("binary float32 wasm fast paths", () => {
  it("equal shapes, scalars and broadcast rows match the TypeScript loops bit for bit", () => {
    expect(vectorKernels() !== null).toBe(hasSimd());
    const cases: [number[], number[]][] = [
      [[40000], [40000]], [[3001], [3001]], [[37, 64], [64]], [[64], [37, 64]], [[5000], [1]], [[1], [5000]],
      [[5, 3, 256], [3, 256]], [[1000, 6], [6]], [[40, 50], [40, 1]], [[2, 20000], [1, 20000]],
    ];
    for (const op of ["add", "sub", "mul", "div", "maximum", "lt"] as BinaryKernel[]) {
      for (const [sa, sb] of cases) {
        const so = sa.length >= sb.length ? (size(sa) >= size(sb) ? sa : sb) : sb;
        const outShape = size(sa) === size(so) && sa.length === so.length ? sa : so;
        const a = data(size(sa), size(sa) + 1), b = data(size(sb), size(sb) + 2);
        const n = size(outShape);
        const got = new Float32Array(n), want = new Float32Array(n);
        binary(op, a, sa, b, sb, got, outShape);
        setVectorWasmDisabled(true);
        try {
          binary(op, a, sa, b, sb, want, outShape);
        } finally {
          setVectorWasmDisabled(false);
        }
        expect(Array.from(got), `${op} ${sa} ${sb}`).toEqual(Array.from(want));
      }
    }
  });

  it("writes in place when out is the full operand", () => {
    const a = data(9000, 3), b = data(9000, 4);
    const want = new Float32Array(9000);
    binary("mul", a, [9000], b, [9000], want, [9000]);
    binary("mul", a, [9000], b, [9000], a, [9000]);
    expect(Array.from(a)).toEqual(Array.from(want));
  });
});

describe("float32 sums over rows (reduce, inner > 1) on wasm", () => {
  it("match the TypeScript loop bit for bit: odd widths, chunk boundaries, several outer groups", () => {
    for (const [outer, r, inner] of [[1, 1024, 896], [1, 3000, 13], [3, 700, 129], [2, 40, 3], [1, 9000, 4], [4, 2, 2048]] as const) {
      const x = data(outer * r * inner, r + inner);
      const got = new Float32Array(outer * inner), want = new Float32Array(outer * inner);
      reduce("sum", x, got, outer, r, inner);
      setVectorWasmDisabled(true);
      try {
        reduce("sum", x, want, outer, r, inner);
      } finally {
        setVectorWasmDisabled(false);
      }
      expect(Array.from(got), `[${outer}, ${r}, ${inner}]`).toEqual(Array.from(want));
    }
  });
});
