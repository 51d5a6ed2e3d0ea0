// Kernel timings at the shapes of the benchmark training step (not a test): gemm for every linear of the anchor
// Llama and the distill teacher in the three orientations a step runs (forward x W^T, backward dY W and dY^T X),
// with 1 and 2 threads, as best-of-N process CPU time and wall time. On a shared machine CPU time is the stable
// number for 1 thread; 2-thread wall time is only meaningful when the machine is otherwise idle.
//
//   npx tsx --conditions=source packages/tensor-core/scripts/bench-shapes.ts [--reps 5] [--threads 1,2]

import { acquire, gemm, getThreadCount, setThreadCount, shutdownPool } from "../src/backend/cpu/index.js";

const argv = process.argv.slice(2);
const opt = (name: string, d: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1]! : d;
};
const reps = Number(opt("reps", "5"));
const threadList = opt("threads", "1,2").split(",").map(Number);

function filled(n: number, seed: number): Float32Array {
  const a = acquire("float32", n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** Best wall and CPU ms over reps (after one warm-up). */
export function timeIt(fn: () => void, r = reps): { wall: number; cpu: number } {
  fn();
  let wall = Infinity, cpu = Infinity;
  for (let i = 0; i < r; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    wall = Math.min(wall, performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu = Math.min(cpu, (c.user + c.system) / 1000);
  }
  return { wall, cpu };
}

interface Shape {
  name: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
}

const N = 1024;
const shapes: Shape[] = [];
for (const [label, outF, inF] of [
  ["q/o 256x256", 256, 256], ["k/v 128x256", 128, 256], ["gate/up 704x256", 704, 256], ["down 256x704", 256, 704],
  ["head 4096x256", 4096, 256], ["T gate 1408x512", 1408, 512], ["T head 4096x512", 4096, 512],
] as const) {
  shapes.push({ name: `${label} fwd  x W^T`, m: N, n: outF, k: inF, transA: false, transB: true });
  shapes.push({ name: `${label} bwd  dY W `, m: N, n: inF, k: outF, transA: false, transB: false });
  shapes.push({ name: `${label} bwd dY^T X`, m: outF, n: inF, k: N, transA: true, transB: false });
}

let total1 = 0;
for (const threads of threadList) {
  setThreadCount(threads);
  console.log(`\nthreads ${getThreadCount()}: GFLOP/s by wall (by CPU)`);
  for (const s of shapes) {
    const a = filled(s.m * s.k, 1), b = filled(s.k * s.n, 2), c = acquire("float32", s.m * s.n);
    const t = timeIt(() =>
      gemm({ a, b, c, batch: 1, m: s.m, n: s.n, k: s.k, transA: s.transA, transB: s.transB, strideA: 0, strideB: 0, strideC: 0 }),
    );
    const gf = (2 * s.m * s.n * s.k) / 1e6;
    if (threads === 1) total1 += t.cpu;
    console.log(`  ${s.name.padEnd(28)} ${(gf / t.wall).toFixed(1).padStart(6)} (${(gf / t.cpu).toFixed(1).padStart(5)})  ${t.wall.toFixed(2)} ms`);
  }
}
console.log(`\nsum of best 1-thread CPU ms over the shapes: ${total1.toFixed(1)}`);
shutdownPool();
