// The WebGPU device's buffer pool and batching: buffers are reused by size class, the pool keeps no more than its
// limit, a buffer freed while the open batch may still read it is not handed to an upload before that batch is
// submitted (queue.writeBuffer runs ahead of unsubmitted commands), and device errors surface at the next read.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebGpuDevice } from "./device.js";
import { unary } from "./elementwise.js";
import { webgpuRequired } from "./test-device.js";

let dev: WebGpuDevice | null = null;
beforeAll(async () => {
  try {
    dev = await WebGpuDevice.create({ poolLimitBytes: 64 * 1024 });
  } catch (e) {
    if (webgpuRequired) throw e;
    console.warn(`webgpu device tests skipped (set LRC_WEBGPU_TEST=1 to require them): ${e instanceof Error ? e.message : String(e)}`);
  }
});
afterAll(async () => {
  await dev?.destroy();
});

describe("webgpu device", () => {
  it("names the adapter and classifies it", () => {
    if (dev === null) return;
    expect(dev.adapter.name.length).toBeGreaterThan(0);
    if (/llvmpipe|lavapipe/i.test(dev.adapter.name)) expect(dev.adapter.software).toBe(true);
  });

  it("an upload never lands in a buffer that the open batch still reads", async () => {
    if (dev === null) return;
    const x = Float32Array.from({ length: 300 }, (_, i) => i), y = new Float32Array(300).fill(-1);
    const a = dev.upload(x), out = dev.alloc(300);
    unary(dev, "copy", a, out, 300); // recorded, not submitted
    a.free();
    const b = dev.upload(y); // same size class as a: must not get a's buffer yet
    expect(Array.from(await dev.read(out))).toEqual(Array.from(x));
    expect(Array.from(await dev.read(b))).toEqual(Array.from(y));
    out.free(); b.free();
  });

  it("reuses freed buffers by size class and keeps at most its limit of free ones", async () => {
    if (dev === null) return;
    await dev.finish();
    const created = dev.stats.buffersCreated;
    for (let step = 0; step < 50; step++) {
      const a = dev.upload(new Float32Array(1000).fill(step)), o = dev.alloc(1000);
      unary(dev, "neg", a, o, 1000);
      a.free(); o.free();
      dev.flush(); // submits the batch: its freed buffers go back to the pool
    }
    // 1000 floats -> the 4096-byte class: the first step's two buffers and its uniform, then only reuse.
    expect(dev.stats.buffersCreated - created).toBeLessThanOrEqual(3);
    const many = Array.from({ length: 40 }, () => dev!.alloc(1000));
    for (const b of many) b.free();
    await dev.finish();
    expect(dev.stats.pooledBytes).toBeLessThanOrEqual(64 * 1024);
    expect(dev.stats.liveBuffers).toBe(0);
  });

  it("a device error surfaces at the next read, once", async () => {
    if (dev === null) return;
    dev.dispatch({ source: "this is not WGSL", bindings: [], groups: [1] });
    const b = dev.upload(new Float32Array(4));
    await expect(dev.read(b)).rejects.toThrow(/WebGPU backend: GPUValidationError/);
    expect(Array.from(await dev.read(b))).toEqual([0, 0, 0, 0]);
    b.free();
  });

  it("rejects reads past a buffer's end and reads of freed buffers", async () => {
    if (dev === null) return;
    const b = dev.alloc(4);
    await expect(dev.read(b, 5)).rejects.toThrow(/read of \[0, 5\) from a buffer of 4/);
    b.free();
    await expect(dev.read(b)).rejects.toThrow(/read of a freed buffer/);
  });
});
