/** Buffer pool: bucketing, reuse, zeroing, sharing, limits (sized from the machine) and double release. */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  SHARED_MIN_BYTES, acquire, acquireShared, acquireZeroed, bufferPoolStats, cgroupMemoryLimit, clearBufferPool, isShared, memoryLimit,
  parsePoolLimit, release, setBufferPoolLimit,
} from "./buffer-pool.js";

/** This machine's memory as the pool sees it (a cgroup limit where one is set). */
const memory = memoryLimit()!.bytes;

describe("buffer pool limit", () => {
  /** The default limit of a fresh process with the given LRC_POOL_LIMIT (undefined: unset). */
  const limitIn = (env: string | undefined): string => {
    const vars = { ...process.env };
    delete vars.LRC_POOL_LIMIT;
    if (env !== undefined) vars.LRC_POOL_LIMIT = env;
    const code = `import("${new URL("./buffer-pool.ts", import.meta.url).pathname}").then((m) => console.log(m.bufferPoolStats().limitBytes), (e) => console.log("error: " + e.message))`;
    return execFileSync(process.execPath, ["--import", "tsx", "-e", code], { env: vars, encoding: "utf8" }).trim();
  };

  it("defaults to half the memory, or LRC_POOL_LIMIT", () => {
    expect(Number(limitIn(undefined))).toBe(Math.floor(memory / 2));
    expect(Number(limitIn("3GB"))).toBe(3e9);
    expect(Number(limitIn("10%"))).toBe(Math.floor(memory / 10));
    expect(limitIn("lots")).toMatch(/^error: LRC_POOL_LIMIT: expects a size such as 6GB, 512MiB, 30% \(of the memory\) or a byte count, got 'lots'$/);
  }, 60_000);

  it("parses byte counts, decimal and binary units and percentages", () => {
    expect(parsePoolLimit("1234", "x")).toBe(1234);
    expect(parsePoolLimit("0", "x")).toBe(0);
    expect(parsePoolLimit("1.5GB", "x")).toBe(1.5e9);
    expect(parsePoolLimit("512MiB", "x")).toBe(512 * 2 ** 20);
    expect(parsePoolLimit(" 2 gib ", "x")).toBe(2 * 2 ** 30);
    expect(parsePoolLimit("64KB", "x")).toBe(64e3);
    expect(parsePoolLimit("50%", "x")).toBe(Math.floor(memory / 2));
    for (const bad of ["", "-1GB", "1TB", "GB", "1e9", "5 %%"]) expect(() => parsePoolLimit(bad, "--pool-limit"), bad).toThrow(/^--pool-limit: expects a size/);
  });

  describe("the memory: a container's cgroup limit when one is set", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-cgroup-"));
    afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
    /** A fake cgroup mount holding the given files. */
    const cgroup = (files: Record<string, string>): string => {
      const dir = fs.mkdtempSync(path.join(root, "cg-"));
      for (const [name, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), text);
      }
      return dir;
    };
    const GiB = 2 ** 30;

    it("reads cgroup v2's memory.max, else v1's memory/memory.limit_in_bytes; 'max' or no file is no limit", () => {
      const v2 = cgroup({ "memory.max": "8589934592\n" });
      expect(cgroupMemoryLimit(v2)).toEqual({ bytes: 8 * GiB, file: `${v2}/memory.max` });
      expect(cgroupMemoryLimit(cgroup({ "memory.max": "max\n" }))).toBeNull();
      const v1 = cgroup({ "memory/memory.limit_in_bytes": "4294967296\n" });
      expect(cgroupMemoryLimit(v1)).toEqual({ bytes: 4 * GiB, file: `${v1}/memory/memory.limit_in_bytes` });
      expect(cgroupMemoryLimit(cgroup({}))).toBeNull();
      expect(cgroupMemoryLimit(cgroup({ "memory.max": "lots" }))).toBeNull();
    });

    it("takes the cgroup limit when it is below the machine's memory, and says which it took", () => {
      const total = 24 * GiB;
      expect(memoryLimit({ cgroupRoot: cgroup({ "memory.max": String(6 * GiB) }), totalBytes: total })).toEqual({
        bytes: 6 * GiB, source: expect.stringMatching(/^the cgroup memory limit \(.*memory\.max\)$/),
      });
      // v1 without a limit writes about 2^63: the machine's memory then
      const none = { bytes: total, source: "the machine's memory (os.totalmem())" };
      expect(memoryLimit({ cgroupRoot: cgroup({ "memory/memory.limit_in_bytes": "9223372036854771712" }), totalBytes: total })).toEqual(none);
      expect(memoryLimit({ cgroupRoot: cgroup({ "memory.max": "max" }), totalBytes: total })).toEqual(none);
      expect(memoryLimit({ cgroupRoot: cgroup({}), totalBytes: null })).toBeNull();
    });
  });
});

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
