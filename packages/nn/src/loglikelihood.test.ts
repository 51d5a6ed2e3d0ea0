// Log-likelihood scoring and multiple-choice accuracy against tools/make_nn_fixtures.py's float64 PyTorch
// re-implementation of lm-evaluation-harness's rules (fixtures/loglikelihood/expected.json): token
// boundaries (trailing context spaces, empty contexts, merges across the boundary), per-request sums and
// is_greedy within 1e-4 on the committed tiny checkpoints (full window and a window of 8 tokens, i.e. left
// truncation), with and without the shared-context cache and at several batch sizes; accuracies identical;
// and (fast-check) cached and uncached scoring agreeing on random requests, batch sizes and windows.

import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadCausalLM } from "./checkpoint.js";
import { encodeRequest, loglikelihoods } from "./loglikelihood.js";
import type { Encode } from "./loglikelihood.js";
import type { MultipleChoiceDoc } from "./multiple-choice.js";
import { evaluateMultipleChoice, meanStderr } from "./multiple-choice.js";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

interface Golden {
  vocab: string[];
  prefix_token: number;
  whitespace: string;
  requests: [string, string][];
  docs: MultipleChoiceDoc[];
  models: {
    dir: string;
    max_length: number | null;
    requests: { context_ids: number[]; continuation_ids: number[]; loglikelihood: number; is_greedy: boolean }[];
    samples: { loglikelihoods: number[]; is_greedy: boolean[]; gold: number; pred: number; pred_norm: number }[];
    acc: number;
    acc_stderr: number;
    acc_norm: number;
    acc_norm_stderr: number;
  }[];
}

const golden = JSON.parse(fs.readFileSync(path.join(FIXTURES, "loglikelihood", "expected.json"), "utf8")) as Golden;

/** The fixture's toy tokenizer: greedy longest match over its vocabulary, unknown characters -> 0. */
const encode: Encode = (text) => {
  const ids: number[] = [];
  for (let i = 0; i < text.length;) {
    let best = -1;
    for (let v = 3; v < golden.vocab.length; v++)
      if (text.startsWith(golden.vocab[v]!, i) && (best < 0 || golden.vocab[v]!.length > golden.vocab[best]!.length)) best = v;
    ids.push(best < 0 ? 0 : best);
    i += best < 0 ? 1 : golden.vocab[best]!.length;
  }
  return ids;
};

describe("encodeRequest", () => {
  it("splits tokens at lm-eval's boundary", () => {
    const ref = golden.models[0]!.requests;
    golden.requests.forEach(([c, t], i) => {
      const r = encodeRequest(encode, c, t, golden.prefix_token);
      expect([r.context, r.continuation], `request ${i}: ${JSON.stringify([c, t])}`).toEqual([ref[i]!.context_ids, ref[i]!.continuation_ids]);
    });
  });

  it("moves exactly Python's whitespace characters to the continuation", () => {
    const chars: string[] = [];
    for (const ch of golden.whitespace) chars.push(ch);
    const seen: string[] = [];
    const marker: Encode = (s) => Array.from(s, (ch) => ch.codePointAt(0)!);
    for (let cp = 0; cp < 0x3100; cp++) {
      const ch = String.fromCodePoint(cp);
      const r = encodeRequest(marker, "x" + ch, "y", 0);
      if (r.context.length === 1) seen.push(ch);
    }
    expect(seen).toEqual(chars.filter((c) => c.codePointAt(0)! < 0x3100));
  });
});

