// 16-bit storage of frozen weights on the WebGPU backend: the matmul (both designs, every transpose, the vec4 and
// scalar operand loads) and the embedding gather reading bfloat16 / float16 buffers, against the same kernels on
// the float32 widening of those buffers. Widening is exact and every sum is float32, so the results must be
// equal bit for bit. float16 runs twice: with `shader-f16` (f16 storage) when the adapter has it, and with the
// feature forced off (unpack2x16float of 32-bit words).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bf16BitsToFloat32, f16BitsToFloat32, float32BitsToBF16Bits, float32BitsToF16Bits } from "../../safetensors.js";
import { maxAbsDiff, refGemm } from "../../testing-internal/reference.js";
import type { Half16, WebGpuDevice } from "./device.js";
import { gatherRows } from "./elementwise.js";
import { matmul, type MatmulVariant } from "./matmul.js";
import { randomArray, testDevice } from "./test-device.js";

let dev: WebGpuDevice | null = null;
let noF16: WebGpuDevice | null = null;
beforeAll(async () => {
  dev = await testDevice();
  if (dev !== null) noF16 = await testDevice({ f16: false });
});
afterAll(async () => {
  await dev?.destroy();
  await noF16?.destroy();
});

/** 16-bit patterns of random values (with a few signed zeros and, for float16, subnormals) and their float32 widening. */
function half16(n: number, seed: number, dtype: Half16): { bits: Uint16Array; wide: Float32Array } {
  const f = randomArray(n, seed);
  const u = new Uint32Array(f.buffer);
  const bits = Uint16Array.from(u, (b) => (dtype === "bfloat16" ? float32BitsToBF16Bits(b) : float32BitsToF16Bits(b)));
  for (let i = 0; i < n; i += 37) bits[i] = dtype === "float16" ? 0x0001 + (i % 0x3ff) : 0x8000; // subnormal f16, -0 bf16
  const wide = Float32Array.from(bits, (b) => (dtype === "bfloat16" ? bf16BitsToFloat32(b) : f16BitsToFloat32(b)));
  return { bits, wide };
}

/** The devices a 16-bit dtype runs on: bfloat16 needs no feature; float16 with and without shader-f16. */
function devices(dtype: Half16): Array<[string, WebGpuDevice]> {
  const list: Array<[string, WebGpuDevice]> = [];
  if (dev !== null) list.push([dev.features.f16 && dtype === "float16" ? "shader-f16" : "default", dev]);
  if (noF16 !== null && dtype === "float16" && dev?.features.f16 === true) list.push(["shader-f16 off", noF16]);
  return list;
}

const cases: Array<[string, number, number, number, number, number]> = [
  // label, batch, m, n, k, offset (a multiple of 4 with 4 | the contiguous axes: the tiled design's vec4 loads)
  ["vec4-aligned", 2, 12, 72, 68, 4],
  ["odd shapes", 3, 17, 65, 33, 3],
];

/**
 * The products LRC runs with a frozen 16-bit weight W (each pipeline compiles for seconds on lavapipe, so not
 * every combination): x·Wᵀ (the teacher's linear layers), Wᵀ·dY (dP of W_s = W·P), W·P, and both operands 16-bit.
 */
const products: Array<[boolean, boolean, "a" | "b" | "both"]> = [[false, true, "b"], [true, false, "a"], [false, false, "a"], [true, true, "both"]];

