// The batching logic the file-backed ShardReader (./shard-reader.ts) and the in-memory TokenWindowReader
// (./token-windows.ts) share, so both give identical batches over the same tokens. Window i is the seqLen+1
// tokens [i*T, i*T+T] of a token stream (windows tile the stream without overlap); a batch is B windows,
// inputs = first T tokens of each, targets = last T. Each epoch visits the windows in a seeded Fisher-Yates
// order that is a pure function of (seed, epoch) and skips the windows that do not fill a last whole batch;
// the cursor (`state()`) resumes exactly. A subclass supplies only `readWindow`, the way to copy tokens out of
// its stream. Platform-neutral: nothing here imports a Node module (it is reachable from ./browser.ts).

import { DataError } from "./errors.js";
import type { Split } from "./manifest.js";
import { epochPermutation } from "./sampler.js";

/**
 * The one batch type of lrc-ts: what the readers serve, what @lrc-ts/nn evaluates and what @lrc-ts/lrc trains on.
 * (Where a reader is in its epochs is its own state: `epoch`, `state()`.)
 */
export interface Batch {
  /** Row-major [B, T] token ids. */
  readonly inputs: Int32Array;
  /** inputs shifted left by one: targets[b, t] = token after inputs[b, t]; a target of -100 is ignored by CE. */
  readonly targets: Int32Array;
  readonly shape: readonly [number, number];
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

/**
 * Whether x has the fields and types of a ReaderState (a cursor read back from a file); whether it fits a
 * given reader is `restore`'s check.
 */
export function isReaderState(x: unknown): x is ReaderState {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
  const s = x as Partial<Record<keyof ReaderState, unknown>>;
  return s.version === 1 && (s.split === "train" || s.split === "val") &&
    [s.seed, s.epoch, s.position, s.seqLen, s.batchSize, s.numWindows].every((n) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0);
}

/** Copies tokens [start, start+len) of a stream into dst[dstOffset...]. */
export type ReadWindow = (start: number, len: number, dst: Int32Array, dstOffset: number) => void;

/** The number of non-overlapping (seqLen+1)-token windows in a stream of `tokens` tokens. */
export function windowCount(tokens: number, seqLen: number): number {
  return tokens > seqLen ? Math.floor((tokens - 1) / seqLen) : 0;
}

/** Throws a DataError naming `where` unless x is a positive safe integer. */
export function positiveInt(x: number, what: string, where: string): void {
  if (!Number.isSafeInteger(x) || x < 1) throw new DataError(where, "input", `${what} must be a positive integer, got ${x}`);
}

/** The [B, T] inputs and targets of the B windows whose first tokens are at startOf(0..B-1). */
function gather(read: ReadWindow, B: number, T: number, startOf: (b: number) => number): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const window = new Int32Array(T + 1);
  for (let b = 0; b < B; b++) {
    read(startOf(b), T + 1, window, 0);
    inputs.set(window.subarray(0, T), b * T);
    targets.set(window.subarray(1), b * T);
  }
  return { inputs, targets };
}

export interface SequentialBatchesOptions {
  readonly seqLen: number;
  readonly batchSize: number;
  /** Stop after this many batches. */
  readonly maxBatches?: number | undefined;
}

/** Every one of `numWindows` windows, in order, batched; the last batch may have fewer rows (see `shape`). */
export function* sequentialBatches(numWindows: number, read: ReadWindow, options: SequentialBatchesOptions): Generator<Batch> {
  const T = options.seqLen;
  let step = 0;
  for (let first = 0; first < numWindows; first += options.batchSize, step++) {
    if (options.maxBatches !== undefined && step >= options.maxBatches) return;
    const B = Math.min(options.batchSize, numWindows - first);
    const { inputs, targets } = gather(read, B, T, (b) => (first + b) * T);
    yield { inputs, targets, shape: [B, T] };
  }
}

export interface WindowBatcherInit {
  readonly split: Split;
  readonly seqLen: number;
  readonly batchSize: number;
  /** Default 0. */
  readonly seed?: number | undefined;
  /** The epoch to start at (default 0); `restore` overrides it. */
  readonly epoch?: number | undefined;
  /** Tokens in the stream. */
  readonly tokens: number;
  /** What the stream is called in the "fewer than one batch" error ("split", "stream"). */
  readonly kind: string;
  /** Names the stream in the constructor's errors. */
  readonly where: string;
  /** Names the stream in `restore`'s errors (default `where`). */
  readonly stateWhere?: string | undefined;
}

