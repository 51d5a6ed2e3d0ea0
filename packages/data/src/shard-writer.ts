// Writes a shard directory: each split's token stream (documents, each followed by the end-of-text id) cut
// into shards of `shardTokens` tokens, then `manifest.json`. Every file is written under a temporary name and
// renamed into place; the manifest goes last, so a killed writer never leaves a directory that looks
// complete. Starting a writer on a directory removes its old manifest and shard files first.
//
// Two layers: `ShardDirectoryWriter` takes token ids (no tokenizer), `writeShards` takes text documents and a
// tokenizer and assigns each document to train or val by a seeded per-document choice.

import fs from "node:fs";
import path from "node:path";
import { openFileAtomic, writeFileAtomic } from "@lrc-ts/tensor-core";
import type { AtomicFile } from "@lrc-ts/tensor-core";
import { DataError } from "./errors.js";
import { FNV1A32_INIT, fnv1a32Update } from "./checksum.js";
import { dtypeBytes, dtypeForVocab, encodeHeader, hex32, HEADER_BYTES, SHARD_VERSION, type TokenDtype } from "./shard-format.js";
import { MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest, type ShardEntry, type Split } from "./manifest.js";
import { documentUniform } from "./sampler.js";
import type { TextTokenizer } from "./tokenizer.js";

/** Default shard size, as llm.c's fineweb shards: 100M tokens (200 MB at uint16). */
export const DEFAULT_SHARD_TOKENS = 100_000_000;

const SHARD_NAME = /^(train|val)-\d{6}\.bin$/;
// tensor-core's tempNameFor names (the shards' and the manifest's; the old `.tmp-<pid>` form too).
const TEMP_NAME = /^\.((train|val)-\d{6}\.bin|manifest\.json)\.tmp-\d+(-[0-9a-f]+)?$/;
const BUFFER_TOKENS = 1 << 16;

export interface ShardDirectoryWriterOptions {
  readonly out: string;
  readonly vocabSize: number;
  readonly eosId: number;
  /** sha256 of the tokenizer.json the ids come from. */
  readonly tokenizerHash: string;
  readonly eosToken?: string | null;
  readonly tokenizerSource?: string | null;
  readonly shardTokens?: number;
  readonly seed?: number;
  readonly valFraction?: number | null;
}

class SplitStream {
  readonly entries: ShardEntry[] = [];
  tokens = 0;
  documents = 0;
  private out: AtomicFile | null = null;
  private count = 0;
  private hash = FNV1A32_INIT;
  private readonly buf: Uint16Array | Uint32Array;
  private readonly bytes: Uint8Array;
  private fill = 0;
  private offset = 0;

  constructor(
    private readonly split: Split,
    private readonly dir: string,
    private readonly dtype: TokenDtype,
    private readonly shardTokens: number,
    private readonly header: { vocabSize: number; eosId: number },
  ) {
    this.buf = dtype === "uint16" ? new Uint16Array(BUFFER_TOKENS) : new Uint32Array(BUFFER_TOKENS);
    this.bytes = new Uint8Array(this.buf.buffer);
  }

  push(id: number): void {
    if (this.out === null) this.open();
    this.buf[this.fill++] = id;
    this.count++;
    this.tokens++;
    if (this.fill === BUFFER_TOKENS) this.flush();
    if (this.count === this.shardTokens) this.close();
  }

  private name(): string {
    return `${this.split}-${String(this.entries.length).padStart(6, "0")}.bin`;
  }

  private open(): void {
    this.out = openFileAtomic(path.join(this.dir, this.name()));
    fs.writeSync(this.out.fd, new Uint8Array(HEADER_BYTES), 0, HEADER_BYTES, 0);
    this.count = 0;
    this.hash = FNV1A32_INIT;
    this.fill = 0;
    this.offset = HEADER_BYTES;
  }

