// Streams training batches out of a shard directory, the way llm.c's `dataloader.h` does, but resumable and
// checked. A split's token stream is its shards concatenated in manifest order; window i is the seqLen+1
// tokens [i*T, i*T+T] of that stream (windows tile the stream without overlap and may cross shard
// boundaries); a batch is B windows, inputs = first T tokens of each, targets = last T. Each epoch visits the
// windows in a seeded Fisher-Yates order that is a pure function of (seed, epoch); the windows that do not
// fill a last whole batch are skipped for that epoch (a different few each epoch). Reads go by file offset
// (fs.readSync on open descriptors), so memory stays flat however big the corpus. The epoch order, batching
// and cursor are WindowBatcher's (./window-batcher.ts), shared with the in-memory TokenWindowReader; this
// file supplies the reads from shard files.
//
// On open every shard is checked against the manifest (size, header, count) and, unless `verify: false`,
// its payload is streamed once to check the checksum and that every id is < vocab size. Problems are
// DataErrors naming the file.

import fs from "node:fs";
import path from "node:path";
import { DataError } from "./errors.js";
import { FNV1A32_INIT, fnv1a32Update } from "./checksum.js";
import { decodeHeader, dtypeBytes, hex32, HEADER_BYTES } from "./shard-format.js";
import { MANIFEST_FILE, readManifest, type Manifest, type ShardEntry, type Split } from "./manifest.js";
import { sha256Hex, type TextTokenizer } from "./tokenizer-json.js";
import { positiveInt, sequentialBatches, windowCount, WindowBatcher } from "./window-batcher.js";
import type { Batch } from "./window-batcher.js";

export type { Batch, ReaderState } from "./window-batcher.js";
export { windowCount } from "./window-batcher.js";

export interface OpenSplitOptions {
  /** Default "train". */
  readonly split?: Split;
  /** Fail unless the manifest's tokenizer sha256 equals this. */
  readonly expectTokenizerHash?: string;
  /** Stream every payload once to check checksums and token ranges (default true). */
  readonly verify?: boolean;
}

export interface OpenShardsOptions extends OpenSplitOptions {
  readonly seqLen: number;
  readonly batchSize: number;
  /** Default 0. */
  readonly seed?: number;
  /** The epoch to start at (default 0); `restore` overrides it. */
  readonly epoch?: number;
}

const VERIFY_CHUNK = 1 << 22;

/** The shards of one split, opened and checked, readable by global token offset. */
class SplitFiles {
  readonly entries: readonly ShardEntry[];
  readonly starts: number[];
  readonly tokens: number;
  private readonly fds: number[] = [];
  private readonly files: string[];
  private readonly width: 2 | 4;
  private scratch = new Uint8Array(0);

  constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    readonly split: Split,
    verify: boolean,
  ) {
    this.entries = manifest.shards.filter((e) => e.split === split);
    this.width = dtypeBytes(manifest.dtype);
    this.files = this.entries.map((e) => path.join(dir, e.file));
    this.starts = [];
    let total = 0;
    for (const e of this.entries) {
      this.starts.push(total);
      total += e.tokens;
    }
    this.tokens = total;
    try {
      for (let i = 0; i < this.entries.length; i++) this.fds.push(this.openShard(this.files[i]!, this.entries[i]!, verify));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openShard(file: string, entry: ShardEntry, verify: boolean): number {
    const m = this.manifest;
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch {
      throw new DataError(file, "missing-shard", `shard listed in ${MANIFEST_FILE} is missing`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      const head = new Uint8Array(HEADER_BYTES);
      const got = fs.readSync(fd, head, 0, HEADER_BYTES, 0);
      const h = decodeHeader(head.subarray(0, got), file);
      const mismatch = (what: string, inFile: string | number, inManifest: string | number) =>
        new DataError(file, "manifest-mismatch", `${what} is ${inFile} in the shard but ${inManifest} in ${MANIFEST_FILE}`);
      if (h.dtype !== m.dtype) throw mismatch("token dtype", h.dtype, m.dtype);
      if (h.vocabSize !== m.vocabSize) throw mismatch("vocab size", h.vocabSize, m.vocabSize);
      if (h.eosId !== m.eosId) throw mismatch("end-of-text id", h.eosId, m.eosId);
      if (h.tokenCount !== entry.tokens) throw mismatch("token count", h.tokenCount, entry.tokens);
      if (hex32(h.checksum) !== entry.checksum) throw mismatch("payload checksum", hex32(h.checksum), entry.checksum);
      const expected = HEADER_BYTES + h.tokenCount * this.width;
      if (size < expected)
        throw new DataError(file, "truncated", `truncated: ${size} bytes, the header promises ${h.tokenCount} tokens = ${expected} bytes`);
      if (size > expected)
        throw new DataError(file, "manifest-mismatch", `${size - expected} bytes after the ${h.tokenCount} tokens the header promises`);
      if (entry.bytes !== size) throw mismatch("size in bytes", size, entry.bytes);
      if (verify) this.verifyPayload(fd, file, h.tokenCount, h.checksum);
      return fd;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private verifyPayload(fd: number, file: string, count: number, checksum: number): void {
    const total = count * this.width;
    const chunk = new Uint8Array(Math.min(VERIFY_CHUNK, Math.max(total, 4)));
    let hash = FNV1A32_INIT;
    let maxId = 0;
    let maxAt = 0;
    for (let off = 0; off < total; ) {
      const n = fs.readSync(fd, chunk, 0, Math.min(chunk.length, total - off), HEADER_BYTES + off);
      if (n <= 0) throw new DataError(file, "truncated", `truncated while reading the payload at byte ${HEADER_BYTES + off}`);
      hash = fnv1a32Update(hash, chunk, 0, n);
      const ids = this.width === 2 ? new Uint16Array(chunk.buffer, 0, n >> 1) : new Uint32Array(chunk.buffer, 0, n >> 2);
      for (let i = 0; i < ids.length; i++)
        if (ids[i]! > maxId) {
          maxId = ids[i]!;
          maxAt = off / this.width + i;
        }
      off += n;
    }
    if (hash !== checksum)
      throw new DataError(file, "checksum", `payload checksum mismatch (header says ${hex32(checksum)}, data hashes to ${hex32(hash)}): the file is corrupt`);
    if (count > 0 && maxId >= this.manifest.vocabSize)
      throw new DataError(file, "token-range", `token id ${maxId} at position ${maxAt} >= vocab size ${this.manifest.vocabSize}`);
  }

  /** Copies tokens [start, start+count) of the split's stream into out[outOffset...]. */
  read(start: number, count: number, out: Int32Array, outOffset: number): void {
    const w = this.width;
    if (this.scratch.length < count * w) this.scratch = new Uint8Array(Math.max(count * w, 64));
    let shard = this.shardOf(start);
    let done = 0;
    const vocab = this.manifest.vocabSize;
    while (done < count) {
      const local = start + done - this.starts[shard]!;
      const n = Math.min(count - done, this.entries[shard]!.tokens - local);
      const bytes = n * w;
      const got = fs.readSync(this.fds[shard]!, this.scratch, 0, bytes, HEADER_BYTES + local * w);
      if (got !== bytes) throw new DataError(this.files[shard]!, "truncated", `short read at token ${local}: the file shrank after it was opened`);
      const ids = w === 2 ? new Uint16Array(this.scratch.buffer, 0, n) : new Uint32Array(this.scratch.buffer, 0, n);
      for (let i = 0; i < n; i++) {
        const id = ids[i]!;
        if (id >= vocab) throw new DataError(this.files[shard]!, "token-range", `token id ${id} at position ${local + i} >= vocab size ${vocab}`);
        out[outOffset + done + i] = id;
      }
      done += n;
      shard++;
    }
  }

  private shardOf(pos: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    // Skip empty shards that start at the same offset.
    while (lo < this.entries.length - 1 && this.entries[lo]!.tokens === 0) lo++;
    return lo;
  }

  close(): void {
    for (const fd of this.fds.splice(0)) fs.closeSync(fd);
  }
}

function openSplit(dir: string, options: OpenSplitOptions): SplitFiles {
  const manifest = readManifest(dir);
  if (options.expectTokenizerHash !== undefined && options.expectTokenizerHash !== manifest.tokenizer.hash)
    throw new DataError(
      path.join(dir, MANIFEST_FILE),
      "tokenizer-mismatch",
      `shards were made with tokenizer sha256 ${manifest.tokenizer.hash}, expected ${options.expectTokenizerHash}`,
    );
  return new SplitFiles(dir, manifest, options.split ?? "train", options.verify ?? true);
}

/**
 * A resumable, seeded stream of [B, T] batches over one split (epochs, order and cursor: WindowBatcher).
 * Close it to release file descriptors.
 */
export class ShardReader extends WindowBatcher {
  readonly manifest: Manifest;
  private readonly files: SplitFiles;

  constructor(dir: string, options: OpenShardsOptions) {
    positiveInt(options.seqLen, "seqLen", dir);
    positiveInt(options.batchSize, "batchSize", dir);
    const files = openSplit(dir, options);
    try {
      super({
        split: files.split,
        seqLen: options.seqLen,
        batchSize: options.batchSize,
        seed: options.seed,
        epoch: options.epoch,
        tokens: files.tokens,
        kind: "split",
        where: dir,
        stateWhere: path.join(dir, MANIFEST_FILE),
      });
    } catch (e) {
      files.close();
      throw e;
    }
    this.files = files;
    this.manifest = files.manifest;
  }

  get vocabSize(): number {
    return this.manifest.vocabSize;
  }
  get eosId(): number {
    return this.manifest.eosId;
  }

  protected readWindow(start: number, len: number, dst: Int32Array, dstOffset: number): void {
    this.files.read(start, len, dst, dstOffset);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    yield* this[Symbol.iterator]();
  }

  close(): void {
    this.files.close();
  }
}

/** Opens a split for training batches. See ShardReader. */
export function openShards(dir: string, options: OpenShardsOptions): ShardReader {
  return new ShardReader(dir, options);
}

/** Checks every shard of a split against the manifest: size, header, payload checksum and token range (streamed, nothing kept). */
export function verifySplit(dir: string, split: Split): void {
  openSplit(dir, { split, verify: true }).close();
}

/** A whole split's token stream, in order, as one array (for evaluation on small splits). */
export function readSplitTokens(dir: string, split: Split = "val", options: Omit<OpenSplitOptions, "split"> = {}): Int32Array {
  const files = openSplit(dir, { ...options, split });
  try {
    const out = new Int32Array(files.tokens);
    if (files.tokens > 0) files.read(0, files.tokens, out, 0);
    return out;
  } finally {
    files.close();
  }
}

export interface EvalWindowsOptions extends OpenSplitOptions {
  readonly seqLen: number;
  readonly batchSize: number;
  /** Stop after this many batches. */
  readonly maxBatches?: number;
}

/** Every window of a split, in order, batched; the last batch may have fewer rows (see `shape`). */
export function* evalWindows(dir: string, options: EvalWindowsOptions): Generator<Batch> {
  positiveInt(options.seqLen, "seqLen", dir);
  positiveInt(options.batchSize, "batchSize", dir);
  const files = openSplit(dir, { ...options, split: options.split ?? "val" });
  try {
    yield* sequentialBatches(windowCount(files.tokens, options.seqLen), (s, n, dst, o) => files.read(s, n, dst, o), options);
  } finally {
    files.close();
  }
}

/**
 * Checks that a tokenizer (a TextTokenizer, or a tokenizer.json path / model directory) is the one the
 * shards in `dir` were made with, by sha256 of the tokenizer.json bytes.
 */
export function verifyTokenizer(dir: string, tokenizer: TextTokenizer | string): void {
  const manifest = readManifest(dir);
  let hash: string;
  let where: string;
  if (typeof tokenizer === "string") {
    where = fs.existsSync(tokenizer) && fs.statSync(tokenizer).isDirectory() ? path.join(tokenizer, "tokenizer.json") : tokenizer;
    try {
      hash = sha256Hex(fs.readFileSync(where));
    } catch {
      throw new DataError(where, "tokenizer", "cannot read tokenizer file");
    }
  } else {
    hash = tokenizer.hash;
    where = tokenizer.path ?? "<tokenizer>";
  }
  if (hash !== manifest.tokenizer.hash)
    throw new DataError(
      where,
      "tokenizer-mismatch",
      `tokenizer sha256 ${hash} differs from ${path.join(dir, MANIFEST_FILE)} (${manifest.tokenizer.hash}): the shards were made with another tokenizer`,
    );
}
