// Both matmul designs against the float64 reference gemm on lavapipe (or whatever adapter answers): every
// transpose variant, batched with strides and offsets, odd shapes that cross tile edges, alpha and accumulate.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maxAbsDiff, refGemm } from "../../testing-internal/reference.js";
import type { WebGpuDevice } from "./device.js";
import { matmul, timeMatmulDesigns, type MatmulVariant } from "./matmul.js";
import { randomArray, testDevice } from "./test-device.js";

let dev: WebGpuDevice | null = null;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(async () => {
  await dev?.destroy();
});

const shapes: Array<[number, number, number, number]> = [
  [1, 1, 1, 1], [1, 5, 7, 3], [2, 70, 9, 33], [3, 17, 65, 66], [1, 64, 64, 16], [2, 1, 130, 5],
];

describe.each<MatmulVariant>(["tiled", "texture"])("webgpu matmul (%s)", (variant) => {
  it.each(shapes)("batch %i, m %i, n %i, k %i: all transposes, offsets, alpha, accumulate", async (batch, m, n, k) => {
    if (dev === null) return;
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const [offsetA, offsetB, offsetC] = [3, 1, 2];
        const [strideA, strideB, strideC] = [m * k + 2, k * n, m * n + 1];
        const a = randomArray(offsetA + batch * strideA, 1), b = randomArray(offsetB + batch * strideB, 2);
        const c0 = randomArray(offsetC + batch * strideC, 3);
        for (const accumulate of [false, true]) {
          const [da, db, dc] = [dev.upload(a), dev.upload(b), dev.upload(c0)];
          const p = { batch, m, n, k, transA, transB, strideA, strideB, strideC, offsetA, offsetB, offsetC, accumulate, alpha: 0.75 };
          matmul(dev, { ...p, a: da, b: db, c: dc }, variant);
          const got = await dev.read(dc);
          const want = refGemm({ ...p, a, b, c: c0 });
          // untouched gaps between batch outputs keep their values
          expect(maxAbsDiff(got, want), `transA ${transA} transB ${transB} accumulate ${accumulate}`).toBeLessThan(1e-5 * (k + 1));
          da.free(); db.free(); dc.free();
        }
      }
    }
  });
});

describe("webgpu matmul, tiled design with vec4 operand loads (rows of whole vec4s, aligned offsets and strides)", () => {
  it.each([[2, 64, 68, 36], [1, 8, 4, 20], [3, 12, 72, 68]])("batch %i, m %i, n %i, k %i: all transposes", async (batch, m, n, k) => {
    if (dev === null) return;
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const [offsetA, offsetB, offsetC] = [4, 8, 1];
        const [strideA, strideB, strideC] = [m * k + 4, k * n, m * n];
        const a = randomArray(offsetA + batch * strideA, 5), b = randomArray(offsetB + batch * strideB, 6), c0 = randomArray(offsetC + batch * strideC, 7);
        const [da, db, dc] = [dev.upload(a), dev.upload(b), dev.upload(c0)];
        const p = { batch, m, n, k, transA, transB, strideA, strideB, strideC, offsetA, offsetB, offsetC, accumulate: true, alpha: 1.5 };
        matmul(dev, { ...p, a: da, b: db, c: dc }, "tiled");
        expect(maxAbsDiff(await dev.read(dc), refGemm({ ...p, a, b, c: c0 })), `transA ${transA} transB ${transB}`).toBeLessThan(1e-5 * (k + 1));
        da.free(); db.free(); dc.free();
      }
    }
  });
});

describe("webgpu matmul validation", () => {
  it("rejects an operand too short for its shape, naming it", () => {
    if (dev === null) return;
    const a = dev.alloc(5), b = dev.alloc(6), c = dev.alloc(6);
    expect(() => matmul(dev!, { a, b, c, batch: 1, m: 2, n: 3, k: 3, transA: false, transB: false, strideA: 6, strideB: 9, strideC: 6 }))
      .toThrow(/a needs 6 elements, has 5/);
    a.free(); b.free(); c.free();
  });
});

describe("webgpu matmul design timing", () => {
  it("times both designs, keeps the faster and caches the choice per adapter and size", async () => {
    if (dev === null) return;
    const r = await timeMatmulDesigns(dev, 64);
    expect(r.ms.tiled).toBeGreaterThan(0);
    expect(r.ms.texture).toBeGreaterThan(0);
    expect(r.choice).toBe(r.ms.texture < r.ms.tiled ? "texture" : "tiled");
    expect(await timeMatmulDesigns(dev, 64)).toBe(r);
  });
});
