// The vector module's exp-bound kernels with the exp polynomial unfused and on relaxed-SIMD fused multiply-adds
// (wasm-vector.ts emitExp; the module in use takes the fused form where relaxed SIMD is on), both built in one
// process and timed alternately on L2-resident chunks of 32,768 floats (not a test). Per kernel: the median CPU
// nanoseconds per element of --rounds rounds (CPU time: steadier than wall time on a busy machine), and exp's
// largest relative error against Math.exp over 1M points in [-87, 88] for each form.
//
//   npx tsx --conditions=source packages/tensor-core/scripts/exp-fma.ts [--rounds 7]

import { buildVectorWasm, DATA } from "../src/backend/cpu/wasm-vector.js";
import { hasRelaxedSimd } from "../src/backend/cpu/wasm-features.js";
import { instantiate, type WasmInstance } from "../src/backend/cpu/wasm-instance.js";
import type { VectorKernels } from "../src/backend/cpu/wasm-vector.js";

const argv = process.argv.slice(2);
const rounds = Number(argv[argv.indexOf("--rounds") + 1] ?? 7) || 7;
if (!hasRelaxedSimd()) throw new Error("exp-fma.ts: this runtime has no relaxed SIMD (or LRC_RELAXED_SIMD=0): nothing to compare");

type Kernels = Omit<VectorKernels, "heap" | "ensure">;
const CH = 1 << 15;
const reg = (j: number): number => DATA + j * CH * 4;
function rand(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * scale;
  });
}
// gate, up, dy, teacher and student logits (τ = 40 as LRC's KL)
const inputs = [rand(CH, 1, 4), rand(CH, 2, 4), rand(CH, 3, 1), rand(CH, 4, 20), rand(CH, 5, 20)];
const forms = { unfused: instantiate<Kernels>(buildVectorWasm(false), 16)!, fused: instantiate<Kernels>(buildVectorWasm(true), 16)! };
function fill(m: WasmInstance<Kernels>): void {
  m.ensure(DATA + 8 * CH * 4);
  inputs.forEach((x, j) => m.heap.set(x, reg(j) >> 2));
}
const kernels: Record<string, (k: Kernels) => void> = {
  "refill (subtracted from swiglub)": () => undefined,
  "swiglu (SwiGLU forward)": (k) => k.swiglu(reg(0), reg(1), reg(5), CH),
  "swiglub (SwiGLU backward + product)": (k) => k.swiglub(reg(0), reg(1), reg(2), CH),
  "sumexp (log-sum-exp rows)": (k) => void k.sumexp(reg(3), CH, 1, 10),
  "expaff (softmax / CE gradient rows)": (k) => k.expaff(reg(3), reg(6), CH, 1, 10, 1),
  "lmsums (LM head rows, 3 exps a pair)": (k) => k.lmsums(reg(3), reg(4), reg(6), CH, 1 / 40, 0.25, 0.25, 10),
};
const names = Object.keys(kernels);
const refills = new Set([names[0], names[2]]);
const times: Record<string, number[]> = {};
const reps = 200;
for (let round = 0; round <= rounds; round++) {
  for (const name of names) {
    for (const [form, m] of Object.entries(forms)) {
      fill(m);
      const c0 = process.cpuUsage();
      for (let i = 0; i < reps; i++) {
        if (refills.has(name)) fill(m); // swiglub overwrites its inputs
        kernels[name]!(m.exports);
      }
      const c = process.cpuUsage(c0);
      if (round > 0) (times[`${name}|${form}`] ??= []).push(((c.user + c.system) * 1000) / (reps * CH));
    }
  }
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const refill = { unfused: median(times[`${names[0]}|unfused`]!), fused: median(times[`${names[0]}|fused`]!) };
console.log(`CPU ns per element, medians of ${rounds} rounds (load ${(await import("node:os")).loadavg().map((x) => x.toFixed(1)).join(" ")})`);
for (const name of names.slice(1)) {
  const sub = name === names[2];
  const u = median(times[`${name}|unfused`]!) - (sub ? refill.unfused : 0);
  const f = median(times[`${name}|fused`]!) - (sub ? refill.fused : 0);
  console.log(`${name.padEnd(40)} unfused ${u.toFixed(3)}  fused ${f.toFixed(3)}  fused / unfused ${(f / u).toFixed(2)}`);
}
const n = 1_000_000;
const x = Float32Array.from({ length: n }, (_, i) => -87 + (175 * i) / (n - 1));
for (const [form, m] of Object.entries(forms)) {
  m.ensure(DATA + 2 * n * 4);
  m.heap.set(x, DATA >> 2);
  m.exports.expaff(DATA, DATA + n * 4, n, 1, 0, 1);
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(m.heap[(DATA >> 2) + n + i]! / Math.exp(x[i]!) - 1));
  console.log(`exp ${form}: max relative error ${worst.toExponential(3)} over [-87, 88]`);
}