describe.each<Half16>(["bfloat16", "float16"])("webgpu %s operands", (dtype) => {
  it.each<MatmulVariant>(["tiled", "texture"])("matmul (%s): equals the float32 kernel on the widened values", async (variant) => {
    if (dev === null) return;
    expect(devices(dtype).length).toBeGreaterThan(0);
    for (const [mode, d] of devices(dtype)) {
      // the float16 path without shader-f16 on the aligned case only (its loads differ, not its indexing)
      for (const [label, batch, m, n, k, off] of mode === "shader-f16 off" ? cases.slice(0, 1) : cases) {
        for (const [transA, transB, which] of products) {
          const strideA = m * k + (off % 4 === 0 ? 4 : 1), strideB = k * n, strideC = m * n;
          const A = half16(off + batch * strideA, 11, dtype), B = half16(off + batch * strideB, 12, dtype);
          const c0 = randomArray(batch * strideC, 13);
          const p = { batch, m, n, k, transA, transB, strideA, strideB, strideC, offsetA: off, offsetB: off, offsetC: 0, accumulate: true, alpha: 0.5 };
          const half = [which !== "b" ? d.upload(A.bits, dtype) : d.upload(A.wide), which !== "a" ? d.upload(B.bits, dtype) : d.upload(B.wide), d.upload(c0)] as const;
          const wide = [d.upload(A.wide), d.upload(B.wide), d.upload(c0)] as const;
          matmul(d, { ...p, a: half[0], b: half[1], c: half[2] }, variant);
          matmul(d, { ...p, a: wide[0], b: wide[1], c: wide[2] }, variant);
          const got = await d.read(half[2]), want = await d.read(wide[2]);
          const where = `${mode} ${label} transA ${transA} transB ${transB} 16-bit ${which}`;
          expect(Array.from(got), where).toEqual(Array.from(want));
          // and the float32 kernel itself is right (the widened operands against the float64 reference)
          expect(maxAbsDiff(got, refGemm({ ...p, a: A.wide, b: B.wide, c: c0 })), where).toBeLessThan(1e-5 * (k + 1));
          for (const b of [...half, ...wide]) b.free();
        }
      }
    }
  }, 600_000);

  it("gather rows from a 16-bit table gives the widened rows exactly; an index out of range gives NaN", async () => {
    if (dev === null) return;
    for (const [mode, d] of devices(dtype)) {
      for (const cols of [7, 64]) {
        const vocab = 11;
        const { bits, wide } = half16(vocab * cols, 21, dtype);
        const idx = Int32Array.from([3, 0, 10, 3, 12, 5]);
        const [t, i, o] = [d.upload(bits, dtype), d.upload(idx), d.alloc(idx.length * cols)];
        gatherRows(d, t, vocab, cols, i, o);
        const got = await d.read(o);
        for (let r = 0; r < idx.length; r++) {
          const row = Array.from(got.subarray(r * cols, (r + 1) * cols));
          const id = idx[r]!;
          if (id >= vocab) expect(row.every(Number.isNaN), `${mode} cols ${cols} row ${r}`).toBe(true);
          else expect(row, `${mode} cols ${cols} row ${r}`).toEqual(Array.from(wide.subarray(id * cols, (id + 1) * cols)));
        }
        t.free(); i.free(); o.free();
      }
    }
  });
});

describe("webgpu 16-bit buffers", () => {
  it("upload, copy and read back the bit patterns, odd lengths included; reject a Uint16Array without its dtype", async () => {
    if (dev === null) return;
    const bits = Uint16Array.from({ length: 5 }, (_, i) => 0x3f80 + i * 0x1111);
    const b = dev.upload(bits, "bfloat16");
    expect(b.dtype).toBe("bfloat16");
    expect(Array.from(await dev.read(b))).toEqual(Array.from(bits));
    expect(Array.from(await dev.read(b, 3, 2))).toEqual(Array.from(bits.subarray(2)));
    await expect(dev.read(b, 2, 1)).rejects.toThrow(/even element/);
    const c = dev.copy(b);
    expect(c.dtype).toBe("bfloat16");
    expect(Array.from(await dev.read(c))).toEqual(Array.from(bits));
    expect(() => dev!.copyInto(b, 1, c, 0, 2)).toThrow(/even elements/);
    b.free(); c.free();
    expect(() => dev!.upload(bits)).toThrow(/Uint16Array with their dtype/);
  });

  it("matmul writes only a float32 C", () => {
    if (dev === null) return;
    const a = dev.alloc(4), c = dev.alloc(4, "bfloat16");
    expect(() => matmul(dev!, { a, b: a, c, batch: 1, m: 2, n: 2, k: 2, transA: false, transB: false, strideA: 4, strideB: 4, strideC: 4 }))
      .toThrow(/c must be a float32 buffer, got bfloat16/);
    a.free(); c.free();
  });
});