/**
 * A resumable, seeded stream of [B, T] batches over a token stream that a subclass reads with `readWindow`.
 * The constructor expects seqLen and batchSize already checked as positive integers (see `positiveInt`), and
 * throws a DataError when the stream holds fewer windows than one batch.
 */
export abstract class WindowBatcher implements Iterable<Batch> {
  readonly split: Split;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly seed: number;
  /** Windows in the stream and tokens in it. */
  readonly numWindows: number;
  readonly tokens: number;
  readonly batchesPerEpoch: number;
  private readonly stateWhere: string;
  private epochNow: number;
  private position = 0;
  private perm: Uint32Array | null = null;
  private permEpoch = -1;

  protected constructor(init: WindowBatcherInit) {
    this.split = init.split;
    this.seqLen = init.seqLen;
    this.batchSize = init.batchSize;
    this.seed = (init.seed ?? 0) >>> 0;
    this.epochNow = init.epoch ?? 0;
    this.tokens = init.tokens;
    this.stateWhere = init.stateWhere ?? init.where;
    this.numWindows = windowCount(this.tokens, this.seqLen);
    this.batchesPerEpoch = Math.floor(this.numWindows / this.batchSize);
    if (this.batchesPerEpoch === 0)
      throw new DataError(
        init.where,
        "input",
        `${this.split} ${init.kind} has ${this.tokens} tokens = ${this.numWindows} windows of ${this.seqLen}+1, fewer than one batch of ${this.batchSize}`,
      );
  }

  /** Copies tokens [start, start+len) of the stream into dst[dstOffset...]. */
  protected abstract readWindow(start: number, len: number, dst: Int32Array, dstOffset: number): void;

  /** The epoch the next batch comes from (after the last batch of an epoch, the one just finished). */
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
    const at = this.position;
    const { inputs, targets } = gather((s, n, dst, o) => this.readWindow(s, n, dst, o), B, T, (b) => perm[at + b]! * T);
    this.position += B;
    return { inputs, targets, shape: [B, T] };
  }

  /** The remaining batches of the current epoch (then stops; a following `next()` starts the next epoch). */
  *[Symbol.iterator](): Generator<Batch> {
    while (this.position < this.batchesPerEpoch * this.batchSize) yield this.next();
  }

  /**
   * What a run must find unchanged when it resumes with this reader (it goes into the trainer's config hash): with
   * `next`, `state` and `restore` this makes any WindowBatcher a trainer's batch source as it is.
   */
  describe(): Record<string, unknown> {
    return { seqLen: this.seqLen, batchSize: this.batchSize, seed: this.seed, windows: this.numWindows };
  }

  state(): ReaderState {
    return {
      version: 1,
      split: this.split,
      seed: this.seed,
      epoch: this.epochNow,
      position: this.position,
      seqLen: this.seqLen,
      batchSize: this.batchSize,
      numWindows: this.numWindows,
    };
  }

  /** Resumes from a `state()`; fails if it was taken on a different split, shape or stream size. */
  restore(state: ReaderState): void {
    const where = this.stateWhere;
    if (!isReaderState(state))
      throw new DataError(where, "state", `not a reader state (version 1, a split and six non-negative integers): ${JSON.stringify(state)}`);
    for (const [key, mine] of [
      ["split", this.split],
      ["seqLen", this.seqLen],
      ["batchSize", this.batchSize],
      ["numWindows", this.numWindows],
    ] as const)
      if (state[key] !== mine)
        throw new DataError(where, "state", `reader state was taken with ${key} ${JSON.stringify(state[key])}, this reader has ${JSON.stringify(mine)}`);
    const { seed, epoch, position } = state;
    if (seed > 0xffffffff) throw new DataError(where, "state", `bad seed ${seed} in reader state`);
    if (position % this.batchSize !== 0 || position > this.batchesPerEpoch * this.batchSize)
      throw new DataError(where, "state", `bad position ${position} in reader state`);
    (this as { seed: number }).seed = seed;
    this.epochNow = epoch;
    this.position = position;
    this.perm = null;
  }
}
