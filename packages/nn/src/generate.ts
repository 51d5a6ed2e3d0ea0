// Autoregressive generation with a KV cache: one forward over the prompt (prefill), then one token at a
// time, each step attending to the cached keys/values through causalAttention's offset. Sampling follows
// transformers' logits processors in order: temperature, top-k (ties at the k-th value kept), top-p
// (smallest set of most likely tokens whose mass reaches p, at least one), then a draw from the seeded
// tensor-core Rng; temperature 0 is greedy (argmax, first index on ties). The context never exceeds
// max_position_embeddings.

import { Rng, noGrad, scope, tensor } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "./config.js";
import type { CausalLMWeights, KVCache } from "./functional.js";
import { causalLMForward } from "./functional.js";
import { abortedAfterYield } from "./abort.js";

/** Anything with a config and weights: a CausalLM, or an LRC student's computed weights. */
export interface LanguageModel {
  readonly config: CausalLMConfig;
  weights(): CausalLMWeights;
}

export interface SamplingOptions {
  /** Softmax temperature; 0 (default) is greedy decoding. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  readonly topK?: number;
  /** Nucleus sampling: keep the most likely tokens whose probabilities sum to at least p (1: all). */
  readonly topP?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** New tokens to generate at most (default 64). */
  readonly maxNewTokens?: number;
  /** Seed of the sampler (default 0). */
  readonly seed?: number;
  /** Token ids that end generation; not included in the output. Default: config.json's eos_token_id. */
  readonly stopTokens?: readonly number[];
  /** Called with each new token as soon as it is chosen; return false to stop. */
  readonly onToken?: (id: number, index: number) => void | boolean;
  /** RMSNorm epsilon override (see causalLMForward). */
  readonly eps?: number;
  /** Stops before the next token once aborted (stopReason "aborted"); see abortedAfterYield. */
  readonly signal?: AbortSignal;
}

export interface GenerateResult {
  /** The new tokens (prompt and stop token excluded). */
  readonly tokens: number[];
  /**
   * "stop": a stop token; "length": maxNewTokens; "context": max_position_embeddings; "callback": onToken said
   * stop; "aborted": the signal was aborted.
   */
  readonly stopReason: "stop" | "length" | "context" | "callback" | "aborted";
}

/** The stop tokens config.json names (eos_token_id, a number or a list). */
export function configStopTokens(cfg: CausalLMConfig): number[] {
  const e = cfg.extra.eos_token_id;
  if (typeof e === "number") return [e];
  if (Array.isArray(e)) return e.filter((x): x is number => typeof x === "number");
  return [];
}

/** Chooses the next token from one row of logits. */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  const V = logits.length;
  const temperature = opts.temperature ?? 0;
  if (!(temperature >= 0)) throw new RangeError(`sampleToken: temperature must be >= 0, got ${temperature}`);
  if (temperature === 0) {
    let best = 0, bv = -Infinity;
    for (let i = 0; i < V; i++) if (logits[i]! > bv) { bv = logits[i]!; best = i; }
    return best;
  }
  const topK = opts.topK ?? 0, topP = opts.topP ?? 1;
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`sampleToken: topK must be a non-negative integer, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`sampleToken: topP must be in (0, 1], got ${topP}`);
  // Candidates sorted by logit, most likely first.
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (topK > 0 && topK < V) {
    const kth = logits[order[topK - 1]!]!;
    let end = topK;
    while (end < V && logits[order[end]!] === kth) end++; // ties with the k-th value stay
    order = order.slice(0, end);
  }
  const max = logits[order[0]!]! / temperature;
  const p = order.map((i) => Math.exp(logits[i]! / temperature - max));
  let total = p.reduce((s, x) => s + x, 0);
  if (topP < 1) {
    let cum = 0, keep = 0;
    while (keep < p.length && cum / total < topP) cum += p[keep++]!;
    p.length = Math.max(keep, 1);
    total = p.reduce((s, x) => s + x, 0);
  }
  let u = rng.uniform() * total;
  for (let j = 0; j < p.length; j++) {
    u -= p[j]!;
    if (u < 0) return order[j]!;
  }
  return order[p.length - 1]!;
}

function disposeCache(c: KVCache | null): void {
  if (c === null) return;
  for (const l of c.layers) {
    l.k.dispose();
    l.v.dispose();
  }
}

/**
 * Continues `prompt` (token ids) with up to maxNewTokens tokens. Runs without gradients. Async: each token's
 * logits are read with toHostAsync(), which the gpu backend's webgpu mode needs; elsewhere it resolves at once.
 */
export async function generate(model: LanguageModel, prompt: readonly number[], opts: GenerateOptions = {}): Promise<GenerateResult> {
  const cfg = model.config;
  const maxNew = opts.maxNewTokens ?? 64;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new RangeError(`generate: maxNewTokens must be a non-negative integer, got ${maxNew}`);
  if (prompt.length === 0) throw new RangeError("generate: the prompt must hold at least one token");
  const maxCtx = cfg.max_position_embeddings;
  if (prompt.length > maxCtx) throw new RangeError(`generate: the prompt has ${prompt.length} tokens, more than max_position_embeddings ${maxCtx}`);
  for (const t of prompt)
    if (!Number.isInteger(t) || t < 0 || t >= cfg.vocab_size) throw new RangeError(`generate: prompt token ${t} is outside the vocabulary [0, ${cfg.vocab_size})`);
  const stop = new Set(opts.stopTokens ?? configStopTokens(cfg));
  const rng = new Rng(opts.seed ?? 0);
  const sampling: SamplingOptions = {
    ...(opts.temperature !== undefined ? { temperature: opts.temperature } : {}),
    ...(opts.topK !== undefined ? { topK: opts.topK } : {}),
    ...(opts.topP !== undefined ? { topP: opts.topP } : {}),
  };
  const out: number[] = [];
  const w = noGrad(() => model.weights());
  let cache: KVCache | null = null;
  let input: readonly number[] = prompt;
  try {
    for (;;) {
      if (out.length >= maxNew) return { tokens: out, stopReason: "length" };
      if (prompt.length + out.length >= maxCtx) return { tokens: out, stopReason: "context" };
      if (await abortedAfterYield(opts.signal)) return { tokens: out, stopReason: "aborted" };
      const ids = input;
      const prev: KVCache | null = cache;
      const step: { logits: Tensor; cache: KVCache } = noGrad(() =>
        scope(() => {
          const r = causalLMForward(w, cfg, tensor(ids, [1, ids.length], { dtype: "int32" }), {
            cache: prev,
            returnCache: true,
            logits: "last",
            ...(opts.eps !== undefined ? { eps: opts.eps } : {}),
          });
          return { logits: r.logits!, cache: r.cache! };
        }),
      );
      disposeCache(prev);
      cache = step.cache;
      let next: number;
      try {
        await step.logits.toHostAsync();
        next = sampleToken(step.logits.peek(), sampling, rng);
      } finally {
        step.logits.dispose();
      }
      if (stop.has(next)) return { tokens: out, stopReason: "stop" };
      out.push(next);
      if (opts.onToken?.(next, out.length - 1) === false) return { tokens: out, stopReason: "callback" };
      input = [next];
    }
  } finally {
    disposeCache(cache);
  }
}
