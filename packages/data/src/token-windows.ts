// Training batches from a token stream held in memory (a browser's corpus, a test's array), with exactly the
// semantics of the shard reader (./shard-reader.ts): window i is the seqLen+1 tokens [i*T, i*T+T]; an epoch
// visits the windows in the seeded Fisher-Yates order that is a pure function of (seed, epoch) and skips
// the windows that do not fill a last whole batch; the cursor (`state()`) resumes exactly. Over the same
// tokens, a TokenWindowReader and a ShardReader give identical batches. No file system.

import { DataError } from "./errors.js";
import type { Split } from "./manifest.js";
import { epochPermutation } from "./sampler.js";

export interface Batch {
  /** Row-major [B, T] token ids. */
  readonly inputs: Int32Array;
  /** inputs shifted left by one: targets[b, t] = token after inputs[b, t]. */
  readonly targets: Int32Array;
  readonly shape: readonly [number, number];
  /** Epoch of this batch and its index within the epoch. */
  readonly epoch: number;
  readonly step: number;
}

/** A JSON-serialisable reader cursor: store it in a checkpoint, give it to `restore` to resume. */
export interface ReaderState {
  readonly version: 1;
  readonly split: Split;
  readonly seed: number;
  readonly epoch: number;
  /** Windows of this epoch already served (a multiple of batchSize). */
  readonly position: number;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly numWindows: number;
}

/** The number of non-overlapping (seqLen+1)-token windows in a stream of `tokens` tokens. */
export function windowCount(tokens: number, seqLen: number): number {
  return tokens > seqLen ? Math.floor((tokens - 1) / seqLen) : 0;
}

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

function positiveInt(x: number, what: string, where: string): void {
  if (!Number.isSafeInteger(x) || x < 1) throw new DataError(where, "input", `${what} must be a positive integer, got ${x}`);
}

function checkIds(tokens: TokenArray, vocabSize: number | undefined, where: string): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || (vocabSize !== undefined && t >= vocabSize))
      throw new DataError(where, "token-range", `token ${i} is ${t}, outside [0, ${vocabSize ?? "2^32"})`);
  }
}

/** A resumable, seeded stream of [B, T] batches over tokens in memory. */
export class TokenWindowReader implements Iterable<Batch> {
  readonly split: Split;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly numWindows: number;
  readonly tokens: number;
  readonly batchesPerEpoch: number;
  private readonly where: string;
  private epochNow: number;
  private position = 0;
  private perm: Uint32Array | null = null;
  private permEpoch = -1;

  constructor(private readonly stream: TokenArray, options: TokenWindowOptions) {
    this.where = options.source ?? "<tokens>";
    positiveInt(options.seqLen, "seqLen", this.where);
    positiveInt(options.batchSize, "batchSize", this.where);
    checkIds(stream, options.vocabSize, this.where);
    this.split = options.split ?? "train";
    this.seqLen = options.seqLen;
    this.batchSize = options.batchSize;
    this.seed = (options.seed ?? 0) >>> 0;
    this.epochNow = options.epoch ?? 0;
    this.tokens = stream.length;
    this.numWindows = windowCount(this.tokens, this.seqLen);
    this.batchesPerEpoch = Math.floor(this.numWindows / this.batchSize);
    if (this.batchesPerEpoch === 0)
      throw new DataError(
        this.where,
        "input",
        `${this.split} stream has ${this.tokens} tokens = ${this.numWindows} windows of ${this.seqLen}+1, fewer than one batch of ${this.batchSize}`,
      );
  }

  /** The epoch the next batch comes from. */
  get epoch(): number {
    return this.epochNow;
  }

  private permutation(): Uint32Array {
    if (this.perm === null || this.permEpoch !== this.epochNow) {
      this.perm = epochPermutation(this.numWindows, this.seed, this.epochNow);
      this.permEpoch = this.epochNow;
    }
    return this.perm;
  }

  /** The next batch; after the last batch of an epoch it moves on to the next epoch. */
  next(): Batch {
    if (this.position >= this.batchesPerEpoch * this.batchSize) {
      this.epochNow++;
      this.position = 0;
    }
    const perm = this.permutation();
    const B = this.batchSize;
    const T = this.seqLen;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = perm[this.position + b]! * T;
      for (let t = 0; t < T; t++) {
        inputs[b * T + t] = this.stream[start + t]!;
        targets[b * T + t] = this.stream[start + t + 1]!;
      }
    }
    const step = this.position / B;
    this.position += B;
    return { inputs, targets, shape: [B, T], epoch: this.epochNow, step };
  }

  /** The remaining batches of the current epoch. */
  *[Symbol.iterator](): Generator<Batch> {
    while (this.position < this.batchesPerEpoch * this.batchSize) yield this.next();
  }

  state(): ReaderState {
    return {
      version: 1, split: this.split, seed: this.seed, epoch: this.epochNow, position: this.position, seqLen: this.seqLen,
      batchSize: this.batchSize, numWindows: this.numWindows,
    };
  }

  /** Resumes from a `state()`; fails if it was taken on a different split, shape or stream size. */
  restore(state: ReaderState): void {
    const s = state as unknown as Record<string, unknown>;
    if (typeof s !== "object" || s === null || s.version !== 1) throw new DataError(this.where, "state", "reader state has no version 1 marker");
    for (const [key, mine] of [["split", this.split], ["seqLen", this.seqLen], ["batchSize", this.batchSize], ["numWindows", this.numWindows]] as const)
      if (s[key] !== mine)
        throw new DataError(this.where, "state", `reader state was taken with ${key} ${JSON.stringify(s[key])}, this reader has ${JSON.stringify(mine)}`);
    const { seed, epoch, position } = state;
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new DataError(this.where, "state", `bad seed ${seed} in reader state`);
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new DataError(this.where, "state", `bad epoch ${epoch} in reader state`);
    if (!Number.isSafeInteger(position) || position < 0 || position % this.batchSize !== 0 || position > this.batchesPerEpoch * this.batchSize)
      throw new DataError(this.where, "state", `bad position ${position} in reader state`);
    (this as { seed: number }).seed = seed;
    this.epochNow = epoch;
    this.position = position;
    this.perm = null;
  }
}

/** Every window of a token stream, in order, batched; the last batch may have fewer rows (see `shape`). */
export function* tokenWindows(stream: TokenArray, options: { seqLen: number; batchSize: number; maxBatches?: number; source?: string }): Generator<Batch> {
  const where = options.source ?? "<tokens>";
  positiveInt(options.seqLen, "seqLen", where);
  positiveInt(options.batchSize, "batchSize", where);
  const T = options.seqLen;
  const n = windowCount(stream.length, T);
  let step = 0;
  for (let first = 0; first < n; first += options.batchSize, step++) {
    if (options.maxBatches !== undefined && step >= options.maxBatches) return;
    const B = Math.min(options.batchSize, n - first);
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = (first + b) * T;
      for (let t = 0; t < T; t++) {
        inputs[b * T + t] = stream[start + t]!;
        targets[b * T + t] = stream[start + t + 1]!;
      }
    }
    yield { inputs, targets, shape: [B, T], epoch: 0, step };
  }
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