describe("loglikelihoods", () => {
  for (const m of golden.models) {
    const label = `${m.dir}, window ${m.max_length ?? "max_position_embeddings"}`;
    it(`matches PyTorch float64 per request (${label})`, async () => {
      const model = await loadCausalLM(path.join(FIXTURES, m.dir));
      const reqs = m.requests.map((r) => ({ context: r.context_ids, continuation: r.continuation_ids }));
      for (const [shareContext, batchSize] of [[true, 1], [true, 3], [false, 1], [false, 4]] as const) {
        const got = await loglikelihoods(model, reqs, { shareContext, batchSize, ...(m.max_length !== null ? { maxLength: m.max_length } : {}) });
        got.forEach((g, i) => {
          const where = `${label}, request ${i}, shareContext ${shareContext}, batch ${batchSize}`;
          expect(Math.abs(g.logprob - m.requests[i]!.loglikelihood), where).toBeLessThan(1e-4);
          expect(g.isGreedy, where).toBe(m.requests[i]!.is_greedy);
        });
      }
    });

    it(`gives lm-eval's accuracies (${label})`, async () => {
      const model = await loadCausalLM(path.join(FIXTURES, m.dir));
      const r = await evaluateMultipleChoice(model, encode, golden.docs, {
        prefixToken: golden.prefix_token, batchSize: 2, ...(m.max_length !== null ? { maxLength: m.max_length } : {}),
      });
      expect(r.n).toBe(golden.docs.length);
      r.samples.forEach((s, d) => {
        const e = m.samples[d]!;
        s.loglikelihoods.forEach((l, i) => expect(Math.abs(l - e.loglikelihoods[i]!), `doc ${d} choice ${i}`).toBeLessThan(1e-4));
        expect([s.isGreedy, s.gold, s.pred, s.predNorm], `doc ${d}`).toEqual([e.is_greedy, e.gold, e.pred, e.pred_norm]);
      });
      expect(r.acc).toBe(m.acc);
      expect(r.accNorm).toBe(m.acc_norm);
      expect(r.accStderr).toBeCloseTo(m.acc_stderr, 12);
      expect(r.accNormStderr).toBeCloseTo(m.acc_norm_stderr, 12);
    });
  }

  it("gives the same numbers with and without the shared-context cache, at any batch size and window (property)", async () => {
    const model = await loadCausalLM(path.join(FIXTURES, "llama-gqa-llama3rope-f32"));
    const V = model.config.vocab_size;
    const tokens = (min: number, max: number) => fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: min, maxLength: max });
    // A few contexts, each with a few continuations: contexts repeat, so the cache is shared.
    const doc = fc.record({ context: tokens(1, 12), continuations: fc.array(tokens(0, 5), { minLength: 1, maxLength: 4 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(doc, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 5, max: 20 }), async (docs, batchSize, maxLength) => {
        const reqs = docs.flatMap((d) => d.continuations.map((continuation) => ({ context: d.context, continuation })));
        const a = await loglikelihoods(model, reqs, { shareContext: true, batchSize, maxLength });
        const b = await loglikelihoods(model, reqs, { shareContext: false, batchSize: 1, maxLength });
        a.forEach((r, i) => {
          expect(Math.abs(r.logprob - b[i]!.logprob), `request ${i}`).toBeLessThan(1e-4);
          expect(r.isGreedy, `request ${i}`).toBe(b[i]!.isGreedy);
          if (reqs[i]!.continuation.length === 0) expect(r).toEqual({ logprob: 0, isGreedy: true });
          else expect(r.logprob).toBeLessThan(0);
        });
      }),
      { numRuns: 25, seed: 7 },
    );
  });

  it("greedy continuations are is_greedy, and a one-token change is not", async () => {
    const model = await loadCausalLM(path.join(FIXTURES, "qwen2-tied-f32"));
    const { generate } = await import("./generate.js");
    const prompt = [5, 9, 14];
    const { tokens } = await generate(model, prompt, { maxNewTokens: 4, stopTokens: [] });
    const other = [...tokens];
    other[2] = (other[2]! + 1) % model.config.vocab_size;
    const [a, b] = await loglikelihoods(model, [{ context: prompt, continuation: tokens }, { context: prompt, continuation: other }], { batchSize: 2 });
    expect(a!.isGreedy).toBe(true);
    expect(b!.isGreedy).toBe(false);
    expect(a!.logprob).toBeGreaterThan(b!.logprob);
  });

  it("stops between forward passes once its signal is aborted, rejecting with the signal's reason", async () => {
    const model = await loadCausalLM(path.join(FIXTURES, "qwen2-tied-f32"));
    const reqs = [[5, 9], [7], [3, 3, 4], [8, 1]].map((context, i) => ({ context, continuation: [10 + i, 20 + i] }));
    for (const shareContext of [true, false]) {
      const ac = new AbortController();
      const seen: number[] = [];
      const p = loglikelihoods(model, reqs, { shareContext, signal: ac.signal, onProgress: (d) => (seen.push(d), d === 2 && ac.abort(new Error("stop here"))) });
      await expect(p).rejects.toThrow("stop here");
      expect(seen).toEqual([1, 2]);
    }
  });

  it("rejects empty contexts, continuations longer than the window and bad options", async () => {
    const model = await loadCausalLM(path.join(FIXTURES, "qwen2-tied-f32"));
    await expect(loglikelihoods(model, [{ context: [], continuation: [3] }])).rejects.toThrow(/request 0: empty context/);
    await expect(loglikelihoods(model, [{ context: [3], continuation: [4, 5, 6] }], { maxLength: 2 })).rejects.toThrow(/3 tokens does not fit the window of 2/);
    await expect(loglikelihoods(model, [{ context: [3], continuation: [400] }])).rejects.toThrow(/token 400 is outside/);
    await expect(loglikelihoods(model, [], { maxLength: 1000 })).rejects.toThrow(/maxLength/);
    await expect(evaluateMultipleChoice(model, encode, [{ context: "a", choices: ["b", "c"], gold: 2 }], { prefixToken: 1 })).rejects.toThrow(/document 0: the answer index 2 is not one of the 2 choices/);
  });
});

describe("meanStderr", () => {
  it("is the sample standard deviation over sqrt(n)", () => {
    expect(meanStderr([1, 0, 1, 1])).toBeCloseTo(0.25, 12); // mean .75, sum of squares .75, sd sqrt(.75 / 3) = .5, / sqrt(4)
    expect(meanStderr([1])).toBeNaN();
  });
});
