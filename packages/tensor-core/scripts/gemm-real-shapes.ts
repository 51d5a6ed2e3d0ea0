// gemm() at the shapes of an LRC step at Qwen2.5-0.5B's shape (batch 4 x 256, d = 448; not a test): the teacher's
// and student's linears and their backward products (f = float32, b = bfloat16 operand, as the frozen teacher's
// weights are), the student embedding E·P and its dP, and the fused LM head's products over the 151,936-token
// vocabulary for 256- and 55-row chunks; "layer" rows are the step profile's other shapes. Operands are shared (pool) arrays, as the kernels pass them. Per shape:
// median wall GFLOP/s of --reps calls, GFLOP per CPU-second of the process (both threads; stable on a busy
// machine, where wall time is not) and a hash of C's bits (equal hashes across engine versions = bit-identical).
// With --cold MB, every rep times the call twice, hot (operands left in cache by the call before) and cold (after
// the calling thread wrote MB megabytes, evicting A, B and C from L2 and the L3, as in a training step, where every
// operand was just written by another op or last touched long ago), in alternating order, and prints both.
//
//   LRC_THREADS=2 npx tsx --conditions=source packages/tensor-core/scripts/gemm-real-shapes.ts [filter,...] [--reps 3] [--cold 256]

import { acquireShared, gemm, release } from "../src/backend/cpu/index.js";

const argv = process.argv.slice(2);
const reps = Number(argv[argv.indexOf("--reps") + 1] ?? 3) || 3;
/** Shapes whose name contains one of the comma-separated filters (all when none). */
const filters = argv[0] !== undefined && !argv[0].startsWith("--") ? argv[0].split(",") : [""];
const coldMB = argv.includes("--cold") ? Number(argv[argv.indexOf("--cold") + 1]) : 0;
if (!(coldMB >= 0)) throw new RangeError(`gemm-real-shapes: --cold takes megabytes, got "${argv[argv.indexOf("--cold") + 1]}"`);
const evictBuf = new Float64Array((coldMB * 2 ** 20) / 8);
let evictValue = 0;
/** Writes the eviction buffer (a new value each time, so no write can be elided). */
function evict(): void {
  evictBuf.fill(++evictValue);
}

interface Shape { name: string; m: number; k: number; n: number; tA: boolean; tB: boolean; bfA?: boolean; bfB?: boolean; acc?: boolean }
const V = 151_936;
const shapes: Shape[] = [
  { name: "teacher gate/up x·Wᵀ fb", m: 1024, k: 896, n: 4864, tA: false, tB: true, bfB: true },
  { name: "student W_t·P bf", m: 4864, k: 896, n: 448, tA: false, tB: false, bfA: true },
  { name: "teacher down x·Wᵀ fb", m: 1024, k: 4864, n: 896, tA: false, tB: true, bfB: true },
  { name: "student gate/up x·Wᵀ ff", m: 1024, k: 448, n: 4864, tA: false, tB: true },
  { name: "Pᵀ·W fb", m: 448, k: 896, n: 4864, tA: true, tB: false, bfB: true },
  { name: "dP = W_tᵀ·dY bf", m: 896, k: 4864, n: 448, tA: true, tB: false, bfA: true },
  { name: "dX = dY·W ff", m: 1024, k: 4864, n: 448, tA: false, tB: false },
  { name: "dW = dYᵀ·X ff", m: 4864, k: 1024, n: 448, tA: true, tB: false },
  { name: "teacher q/o x·Wᵀ fb", m: 1024, k: 896, n: 896, tA: false, tB: true, bfB: true },
  { name: "student down x·Wᵀ ff", m: 1024, k: 4864, n: 448, tA: false, tB: true },
  { name: "layer Xᵀ·dY 448x4864 ff", m: 448, k: 1024, n: 4864, tA: true, tB: false },
  { name: "layer Xᵀ·dY 896x448 ff", m: 896, k: 1024, n: 448, tA: true, tB: false },
  { name: "layer Xᵀ·dY 448x896 ff", m: 448, k: 1024, n: 896, tA: true, tB: false },
  { name: "layer Xᵀ·dY 128x448 ff", m: 128, k: 1024, n: 448, tA: true, tB: false },
  { name: "layer x·W 896→448 ff", m: 1024, k: 896, n: 448, tA: false, tB: false },
  { name: "layer x·W 448→4864 ff", m: 1024, k: 448, n: 4864, tA: false, tB: false },
  { name: "layer x·W 896→896 fb", m: 1024, k: 896, n: 896, tA: false, tB: false, bfB: true },
  { name: "layer W_t·Pᵀ bf", m: 896, k: 4864, n: 448, tA: false, tB: true, bfA: true },
  { name: "embedding dP = Eᵀ·dY bf", m: 896, k: V, n: 448, tA: true, tB: false, bfA: true },
  { name: "embedding E·P bf", m: V, k: 896, n: 448, tA: false, tB: false, bfA: true },
  { name: "head 256 teacher logits fb", m: 256, k: 896, n: V, tA: false, tB: true, bfB: true },
  { name: "head 55 teacher logits fb", m: 55, k: 896, n: V, tA: false, tB: true, bfB: true },
  { name: "head 256 student logits ff", m: 256, k: 448, n: V, tA: false, tB: true },
  { name: "head 256 dz·W fb", m: 256, k: V, n: 896, tA: false, tB: false, bfB: true },
  { name: "head 55 dh = dz·W ff", m: 55, k: V, n: 448, tA: false, tB: false },
  { name: "head 256 dh = dz·W ff", m: 256, k: V, n: 448, tA: false, tB: false },
  { name: "head 256 dW += dzᵀ·h ff", m: V, k: 256, n: 448, tA: true, tB: false, acc: true },
  { name: "head 55 dW += dzᵀ·h ff", m: V, k: 55, n: 448, tA: true, tB: false, acc: true },
];

