// The trainer's tasks for Node: the platform-neutral tasks of ./task-core.ts plus `export(dir)` (the trained
// model as an HF model directory), and the data adapters over shard directories: a shard reader as the batch
// source, the val split as the eval source.

import { evaluateBatches, saveCausalLM } from "@lrc-ts/nn";
import { evalWindows } from "@lrc-ts/data";
import type { ShardReader, Split } from "@lrc-ts/data";
import type { LowRankClone } from "./lrc.js";
import { LmTask as LmTaskBase, LrcTask as LrcTaskBase, windowSource } from "./task-core.js";
import type { BatchSource, EvalSource, TrainTask as TrainTaskBase } from "./task-core.js";

export type { Batch, BatchSource, EvalSource, LmTaskOptions, TaskLoss } from "./task-core.js";
export { windowSource, tokenEvalSource } from "./task-core.js";

/** A task whose trained model can also be written as an HF model directory. */
export interface TrainTask extends TrainTaskBase {
  /** Writes the trained model as an HF directory. */
  export(dir: string, opts: { tokenizerFrom?: string }): Promise<void>;
}

/** Low-Rank Clone as a training task. */
export class LrcTask extends LrcTaskBase implements TrainTask {
  constructor(override readonly clone: LowRankClone) {
    super(clone);
  }

  async export(dir: string, opts: { tokenizerFrom?: string }): Promise<void> {
    await this.clone.exportStudent(dir, opts);
  }
}

/** A plain CausalLM trained with CE (pretraining, the from-scratch baseline) or CE + KL (plain KD). */
export class LmTask extends LmTaskBase implements TrainTask {
  async export(dir: string, opts: { tokenizerFrom?: string }): Promise<void> {
    await this.weightsToHost();
    await saveCausalLM(this.model, dir, opts.tokenizerFrom !== undefined ? { tokenizerFrom: opts.tokenizerFrom } : {});
  }
}

/** A shard reader as the trainer's batch source: windowSource under its Node name (a ShardReader is a WindowBatcher). */
export const readerSource: (reader: ShardReader) => BatchSource = windowSource;

/** The first `maxBatches` batches of a shard directory's val split (or the given split) as the eval source. */
export function valSource(dir: string, opts: { seqLen: number; batchSize: number; maxBatches: number; split?: Split }): EvalSource {
  const split = opts.split ?? "val";
  return {
    evaluate: (model) =>
      evaluateBatches(model, evalWindows(dir, { split, seqLen: opts.seqLen, batchSize: opts.batchSize, maxBatches: opts.maxBatches, verify: false })),
  };
}
