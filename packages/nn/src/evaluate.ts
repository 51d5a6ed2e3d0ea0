// Held-out evaluation: mean next-token negative log-likelihood (nats) and perplexity = exp(loss).
// A token array is cut into consecutive windows of at most `window` inputs (default
// max_position_embeddings); window j feeds tokens [jW, jW + W) and predicts [jW + 1, jW + W + 1), so every
// token but the first is predicted exactly once, with the context of its own window. Each batch runs in
// noGrad() and scope(), and the LM head + cross-entropy run fused over row chunks (lmHeadLoss), so memory stays
// flat however long the text and however large the vocabulary. The functions are async: a batch's summed NLL is read with
// itemAsync(), which the gpu backend's webgpu mode needs (it reads back only asynchronously); on the other
// backends the reads resolve at once.

import type { Batch } from "@lrc-ts/data";
import { lmHeadLoss, noGrad, scope, tensor } from "@lrc-ts/tensor-core";
import { abortedAfterYield } from "./abort.js";
import { causalLMForward } from "./functional.js";
import type { LanguageModel } from "./generate.js";

export interface EvaluateOptions {
  /** Inputs per window (default and maximum: max_position_embeddings). */
  readonly window?: number;
  /** Windows per forward pass (default 1). */
  readonly batchSize?: number;
  /** RMSNorm epsilon override. */
  readonly eps?: number;
  /** Called after each batch with the tokens scored so far and the total. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Stops scoring between batches once aborted (see abortedAfterYield); the result then covers the batches done. */
  readonly signal?: AbortSignal;
}

export interface EvalResult {
  /** Mean next-token NLL in nats. */
  readonly loss: number;
  /** exp(loss). */
  readonly perplexity: number;
  /** Tokens scored. */
  readonly tokens: number;
}

/** Sum of next-token NLL over one batch (no gradient, intermediates freed). */
export async function batchNll(model: LanguageModel, batch: Batch, eps?: number): Promise<number> {
  const cfg = model.config;
  const [B, T] = batch.shape;
  if (batch.inputs.length !== B * T || batch.targets.length !== B * T)
    throw new RangeError(`batchNll: inputs/targets of length ${batch.inputs.length}/${batch.targets.length} for shape [${B}, ${T}]`);
  if (T > cfg.max_position_embeddings)
    throw new RangeError(`batchNll: window of ${T} tokens exceeds max_position_embeddings ${cfg.max_position_embeddings}`);
  for (const arr of [batch.inputs, batch.targets])
    for (let i = 0; i < arr.length; i++)
      if (arr[i]! < 0 || arr[i]! >= cfg.vocab_size) throw new RangeError(`batchNll: token ${arr[i]} is outside the vocabulary [0, ${cfg.vocab_size})`);
  // The LM head runs fused with the CE (lmHeadLoss: a chunk of rows of logits at a time); one scalar escapes.
  const sum = noGrad(() =>
    scope(() => {
      const w = model.weights();
      const ids = tensor(batch.inputs, [B, T], { dtype: "int32" });
      const r = causalLMForward(w, cfg, ids, { logits: "none", ...(eps !== undefined ? { eps } : {}) });
      const targets = tensor(batch.targets, [B, T], { dtype: "int32" });
      return lmHeadLoss(r.hidden, w.lmHead, { targets, ceReduction: "sum" }).total;
    }),
  );
  try {
    return await sum.itemAsync();
  } finally {
    sum.dispose();
  }
}

/** Mean NLL over batches (e.g. @lrc-ts/data's evalWindows). */
export async function evaluateBatches(model: LanguageModel, batches: Iterable<Batch>, opts: Pick<EvaluateOptions, "eps" | "onProgress" | "signal"> = {}): Promise<EvalResult> {
  let nll = 0, count = 0;
  for (const b of batches) {
    if (await abortedAfterYield(opts.signal)) break;
    nll += await batchNll(model, b, opts.eps);
    count += b.shape[0] * b.shape[1];
    opts.onProgress?.(count, count);
  }
  return result(nll, count);
}

function result(nll: number, count: number): EvalResult {
  const loss = count === 0 ? NaN : nll / count;
  return { loss, perplexity: Math.exp(loss), tokens: count };
}

/** Mean next-token NLL of a token sequence, over windows of at most `window` inputs. */
export async function evaluate(model: LanguageModel, tokens: ArrayLike<number>, opts: EvaluateOptions = {}): Promise<EvalResult> {
  const maxPos = model.config.max_position_embeddings;
  const W = opts.window ?? maxPos;
  if (!Number.isInteger(W) || W < 1) throw new RangeError(`evaluate: window must be a positive integer, got ${W}`);
  if (W > maxPos) throw new RangeError(`evaluate: window ${W} exceeds max_position_embeddings ${maxPos}`);
  const B = opts.batchSize ?? 1;
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`evaluate: batchSize must be a positive integer, got ${B}`);
  const N = tokens.length;
  const total = Math.max(0, N - 1);
  const all = Int32Array.from(tokens);
  let nll = 0, count = 0;
  const full = Math.floor(total / W);
  // Full windows, B at a time.
  for (let j = 0; j < full; j += B) {
    if (await abortedAfterYield(opts.signal)) return result(nll, count);
    const nb = Math.min(B, full - j);
    const inputs = new Int32Array(nb * W), targets = new Int32Array(nb * W);
    for (let b = 0; b < nb; b++) {
      const s = (j + b) * W;
      inputs.set(all.subarray(s, s + W), b * W);
      targets.set(all.subarray(s + 1, s + W + 1), b * W);
    }
    nll += await batchNll(model, { inputs, targets, shape: [nb, W] }, opts.eps);
    count += nb * W;
    opts.onProgress?.(count, total);
  }
  // The last, shorter window.
  const s = full * W, rest = total - s;
  if (rest > 0 && !(await abortedAfterYield(opts.signal))) {
    nll += await batchNll(model, { inputs: all.slice(s, s + rest), targets: all.slice(s + 1, s + rest + 1), shape: [1, rest] }, opts.eps);
    count += rest;
    opts.onProgress?.(count, total);
  }
  return result(nll, count);
}