/** n uniform values in [-0.5, 0.5): float32 in shared pool memory, or their BF16 bits (truncated). */
function filled(n: number, seed: number, bf16: boolean): Float32Array | Uint16Array {
  const f = acquireShared("float32", n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    f[i] = s / 2 ** 32 - 0.5;
  }
  if (!bf16) return f;
  const bits = new Uint32Array(f.buffer, f.byteOffset, n);
  const h = new Uint16Array(new SharedArrayBuffer(2 * n));
  for (let i = 0; i < n; i++) h[i] = bits[i]! >>> 16;
  release(f);
  return h;
}

function hash(c: Float32Array): string {
  const u = new Uint32Array(c.buffer, c.byteOffset, c.length);
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i]!, 16777619);
  return (h >>> 0).toString(16).padStart(8, "0");
}

const median = (v: number[]): number => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)]!;
for (const s of shapes) {
  if (!filters.some((f) => s.name.includes(f))) continue;
  const a = filled(s.m * s.k, 1, s.bfA === true), b = filled(s.k * s.n, 2, s.bfB === true);
  const c = filled(s.m * s.n, 3, false) as Float32Array;
  const c0 = s.acc === true ? Float32Array.from(c) : null;
  const run = (): void => gemm({ a, b, c, batch: 1, m: s.m, n: s.n, k: s.k, transA: s.tA, transB: s.tB, strideA: 0, strideB: 0, strideC: 0, accumulate: s.acc === true });
  run();
  const bits = hash(c);
  /** Wall and CPU ms of one call. */
  const timed = (): [number, number] => {
    const u = process.cpuUsage(), t = performance.now();
    run();
    const w = performance.now() - t;
    const d = process.cpuUsage(u);
    return [w, (d.user + d.system) / 1000];
  };
  const wall: number[] = [], cpu: number[] = [], coldWall: number[] = [], coldCpu: number[] = [];
  for (let i = 0; i < reps; i++) {
    // cold and hot alternate which goes first, so drift in the machine's load hits both alike
    for (const cold of coldMB > 0 ? (i % 2 === 0 ? [true, false] : [false, true]) : [false]) {
      if (!cold && coldMB > 0) run();
      if (c0 !== null) c.set(c0);
      if (cold) evict();
      const [w, u] = timed();
      (cold ? coldWall : wall).push(w);
      (cold ? coldCpu : cpu).push(u);
    }
  }
  const gf = (ms: number): string => ((2 * s.m * s.n * s.k) / ms / 1e6).toFixed(1).padStart(5);
  const shape = `[${s.m}x${s.k}]${s.tA ? "ᵀ" : ""}·[${s.k}x${s.n}]${s.tB ? "ᵀ" : ""}`;
  const cols = (w: number[], u: number[]): string => `${median(w).toFixed(1).padStart(8)} ms ${gf(median(w))} GF/s  ${gf(median(u))} GF/cpu-s`;
  // per-rep ratios pair each cold call with the hot call beside it, so the machine's drift cancels
  const ratio = (x: number[], y: number[]): string => median(x.map((v, i) => v / y[i]!)).toFixed(3);
  const coldCols = coldMB > 0 ? `  cold ${cols(coldWall, coldCpu)}  cold/hot wall ${ratio(coldWall, wall)} cpu ${ratio(coldCpu, cpu)}` : "";
  console.log(`${s.name.padEnd(28)} ${shape.padEnd(26)} ${cols(wall, cpu)}${coldCols}  bits ${bits}`);
  for (const x of [a, b, c]) if (x instanceof Float32Array) release(x);
}
process.exit(0);