  private flush(): void {
    if (this.fill === 0) return;
    const n = this.fill * dtypeBytes(this.dtype);
    // Typed arrays are little-endian on every platform Node runs on; the format is little-endian.
    this.hash = fnv1a32Update(this.hash, this.bytes, 0, n);
    fs.writeSync(this.out!.fd, this.bytes, 0, n, this.offset);
    this.offset += n;
    this.fill = 0;
  }

  /** Finishes the open shard: header, then fsync and rename to its final name (openFileAtomic's commit). */
  close(): void {
    if (this.out === null) return;
    this.flush();
    const header = encodeHeader({
      version: SHARD_VERSION,
      dtype: this.dtype,
      tokenCount: this.count,
      vocabSize: this.header.vocabSize,
      eosId: this.header.eosId,
      checksum: this.hash,
    });
    fs.writeSync(this.out.fd, header, 0, HEADER_BYTES, 0);
    this.out.commit();
    this.out = null;
    const name = this.name();
    this.entries.push({
      file: name,
      split: this.split,
      tokens: this.count,
      bytes: HEADER_BYTES + this.count * dtypeBytes(this.dtype),
      checksum: hex32(this.hash),
    });
  }

  abort(): void {
    this.out?.abort();
    this.out = null;
  }
}

/** Streams token ids into a shard directory; `finish()` writes the manifest and returns it. */
export class ShardDirectoryWriter {
  readonly dtype: TokenDtype;
  private readonly streams: Record<Split, SplitStream>;
  private finished = false;

  constructor(private readonly options: ShardDirectoryWriterOptions) {
    const { out, vocabSize, eosId } = options;
    const shardTokens = options.shardTokens ?? DEFAULT_SHARD_TOKENS;
    if (!Number.isSafeInteger(vocabSize) || vocabSize < 1 || vocabSize > 0x100000000)
      throw new DataError(out, "input", `vocab size ${vocabSize} must be an integer in [1, 2^32]`);
    if (!Number.isSafeInteger(eosId) || eosId < 0 || eosId >= vocabSize)
      throw new DataError(out, "input", `end-of-text id ${eosId} must be in [0, vocab size ${vocabSize})`);
    if (!Number.isSafeInteger(shardTokens) || shardTokens < 1)
      throw new DataError(out, "input", `shard size ${shardTokens} tokens must be a positive integer`);
    this.dtype = dtypeForVocab(vocabSize);
    fs.mkdirSync(out, { recursive: true });
    // Invalidate first: remove the old manifest, then old shards and leftovers of killed runs.
    fs.rmSync(path.join(out, MANIFEST_FILE), { force: true });
    for (const name of fs.readdirSync(out))
      if (SHARD_NAME.test(name) || TEMP_NAME.test(name)) fs.rmSync(path.join(out, name), { force: true });
    const mk = (s: Split) => new SplitStream(s, out, this.dtype, shardTokens, { vocabSize, eosId });
    this.streams = { train: mk("train"), val: mk("val") };
  }

  /** Appends token ids to a split's stream (checked: integers in [0, vocabSize)). */
  addTokens(split: Split, ids: ArrayLike<number>): void {
    const s = this.streams[split];
    const v = this.options.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < v && Number.isInteger(id)))
        throw new DataError(this.options.out, "token-range", `token id ${id} is not an integer in [0, vocab size ${v})`);
      s.push(id);
    }
  }

  /** Ends the current document of a split: appends the end-of-text id. */
  endDocument(split: Split): void {
    this.streams[split].push(this.options.eosId);
    this.streams[split].documents++;
  }

  /** `addTokens` then `endDocument`. */
  addDocument(split: Split, ids: ArrayLike<number>): void {
    this.addTokens(split, ids);
    this.endDocument(split);
  }

  tokens(split: Split): number {
    return this.streams[split].tokens;
  }

  /** Closes the last shards and writes manifest.json (atomically, last). */
  finish(): Manifest {
    if (this.finished) throw new Error("ShardDirectoryWriter.finish called twice");
    this.finished = true;
    const o = this.options;
    for (const s of Object.values(this.streams)) s.close();
    const { train, val } = this.streams;
    const summary = (s: SplitStream) => ({ tokens: s.tokens, documents: s.documents, shards: s.entries.length });
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      tokenizer: { hash: o.tokenizerHash, eosToken: o.eosToken ?? null, source: o.tokenizerSource ?? null },
      vocabSize: o.vocabSize,
      eosId: o.eosId,
      dtype: this.dtype,
      seed: o.seed ?? 0,
      valFraction: o.valFraction ?? null,
      splits: { train: summary(train), val: summary(val) },
      shards: [...train.entries, ...val.entries],
    };
    writeFileAtomic(path.join(o.out, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");
    return manifest;
  }

  /** Stops without a manifest and deletes the shard being written (finished shards stay, unlisted). */
  abort(): void {
    this.finished = true;
    for (const s of Object.values(this.streams)) s.abort();
  }
}

