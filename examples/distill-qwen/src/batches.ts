// The data side of a fair comparison. Training: the LRC student and the baseline each open the train split
// with the same (seqLen, batchSize, seed), so they draw the same batches in the same order, and a digest of
// the batches each run consumed proves it in the report. Evaluation: one fixed set of val windows spread
// evenly over the whole held-out split (every era of the corpus, not just its first address), used for every
// model and every periodic evaluation.

import { createHash } from "node:crypto";
import { openShards, readSplitTokens, windowCount } from "@lrc-ts/data";
import type { Batch, ReaderState } from "@lrc-ts/data";
import { evaluateBatches } from "@lrc-ts/nn";
import type { EvalResult, LanguageModel } from "@lrc-ts/nn";
import type { BatchSource, EvalSource } from "@lrc-ts/lrc";

/** What a training run reads: the same value gives the same batches in the same order. */
export interface BatchPlan {
  readonly shards: string;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly seed: number;
}

/** Tokens per optimizer step. */
export function tokensPerStep(plan: BatchPlan): number {
  return plan.seqLen * plan.batchSize;
}

/** How long each student trains and when it is evaluated. */
export interface BudgetPlan {
  /** LRC optimizer steps: the token budget is lrcSteps x tokensPerStep. */
  readonly lrcSteps: number;
  /** The baseline's steps: multiple x lrcSteps (its first lrcSteps steps are the equal-budget run). */
  readonly baselineSteps: number;
  readonly multiple: number;
  /** Both runs evaluate every evalEvery steps; lrcSteps is a multiple of it, so the baseline is scored at the budget. */
  readonly evalEvery: number;
  /** Shared warmup (then constant LR), so the baseline's LR at step s does not depend on its total length. */
  readonly warmupSteps: number;
  readonly tokensPerStep: number;
  readonly lrcTokens: number;
  readonly baselineTokens: number;
}

/**
 * The budgets: `tokens` (or the preset's `defaultSteps`) rounded up to whole steps and to a multiple of
 * `evalsPerBudget`, the baseline `multiple` times as long.
 */
export function budgetPlan(opts: { plan: BatchPlan; tokens: number | null; defaultSteps: number; evalsPerBudget: number; multiple: number }): BudgetPlan {
  const perStep = tokensPerStep(opts.plan);
  const k = opts.evalsPerBudget;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`evaluations per budget must be a positive integer, got ${k}`);
  if (!Number.isInteger(opts.multiple) || opts.multiple < 1) throw new RangeError(`the baseline multiple must be a positive integer, got ${opts.multiple}`);
  const wanted = opts.tokens === null ? opts.defaultSteps : Math.ceil(opts.tokens / perStep);
  const lrcSteps = Math.max(k, Math.ceil(wanted / k) * k);
  const baselineSteps = lrcSteps * opts.multiple;
  return {
    lrcSteps,
    baselineSteps,
    multiple: opts.multiple,
    evalEvery: lrcSteps / k,
    warmupSteps: Math.max(1, Math.round(lrcSteps * 0.05)),
    tokensPerStep: perStep,
    lrcTokens: lrcSteps * perStep,
    baselineTokens: baselineSteps * perStep,
  };
}

/**
 * A batch source over the plan's train split that also digests (sha256 over inputs and targets) the first
 * `digestSteps` batches it serves. `digest()` is that hex digest once `digestSteps` batches were served,
 * else null; `close()` releases the shard files.
 */
export interface DigestingSource extends BatchSource {
  digest(): string | null;
  served(): number;
  close(): void;
}

export function openTrainBatches(plan: BatchPlan, digestSteps: number): DigestingSource {
  const reader = openShards(plan.shards, { split: "train", seqLen: plan.seqLen, batchSize: plan.batchSize, seed: plan.seed });
  const hash = createHash("sha256");
  let served = 0;
  let digest: string | null = null;
  return {
    next(): Batch {
      const b = reader.next();
      if (served < digestSteps) {
        hash.update(new Uint8Array(b.inputs.buffer, b.inputs.byteOffset, b.inputs.byteLength));
        hash.update(new Uint8Array(b.targets.buffer, b.targets.byteOffset, b.targets.byteLength));
        if (served + 1 === digestSteps) digest = hash.digest("hex");
      }
      served++;
      return b;
    },
    state: (): ReaderState => reader.state(),
    restore: (s: ReaderState) => reader.restore(s),
    describe: () => reader.describe(),
    digest: () => digest,
    served: () => served,
    close: () => reader.close(),
  };
}

/** A fixed evaluation set: `windows` windows of seqLen+1 tokens spread evenly over a split's stream. */
export interface EvalSet {
  readonly batches: readonly Batch[];
  /** Tokens scored per evaluation. */
  readonly tokens: number;
  readonly windows: number;
  /** Windows in the whole split. */
  readonly ofWindows: number;
}

export function spreadEvalSet(shards: string, opts: { seqLen: number; windows: number; batchSize: number; split?: "val" | "train" }): EvalSet {
  const split = opts.split ?? "val";
  const stream = readSplitTokens(shards, split, { verify: false });
  const T = opts.seqLen;
  const n = windowCount(stream.length, T);
  if (n === 0)
    throw new Error(`${shards}: the ${split} split has ${stream.length} tokens, fewer than one evaluation window of ${T}+1; give more (or longer) held-out text`);
  const k = Math.min(opts.windows, n);
  const starts: number[] = [];
  for (let i = 0; i < k; i++) starts.push(Math.floor((i * n) / k) * T);
  const batches: Batch[] = [];
  for (let first = 0; first < k; first += opts.batchSize) {
    const B = Math.min(opts.batchSize, k - first);
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const s = starts[first + b]!;
      inputs.set(stream.subarray(s, s + T), b * T);
      targets.set(stream.subarray(s + 1, s + T + 1), b * T);
    }
    batches.push({ inputs, targets, shape: [B, T] });
  }
  return { batches, tokens: k * T, windows: k, ofWindows: n };
}

/** Mean NLL and perplexity of a model on the set (no gradient; intermediates freed). */
export function evaluateOn(set: EvalSet, model: LanguageModel): Promise<EvalResult> {
  return evaluateBatches(model, set.batches);
}

/** The set as the lrc Trainer's eval source. */
export function evalSource(set: EvalSet): EvalSource {
  return { evaluate: (model) => evaluateOn(set, model) };
}
