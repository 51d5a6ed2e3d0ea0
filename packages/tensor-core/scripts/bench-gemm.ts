/**
 * Quick speed report for the cpu kernels (not a test): GFLOP/s of 1024^3 gemm for the four transpose combinations
 * with 1 and 2 threads, the parallel break-even for square gemms, attention forward + backward, rmsNorm and
 * softmax cross-entropy rows. Run: npx tsx --conditions=source packages/tensor-core/scripts/bench-gemm.ts
 */
import {
  acquire, attentionBackward, attentionForward, crossEntropyBackward, crossEntropyForward, gemm, gemmUsesWasm,
  getThreadCount, rmsNormBackward, rmsNormForward, setParallelThreshold, setThreadCount,
} from "../src/backend/cpu/index.js";

function fill(arr: Float32Array, seed: number): Float32Array {
  let s = seed >>> 0;
  for (let i = 0; i < arr.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    arr[i] = s / 2 ** 32 - 0.5;
  }
  return arr;
}

/** Best process CPU milliseconds of the last `time` call (meaningful for 1-thread runs on a busy machine). */
let lastCpuMs = 0;

/** Best-of-`reps` wall milliseconds after `warm` warm-up calls. */
function time(fn: () => void, reps = 5, warm = 2): number {
  for (let i = 0; i < warm; i++) fn();
  let best = Infinity;
  lastCpuMs = Infinity;
  for (let i = 0; i < reps; i++) {
    const cpu = process.cpuUsage();
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
    const used = process.cpuUsage(cpu);
    lastCpuMs = Math.min(lastCpuMs, (used.user + used.system) / 1000);
  }
  return best;
}

const maxThreads = getThreadCount();
console.log(`wasm simd: ${gemmUsesWasm()}, threads available: ${maxThreads}`);

const N = 1024;
const a = fill(acquire("float32", N * N), 1);
const b = fill(acquire("float32", N * N), 2);
const c = acquire("float32", N * N);
for (const threads of [1, Math.max(2, maxThreads)]) {
  setThreadCount(threads);
  const row: string[] = [];
  const cpuRow: string[] = [];
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const ms = time(() => gemm({ a, b, c, batch: 1, m: N, n: N, k: N, transA, transB, strideA: 0, strideB: 0, strideC: 0 }));
    const name = `${transA ? "T" : "N"}${transB ? "T" : "N"}`;
    row.push(`${name} ${((2 * N ** 3) / ms / 1e6).toFixed(1)}`);
    cpuRow.push(`${name} ${((2 * N ** 3) / lastCpuMs / 1e6).toFixed(1)}`);
  }
  console.log(`gemm 1024^3 f32, ${threads} thread(s), GFLOP/s (wall): ${row.join("  ")}`);
  if (threads === 1) console.log(`gemm 1024^3 f32, 1 thread, GFLOP/s (per CPU second): ${cpuRow.join("  ")}`);
}

const a64 = Float64Array.from(a.subarray(0, 512 * 512));
const b64 = Float64Array.from(b.subarray(0, 512 * 512));
const c64 = new Float64Array(512 * 512);
setThreadCount(1);
const ms64 = time(() => gemm({ a: a64, b: b64, c: c64, batch: 1, m: 512, n: 512, k: 512, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 }), 3, 1);
console.log(`gemm 512^3 f64, 1 thread: ${((2 * 512 ** 3) / ms64 / 1e6).toFixed(1)} GFLOP/s`);

console.log("parallel break-even (square f32 gemm, ms with 1 thread / 2 threads):");
for (const s of [32, 48, 64, 96, 128, 192, 256]) {
  const run = (): void => gemm({ a, b, c, batch: 1, m: s, n: s, k: s, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 });
  setThreadCount(1);
  const t1 = time(run, 20, 5);
  setThreadCount(2);
  setParallelThreshold(0);
  const t2 = time(run, 20, 5);
  console.log(`  ${s}^3 (${(2 * s ** 3 / 1e6).toFixed(2)} MFLOP): ${t1.toFixed(3)} / ${t2.toFixed(3)}`);
}
setParallelThreshold(1 << 23);

{
  const B = 8, H = 4, T = 128, dh = 64;
  for (const Hkv of [4, 1]) {
    const q = fill(acquire("float32", B * H * T * dh), 3);
    const k = fill(acquire("float32", B * Hkv * T * dh), 4);
    const v = fill(acquire("float32", B * Hkv * T * dh), 5);
    const out = acquire("float32", B * H * T * dh), lse = acquire("float32", B * H * T);
    const dout = fill(acquire("float32", B * H * T * dh), 6);
    const dq = acquire("float32", q.length), dk = acquire("float32", k.length), dv = acquire("float32", v.length);
    const p = { q, k, v, out, lse, B, H, Hkv, T, S: T, dh, scale: 1 / Math.sqrt(dh), offset: 0 };
    for (const threads of [1, Math.max(2, maxThreads)]) {
      setThreadCount(threads);
      const fwd = time(() => attentionForward(p));
      const fwdCpu = lastCpuMs;
      const bwd = time(() => attentionBackward({ ...p, dout, dq, dk, dv }));
      const cpu = threads === 1 ? ` (cpu fwd ${fwdCpu.toFixed(2)} ms, bwd ${lastCpuMs.toFixed(2)} ms)` : "";
      console.log(`attention B=${B} H=${H} Hkv=${Hkv} T=${T} dh=${dh}, ${threads} thread(s): fwd ${fwd.toFixed(2)} ms, bwd ${bwd.toFixed(2)} ms${cpu}`);
    }
  }
}

{
  setThreadCount(1);
  const rows = 1024, dim = 4096;
  const x = fill(acquire("float32", rows * dim), 7), w = fill(acquire("float32", dim), 8);
  const out = acquire("float32", rows * dim), rstd = acquire("float32", rows);
  const dx = acquire("float32", rows * dim), dw = acquire("float32", dim);
  const fwd = time(() => rmsNormForward(x, w, out, rstd, rows, dim, 1e-6));
  const bwd = time(() => rmsNormBackward(out, x, w, rstd, dx, dw, rows, dim));
  const bwdCpu = lastCpuMs;
  console.log(`rmsNorm [${rows}, ${dim}]: fwd ${fwd.toFixed(2)} ms, bwd ${bwd.toFixed(2)} ms (bwd cpu ${bwdCpu.toFixed(2)} ms)`);
  const targets = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % dim);
  const loss = acquire("float32", rows), lse = acquire("float32", rows), g = acquire("float32", rows).fill(1 / rows);
  const ceF = time(() => crossEntropyForward(x, targets, rows, dim, -100, loss, lse));
  const ceB = time(() => crossEntropyBackward(x, targets, lse, g, dx, rows, dim, -100));
  console.log(`softmax-CE [${rows}, ${dim}]: fwd ${ceF.toFixed(2)} ms, bwd ${ceB.toFixed(2)} ms (bwd cpu ${lastCpuMs.toFixed(2)} ms)`);
}