/** Documents as strings, sync or async. */
export type DocumentSource = Iterable<string> | AsyncIterable<string>;

/**
 * A piece of a document: long documents (big .txt files) arrive in pieces cut where no tokenizer's
 * pre-tokenizer joins across the cut; `end` marks the document's last piece.
 */
export interface TextPiece {
  readonly text: string;
  readonly end: boolean;
  /** Where the text comes from (a file, or file:line), for messages. */
  readonly source?: string;
}

export interface WriteProgress {
  readonly documents: number;
  readonly tokens: number;
  /** UTF-8 bytes of text consumed. */
  readonly bytes: number;
  readonly elapsedMs: number;
}

export interface WriteShardsOptions {
  readonly tokenizer: TextTokenizer;
  readonly out: string;
  /** Documents to write; with split "auto" each goes to val with probability valFraction (seeded). */
  readonly documents?: DocumentSource;
  /** Where `documents` go: "auto" (default) splits by valFraction and seed; "train"/"val" send all there. */
  readonly split?: "auto" | Split;
  /** Alternatively, documents already split by the caller (both may be given, not with `documents`). */
  readonly trainDocuments?: DocumentSource;
  readonly valDocuments?: DocumentSource;
  /** Fraction of documents sent to val in "auto" mode; default 0. */
  readonly valFraction?: number;
  readonly shardTokens?: number;
  readonly seed?: number;
  readonly onProgress?: (p: WriteProgress) => void;
  /** Minimum milliseconds between onProgress calls (default 250); a final call always comes. */
  readonly progressIntervalMs?: number;
  /** Stops before the next piece of text once aborted, as on an error (temporary files removed, no manifest), rejecting with the signal's reason. */
  readonly signal?: AbortSignal;
}

async function* piecesOf(docs: DocumentSource): AsyncGenerator<TextPiece> {
  for await (const text of docs as AsyncIterable<string>) {
    if (typeof text !== "string") throw new TypeError(`documents must be strings, got ${typeof text}`);
    yield { text, end: true };
  }
}

/** Tokenizes documents into a shard directory and returns its manifest. Empty documents are skipped. */
export async function writeShards(options: WriteShardsOptions): Promise<Manifest> {
  const sources: { pieces: AsyncIterable<TextPiece>; split: "auto" | Split }[] = [];
  if (options.documents !== undefined) {
    if (options.trainDocuments !== undefined || options.valDocuments !== undefined)
      throw new DataError(options.out, "input", "give either documents or trainDocuments/valDocuments, not both");
    sources.push({ pieces: piecesOf(options.documents), split: options.split ?? "auto" });
  } else {
    if (options.trainDocuments !== undefined) sources.push({ pieces: piecesOf(options.trainDocuments), split: "train" });
    if (options.valDocuments !== undefined) sources.push({ pieces: piecesOf(options.valDocuments), split: "val" });
    if (sources.length === 0) throw new DataError(options.out, "input", "no documents given");
  }
  return writeTextPieces(options, sources);
}

