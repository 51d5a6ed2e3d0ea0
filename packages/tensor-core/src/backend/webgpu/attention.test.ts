// Flash-style causal GQA attention on WebGPU against the cpu kernels (float64 inputs): GQA groups, T longer
// than one 64-row workgroup and than one key tile, a KV-cache offset, and dh = 8 and 64 (each dh compiles its own kernels, which costs seconds on lavapipe).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attentionBackward as cpuBackward, attentionForward as cpuForward } from "../cpu/attention.js";
import { maxAbsDiff } from "../../testing-internal/reference.js";
import type { WebGpuDevice } from "./device.js";
import { attentionBackward, attentionForward } from "./attention.js";
import { randomArray, testDevice } from "./test-device.js";

let dev: WebGpuDevice | null = null;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(async () => {
  await dev?.destroy();
});

describe("webgpu attention", () => {
  it.each([
    [2, 4, 2, 70, 0, 8],
    [1, 2, 1, 5, 3, 64],
    [1, 3, 3, 33, 0, 8],
  ])("B %i, H %i, Hkv %i, T %i, offset %i, dh %i: forward and backward match cpu", async (B, H, Hkv, T, offset, dh) => {
    if (dev === null) return;
    const S = offset + T, scale = 1 / Math.sqrt(dh);
    const q = randomArray(B * H * T * dh, 1), k = randomArray(B * Hkv * S * dh, 2), v = randomArray(B * Hkv * S * dh, 3);
    const dout = randomArray(B * H * T * dh, 4);
    const F = (a: Float32Array): Float64Array => Float64Array.from(a);
    const shape = { B, H, Hkv, T, S, dh, scale, offset };
    const out = new Float64Array(B * H * T * dh), lse = new Float64Array(B * H * T);
    cpuForward({ q: F(q), k: F(k), v: F(v), out, lse, ...shape });
    const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
    cpuBackward({ q: F(q), k: F(k), v: F(v), out, lse, dout: F(dout), dq, dk, dv, ...shape });

    const [gq, gk, gv, gdo] = [dev.upload(q), dev.upload(k), dev.upload(v), dev.upload(dout)];
    const [gout, glse, gdq, gdk, gdv] = [dev.alloc(out.length), dev.alloc(lse.length), dev.alloc(q.length), dev.alloc(k.length), dev.alloc(v.length)];
    attentionForward(dev, { q: gq, k: gk, v: gv, out: gout, lse: glse, ...shape });
    attentionBackward(dev, { q: gq, k: gk, v: gv, out: gout, lse: glse, dout: gdo, dq: gdq, dk: gdk, dv: gdv, ...shape });
    expect(maxAbsDiff(await dev.read(gout), out)).toBeLessThan(1e-5);
    expect(maxAbsDiff(await dev.read(glse), lse)).toBeLessThan(1e-5);
    expect(maxAbsDiff(await dev.read(gdq), dq)).toBeLessThan(1e-4);
    expect(maxAbsDiff(await dev.read(gdk), dk)).toBeLessThan(1e-4);
    expect(maxAbsDiff(await dev.read(gdv), dv)).toBeLessThan(1e-4);
    for (const b of [gq, gk, gv, gdo, gout, glse, gdq, gdk, gdv]) b.free();
  });

  it("rejects shapes that do not add up, naming the field", () => {
    if (dev === null) return;
    const b = dev.alloc(64);
    const p = { q: b, k: b, v: b, out: b, lse: b, B: 1, H: 3, Hkv: 2, T: 2, S: 2, dh: 4, scale: 1, offset: 0 };
    expect(() => attentionForward(dev!, p)).toThrow(/H 3 is not a multiple of Hkv 2/);
    expect(() => attentionForward(dev!, { ...p, H: 2, S: 1 })).toThrow(/offset 0 \+ T 2 is more than S 1 keys/);
    b.free();
  });
});
