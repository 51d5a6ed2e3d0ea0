// Generation and evaluation: sampling rules (greedy, temperature, top-k, top-p) against their definitions,
// KV-cache generation equal to a no-cache greedy loop, stop tokens / callbacks / limits, and evaluate()
// equal to a direct cross-entropy over the same windows.

import { crossEntropy, noGrad, rng, slice, tensor } from "@lrc-ts/tensor-core";
import { describe, expect, it } from "vitest";
import { evaluate, evaluateBatches } from "./evaluate.js";
import { configStopTokens, generate, sampleToken } from "./generate.js";
import { CausalLM } from "./models/causal-lm.js";
import { tinyLlama, tinyQwen } from "./testing-internal/tiny.js";

function counts(logits: number[], opts: Parameters<typeof sampleToken>[1], n: number, seed = 0): number[] {
  const r = rng(seed);
  const c = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) c[sampleToken(logits, opts, r)]!++;
  return c.map((x) => x / n);
}

describe("sampleToken", () => {
  const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];

  it("temperature 0 is argmax (first on ties)", () => {
    expect(sampleToken([0, 3, 1, 3], {}, rng(0))).toBe(1);
    expect(sampleToken(logits, { temperature: 0, topK: 3 }, rng(0))).toBe(0);
  });

  it("temperature 1 samples softmax(logits)", () => {
    const f = counts(logits, { temperature: 1 }, 20000);
    [0.5, 0.3, 0.15, 0.05].forEach((p, i) => expect(Math.abs(f[i]! - p)).toBeLessThan(0.015));
  });

  it("temperature 2 flattens: p ~ sqrt(p)", () => {
    const f = counts(logits, { temperature: 2 }, 20000);
    const q = [0.5, 0.3, 0.15, 0.05].map(Math.sqrt);
    const z = q.reduce((a, b) => a + b);
    q.forEach((p, i) => expect(Math.abs(f[i]! - p / z)).toBeLessThan(0.015));
  });

  it("top-k keeps the k most likely, renormalised", () => {
    const f = counts(logits, { temperature: 1, topK: 2 }, 20000);
    expect(f[2]).toBe(0);
    expect(f[3]).toBe(0);
    expect(Math.abs(f[0]! - 0.625)).toBeLessThan(0.015);
  });

  it("top-k keeps ties with the k-th value", () => {
    const f = counts([2, 1, 1, 0], { temperature: 1, topK: 2 }, 2000);
    expect(f[2]).toBeGreaterThan(0);
    expect(f[3]).toBe(0);
  });

  it("top-p keeps the smallest head whose mass reaches p (HF TopPLogitsWarper)", () => {
    expect(counts(logits, { temperature: 1, topP: 0.5 }, 500)).toEqual([1, 0, 0, 0]);
    const f = counts(logits, { temperature: 1, topP: 0.7 }, 20000);
    expect(f[2]).toBe(0);
    expect(Math.abs(f[1]! - 0.375)).toBeLessThan(0.015);
    const g = counts(logits, { temperature: 1, topP: 0.81 }, 5000);
    expect(g[2]).toBeGreaterThan(0);
    expect(g[3]).toBe(0);
  });

  it("is reproducible for a seed", () => {
    expect(counts(logits, { temperature: 1 }, 50, 3)).toEqual(counts(logits, { temperature: 1 }, 50, 3));
  });

  it("rejects bad parameters", () => {
    expect(() => sampleToken(logits, { temperature: -1 }, rng(0))).toThrow(/temperature/);
    expect(() => sampleToken(logits, { temperature: 1, topP: 0 }, rng(0))).toThrow(/topP/);
    expect(() => sampleToken(logits, { temperature: 1, topK: 1.5 }, rng(0))).toThrow(/topK/);
  });
});

