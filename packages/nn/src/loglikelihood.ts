// Log-likelihood scoring of (context, continuation) requests, with lm-evaluation-harness's rules
// (lm_eval/api/model.py TemplateLM._encode_pair and lm_eval/models/huggingface.py HFLM):
//   * trailing spaces of the context move to the start of the continuation; the continuation's tokens are
//     encode(context + continuation)[len(encode(context)):]; an empty context becomes [prefix token] and the
//     continuation is encoded alone;
//   * the model reads (context + continuation)[-(maxLength + 1):][:-1] (left truncation to the window);
//     the score is the sum of log-softmax over the continuation tokens, and is_greedy says whether each of
//     them is the argmax (first index on ties) of its row.
// Cost: requests whose (truncated) contexts are equal share one forward over that context; its KV cache is
// tiled over the continuations, which run as one right-padded batch (padding after a row never changes its
// causal outputs). With shareContext false every request runs whole, sorted longest first and right-padded
// into batches, as lm-eval does. Log-softmax and argmax are taken in float64 on the host, over the rows
// that score continuation tokens only.

import { concat, noGrad, reshape, scope, slice, tensor } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { abortedAfterYield } from "./abort.js";
import type { CausalLMWeights, KVCache } from "./functional.js";
import { causalLMForward, linear } from "./functional.js";
import type { LanguageModel } from "./generate.js";

/** Text to token ids, without special tokens (lm-eval's tok_encode for causal models). */
export type Encode = (text: string) => readonly number[];

/** One request in token ids; `context` is never empty (lm-eval puts the prefix token there). */
export interface LoglikelihoodRequest {
  readonly context: readonly number[];
  readonly continuation: readonly number[];
}

export interface LoglikelihoodResult {
  /** Sum of the continuation tokens' log-probabilities (nats). */
  readonly logprob: number;
  /** Whether every continuation token is the argmax of its row. */
  readonly isGreedy: boolean;
}

export interface LoglikelihoodOptions {
  /** Rows per forward pass (default 1): requests, or continuations of one shared context. */
  readonly batchSize?: number;
  /** One forward per distinct context, its KV cache reused by every continuation (default true). */
  readonly shareContext?: boolean;
  /** The model window (default and maximum: max_position_embeddings). */
  readonly maxLength?: number;
  /** RMSNorm epsilon override. */
  readonly eps?: number;
  /** Called as requests finish, with the number done and the total. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Stops between forward passes once aborted, throwing the signal's reason (see abortedAfterYield). */
  readonly signal?: AbortSignal;
}

/**
 * Python's str.isspace() characters as a regex character class: what str.strip() / rstrip() remove (lm-eval's
 * context.rstrip(), its templates' .strip()); JS's \s is a different set.
 */
export const PY_WHITESPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const TRAILING_PY_SPACE = new RegExp(`${PY_WHITESPACE}+$`, "u");

/** lm-eval's token boundary: the (context, continuation) token ids of one text pair. */
export function encodeRequest(encode: Encode, context: string, continuation: string, prefixToken: number): LoglikelihoodRequest {
  if (context === "") return { context: [prefixToken], continuation: [...encode(continuation)] };
  const kept = context.replace(TRAILING_PY_SPACE, "");
  const moved = context.slice(kept.length);
  const whole = encode(kept + moved + continuation);
  const ctx = encode(kept);
  return { context: [...ctx], continuation: whole.slice(ctx.length) };
}

interface Prepared {
  readonly index: number;
  /** The model input: (context + continuation) truncated from the left, last token dropped. */
  readonly input: readonly number[];
  /** Input tokens that belong to the context. */
  readonly ctxLen: number;
  readonly cont: readonly number[];
}

function prepare(req: LoglikelihoodRequest, index: number, maxLength: number, vocab: number): Prepared {
  const where = `loglikelihoods: request ${index}`;
  if (req.context.length === 0) throw new RangeError(`${where}: empty context (use the prefix token, see encodeRequest)`);
  if (req.continuation.length > maxLength)
    throw new RangeError(`${where}: continuation of ${req.continuation.length} tokens does not fit the window of ${maxLength}`);
  for (const t of [...req.context, ...req.continuation])
    if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new RangeError(`${where}: token ${t} is outside the vocabulary [0, ${vocab})`);
  const whole = [...req.context, ...req.continuation];
  const start = Math.max(0, whole.length - (maxLength + 1));
  return { index, input: whole.slice(start, whole.length - 1), ctxLen: req.context.length - start, cont: req.continuation };
}

/** Scores rows of logits (host, row-major [rows, V]) against their targets. */
function scoreRows(logits: ArrayLike<number>, row0: number, targets: readonly number[], V: number): LoglikelihoodResult {
  let logprob = 0, isGreedy = true;
  for (let j = 0; j < targets.length; j++) {
    const o = (row0 + j) * V;
    let max = -Infinity, arg = 0;
    for (let v = 0; v < V; v++) if (logits[o + v]! > max) { max = logits[o + v]!; arg = v; }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[o + v]! - max);
    logprob += logits[o + targets[j]!]! - max - Math.log(sum);
    if (arg !== targets[j]) isGreedy = false;
  }
  return { logprob, isGreedy };
}

/** Logits of selected rows of hidden (B, T, D): for each [b, t0, n], rows t0..t0+n-1 of sequence b. */
function rowLogits(w: CausalLMWeights, hidden: Tensor, picks: readonly (readonly [number, number, number])[]): Tensor {
  const D = hidden.shape[2]!;
  const parts = picks.filter(([, , n]) => n > 0).map(([b, t0, n]) => reshape(slice(hidden, [b, t0, 0], [b + 1, t0 + n, D]), [n, D]));
  return linear(parts.length === 1 ? parts[0]! : concat(parts, 0), w.lmHead); // (sum n, V)
}

