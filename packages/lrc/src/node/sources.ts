// The trainer's data adapters over shard directories (Node): the val split (or another split) as the eval
// source. The batch source over shards is openShards(...) itself: a ShardReader is a WindowBatcher, which is a
// BatchSource as it is.

import { evaluateBatches } from "@lrc-ts/nn";
import { evalWindows } from "@lrc-ts/data";
import type { Split } from "@lrc-ts/data";
import type { EvalSource } from "../task.js";

/** The first `maxBatches` batches of a shard directory's val split (or the given split) as the eval source. */
export function valSource(dir: string, opts: { seqLen: number; batchSize: number; maxBatches: number; split?: Split }): EvalSource {
  const split = opts.split ?? "val";
  return {
    evaluate: (model) =>
      evaluateBatches(model, evalWindows(dir, { split, seqLen: opts.seqLen, batchSize: opts.batchSize, maxBatches: opts.maxBatches, verify: false })),
  };
}