describe("generate", () => {
  const cfg = tinyLlama();
  const model = new CausalLM(cfg, { seed: 11, std: 0.5 });

  it("greedy with the KV cache equals a no-cache argmax loop", async () => {
    const prompt = [5, 9, 2, 30];
    const seq = [...prompt];
    noGrad(() => {
      for (let i = 0; i < 12; i++) {
        const l = model.logits(seq);
        seq.push(sampleToken(l.slice([0, seq.length - 1]).buf, {}, rng(0)));
      }
    });
    const r = await generate(model, prompt, { maxNewTokens: 12, stopTokens: [] });
    expect(r.tokens).toEqual(seq.slice(prompt.length));
    expect(r.stopReason).toBe("length");
  });

  it("sampling is reproducible per seed and streams each token", async () => {
    const seen: number[] = [];
    const a = await generate(model, [1, 2], { maxNewTokens: 10, temperature: 1.5, topK: 20, topP: 0.95, seed: 4, stopTokens: [], onToken: (t) => void seen.push(t) });
    const b = await generate(model, [1, 2], { maxNewTokens: 10, temperature: 1.5, topK: 20, topP: 0.95, seed: 4, stopTokens: [] });
    const c = await generate(model, [1, 2], { maxNewTokens: 10, temperature: 1.5, topK: 20, topP: 0.95, seed: 5, stopTokens: [] });
    expect(a.tokens).toEqual(b.tokens);
    expect(seen).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it("stops at a stop token (excluded), on a callback, and at max_position_embeddings", async () => {
    const free = (await generate(model, [3], { maxNewTokens: 6, stopTokens: [] })).tokens;
    const stopAt = free[3]!;
    const firstIdx = free.indexOf(stopAt);
    const r = await generate(model, [3], { maxNewTokens: 6, stopTokens: [stopAt] });
    expect(r).toEqual({ tokens: free.slice(0, firstIdx), stopReason: "stop" });
    expect((await generate(model, [3], { maxNewTokens: 6, stopTokens: [], onToken: (_, i) => i < 1 })).tokens).toEqual(free.slice(0, 2));
    const long = Array.from({ length: cfg.max_position_embeddings - 2 }, (_, i) => i % cfg.vocab_size);
    expect(await generate(model, long, { maxNewTokens: 10, stopTokens: [] })).toMatchObject({ stopReason: "context" });
    expect((await generate(model, long, { maxNewTokens: 10, stopTokens: [] })).tokens.length).toBe(2);
  });

  it("stops before the next token once its signal is aborted", async () => {
    const free = (await generate(model, [3], { maxNewTokens: 6, stopTokens: [] })).tokens;
    const ac = new AbortController();
    const r = await generate(model, [3], { maxNewTokens: 6, stopTokens: [], signal: ac.signal, onToken: (_, i) => void (i === 2 && ac.abort()) });
    expect(r).toEqual({ tokens: free.slice(0, 3), stopReason: "aborted" });
    expect(await generate(model, [3], { maxNewTokens: 6, stopTokens: [], signal: AbortSignal.abort() })).toEqual({ tokens: [], stopReason: "aborted" });
  });

  it("defaults stop tokens to config eos_token_id and validates the prompt", async () => {
    expect(configStopTokens(tinyQwen())).toEqual([2]);
    await expect(generate(model, [])).rejects.toThrow(/at least one token/);
    await expect(generate(model, [cfg.vocab_size])).rejects.toThrow(/outside the vocabulary/);
    await expect(generate(model, new Array(cfg.max_position_embeddings + 1).fill(0))).rejects.toThrow(/max_position_embeddings/);
  });
});

describe("evaluate", () => {
  const cfg = tinyQwen();
  const model = new CausalLM(cfg, { seed: 12, std: 0.5 });
  const r = rng(3);
  const toks = Array.from({ length: 23 }, () => r.int(cfg.vocab_size));

  /** CE over one window computed directly from the full logits. */
  const windowSum = (s: number, len: number): number =>
    noGrad(() => {
      const l = model.logits(toks.slice(s, s + len));
      const t = tensor(toks.slice(s + 1, s + len + 1), [1, len], { dtype: "int32" });
      return crossEntropy(slice(l, [0, 0], [1, len]), t, { reduction: "sum" }).item();
    });

  it("one window: mean next-token NLL of the whole sequence", async () => {
    const e = await evaluate(model, toks);
    expect(e.tokens).toBe(22);
    expect(e.loss).toBeCloseTo(windowSum(0, 22) / 22, 5);
    expect(e.perplexity).toBeCloseTo(Math.exp(e.loss), 6);
  });

  it("windows tile the sequence; batching does not change the result", async () => {
    const want = (windowSum(0, 5) + windowSum(5, 5) + windowSum(10, 5) + windowSum(15, 5) + windowSum(20, 2)) / 22;
    const progress: number[] = [];
    const a = await evaluate(model, toks, { window: 5, onProgress: (d) => progress.push(d) });
    const b = await evaluate(model, toks, { window: 5, batchSize: 3 });
    expect(a.tokens).toBe(22);
    expect(a.loss).toBeCloseTo(want, 5);
    expect(b.loss).toBeCloseTo(a.loss, 5);
    expect(progress).toEqual([5, 10, 15, 20, 22]);
  });

  it("stops between batches once its signal is aborted: the result covers the batches done", async () => {
    const ac = new AbortController();
    const e = await evaluate(model, toks, { window: 5, signal: ac.signal, onProgress: (d) => void (d === 10 && ac.abort()) });
    expect(e.tokens).toBe(10);
    expect(e.loss).toBeCloseTo((windowSum(0, 5) + windowSum(5, 5)) / 10, 5);
    // A timer aborts it: the loop lets the event loop turn between batches (its reads resolve at once on cpu).
    const slow = new AbortController();
    setTimeout(() => slow.abort(), 0);
    const batches = function* () {
      for (let s = 0; s + 6 <= toks.length; s = (s + 5) % 15) yield { inputs: Int32Array.from(toks.slice(s, s + 5)), targets: Int32Array.from(toks.slice(s + 1, s + 6)), shape: [1, 5] as [number, number] };
    };
    const f = await evaluateBatches(model, batches(), { signal: slow.signal });
    expect(f.tokens % 5).toBe(0);
    expect(f.tokens).toBeLessThan(5 * 1000);
  });

  it("evaluateBatches over explicit [B, T] batches", async () => {
    const inputs = Int32Array.from([...toks.slice(0, 5), ...toks.slice(5, 10)]);
    const targets = Int32Array.from([...toks.slice(1, 6), ...toks.slice(6, 11)]);
    const e = await evaluateBatches(model, [{ inputs, targets, shape: [2, 5] }]);
    expect(e.tokens).toBe(10);
    expect(e.loss).toBeCloseTo((windowSum(0, 5) + windowSum(5, 5)) / 10, 5);
  });

  it("rejects a window beyond max_position_embeddings and out-of-vocabulary tokens", async () => {
    await expect(evaluate(model, toks, { window: cfg.max_position_embeddings + 1 })).rejects.toThrow(/exceeds max_position_embeddings/);
    await expect(evaluate(model, [1, 2, cfg.vocab_size])).rejects.toThrow(/outside the vocabulary/);
    expect((await evaluate(model, [1])).tokens).toBe(0);
  });
});
