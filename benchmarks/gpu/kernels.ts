// gpu backend kernel benchmark (issue 8): each kernel on `gpu` (whatever GPU.js mode starts here; choose
// with LRC_GPU_MODE=gl|webasm) next to `cpu`, with upload, compute and download timed separately
// (tinybench for compute; the inputs are uploaded once outside the timed body). Run:
//   npx tsx --conditions=source benchmarks/gpu/kernels.ts            (xvfb-run -a ... for gl)
// GPU speed on a real GPU is unmeasured: this machine has none (gl runs on Mesa's software rasteriser).

import { Bench } from "tinybench";
import type { Tensor } from "@lrc-ts/tensor-core";
import * as tc from "@lrc-ts/tensor-core";

const r = tc.rng(1);
const rnd = (shape: number[]): Tensor => tc.randn(shape, { rng: r });

interface Case { name: string; inputs: () => Tensor[]; run: (xs: Tensor[]) => Tensor }
const cases: Case[] = [
  { name: "matmul 64x64x64", inputs: () => [rnd([64, 64]), rnd([64, 64])], run: ([a, b]) => tc.matmul(a!, b!) },
  { name: "matmul^T batched 4x32x32x32", inputs: () => [rnd([4, 32, 32]), rnd([4, 32, 32])], run: ([a, b]) => tc.matmul(a!, b!, { transB: true }) },
  { name: "add broadcast 64x256 + 256", inputs: () => [rnd([64, 256]), rnd([256])], run: ([a, b]) => tc.add(a!, b!) },
  { name: "sum axis -1 64x256", inputs: () => [rnd([64, 256])], run: ([a]) => tc.sum(a!, -1) },
  { name: "softmax 64x256", inputs: () => [rnd([64, 256])], run: ([a]) => tc.softmax(a!) },
  { name: "rmsNorm 64x128", inputs: () => [rnd([64, 128]), rnd([128])], run: ([a, w]) => tc.rmsNorm(a!, w!, 1e-6) },
  { name: "attention 1x4x32x16 (GQA 2)", inputs: () => [rnd([1, 4, 32, 16]), rnd([1, 2, 32, 16]), rnd([1, 2, 32, 16])], run: ([q, k, v]) => tc.causalAttention(q!, k!, v!) },
];

const ms = (t0: number): number => performance.now() - t0;
const fmt = (v: number): string => v.toFixed(3).padStart(10);

async function main(): Promise<void> {
  const mode = process.env.LRC_GPU_MODE as tc.GpuMode | undefined;
  const info = await tc.initBackend("gpu", mode !== undefined ? { mode } : {});
  console.log(`gpu backend: ${info.description}`);
  tc.setBackend("cpu");
  const rows: string[] = [];
  for (const c of cases) {
    const xs = c.inputs();
    const bench = new Bench({ time: 200, warmupIterations: 2 });
    tc.setBackend("cpu");
    bench.add(`cpu ${c.name}`, () => tc.scope(() => { c.run(xs).peek(); }));
    // gpu: upload once (timed), compute without readback, then one download (timed)
    tc.setBackend("gpu");
    const devX = xs.map((x) => tc.keep(tc.add(x, 0))); // add(x, 0) on gpu: an upload plus one kernel
    let t0 = performance.now();
    const up = tc.scope(() => xs.map((x) => tc.add(x, 0)));
    const upload = ms(t0);
    up.forEach((t) => t.dispose());
    const warm = c.run(devX);
    t0 = performance.now();
    warm.data();
    const download = ms(t0);
    warm.dispose();
    bench.add(`gpu ${c.name}`, () => { tc.setBackend("gpu"); tc.scope(() => { c.run(devX); }); tc.setBackend("cpu"); });
    tc.setBackend("cpu");
    await bench.run();
    const [cpu, gpu] = bench.tasks.map((t) => (t.result as { latency?: { mean?: number } } | undefined)?.latency?.mean ?? NaN);
    rows.push(`| ${c.name.padEnd(28)} | ${fmt(cpu!)} | ${fmt(gpu!)} | ${fmt(upload)} | ${fmt(download)} |`);
    devX.forEach((t) => t.dispose());
  }
  console.log(`\n| kernel (${info.mode}${info.software ? ", software" : ""})${" ".repeat(Math.max(0, 12 - (info.mode ?? "").length))}| cpu ms     | gpu compute ms | upload ms | download ms |`);
  console.log("|---|---|---|---|---|");
  for (const r of rows) console.log(r);
  console.log("\nGPU speed is unmeasured on a real GPU: this table comes from GPU.js running in software " +
    "(webasm, or gl on Mesa's software rasteriser). gpu compute excludes readback; upload includes one copy kernel.");
}

await main();
