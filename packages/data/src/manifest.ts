// `manifest.json`, the table of contents of a shard directory: the tokenizer (sha256 of its tokenizer.json,
// end-of-text id, vocab size), the token dtype, and each shard with its split, token count, byte size and
// payload checksum. Written last (see shard-writer.ts), so a directory with a manifest is complete.

import fs from "node:fs";
import path from "node:path";
import { DataError } from "./errors.js";
import type { TokenDtype } from "./shard-format.js";

export const MANIFEST_FILE = "manifest.json";
export const MANIFEST_FORMAT = "lrc-ts-shards";
export const MANIFEST_VERSION = 1;

export type Split = "train" | "val";
export const SPLITS: readonly Split[] = ["train", "val"];

export interface ShardEntry {
  /** File name relative to the shard directory. */
  readonly file: string;
  readonly split: Split;
  readonly tokens: number;
  /** Bytes on disk, header included. */
  readonly bytes: number;
  /** Payload FNV-1a 32 as "0x" + 8 hex digits. */
  readonly checksum: string;
}

export interface SplitSummary {
  readonly tokens: number;
  readonly documents: number;
  readonly shards: number;
}

export interface Manifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly version: number;
  readonly tokenizer: {
    /** sha256 (hex) of the tokenizer.json bytes. */
    readonly hash: string;
    readonly eosToken: string | null;
    readonly source: string | null;
  };
  readonly vocabSize: number;
  readonly eosId: number;
  readonly dtype: TokenDtype;
  /** Seed of the per-document train/val choice, and the fraction sent to val (null when not split by seed). */
  readonly seed: number;
  readonly valFraction: number | null;
  readonly splits: Readonly<Record<Split, SplitSummary>>;
  /** Shards in stream order within each split. */
  readonly shards: readonly ShardEntry[];
}

function fail(file: string, msg: string): never {
  throw new DataError(file, "manifest", msg);
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** Reads and checks the shape of `<dir>/manifest.json`. */
export function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    if (!fs.existsSync(dir)) throw new DataError(dir, "io", "no such shard directory");
    fail(file, "missing: not a complete shard directory (was `lrc tokenize` interrupted?)");
  }
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    fail(file, `invalid JSON: ${(e as Error).message}`);
  }
  if (typeof m !== "object" || m === null) fail(file, "not a JSON object");
  if (m.format !== MANIFEST_FORMAT) fail(file, `"format" is ${JSON.stringify(m.format)}, expected "${MANIFEST_FORMAT}"`);
  if (m.version !== MANIFEST_VERSION) fail(file, `unsupported manifest version ${JSON.stringify(m.version)} (expected ${MANIFEST_VERSION})`);
  const tok = m.tokenizer as Record<string, unknown> | undefined;
  if (typeof tok !== "object" || tok === null || typeof tok.hash !== "string") fail(file, `"tokenizer.hash" is missing`);
  if (!isCount(m.vocabSize) || m.vocabSize === 0) fail(file, `"vocabSize" must be a positive integer`);
  if (!isCount(m.eosId) || m.eosId >= m.vocabSize) fail(file, `"eosId" must be an integer below vocabSize`);
  if (m.dtype !== "uint16" && m.dtype !== "uint32") fail(file, `"dtype" must be "uint16" or "uint32"`);
  if (m.dtype === "uint16" && m.vocabSize > 65536) fail(file, `"dtype" uint16 cannot hold vocabSize ${m.vocabSize}`);
  if (!Array.isArray(m.shards)) fail(file, `"shards" must be an array`);
  const seen = new Set<string>();
  m.shards.forEach((s: unknown, i: number) => {
    const e = s as Record<string, unknown>;
    const where = `"shards[${i}]"`;
    if (typeof e !== "object" || e === null) fail(file, `${where} is not an object`);
    if (typeof e.file !== "string" || e.file.length === 0 || e.file.includes("/") || e.file.includes("\\") || e.file.startsWith("."))
      fail(file, `${where}.file must be a plain file name`);
    if (seen.has(e.file)) fail(file, `${where}.file ${e.file} is listed twice`);
    seen.add(e.file);
    if (e.split !== "train" && e.split !== "val") fail(file, `${where}.split must be "train" or "val"`);
    if (!isCount(e.tokens)) fail(file, `${where}.tokens must be a non-negative integer`);
    if (!isCount(e.bytes)) fail(file, `${where}.bytes must be a non-negative integer`);
    if (typeof e.checksum !== "string" || !/^0x[0-9a-f]{8}$/.test(e.checksum)) fail(file, `${where}.checksum must be "0x" + 8 hex digits`);
  });
  const splits = m.splits as Record<string, unknown> | undefined;
  if (typeof splits !== "object" || splits === null) fail(file, `"splits" is missing`);
  for (const sp of ["train", "val"] as const) {
    const s = splits[sp] as Record<string, unknown> | undefined;
    if (typeof s !== "object" || s === null || !isCount(s.tokens) || !isCount(s.documents) || !isCount(s.shards))
      fail(file, `"splits.${sp}" must have integer tokens, documents and shards`);
    const listed = (m.shards as ShardEntry[]).filter((e) => e.split === sp);
    const sum = listed.reduce((a, e) => a + e.tokens, 0);
    if (listed.length !== s.shards || sum !== s.tokens)
      fail(file, `"splits.${sp}" says ${s.shards} shards / ${s.tokens} tokens but the shard list has ${listed.length} / ${sum}`);
  }
  return m as unknown as Manifest;
}
