// Training batches from a token stream held in memory (a browser's corpus, a test's array), with exactly the
// semantics of the shard reader (./shard-reader.ts): window i is the seqLen+1 tokens [i*T, i*T+T]; an epoch
// visits the windows in the seeded Fisher-Yates order that is a pure function of (seed, epoch) and skips
// the windows that do not fill a last whole batch; the cursor (`state()`) resumes exactly. Over the same
// tokens, a TokenWindowReader and a ShardReader give identical batches: both are WindowBatchers
// (./window-batcher.ts), which own that logic; this file supplies only the copy out of memory. No file system.

import { DataError } from "./errors.js";
import type { Split } from "./manifest.js";
import { positiveInt, sequentialBatches, windowCount, WindowBatcher } from "./window-batcher.js";
import type { Batch } from "./window-batcher.js";

export { windowCount } from "./window-batcher.js";
export type { Batch, ReaderState } from "./window-batcher.js";

export type TokenArray = Int32Array | Uint32Array | Uint16Array | readonly number[];

export interface TokenWindowOptions {
  readonly seqLen: number;
  readonly batchSize: number;
  /** Default 0. */
  readonly seed?: number;
  /** The epoch to start at (default 0); `restore` overrides it. */
  readonly epoch?: number;
  /** Recorded in `state()` (default "train"). */
  readonly split?: Split;
  /** Every id must be below this (checked once, up front). */
  readonly vocabSize?: number;
  /** Names the stream in error messages (default "<tokens>"). */
  readonly source?: string;
}

function checkIds(tokens: TokenArray, vocabSize: number | undefined, where: string): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || (vocabSize !== undefined && t >= vocabSize))
      throw new DataError(where, "token-range", `token ${i} is ${t}, outside [0, ${vocabSize ?? "2^32"})`);
  }
}

/** Copies stream[start, start+len) into dst[dstOffset...]. */
function copyTokens(stream: TokenArray, start: number, len: number, dst: Int32Array, dstOffset: number): void {
  for (let i = 0; i < len; i++) dst[dstOffset + i] = stream[start + i]!;
}

/** A resumable, seeded stream of [B, T] batches over tokens in memory (epochs, order and cursor: WindowBatcher). */
export class TokenWindowReader extends WindowBatcher {
  constructor(private readonly stream: TokenArray, options: TokenWindowOptions) {
    const where = options.source ?? "<tokens>";
    positiveInt(options.seqLen, "seqLen", where);
    positiveInt(options.batchSize, "batchSize", where);
    checkIds(stream, options.vocabSize, where);
    super({
      split: options.split ?? "train",
      seqLen: options.seqLen,
      batchSize: options.batchSize,
      seed: options.seed,
      epoch: options.epoch,
      tokens: stream.length,
      kind: "stream",
      where,
    });
  }

  protected readWindow(start: number, len: number, dst: Int32Array, dstOffset: number): void {
    copyTokens(this.stream, start, len, dst, dstOffset);
  }
}

/** Every window of a token stream, in order, batched; the last batch may have fewer rows (see `shape`). */
export function* tokenWindows(stream: TokenArray, options: { seqLen: number; batchSize: number; maxBatches?: number; source?: string }): Generator<Batch> {
  const where = options.source ?? "<tokens>";
  positiveInt(options.seqLen, "seqLen", where);
  positiveInt(options.batchSize, "batchSize", where);
  yield* sequentialBatches(windowCount(stream.length, options.seqLen), (s, n, dst, o) => copyTokens(stream, s, n, dst, o), options);
}

/** Joins documents as the shard writer does: each document's ids followed by the end-of-text id. */
export function joinDocuments(documents: Iterable<readonly number[]>, eosId: number): Int32Array {
  const parts: (readonly number[])[] = [];
  let n = 0;
  for (const d of documents) {
    parts.push(d);
    n += d.length + 1;
  }
  const out = new Int32Array(n);
  let at = 0;
  for (const d of parts) {
    for (let i = 0; i < d.length; i++) out[at++] = d[i]!;
    out[at++] = eosId;
  }
  return out;
}
