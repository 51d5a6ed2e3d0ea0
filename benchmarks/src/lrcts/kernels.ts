// lrc-ts kernel cases through the public @lrc-ts/tensor-core API: matmul with transpose flags, fused causal
// attention, rmsNorm, softmax cross-entropy, the AdamW update and LRC's attention-out clone term in both forms. Backward passes go through valueAndGrad
// of <out, dy>, exactly as the TF.js side does with tf.grads.

import { AdamW, add, causalAttention, crossEntropy, gramMatrix, matmul, mse, mul, noGrad, quadFormMse, randn, rmsNorm, rng, scope, sum, tensor, valueAndGrad } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import type { CaseSpec } from "../cases.js";
import type { Prepared } from "../impl.js";
import { SkipCase } from "../impl.js";

const disposeAll = (...ts: Tensor[]): (() => void) => () => {
  for (const t of ts) t.dispose();
};

/** Random int32 class ids in [0, vocab). */
export function randomTargets(rows: number, vocab: number, seed: number): Tensor {
  const r = rng(seed);
  const ids = new Int32Array(rows);
  for (let i = 0; i < rows; i++) ids[i] = Math.floor(r.uniform() * vocab);
  return tensor(ids, [rows]);
}

/**
 * A kernel case as work on tensors: its inputs and the ops, returning the results (for the gpu column, which
 * downloads them). The cpu column and the gpu column (../lrcts-gpu) run exactly this, same shapes and seeds.
 */
export interface KernelWork {
  inputs: Tensor[];
  compute: () => Tensor[];
}

export function kernelWork(spec: CaseSpec): KernelWork {
  const r = rng(42);
  switch (spec.kind) {
    case "matmul": {
      const { m, k, n, transA, transB } = spec;
      let a = randn(transA ? [k, m] : [m, k], { rng: r });
      let b = randn(transB ? [n, k] : [k, n], { rng: r });
      const half = (t: Tensor): Tensor => {
        const h = t.astype("bfloat16");
        t.dispose();
        return h;
      };
      if (spec.bf16 === "a") a = half(a);
      if (spec.bf16 === "b") b = half(b);
      return { inputs: [a, b], compute: () => [matmul(a, b, { transA, transB })] };
    }
    case "attention": {
      const { B, H, Hkv, T, dh, backward } = spec;
      const q = randn([B, H, T, dh], { rng: r }), k = randn([B, Hkv, T, dh], { rng: r }), v = randn([B, Hkv, T, dh], { rng: r });
      if (!backward) return { inputs: [q, k, v], compute: () => [causalAttention(q, k, v)] };
      const dy = randn([B, H, T, dh], { rng: r });
      const step = valueAndGrad((q: Tensor, k: Tensor, v: Tensor) => sum(mul(causalAttention(q, k, v), dy)));
      return { inputs: [q, k, v, dy], compute: () => step(q, k, v)[1] };
    }
    case "rmsNorm": {
      const { rows, dim, backward } = spec;
      const x = randn([rows, dim], { rng: r }), w = randn([dim], { rng: r });
      if (!backward) return { inputs: [x, w], compute: () => [rmsNorm(x, w, 1e-6)] };
      const dy = randn([rows, dim], { rng: r });
      const step = valueAndGrad((x: Tensor, w: Tensor) => sum(mul(rmsNorm(x, w, 1e-6), dy)));
      return { inputs: [x, w, dy], compute: () => step(x, w)[1] };
    }
    case "softmaxCE": {
      const logits = randn([spec.rows, spec.vocab], { rng: r });
      const targets = randomTargets(spec.rows, spec.vocab, 7);
      const step = valueAndGrad((l: Tensor, t: Tensor) => crossEntropy(l, t), 0);
      return { inputs: [logits, targets], compute: () => step(logits, targets)[1] };
    }
    case "adamw": {
      const p = randn([spec.params], { rng: r, std: 0.02 }), g = randn([spec.params], { rng: r, std: 1e-3 });
      const opt = new AdamW([p], { lr: 1e-3, weightDecay: 0.01 });
      // The result is the updated parameter (the moments stay where the optimizer keeps them, as in training).
      return {
        inputs: [p, g],
        compute: () => {
          opt.step([g]);
          return [p];
        },
      };
    }
    case "attnOutTerm": {
      const { rows, D, form } = spec;
      const w32 = randn([D, D], { rng: r, std: 0.02 }), w = w32.astype("bfloat16");
      w32.dispose();
      const b = randn([D], { rng: r, std: 0.1 }), cS = randn([rows, D], { rng: r }), cT = randn([rows, D], { rng: r });
      if (form === "gram") {
        const g = gramMatrix(w);
        const step = valueAndGrad((x: Tensor) => quadFormMse(x, cT, g, D));
        return { inputs: [w, b, cS, cT, g], compute: () => step(cS)[1] };
      }
      const project = (x: Tensor): Tensor => add(matmul(x, w, { transB: true }), b);
      const tOut = noGrad(() => project(cT));
      const step = valueAndGrad((x: Tensor) => mse(project(x), tOut));
      return { inputs: [w, b, cS, cT, tOut], compute: () => step(cS)[1] };
    }
    default:
      throw new SkipCase(`not a kernel case: ${spec.kind}`);
  }
}

export function prepareKernel(spec: CaseSpec): Prepared {
  const work = kernelWork(spec);
  return { run: () => scope(() => void work.compute()), dispose: disposeAll(...work.inputs) };
}