/** A failed write (ENOSPC, EIO, ...) as a DataError naming the shard directory; other errors as they are. */
function writeError(out: string, e: unknown): unknown {
  if (e instanceof DataError || (e as NodeJS.ErrnoException).code === undefined) return e;
  return new DataError(out, "io", `cannot write shards: ${(e as Error).message.replace(/, \w+( '.*')?$/, "")}`);
}

/** The engine of writeShards and `lrc tokenize`: pieces from several sources into one directory. */
export async function writeTextPieces(
  options: Omit<WriteShardsOptions, "documents" | "trainDocuments" | "valDocuments" | "split">,
  sources: readonly { pieces: AsyncIterable<TextPiece>; split: "auto" | Split; describe?: string }[],
): Promise<Manifest> {
  const { tokenizer, out } = options;
  const valFraction = options.valFraction ?? 0;
  const seed = options.seed ?? 0;
  if (!(valFraction >= 0 && valFraction <= 1)) throw new DataError(out, "input", `val fraction ${valFraction} must be in [0, 1]`);
  const auto = sources.some((s) => s.split === "auto");
  const writer = new ShardDirectoryWriter({
    out,
    vocabSize: tokenizer.vocabSize,
    eosId: tokenizer.eosId,
    tokenizerHash: tokenizer.hash,
    eosToken: tokenizer.eosToken,
    tokenizerSource: tokenizer.path,
    ...(options.shardTokens !== undefined ? { shardTokens: options.shardTokens } : {}),
    seed,
    valFraction: auto ? valFraction : null,
  });
  const start = Date.now();
  const interval = options.progressIntervalMs ?? 250;
  let lastReport = 0;
  let documents = 0;
  let bytes = 0;
  const report = (force: boolean) => {
    if (options.onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - lastReport < interval) return;
    lastReport = now;
    options.onProgress({ documents, tokens: writer.tokens("train") + writer.tokens("val"), bytes, elapsedMs: now - start });
  };
  try {
    let autoIndex = 0;
    for (const source of sources) {
      let split: Split | null = null;
      let nonEmpty = false;
      for await (const piece of source.pieces) {
        options.signal?.throwIfAborted();
        if (split === null)
          split = source.split !== "auto" ? source.split : documentUniform(seed, autoIndex) < valFraction ? "val" : "train";
        if (piece.text.length > 0) {
          nonEmpty = true;
          bytes += Buffer.byteLength(piece.text, "utf8");
          const ids = tokenizer.encode(piece.text);
          // Only the literal text of the end-of-text token encodes to its id: it would split the document in two.
          if (ids.includes(tokenizer.eosId))
            throw new DataError(
              piece.source ?? source.describe ?? out,
              "input",
              `the text holds the end-of-text token ${JSON.stringify(tokenizer.eosToken)} literally (at character ${piece.text.indexOf(tokenizer.eosToken)} of the document${piece.end ? "" : " piece"}); it would become a document boundary: remove it from the text`,
            );
          writer.addTokens(split, ids);
        }
        if (piece.end) {
          if (nonEmpty) {
            writer.endDocument(split);
            documents++;
            if (source.split === "auto") autoIndex++;
          }
          split = null;
          nonEmpty = false;
          report(false);
        }
      }
      if (split !== null && nonEmpty) {
        writer.endDocument(split);
        documents++;
        if (source.split === "auto") autoIndex++;
      }
    }
  } catch (e) {
    writer.abort();
    throw writeError(out, e);
  }
  if (documents === 0) {
    writer.abort();
    throw new DataError(sources.map((s) => s.describe).filter((d) => d !== undefined).join(", ") || out, "input", "no text to tokenize: every document is empty (nothing written)");
  }
  let manifest: Manifest;
  try {
    manifest = writer.finish();
  } catch (e) {
    writer.abort();
    throw writeError(out, e);
  }
  report(true);
  return manifest;
}
