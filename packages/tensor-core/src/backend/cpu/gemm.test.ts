/** gemm against the naive reference: sizes, transposes, broadcasting, accumulate, dtypes, threads. */
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { acquire } from "./buffer-pool.js";
import { gemm, gemmUsesWasm, splitTiles, type GemmParams } from "./gemm.js";
import { GEMM_LIMITS, createGemmRuntime, type Float, type GemmJob } from "./gemm-runtime.js";
import { maxAbsDiff, refGemm } from "../../testing-internal/reference.js";
import { lastParallelRun, setParallelThreshold, setThreadCount, shutdownPool } from "./worker-pool.js";
import { hasRelaxedSimd } from "./wasm-features.js";
import { instantiate } from "./wasm-instance.js";
import { float16Table } from "../../dtype.js";
import { buildGemmWasm, gemmUsesRelaxedSimd, gemmWasmBytes } from "./wasm-gemm.js";

const SIZES = [1, 3, 7, 17, 33, 65, 129];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function filled(F: Float32ArrayConstructor | Float64ArrayConstructor, n: number, r: () => number, shared = false): Float {
  const arr = shared ? (F === Float32Array ? acquire("float32", n) : acquire("float64", n)) : new F(n);
  for (let i = 0; i < n; i++) arr[i] = r();
  return arr;
}

interface Case {
  m: number; n: number; k: number; batch: number; transA: boolean; transB: boolean;
  bcastA: boolean; bcastB: boolean; accumulate: boolean; alpha: number; f32: boolean; offset: number; gap: number;
}

function makeCase(c: Case, seed: number, shared = false): GemmParams {
  const r = rng(seed);
  const F = c.f32 ? Float32Array : Float64Array;
  const strideA = c.bcastA ? 0 : c.m * c.k;
  const strideB = c.bcastB ? 0 : c.k * c.n;
  const strideC = c.m * c.n + c.gap;
  return {
    a: filled(F, c.offset + Math.max(1, c.bcastA ? 1 : c.batch) * c.m * c.k, r, shared),
    b: filled(F, c.offset + Math.max(1, c.bcastB ? 1 : c.batch) * c.k * c.n, r, shared),
    c: filled(F, c.offset + c.batch * strideC, r, shared),
    batch: c.batch, m: c.m, n: c.n, k: c.k, transA: c.transA, transB: c.transB,
    strideA, strideB, strideC, offsetA: c.offset, offsetB: c.offset, offsetC: c.offset,
    accumulate: c.accumulate, alpha: c.alpha,
  };
}

function tolerance(p: GemmParams): number {
  return p.c instanceof Float32Array ? 2e-6 * (p.k + 4) : 1e-12 * (p.k + 4);
}

function check(p: GemmParams): void {
  const want = refGemm(p);
  gemm(p);
  expect(maxAbsDiff(p.c, want)).toBeLessThanOrEqual(tolerance(p));
}

const caseArb = fc.record({
  m: fc.constantFrom(...SIZES), n: fc.constantFrom(...SIZES), k: fc.constantFrom(0, ...SIZES),
  batch: fc.integer({ min: 1, max: 3 }), transA: fc.boolean(), transB: fc.boolean(),
  bcastA: fc.boolean(), bcastB: fc.boolean(), accumulate: fc.boolean(),
  alpha: fc.constantFrom(1, 0.5, -2), f32: fc.boolean(), offset: fc.constantFrom(0, 5), gap: fc.constantFrom(0, 3),
});

