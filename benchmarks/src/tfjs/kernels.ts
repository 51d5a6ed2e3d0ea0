// The TF.js side of the kernel cases, composed from TF.js ops the way a TF.js user would write them (TF.js
// has no fused causal attention or RMSNorm). The cpu and wasm backends execute each op eagerly when it
// is called, so tf.tidy around the ops times the whole computation.

import type { Tensor as TfTensor } from "@tensorflow/tfjs-core";
import type { CaseSpec } from "../cases.js";
import type { Prepared } from "../impl.js";
import { SkipCase } from "../impl.js";
import type { Tf } from "./setup.js";

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. */
export function causalMask(tf: Tf, T: number): TfTensor {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
  return tf.tensor2d(m, [T, T]);
}

/** Repeats kv heads for grouped-query attention: [B, Hkv, T, dh] -> [B, Hkv * rep, T, dh]. */
export function repeatKv(tf: Tf, x: TfTensor, rep: number): TfTensor {
  if (rep === 1) return x;
  const [B, Hkv, T, dh] = x.shape as [number, number, number, number];
  // Rank-4 tile: TF.js has no gradient for tile above rank 4.
  return tf.reshape(tf.tile(tf.reshape(x, [B, Hkv, 1, T * dh]), [1, 1, rep, 1]), [B, Hkv * rep, T, dh]);
}

/** softmax(q k^T * scale + mask) v with GQA; q [B, H, T, dh], k/v [B, Hkv, T, dh]. */
export function attention(tf: Tf, q: TfTensor, k: TfTensor, v: TfTensor, mask: TfTensor): TfTensor {
  const H = q.shape[1]!, Hkv = k.shape[1]!, dh = q.shape[3]!;
  const s = tf.add(tf.mul(tf.matMul(q, repeatKv(tf, k, H / Hkv), false, true), 1 / Math.sqrt(dh)), mask);
  return tf.matMul(tf.softmax(s), repeatKv(tf, v, H / Hkv));
}

/** x * rsqrt(mean(x^2) + eps) * w over the last axis. */
export function rmsNorm(tf: Tf, x: TfTensor, w: TfTensor, eps: number): TfTensor {
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w);
}

export function prepareTfKernel(tf: Tf, spec: CaseSpec): Prepared {
  const keep: TfTensor[] = [];
  const randn = (shape: number[], std = 1): TfTensor => {
    const t = tf.randomNormal(shape, 0, std, "float32", 42 + keep.length);
    keep.push(t);
    return t;
  };
  const dispose = (): void => keep.forEach((t) => t.dispose());
  const tidy = (fn: () => unknown) => () => {
    tf.tidy(() => {
      fn();
    });
  };
  switch (spec.kind) {
    case "matmul": {
      const { m, k, n, transA, transB } = spec;
      if (spec.bf16 !== undefined) throw new SkipCase("TF.js has no bfloat16 matmul operand");
      const a = randn(transA ? [k, m] : [m, k]), b = randn(transB ? [n, k] : [k, n]);
      return { run: tidy(() => tf.matMul(a, b, transA, transB)), dispose };
    }
    case "attention": {
      const { B, H, Hkv, T, dh, backward } = spec;
      const q = randn([B, H, T, dh]), k = randn([B, Hkv, T, dh]), v = randn([B, Hkv, T, dh]);
      const mask = causalMask(tf, T);
      keep.push(mask);
      if (!backward) return { run: tidy(() => attention(tf, q, k, v, mask)), dispose };
      const dy = randn([B, H, T, dh]);
      const g = tf.grads((q: TfTensor, k: TfTensor, v: TfTensor) => tf.sum(tf.mul(attention(tf, q, k, v, mask), dy)));
      return { run: tidy(() => g([q, k, v])), dispose };
    }
    case "rmsNorm": {
      const { rows, dim, backward } = spec;
      const x = randn([rows, dim]), w = randn([dim]);
      if (!backward) return { run: tidy(() => rmsNorm(tf, x, w, 1e-6)), dispose };
      const dy = randn([rows, dim]);
      const g = tf.grads((x: TfTensor, w: TfTensor) => tf.sum(tf.mul(rmsNorm(tf, x, w, 1e-6), dy)));
      return { run: tidy(() => g([x, w])), dispose };
    }
    case "softmaxCE": {
      const { rows, vocab } = spec;
      const logits = randn([rows, vocab]);
      const ids = new Int32Array(rows);
      for (let i = 0; i < rows; i++) ids[i] = (i * 2654435761) % vocab;
      const onehot = tf.cast(tf.oneHot(tf.tensor1d(ids, "int32"), vocab), "float32");
      keep.push(onehot);
      const g = tf.valueAndGrad((l: TfTensor) => tf.losses.softmaxCrossEntropy(onehot, l));
      return { run: tidy(() => g(logits)), dispose, note: "one-hot labels (tf.losses.softmaxCrossEntropy)" };
    }
    case "adamw": {
      const name = `adam_p_${spec.params}`;
      const p = tf.variable(tf.randomNormal([spec.params], 0, 0.02, "float32", 1), true, name);
      const grad = randn([spec.params], 1e-3);
      const opt = tf.train.adam(1e-3);
      return {
        run: () => opt.applyGradients([{ name, tensor: grad }]),
        dispose: () => {
          dispose();
          p.dispose();
          opt.dispose();
        },
        note: "tf.train.adam (TF.js has no AdamW)",
      };
    }
    default:
      throw new SkipCase(`not a kernel case: ${spec.kind}`);
  }
}
