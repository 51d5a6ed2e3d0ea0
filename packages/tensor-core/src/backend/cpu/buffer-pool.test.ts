/** Buffer pool: bucketing, reuse, zeroing, sharing, limits and double release. */
import { afterEach, describe, expect, it } from "vitest";
import {
  SHARED_MIN_BYTES, acquire, acquireShared, acquireZeroed, bufferPoolStats, clearBufferPool, isShared, release, setBufferPoolLimit,
} from "./buffer-pool.js";

describe("buffer pool", () => {
  afterEach(() => {
    clearBufferPool();
    setBufferPoolLimit(512 * 1024 * 1024);
  });

  it("returns views of the requested length and dtype over power-of-two buffers", () => {
    const a = acquire("float32", 100);
    const b = acquire("float64", 3);
    const c = acquire("int32", 0);
    expect(a).toBeInstanceOf(Float32Array);
    expect(a.length).toBe(100);
    expect(a.buffer.byteLength).toBe(512);
    expect(b).toBeInstanceOf(Float64Array);
    expect(b.buffer.byteLength).toBe(64);
    expect(c).toBeInstanceOf(Int32Array);
    expect(c.length).toBe(0);
  });

  it("reuses a released buffer of the same bucket, and acquireZeroed clears it", () => {
    const a = acquire("float32", 1000);
    a.fill(7);
    expect(release(a)).toBe(true);
    expect(bufferPoolStats().cachedBytes).toBe(4096);
    const b = acquire("int32", 900);
    expect(b.buffer).toBe(a.buffer);
    release(b);
    const z = acquireZeroed("float32", 1000);
    expect(z.buffer).toBe(a.buffer);
    expect(z.every((v) => v === 0)).toBe(true);
  });

  it("shares large buffers only", () => {
    expect(isShared(acquire("float32", SHARED_MIN_BYTES / 4))).toBe(true);
    expect(isShared(acquire("float32", 16))).toBe(false);
    const small = acquireShared("float64", 3);
    expect(isShared(small)).toBe(true);
    release(small);
    expect(acquireShared("float32", 5).buffer).toBe(small.buffer);
    expect(isShared(acquire("float32", 5))).toBe(false);
  });

  it("ignores foreign arrays, throws on double release, honours the cache limit", () => {
    expect(release(new Float32Array(4))).toBe(false);
    const a = acquire("float64", 8);
    release(a);
    expect(() => release(a)).toThrow(/twice/);
    setBufferPoolLimit(100);
    const big = acquire("float32", 1000);
    expect(release(big)).toBe(true);
    expect(bufferPoolStats().cachedBytes).toBe(64);
    expect(acquire("float32", 1000).buffer).not.toBe(big.buffer);
  });

  it("reuse is much cheaper than a fresh 16 MB allocation", () => {
    const n = 4 * 1024 * 1024;
    let t = performance.now();
    const a = acquire("float32", n);
    a.fill(1);
    const fresh = performance.now() - t;
    release(a);
    t = performance.now();
    const b = acquire("float32", n);
    const reuse = performance.now() - t;
    expect(b.buffer).toBe(a.buffer);
    expect(reuse).toBeLessThan(Math.max(1, fresh));
  });
});
