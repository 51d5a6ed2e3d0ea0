// The fairness guarantees of the comparison: the LRC student and the baseline get the same token budget and
// the same batches in the same order, the baseline is scored exactly at the LRC budget, and the evaluation
// windows are one fixed set spread over the whole held-out split.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { trainBpeTokenizer, writeShards } from "@lrc-ts/data";
import { budgetPlan, openTrainBatches, spreadEvalSet, tokensPerStep, type BatchPlan } from "./batches.js";
import { loadAddresses, splitByAddress, subsetAddresses } from "./corpus.js";

let dir = "";
let shards = "";

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "distill-qwen-batches-"));
  shards = path.join(dir, "shards");
  const split = splitByAddress(subsetAddresses(loadAddresses(), 12), 4);
  const tok = (await trainBpeTokenizer({ texts: split.train.map((a) => a.text), vocabSize: 300 })).load();
  await writeShards({ tokenizer: tok, out: shards, trainDocuments: split.train.map((a) => a.text), valDocuments: split.val.map((a) => a.text) });
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function drain(plan: BatchPlan, steps: number, digestSteps: number) {
  const src = openTrainBatches(plan, digestSteps);
  try {
    const batches = Array.from({ length: steps }, () => src.next());
    return { batches, digest: src.digest(), served: src.served() };
  } finally {
    src.close();
  }
}

describe("the LRC student and the baseline see the same tokens", () => {
  it("same plan: identical batches in the same order, equal digests over the LRC budget", () => {
    const plan: BatchPlan = { shards, seqLen: 32, batchSize: 4, seed: 7 };
    const budget = budgetPlan({ plan, tokens: null, defaultSteps: 6, evalsPerBudget: 3, multiple: 3 });
    const lrc = drain(plan, budget.lrcSteps, budget.lrcSteps);
    const base = drain(plan, budget.baselineSteps, budget.lrcSteps);
    expect(lrc.served * tokensPerStep(plan)).toBe(budget.lrcTokens);
    expect(base.served * tokensPerStep(plan)).toBe(budget.baselineTokens);
    for (let i = 0; i < budget.lrcSteps; i++) {
      expect(base.batches[i]!.inputs).toEqual(lrc.batches[i]!.inputs);
      expect(base.batches[i]!.targets).toEqual(lrc.batches[i]!.targets);
    }
    expect(lrc.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(base.digest).toBe(lrc.digest);
  });

  it("the digest sees a different order (another seed) and is absent before the budget is consumed", () => {
    const a = drain({ shards, seqLen: 32, batchSize: 4, seed: 1 }, 4, 4);
    const b = drain({ shards, seqLen: 32, batchSize: 4, seed: 2 }, 4, 4);
    expect(a.digest).not.toBe(b.digest);
    expect(drain({ shards, seqLen: 32, batchSize: 4, seed: 1 }, 3, 4).digest).toBeNull();
  });

  it("budgetPlan: equal tokens at the budget, an evaluation exactly there, warmup independent of length (property)", () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 1, max: 5_000_000 }), { nil: null }),
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(16, 64, 128),
        fc.constantFrom(1, 4, 8),
        (tokens, defaultSteps, k, multiple, T, B) => {
          const plan: BatchPlan = { shards, seqLen: T, batchSize: B, seed: 0 };
          const p = budgetPlan({ plan, tokens, defaultSteps, evalsPerBudget: k, multiple });
          expect(p.lrcTokens).toBe(p.lrcSteps * T * B);
          expect(p.lrcTokens).toBeGreaterThanOrEqual(tokens ?? defaultSteps * T * B);
          expect(p.lrcSteps - (tokens === null ? defaultSteps : Math.ceil(tokens / (T * B)))).toBeLessThan(k);
          expect(p.baselineSteps).toBe(p.lrcSteps * multiple);
          expect(p.lrcSteps % p.evalEvery).toBe(0);
          expect(p.lrcSteps / p.evalEvery).toBe(k);
          expect(p.warmupSteps).toBeGreaterThanOrEqual(1);
          expect(p.warmupSteps).toBeLessThanOrEqual(p.lrcSteps);
        },
      ),
    );
    expect(() => budgetPlan({ plan: { shards, seqLen: 8, batchSize: 1, seed: 0 }, tokens: null, defaultSteps: 4, evalsPerBudget: 0, multiple: 1 })).toThrow(/evaluations/);
  });
});

describe("spreadEvalSet", () => {
  it("takes windows spread over the whole val split, targets shifted by one", () => {
    const T = 16;
    const set = spreadEvalSet(shards, { seqLen: T, windows: 10, batchSize: 4 });
    expect(set.windows).toBe(10);
    expect(set.tokens).toBe(10 * T);
    expect(set.batches.map((b) => b.shape[0])).toEqual([4, 4, 2]);
    for (const b of set.batches)
      for (let r = 0; r < b.shape[0]; r++)
        for (let t = 0; t + 1 < T; t++) expect(b.targets[r * T + t]).toBe(b.inputs[r * T + t + 1]);
    // The last window chosen lies in the last tenth of the split.
    const all = spreadEvalSet(shards, { seqLen: T, windows: 1_000_000, batchSize: 1_000_000 });
    expect(all.windows).toBe(all.ofWindows);
    const last = set.batches.at(-1)!;
    const lastInputs = last.inputs.subarray((last.shape[0] - 1) * T, last.shape[0] * T);
    const flat = all.batches[0]!.inputs;
    let at = -1;
    for (let w = 0; w < all.windows && at < 0; w++) if (flat.subarray(w * T, w * T + T).every((v, i) => v === lastInputs[i])) at = w;
    expect(at).toBeGreaterThanOrEqual(Math.floor(all.windows * 0.85));
  });

  it("names the directory when the split is too short", () => {
    expect(() => spreadEvalSet(shards, { seqLen: 10_000_000, windows: 4, batchSize: 2 })).toThrow(/fewer than one evaluation window/);
  });
});