async function readHost(t: Tensor): Promise<Float32Array | Float64Array> {
  try {
    await t.toHostAsync();
    const a = t.peek();
    return a instanceof Float64Array ? a.slice() : Float32Array.from(a as ArrayLike<number>);
  } finally {
    t.dispose();
  }
}

function padded(rows: readonly (readonly number[])[]): { ids: Int32Array; T: number } {
  const T = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * T); // right padding with token 0: later positions never reach earlier ones
  rows.forEach((r, b) => ids.set(r, b * T));
  return { ids, T };
}

function disposeCache(c: KVCache): void {
  for (const l of c.layers) {
    l.k.dispose();
    l.v.dispose();
  }
}

async function stopIfAborted(signal: AbortSignal | undefined): Promise<void> {
  if (await abortedAfterYield(signal)) throw signal!.reason;
}

/**
 * Sum of log-probabilities of each request's continuation given its context, and whether greedy decoding
 * would produce it; results in request order. Runs without gradients.
 */
export async function loglikelihoods(
  model: LanguageModel, requests: readonly LoglikelihoodRequest[], opts: LoglikelihoodOptions = {},
): Promise<LoglikelihoodResult[]> {
  const cfg = model.config;
  const maxPos = cfg.max_position_embeddings;
  const maxLength = opts.maxLength ?? maxPos;
  if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > maxPos)
    throw new RangeError(`loglikelihoods: maxLength must be an integer in [1, ${maxPos}], got ${maxLength}`);
  const batchSize = opts.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`loglikelihoods: batchSize must be a positive integer, got ${batchSize}`);
  const eps = opts.eps !== undefined ? { eps: opts.eps } : {};
  const V = cfg.vocab_size;
  const prepared = requests.map((r, i) => prepare(r, i, maxLength, V));
  const out: LoglikelihoodResult[] = new Array(requests.length);
  let done = 0;
  const finish = (p: Prepared, r: LoglikelihoodResult) => {
    out[p.index] = r;
    done++;
  };
  for (const p of prepared) if (p.cont.length === 0) finish(p, { logprob: 0, isGreedy: true });
  const todo = prepared.filter((p) => p.cont.length > 0);
  const w = noGrad(() => model.weights());

  if (opts.shareContext ?? true) {
    const groups = new Map<string, Prepared[]>();
    for (const p of todo) {
      const key = p.input.slice(0, p.ctxLen).join(",");
      const g = groups.get(key);
      if (g === undefined) groups.set(key, [p]);
      else g.push(p);
    }
    // Longest contexts first, as lm-eval orders its batches.
    const ordered = [...groups.values()].sort((a, b) => b[0]!.ctxLen - a[0]!.ctxLen);
    for (const group of ordered) {
      await stopIfAborted(opts.signal);
      const ctx = group[0]!.input.slice(0, group[0]!.ctxLen);
      const pre = noGrad(() => scope(() => {
        const r = causalLMForward(w, cfg, tensor(ctx, [1, ctx.length], { dtype: "int32" }), { returnCache: true, logits: "last", ...eps });
        return { last: r.logits!, cache: r.cache! };
      }));
      try {
        const lastRow = await readHost(pre.last); // predicts each continuation's first token
        for (let s = 0; s < group.length; s += batchSize) {
          if (s > 0) await stopIfAborted(opts.signal);
          const chunk = group.slice(s, s + batchSize);
          const rest = chunk.filter((p) => p.cont.length > 1);
          let restLogits: Float32Array | Float64Array | null = null;
          if (rest.length > 0) {
            const { ids, T } = padded(rest.map((p) => p.cont.slice(0, -1)));
            restLogits = await readHost(noGrad(() => scope(() => {
              const n = rest.length;
              const cache: KVCache = {
                length: pre.cache.length,
                layers: pre.cache.layers.map((l) => n === 1 ? l : { k: concat(new Array<Tensor>(n).fill(l.k), 0), v: concat(new Array<Tensor>(n).fill(l.v), 0) }),
              };
              const r = causalLMForward(w, cfg, tensor(ids, [n, T], { dtype: "int32" }), { cache, returnCache: false, logits: "none", ...eps });
              return rowLogits(w, r.hidden, rest.map((p, b) => [b, 0, p.cont.length - 1] as const));
            })));
          }
          let row = 0;
          for (const p of chunk) {
            const first = scoreRows(lastRow, 0, [p.cont[0]!], V);
            let r = first;
            if (p.cont.length > 1) {
              const more = scoreRows(restLogits!, row, p.cont.slice(1), V);
              row += p.cont.length - 1;
              r = { logprob: first.logprob + more.logprob, isGreedy: first.isGreedy && more.isGreedy };
            }
            finish(p, r);
          }
          opts.onProgress?.(done, requests.length);
        }
      } finally {
        disposeCache(pre.cache);
      }
    }
  } else {
    const sorted = [...todo].sort((a, b) => b.input.length - a.input.length);
    for (let s = 0; s < sorted.length; s += batchSize) {
      await stopIfAborted(opts.signal);
      const chunk = sorted.slice(s, s + batchSize);
      const { ids, T } = padded(chunk.map((p) => p.input));
      const logits = await readHost(noGrad(() => scope(() => {
        const r = causalLMForward(w, cfg, tensor(ids, [chunk.length, T], { dtype: "int32" }), { logits: "none", ...eps });
        return rowLogits(w, r.hidden, chunk.map((p, b) => [b, p.input.length - p.cont.length, p.cont.length] as const));
      })));
      let row = 0;
      for (const p of chunk) {
        finish(p, scoreRows(logits, row, p.cont, V));
        row += p.cont.length;
      }
      opts.onProgress?.(done, requests.length);
    }
  }
  return out;
}