describe("gemm", () => {
  afterAll(() => {
    setThreadCount(1);
    shutdownPool();
  });

  it("uses the WebAssembly SIMD micro-kernel for float32 on Node", () => {
    expect(gemmUsesWasm()).toBe(true);
  });

  it("matches the reference over random shapes, transposes, broadcasts and dtypes (property)", () => {
    setThreadCount(1);
    fc.assert(fc.property(caseArb, fc.integer(), (c, seed) => check(makeCase(c, seed))), {
      seed: 42, numRuns: 120,
    });
  });

  it("matches the reference across block boundaries for every transpose combination", () => {
    setThreadCount(1);
    for (const f32 of [true, false]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          check(makeCase({
            m: 131, n: 521, k: 260, batch: 1, transA, transB, bcastA: false, bcastB: false,
            accumulate: true, alpha: 1, f32, offset: 0, gap: 0,
          }, 7));
        }
      }
    }
  });

  it("handles matrix-vector shapes and k = 0", () => {
    setThreadCount(1);
    for (const [m, n, k] of [[1, 300, 70], [300, 1, 70], [1, 1, 1000]] as const) {
      check(makeCase({ m, n, k, batch: 2, transA: true, transB: false, bcastA: false, bcastB: true,
        accumulate: false, alpha: 1, f32: true, offset: 0, gap: 0 }, 3));
    }
    const p = makeCase({ m: 5, n: 6, k: 0, batch: 2, transA: false, transB: false, bcastA: false, bcastB: false,
      accumulate: false, alpha: 1, f32: true, offset: 0, gap: 0 }, 1);
    gemm(p);
    expect(Array.from(p.c)).toEqual(new Array(60).fill(0));
  });

  it("plain-SIMD and relaxed-SIMD (fused multiply-add) micro-kernels both match the reference", () => {
    expect(gemmUsesRelaxedSimd()).toBe(hasRelaxedSimd());
    for (const fma of hasRelaxedSimd() ? [false, true] : [false]) {
      const rt = createGemmRuntime(buildGemmWasm(4, 8, fma));
      expect(rt.wasm).toBe(true);
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const p = makeCase({ m: 37, n: 45, k: 300, batch: 2, transA, transB, bcastA: false, bcastB: true,
          accumulate: true, alpha: 0.5, f32: true, offset: 1, gap: 2 }, 13);
        const want = refGemm(p);
        let next = 0;
        rt.runTiles({ ...p, offsetA: 1, offsetB: 1, offsetC: 1, accumulate: true, alpha: 0.5 }, () => next++);
        expect(maxAbsDiff(p.c, want)).toBeLessThan(tolerance(p));
      }
    }
  });

  it("the float16 packers (pah / pbh) widen all 65,536 bit patterns exactly as dtype.ts's table, both layouts", () => {
    type Pack = (raw: number, dst: number, pad: number, kc: number, trans: number, ld: number) => void;
    const inst = instantiate<Record<string, Pack>>(buildGemmWasm(4, 8, hasRelaxedSimd()), 16)!;
    const n = 1 << 16, raw = 0, dst = 2 * n + 64;
    inst.ensure(dst + 4 * n + 256);
    new Uint16Array(inst.memory.buffer, raw, n).set(Uint16Array.from({ length: n }, (_, h) => h));
    const table = float16Table();
    // k-major rows (trans 1): with pad = w and ld = w the panel is the raw order
    for (const [name, w] of [["pah", 4], ["pbh", 8]] as const) {
      inst.exports[name]!(raw, dst, w, n / w, 1, w);
      expect(Array.from(new Uint32Array(inst.memory.buffer, dst, n)), name).toEqual(Array.from(table));
    }
    // rows along k (trans 0, the 4 x 4 transposes): pad = 4 rows of ld = n / 4, panel element (p, c) = raw[c ld + p]
    inst.exports["pah"]!(raw, dst, 4, n / 4, 0, n / 4);
    const out = new Uint32Array(inst.memory.buffer, dst, n);
    const want = Array.from({ length: n }, (_, i) => table[(i % 4) * (n / 4) + Math.floor(i / 4)]!);
    expect(Array.from(out)).toEqual(want);
  });

  it("JavaScript float32 fallback (no wasm) matches the reference", () => {
    const rt = createGemmRuntime(null);
    expect(rt.wasm).toBe(false);
    const p = makeCase({ m: 70, n: 33, k: 300, batch: 2, transA: true, transB: true, bcastA: false, bcastB: false,
      accumulate: true, alpha: 0.5, f32: true, offset: 2, gap: 1 }, 9);
    const want = refGemm(p);
    let next = 0;
    rt.runTiles({ ...p, offsetA: 2, offsetB: 2, offsetC: 2, accumulate: true, alpha: 0.5 }, () => next++);
    expect(maxAbsDiff(p.c, want)).toBeLessThan(1e-4);
  });

  it("is bit-identical with 1, 2 and 4 threads (shared and non-shared operands)", () => {
    for (const f32 of [true, false]) {
      for (const shared of [false, true]) {
        for (const c of [
          { m: 300, n: 200, k: 270, batch: 1, transA: false, transB: true, bcastA: false, bcastB: false },
          { m: 65, n: 129, k: 33, batch: 5, transA: true, transB: false, bcastA: false, bcastB: true },
        ]) {
          const base = { ...c, accumulate: true, alpha: 0.75, f32, offset: 3, gap: 2 };
          setThreadCount(1);
          const p1 = makeCase(base, 11, shared);
          gemm(p1);
          for (const threads of [2, 4]) {
            setThreadCount(threads);
            setParallelThreshold(0);
            const p2 = makeCase(base, 11, shared);
            gemm(p2);
            expect(Array.from(p2.c), `${threads} threads`).toEqual(Array.from(p1.c));
            expect(maxAbsDiff(p2.c, refGemm(makeCase(base, 11)))).toBeLessThan(tolerance(p2));
            const run = lastParallelRun();
            expect(run?.kind).toBe("gemm");
            expect(run?.helpers).toBe(threads - 1);
          }
        }
      }
    }
    setThreadCount(1);
  });

  it("really spreads tiles over the worker", () => {
    setThreadCount(2);
    setParallelThreshold(0);
    const p = makeCase({ m: 512, n: 512, k: 512, batch: 1, transA: false, transB: false, bcastA: false,
      bcastB: false, accumulate: false, alpha: 1, f32: true, offset: 0, gap: 0 }, 5, true);
    let helped = false;
    for (let i = 0; i < 20 && !helped; i++) {
      gemm(p);
      const run = lastParallelRun();
      helped = run !== null && run.localItems < run.items;
    }
    expect(helped).toBe(true);
    setThreadCount(1);
  });

  /** The case's result (as numbers) for each tile size of `tile` (undefined: the runtime's default). */
  function resultsPerTile(rt: ReturnType<typeof createGemmRuntime>, c: Case, seed: number,
    tile: "tileM" | "tileN", sizes: ReadonlyArray<number | undefined>): number[][] {
    return sizes.map((size) => {
      const p = makeCase(c, seed);
      const job = { ...p, offsetA: 0, offsetB: 0, offsetC: 0, accumulate: false, alpha: 1, ...(size ? { [tile]: size } : {}) };
      let next = 0;
      rt.runTiles(job, () => next++);
      return Array.from(p.c);
    });
  }

  it("tile height does not change the result (bits)", () => {
    const rt = createGemmRuntime(null);
    const c = { m: 150, n: 40, k: 300, batch: 1, transA: false, transB: true, bcastA: false, bcastB: false,
      accumulate: false, alpha: 1, f32: true, offset: 0, gap: 0 };
    const results = resultsPerTile(rt, c, 21, "tileM", [undefined, 16, 52]);
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });

  it("tile width does not change the result (bits), wasm and JavaScript, every transpose combination", () => {
    for (const rt of [createGemmRuntime(gemmWasmBytes()), createGemmRuntime(null)]) {
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const c = { m: 40, n: 704, k: 300, batch: 1, transA, transB, bcastA: false, bcastB: false,
          accumulate: false, alpha: 1, f32: true, offset: 0, gap: 0 };
        const results = resultsPerTile(rt, c, 23, "tileN", [undefined, 352, 120]);
        expect(results[1]).toEqual(results[0]);
        expect(results[2]).toEqual(results[0]);
      }
    }
  });

  it("is bit-identical with 1, 2 and 4 threads when n is cut into equal column blocks (n > 512)", () => {
    const base = { m: 36, n: 704, k: 270, batch: 1, transA: true, transB: true, bcastA: false, bcastB: false,
      accumulate: false, alpha: 1, f32: true, offset: 0, gap: 0 };
    setThreadCount(1);
    const p1 = makeCase(base, 31, true);
    gemm(p1);
    for (const threads of [2, 4]) {
      setThreadCount(threads);
      setParallelThreshold(0);
      const p2 = makeCase(base, 31, true);
      gemm(p2);
      expect(lastParallelRun()?.items).toBeGreaterThan(1);
      expect(Array.from(p2.c), `${threads} threads`).toEqual(Array.from(p1.c));
    }
    setThreadCount(1);
  });

  /** BF16 bit patterns of f's values (truncated; every pattern is a valid BF16) and their exact float32 widening. */
  function bf16Of(f: Float32Array, shared: boolean): [Uint16Array, Float32Array] {
    const hi = new Uint16Array(shared ? new SharedArrayBuffer(2 * f.length) : new ArrayBuffer(2 * f.length));
    const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
    for (let i = 0; i < f.length; i++) hi[i] = bits[i]! >>> 16;
    const wide = new Float32Array(f.length);
    const wideBits = new Uint32Array(wide.buffer);
    for (let i = 0; i < f.length; i++) wideBits[i] = hi[i]! << 16;
    return [hi, wide];
  }

  it("BF16 (Uint16Array) A and / or B operands give the bits of the float32 gemm of their widening, 1 and 2 threads", () => {
    const shapes = [
      { m: 131, n: 521, k: 260, batch: 1, bcastA: false, bcastB: false },
      { m: 37, n: 45, k: 300, batch: 3, bcastA: false, bcastB: true },
      { m: 1, n: 300, k: 70, batch: 1, bcastA: false, bcastB: false },
    ];
    for (const threads of [1, 2]) {
      setThreadCount(threads);
      setParallelThreshold(0);
      for (const shared of [false, true]) {
        for (const s of shapes) {
          for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
            for (const which of ["a", "b", "ab"] as const) {
              const c: Case = { ...s, transA, transB, accumulate: true, alpha: 0.5, f32: true, offset: 3, gap: 2 };
              const p = makeCase(c, 17);
              const [aHi, aWide] = bf16Of(p.a as Float32Array, shared);
              const [bHi, bWide] = bf16Of(p.b as Float32Array, shared);
              const want = { ...p, a: which === "b" ? p.a : aWide, b: which === "a" ? p.b : bWide, c: Float32Array.from(p.c) };
              gemm(want);
              gemm({ ...p, a: which === "b" ? p.a : aHi, b: which === "a" ? p.b : bHi });
              expect(Array.from(p.c), `${threads} threads, ${which}, ${JSON.stringify(s)} ${transA} ${transB}`).toEqual(Array.from(want.c));
            }
          }
        }
      }
    }
    setThreadCount(1);
  });

  it("splits a parallel job into at least one tile per thread, cutting columns first only for small m with B stored [n, k]", () => {
    const split = (m: number, n: number, transB: boolean, threads = 2) => {
      const job: GemmJob = { ...makeCase({ m: 1, n: 1, k: 1, batch: 1, transA: false, transB, bcastA: false, bcastB: false, accumulate: false, alpha: 1, f32: true, offset: 0, gap: 0 }, 1), m, n, offsetA: 0, offsetB: 0, offsetC: 0, accumulate: false, alpha: 1 };
      splitTiles(job, threads);
      const rt = createGemmRuntime(null);
      // items as on the pool: one column-block group per thread, each group's last row tile cut (GemmJob.tail)
      const pool = rt.tileCount({ ...job, split: new Int32Array(threads + 1) });
      return { tileM: job.tileM, tileN: job.tileN, tiles: rt.tileCount({ ...job, tail: 0 }), tail: job.tail, pool };
    };
    // equal column blocks, 5 a thread; the last row tile of each thread's group cut 128 = 64 + 32 + 32 rows
    expect(split(1024, 4864, true)).toEqual({ tileM: 128, tileN: 488, tiles: 80, tail: 32, pool: 84 });
    // 7 row blocks made 8; one column block, in the second thread's group (the first's is empty): 112 = 56 + 32 + 24
    expect(split(896, 448, false)).toEqual({ tileM: 112, tileN: 448, tiles: 8, tail: 32, pool: 10 });
    expect(split(55, 448, false)).toEqual({ tileM: 28, tileN: 448, tiles: 2, tail: 32, pool: 2 }); // rows: B [k, n] keeps whole rows; too short to cut
    expect(split(55, 448, true)).toEqual({ tileM: 56, tileN: 224, tiles: 2, tail: 32, pool: 2 }); // columns: B [n, k]
    expect(split(256, 151936, true).tiles).toBe(594);
    expect(split(7, 9, false, 4).tiles).toBe(1); // nothing left to cut
  });

  it("guided tail (GemmJob.tail): every element of C is computed exactly once, by items that shrink at the end of each group, same bits", () => {
    const bytes = gemmWasmBytes();
    const runtimes = [createGemmRuntime(bytes), createGemmRuntime(null)];
    // [case, tileM, tileN, tail, groups, items (tiles + tail pieces), row heights of the last group's last items]
    const cases: [Partial<Case>, number, number, number, number, number, number[]][] = [
      [{ m: 3, n: 5 }, 4, 8, 4, 1, 1, [3]], // m < MR, n < NR: one tile, too short to cut
      [{ m: 40, n: 5 }, 128, 8, 8, 1, 3, [20, 12, 8]], // a single tile, cut; n < NR
      [{ m: 40, n: 5 }, 128, 8, 8, 2, 3, [20, 12, 8]], // one column block: group 0 empty
      [{ m: 125, n: 33 }, 64, 16, 8, 1, 3 * 2 - 1 + 4, [64, 32, 16, 8, 5]], // m not a multiple of the tile
      [{ m: 125, n: 33 }, 64, 16, 8, 2, 3 * 2 + 2 * 3, [64, 32, 16, 8, 5]], // 3 column blocks in 2 groups
      [{ m: 125, n: 33 }, 64, 16, 8, 3, 3 * 2 + 3 * 3, [64, 32, 16, 8, 5]],
      [{ m: 70, n: 33, batch: 3 }, 64, 16, 8, 2, 9 * 2, [64, 6]], // batch > 1; last tile 6 rows: not cut
      [{ m: 128, n: 9, batch: 2, bcastB: true }, 128, 8, 32, 2, 4 + 2 * 2, [64, 32, 32]], // 4 panels, 2 groups
    ];
    for (const [partial, tileM, tileN, tail, groups, items, lastRows] of cases) {
      for (const [transA, transB] of [[false, false], [true, true]] as const) {
        for (const rt of runtimes) {
          const f32 = rt === runtimes[0];
          const c: Case = { m: 1, n: 1, k: 70, batch: 1, transA, transB, bcastA: false, bcastB: false, accumulate: true, alpha: 0.5, f32, offset: 1, gap: 2, ...partial };
          const label = `${JSON.stringify(partial)} tileM ${tileM} tail ${tail} groups ${groups} ${transA} ${f32 ? "f32" : "f64"}`;
          const serial = makeCase(c, 41);
          let next = 0;
          rt.runTiles({ ...serial, offsetA: 1, offsetB: 1, offsetC: 1, accumulate: true, alpha: 0.5 }, () => next++);
          const p = makeCase(c, 41);
          const job: GemmJob = { ...p, offsetA: 1, offsetB: 1, offsetC: 1, accumulate: true, alpha: 0.5, tileM, tileN, tail, split: new Int32Array(groups + 1) };
          expect(rt.tileCount(job), label).toBe(items);
          // `groups` threads one after the other on one claim counter, each stopping after a few claims, the last
          // running what is left: accumulating, an item run twice or never would change C
          const trace = new Float64Array(items * 5).fill(-1);
          let claimed = 0;
          for (let th = 0; th < groups; th++) {
            const limit = th === groups - 1 ? items : claimed + 1 + th;
            rt.runTiles({ ...job, trace }, () => (claimed < limit ? claimed++ : items));
          }
          for (let t = 0; t < items; t++) expect(trace[t * 5 + 1], `${label} item ${t}`).toBeGreaterThan(0);
          expect(Array.from(p.c), label).toEqual(Array.from(serial.c));
          expect(maxAbsDiff(p.c, refGemm({ ...makeCase(c, 41) })), label).toBeLessThan(tolerance(p));
          // the last items' heights (one group: items in claim order), each run alone into a NaN C: the rows it wrote
          const one: GemmJob = { ...job, accumulate: false, split: new Int32Array(2) };
          const count = rt.tileCount(one);
          const heights = lastRows.map((_, i) => {
            const out = one.c.fill(NaN);
            let claims = 0;
            rt.runTiles({ ...one, split: Int32Array.of(0, count - lastRows.length + i) }, () => (claims++ === 0 ? 0 : count));
            const rows = new Set<number>();
            for (let bi = 0; bi < c.batch; bi++) {
              for (let r = 0; r < c.m; r++) {
                for (let j = 0; j < c.n; j++) if (!Number.isNaN(out[1 + bi * p.strideC + r * c.n + j]!)) rows.add(r);
              }
            }
            return rows.size;
          });
          expect(heights, label).toEqual(lastRows);
        }
      }
    }
  });

  it("every packing strategy (whole-block or per-row raw copies, B packed per slice or for all of k, A packed per tile or once for all tiles) gives the same bits, float32 and BF16, serial and on the pool", () => {
    const bytes = gemmWasmBytes();
    const runtimes = [
      createGemmRuntime(bytes),
      createGemmRuntime(bytes, { wholeMax: 0, bAllMax: 0, aAllMax: 0, aTransMax: 0 }), // per-row copies, B packed per slice
      createGemmRuntime(bytes, { wholeMax: 1e9, bAllMax: 1e9, aAllMax: 1e9, aTransMax: 1e9 }), // whole blocks, B for all of k, A once
      createGemmRuntime(bytes, { wholeMax: 1e9, bAllMax: 0, aAllMax: 0, aTransMax: 1e9 }), // all of A raw, packed per tile
    ];
    expect(GEMM_LIMITS.wholeMax).toBeGreaterThan(0);
    expect(GEMM_LIMITS.aAllMax).toBeGreaterThan(0);
    setThreadCount(2);
    setParallelThreshold(0);
    // [130, 520, 40]: A packed once serves 2 row tiles x 2 column blocks (and the pool's split of them)
    for (const [m, n, k] of [[131, 45, 701], [9, 530, 300], [130, 520, 40]] as const) {
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        for (const which of ["", "a", "b"] as const) {
          const c: Case = { m, n, k, batch: 2, transA, transB, bcastA: false, bcastB: true, accumulate: true, alpha: 0.5, f32: true, offset: 1, gap: 2 };
          const p = makeCase(c, 29);
          const a = which === "a" ? bf16Of(p.a as Float32Array, false)[0] : p.a;
          const b = which === "b" ? bf16Of(p.b as Float32Array, false)[0] : p.b;
          const want = refGemm({ ...p, a: which === "a" ? bf16Of(p.a as Float32Array, false)[1] : p.a, b: which === "b" ? bf16Of(p.b as Float32Array, false)[1] : p.b, c: Float32Array.from(p.c) });
          const results = runtimes.map((rt) => {
            const out = Float32Array.from(p.c);
            let next = 0;
            rt.runTiles({ ...p, a, b, c: out, offsetA: 1, offsetB: 1, offsetC: 1, accumulate: true, alpha: 0.5 }, () => next++);
            return Array.from(out);
          });
          // the pool's threads run the default limits on their own split of the tiles
          const pooled = Float32Array.from(p.c);
          gemm({ ...p, a, b, c: pooled, offsetA: 1, offsetB: 1, offsetC: 1, accumulate: true, alpha: 0.5 });
          expect(lastParallelRun()?.items).toBeGreaterThan(1);
          results.push(Array.from(pooled));
          const label = `${m}x${n}x${k} ${transA} ${transB} bf16 ${which || "-"}`;
          for (const r of results.slice(1)) expect(r, label).toEqual(results[0]);
          expect(maxAbsDiff(Float32Array.from(results[0]!), want), label).toBeLessThan(tolerance(p));
        }
      }
    }
    setThreadCount(1);
  });

  it("column-block affinity (GemmJob.split): each thread takes its own group's tiles first, then the next group's, same bits", () => {
    // 5 row tiles x 3 column blocks; 2 groups: panels [0, 1) = tiles 0-4 and [1, 3) = tiles 5-14
    const c: Case = { m: 40, n: 48, k: 300, batch: 1, transA: true, transB: false, bcastA: false, bcastB: false, accumulate: false, alpha: 1, f32: true, offset: 0, gap: 0 };
    const serial = makeCase(c, 37);
    const rt = createGemmRuntime(gemmWasmBytes());
    const tiled = { offsetA: 0, offsetB: 0, offsetC: 0, accumulate: false, alpha: 1, tileM: 8, tileN: 16 };
    let next = 0;
    rt.runTiles({ ...serial, ...tiled }, () => next++);
    const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
    // "threads" one after the other on one claim counter, each stopping at its claim limit: [limits, tiles each ran]
    const scenarios: [number[], number[][]][] = [
      // the first stops at once (home group 0), the second's home is group 1, the third's group 0, then group 1's rest
      [[0, 5, 15], [[], range(5, 10), [...range(0, 5), ...range(10, 15)]]],
      // the first runs its group, then steals the front of group 1; the second runs what is left of its home
      [[8, 15], [range(0, 8), range(8, 15)]],
    ];
    for (const [limits, tiles] of scenarios) {
      const p = makeCase(c, 37);
      const job: GemmJob = { ...p, ...tiled, split: new Int32Array(new SharedArrayBuffer(12)) };
      expect(rt.tileCount(job)).toBe(15);
      let claimed = 0;
      const ran: number[][] = [];
      for (const limit of limits) {
        const trace = new Float64Array(15 * 5);
        rt.runTiles({ ...job, trace }, () => (claimed < limit ? claimed++ : 15));
        ran.push(range(0, 15).filter((t) => trace[t * 5 + 1]! > 0));
      }
      expect(ran).toEqual(tiles);
      expect(Array.from(p.c)).toEqual(Array.from(serial.c));
    }
  });

  it("refuses BF16 operands with a float64 C or without the WebAssembly packers", () => {
    const a = new Uint16Array(6), b = new Float32Array(6);
    const base = { a, b, c: new Float32Array(4), batch: 1, m: 2, n: 2, k: 3, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 };
    expect(() => gemm({ ...base, b: new Float64Array(6), c: new Float64Array(4) })).toThrow(/BF16 Uint16Array with a Float32Array c/);
    const rt = createGemmRuntime(null);
    let next = 0;
    const job = { ...base, offsetA: 0, offsetB: 0, offsetC: 0, accumulate: false, alpha: 1 };
    expect(() => rt.runTiles(job, () => next++)).toThrow(/need a float32 C and the WebAssembly packers/);
  });

  it("rejects mismatched dtypes, short arrays and overlapping output", () => {
    const a = new Float32Array(6), b = new Float32Array(6), c = new Float32Array(4);
    const base = { a, b, c, batch: 1, m: 2, n: 2, k: 3, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 };
    expect(() => gemm({ ...base, b: new Float64Array(6) })).toThrow(/all be Float32Array/);
    expect(() => gemm({ ...base, c: new Float32Array(3) })).toThrow(/c needs 4 elements/);
    expect(() => gemm({ ...base, c: a.subarray(0, 4) })).toThrow(/must not overlap/);
    expect(() => gemm({ ...base, m: -1 })).toThrow(/m must be a non-negative integer/);
  });
});
