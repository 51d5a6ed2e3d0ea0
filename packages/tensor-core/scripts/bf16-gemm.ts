// float32 vs bfloat16 weight operand in the matmuls of the real-shape LRC step (Qwen2.5-0.5B, d = 448; not a test):
// the teacher's x Wᵀ, the student's W P, the dP = Wᵀ dY of its backward, and one chunk of the fused LM head's
// teacher logits. Each is timed interleaved (float32, bfloat16, float32, ...) on the same values (the bfloat16
// weight and its float32 widening), median of --reps calls, at LRC_THREADS threads.
//
//   LRC_THREADS=2 npx tsx --conditions=source packages/tensor-core/scripts/bf16-gemm.ts [--reps 3]

import { Rng, matmul, noGrad, randn } from "../src/index.js";
import type { Tensor } from "../src/index.js";

const argv = process.argv.slice(2);
const reps = Number(argv[argv.indexOf("--reps") + 1] ?? 3) || 3;
const median = (v: number[]) => v.sort((p, q) => p - q)[Math.floor(v.length / 2)]!;

function compare(name: string, wShape: number[], f: (w: Tensor) => Tensor): void {
  const wh = randn(wShape, { rng: new Rng(2), std: 0.02 }).astype("bfloat16");
  const wf = wh.astype("float32");
  const time = (w: Tensor) => {
    const t0 = performance.now();
    noGrad(() => f(w)).dispose();
    return performance.now() - t0;
  };
  time(wf);
  time(wh);
  const a: number[] = [], b: number[] = [];
  for (let i = 0; i < reps; i++) {
    a.push(time(wf));
    b.push(time(wh));
  }
  console.log(`${name}: float32 ${median(a).toFixed(0)} ms, bfloat16 ${median(b).toFixed(0)} ms, ratio ${(median(b) / median(a)).toFixed(2)}`);
}

const x = randn([1024, 896], { rng: new Rng(1) });
const P = randn([896, 448], { rng: new Rng(3) });
const dY = randn([4864, 448], { rng: new Rng(4) });
const h = randn([55, 896], { rng: new Rng(5) });
compare("x Wᵀ [1024x896][4864x896]ᵀ", [4864, 896], (w) => matmul(x, w, { transB: true }));
compare("W P [4864x896][896x448]", [4864, 896], (w) => matmul(w, P));
compare("Wᵀ dY [4864x896]ᵀ[4864x448]", [4864, 896], (w) => matmul(w, dY, { transA: true }));
compare("LM-head chunk [55x896][151936x896]ᵀ", [151936, 896], (w) => matmul(h, w, { transB: true }));
