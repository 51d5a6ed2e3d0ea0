// The device benchmark's entry, bundled by prepare.sh into one file that runs on a machine with no Node
// packages (an NVIDIA H100 with Vulkan, see run.sh): the native webgpu backend's matmul at 1024^3, 2048^3 and
// 4096^3 (and with a frozen bfloat16 operand: x·Wᵀ and Wᵀ·dY) and causal attention forward + backward, then the
// row kernels (softmax cross-entropy at Qwen2.5's vocabulary, RMSNorm) with the optional features on (subgroup
// reductions where the adapter has them) and off; each timed as compute on device-resident inputs (median of 5
// after a warm-up that compiles the kernels), GFLOP/s and, where the adapter is a known GPU, the fraction of
// its fp32 peak. Prints one JSON object per case and writes them all to the file named by argv[2].
// LRC_DEVICE_BENCH_SMOKE=1: small shapes, to check the bundle on a software adapter (lavapipe) before a GPU run.

import { writeFileSync } from "node:fs";
import { backendFinish, causalAttention, crossEntropy, getBackend, initBackend, matmul, rmsNorm, rng, scope, tensor, valueAndGrad, sum, mul } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { create, globals } from "webgpu";

// navigator.gpu from the bundled `webgpu` package (tensor-core loads it by a name bundlers do not follow); the
// GPU object stays referenced by navigator for the life of the process, as dawn.node needs.
Object.assign(globalThis, globals);
Object.defineProperty(globalThis, "navigator", { value: { gpu: create([]) }, configurable: true, writable: true });

/** fp32 (non-tensor-core) peaks in GFLOP/s, by a pattern of the adapter's name. */
const PEAKS: Array<[RegExp, number, string]> = [
  [/H100.*PCIe/i, 51_200, "H100 PCIe fp32 peak"],
  [/H100/i, 66_900, "H100 SXM fp32 peak"],
  [/H200/i, 66_900, "H200 fp32 peak"],
];

function random(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  return tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal()), shape);
}

async function time(fn: () => void, reps = 5): Promise<number> {
  fn();
  await backendFinish();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    await backendFinish();
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[Math.floor(reps / 2)]!;
}

const out = process.argv[2] ?? "webgpu-device.json";
const matmulDesign = (process.env.LRC_WEBGPU_MATMUL ?? "auto") as "auto" | "tiled" | "texture";
await initBackend("webgpu", { matmul: matmulDesign });
const info = getBackend();
const peak = PEAKS.find(([re]) => re.test(info.device ?? ""));
console.log(JSON.stringify({ backend: info.description, peak: peak?.[2] ?? "unknown device: no fraction of peak" }));
const results: object[] = [];
const report = (r: { case: string; ms: number; flops?: number }): void => {
  const gflops = r.flops === undefined ? null : r.flops / r.ms / 1e6;
  const row = { ...r, gflops, fractionOfPeak: peak === undefined || gflops === null ? null : gflops / peak[1], device: getBackend().device, features: getBackend().description.replace(/.*optional features: /, "") };
  results.push(row);
  console.log(JSON.stringify(row));
};

const smoke = process.env.LRC_DEVICE_BENCH_SMOKE === "1";
for (const n of smoke ? [128] : [1024, 2048, 4096]) {
  const a = random([n, n], 1), b = random([n, n], 2);
  for (const [transA, transB] of [[false, false], [true, false], [false, true]] as const) {
    const ms = await time(() => scope(() => { matmul(a, b, { transA, transB }); }));
    report({ case: `matmul ${n}^3 ${transA ? "T" : "N"}${transB ? "T" : "N"}`, ms, flops: 2 * n ** 3 });
  }
  // A frozen bfloat16 weight W (16-bit storage, widened to float32 in the kernel): x·Wᵀ and Wᵀ·dY.
  const wa = a.astype("bfloat16"), wb = b.astype("bfloat16");
  report({ case: `matmul ${n}^3 NT bf16 B`, ms: await time(() => scope(() => { matmul(a, wb, { transB: true }); })), flops: 2 * n ** 3 });
  report({ case: `matmul ${n}^3 TN bf16 A`, ms: await time(() => scope(() => { matmul(wa, b, { transA: true }); })), flops: 2 * n ** 3 });
  for (const t of [a, b, wa, wb]) t.dispose();
}

// Qwen2.5-0.5B's attention shape at the student's batch: B 8, 14 heads, 2 kv heads, T 512, dh 64.
const [B, H, Hkv, T, dh] = smoke ? [1, 2, 1, 64, 64] : [8, 14, 2, 512, 64];
const q = random([B, H, T, dh], 3), k = random([B, Hkv, T, dh], 4), v = random([B, Hkv, T, dh], 5);
const fwdFlops = 4 * B * H * T * (T / 2) * dh;
report({ case: `attention fwd B${B} H${H} Hkv${Hkv} T${T} dh${dh}`, ms: await time(() => scope(() => { causalAttention(q, k, v); })), flops: fwdFlops });
const step = valueAndGrad((x: Tensor, y: Tensor, z: Tensor) => sum(mul(causalAttention(x, y, z), 1)), [0, 1, 2]);
report({ case: `attention fwd+bwd B${B} H${H} Hkv${Hkv} T${T} dh${dh}`, ms: await time(() => scope(() => { step(q, k, v); })), flops: 3.5 * fwdFlops });

// Row kernels, with the optional features (subgroup reductions) and without: Qwen2.5's vocabulary and width.
const [rows, vocab, width] = smoke ? [8, 1000, 256] : [64, 151_936, 896];
const logits = random([rows, vocab], 6), x = random([8 * 512, width], 7), w = random([width], 8), dy = random([8 * 512, width], 9);
const targets = tensor(Int32Array.from({ length: rows }, (_, i) => (i * 7919) % vocab), [rows]);
const ce = valueAndGrad((l: Tensor) => crossEntropy(l, targets));
const norm = valueAndGrad((xx: Tensor, ww: Tensor) => sum(mul(rmsNorm(xx, ww, 1e-6), dy)), [0, 1]);
for (const features of ["on", "off"] as const) {
  await initBackend("webgpu", { matmul: matmulDesign, ...(features === "off" ? { f16: false, subgroups: false } : {}) });
  report({ case: `softmax-CE fwd+bwd ${rows}x${vocab} features ${features}`, ms: await time(() => scope(() => { ce(logits); })) });
  report({ case: `rmsNorm fwd+bwd ${8 * 512}x${width} features ${features}`, ms: await time(() => scope(() => { norm(x, w); })) });
}

writeFileSync(out, `${JSON.stringify({ backend: info.description, results }, null, 1)}\n`);
process.exit(0);
