// 2-thread scaling of the gemm shapes the pretrain step runs (not a test). For every shape and transpose combination
// it times the gemm at 1 and 2 threads back to back (median of --reps calls; pool arrays, or with --plain ordinary
// Float32Arrays, which the parallel path copies into shared scratch), then
// traces one 2-thread call: per-tile time on the caller vs the worker (and the summed tile time against a traced
// 1-thread call), B/A packing time, the worker's start delay
// after the call began (wake-up), each thread's idle tail, and the tile split.
//
//   npx tsx --conditions=source packages/tensor-core/scripts/gemm-scaling.ts [--reps 30] [--shapes 1024x256x704,...]
// Shapes are m x k x n.

import { acquire, acquireShared, gemm, setThreadCount } from "../src/backend/cpu/index.js";

const argv = process.argv.slice(2);
const opt = (name: string, d: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1]! : d;
};
const reps = Number(opt("reps", "30"));
const shapes = opt("shapes", "1024x256x256,1024x256x704,1024x704x256,1024x256x4096,1024x512x1408,1024x1024x1024")
  .split(",")
  .map((s) => s.split("x").map(Number) as [number, number, number]);
const combos: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];

const plain = argv.includes("--plain");

function filled(n: number, seed: number): Float32Array {
  const a = plain ? new Float32Array(n) : acquire("float32", n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

const now = (): number => performance.timeOrigin + performance.now();

for (const [m, k, n] of shapes) {
  const a = filled(m * k, 1);
  const b = filled(k * n, 2);
  const c = plain ? new Float32Array(m * n) : acquire("float32", m * n);
  const flops = 2 * m * n * k;
  for (const [transA, transB] of combos) {
    const run = (trace?: Float64Array): void =>
      gemm({
        a, b, c, batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, strideC: 0,
        ...(trace === undefined ? {} : { trace }),
      });
    const times: Record<number, number[]> = { 1: [], 2: [] };
    for (let t of [1, 2]) { setThreadCount(t); run(); run(); }
    for (let r = 0; r < reps; r++) {
      for (const t of [1, 2]) {
        setThreadCount(t);
        if (r === 0) run();
        const t0 = performance.now();
        run();
        times[t]!.push(performance.now() - t0);
      }
    }
    // setThreadCount(1) then 2 recreates the pool; time 2 threads again with a warm pool for a fair number.
    setThreadCount(2);
    run(); run();
    const warm2: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      run();
      warm2.push(performance.now() - t0);
    }
    const ms1 = median(times[1]!);
    const ms2 = median(warm2);
    const min1 = Math.min(...times[1]!);
    const min2 = Math.min(...warm2);
    // Summed tile time of a traced 1-thread call (same tiling as 2 threads): when the 2-thread tiles sum to much more,
    // the threads slow each other down (shared cache / memory bandwidth, or another process on the machine).
    setThreadCount(1);
    const trace1 = new Float64Array(new SharedArrayBuffer(8 * 5 * 4096));
    run(trace1);
    let busy1 = 0;
    for (let i = 0; i < 4096 && trace1[i * 5 + 1]! > 0; i++) busy1 += trace1[i * 5 + 3]! - trace1[i * 5 + 1]!;
    setThreadCount(2);
    run(); run();
    const trace = new Float64Array(new SharedArrayBuffer(8 * 5 * 4096));
    const t0 = now();
    run(trace);
    const t1 = now();
    const tiles: { tid: number; s: number; b: number; e: number; ap: number }[] = [];
    for (let i = 0; i < 4096 && trace[i * 5 + 1]! > 0; i++) {
      tiles.push({ tid: trace[i * 5]!, s: trace[i * 5 + 1]! - t0, b: trace[i * 5 + 2]! - t0, e: trace[i * 5 + 3]! - t0, ap: trace[i * 5 + 4]! });
    }
    const byThread = new Map<number, typeof tiles>();
    for (const t of tiles) byThread.set(t.tid, [...(byThread.get(t.tid) ?? []), t]);
    const parts: string[] = [];
    for (const [tid, ts] of byThread) {
      const busy = ts.reduce((s, t) => s + t.e - t.s, 0);
      const bpack = ts.reduce((s, t) => s + t.b - t.s, 0);
      const apack = ts.reduce((s, t) => s + t.ap, 0);
      const first = Math.min(...ts.map((t) => t.s));
      const last = Math.max(...ts.map((t) => t.e));
      parts.push(
        `${tid === 0 ? "caller" : "worker"}: ${ts.length} tiles busy ${busy.toFixed(2)} (Bpack ${bpack.toFixed(2)} ` +
          `Apack ${apack.toFixed(2)}) start ${first.toFixed(2)} end ${last.toFixed(2)}`,
      );
    }
    const total = t1 - t0;
    console.log(
      `${m}x${k}x${n} ${transA ? "T" : "N"}${transB ? "T" : "N"}: 1t ${ms1.toFixed(2)} ms ` +
        `(${(flops / ms1 / 1e6).toFixed(1)} GF/s)  2t ${ms2.toFixed(2)} ms (${(flops / ms2 / 1e6).toFixed(1)} GF/s) ` +
        `x${(ms1 / ms2).toFixed(2)}; best 1t ${(flops / min1 / 1e6).toFixed(1)} 2t ${(flops / min2 / 1e6).toFixed(1)} GF/s [cold-pool 2t ${median(times[2]!).toFixed(2)}]\n    traced 2t call ${total.toFixed(2)} ms, ` +
        `${tiles.length} tiles, tile time ${tiles.reduce((x, t) => x + t.e - t.s, 0).toFixed(2)} ms (1 thread: ` +
        `${busy1.toFixed(2)}); ${parts.join("; ")}`,
    );
  }
  void acquireShared;
}
process.exit(0);
