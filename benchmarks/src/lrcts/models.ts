// lrc-ts model cases that need only @lrc-ts/nn: one decoder layer forward + backward, a whole model's
// forward + CE + backward, and a plain pretraining step (forward, CE, backward, AdamW) used when @lrc-ts/lrc
// (whose Trainer is the real step, ./training.ts) cannot be loaded. Loaded lazily by ./index.ts, so a
// missing or broken nn skips these cases.

import { CausalLM, decoderLayerForward, loglikelihoods, makeConfig, rotaryEmbedding } from "@lrc-ts/nn";
import type { CausalLMConfig } from "@lrc-ts/nn";
import { AdamW, crossEntropy, mul, randn, rng, scope, sum, tensor } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import type { BenchCase, ModelDims } from "../cases.js";
import type { Prepared } from "../impl.js";
import { SkipCase } from "../impl.js";

export function nnConfig(d: ModelDims, seq: number): CausalLMConfig {
  return makeConfig({
    model_type: d.arch,
    vocab_size: d.vocab,
    hidden_size: d.hidden,
    intermediate_size: d.ffn,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    tie_word_embeddings: d.tied,
    max_position_embeddings: Math.max(2048, seq),
  });
}

/** Deterministic pseudo-random int32 [B, T] inputs and their next-token targets. */
export function syntheticTokens(vocab: number, batch: number, seq: number, seed: number): { inputs: Int32Array; targets: Int32Array } {
  const r = rng(seed);
  const inputs = new Int32Array(batch * seq), targets = new Int32Array(batch * seq);
  for (let i = 0; i < inputs.length; i++) inputs[i] = Math.floor(r.uniform() * vocab);
  for (let i = 0; i < targets.length; i++) targets[i] = i + 1 < inputs.length ? inputs[i + 1]! : 0;
  return { inputs, targets };
}

/** Runs loss() on the tape, backpropagates into `params` and frees their gradients. */
function backwardAndFree(params: readonly Tensor[], loss: () => Tensor): void {
  scope(() => {
    loss().backward();
    for (const p of params) {
      p.grad?.dispose();
      p.grad = null;
    }
  });
}

export function prepareModelCase(c: BenchCase): Prepared {
  const spec = c.spec;
  switch (spec.kind) {
    case "decoderLayer": {
      const { model: d, batch: B, seq: T } = spec;
      const cfg = nnConfig({ ...d, layers: 1 }, T);
      const model = new CausalLM(cfg, { seed: 1 });
      const w = model.weights().layers[0]!;
      const rot = rotaryEmbedding(cfg).tables(0, T, "float32");
      const r = rng(2);
      const x = randn([B, T, d.hidden], { rng: r, requiresGrad: true });
      const dy = randn([B, T, d.hidden], { rng: r });
      const params = [x, ...model.parameters()];
      return {
        run: () => backwardAndFree(params, () => sum(mul(decoderLayerForward(x, w, cfg, rot).hidden, dy))),
        dispose: () => [x, dy].forEach((t) => t.dispose()),
      };
    }
    case "modelGrad":
    case "pretrain": {
      const { model: d, batch: B, seq: T } = spec;
      const model = new CausalLM(nnConfig(d, T), { seed: 1 });
      const toks = syntheticTokens(d.vocab, B, T, 3);
      const inputs = tensor(toks.inputs, [B, T], { dtype: "int32" }), targets = tensor(toks.targets, [B, T], { dtype: "int32" });
      const params = model.parameters();
      const loss = (): Tensor => crossEntropy(model.forward(inputs).logits!, targets);
      if (spec.kind === "modelGrad") return { run: () => backwardAndFree(params, loss) };
      const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.1 });
      return {
        run: () =>
          scope(() => {
            loss().backward();
            opt.step();
            for (const p of params) {
              p.grad?.dispose();
              p.grad = null;
            }
          }),
        note: "plain nn step (forward, CE, backward, AdamW): @lrc-ts/lrc unavailable",
      };
    }
    case "mcEval": {
      // docs x choices requests in token ids: each document's context (random tokens) and its continuations.
      const { model: d } = spec;
      const model = new CausalLM(nnConfig(d, spec.ctxTokens + Math.max(...spec.choiceTokens)), { seed: 1 });
      const r = rng(4);
      const ids = (n: number) => Array.from({ length: n }, () => Math.floor(r.uniform() * d.vocab));
      const requests = Array.from({ length: spec.docs }, () => ids(spec.ctxTokens)).flatMap((context) =>
        spec.choiceTokens.map((n) => ({ context, continuation: ids(n) })));
      return {
        run: async () => void (await loglikelihoods(model, requests, { batchSize: spec.batch, shareContext: spec.shareContext })),
        note: `batch ${spec.batch}`,
      };
    }
    default:
      throw new SkipCase(`not a model case: ${spec.kind}`);
  }
}
