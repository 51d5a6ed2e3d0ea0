// The token shard file: a fixed 256-byte little-endian header followed by the raw tokens, like llm.c's
// `dev/data/data_common.py` shards but self-checking. Layout (all integers little-endian):
//
//   offset  size  field
//   0       8     magic "LRCSHARD" (ASCII)
//   8       4     format version (u32) = 1
//   12      4     token width in bytes (u32): 2 = uint16 tokens, 4 = uint32 tokens
//   16      8     token count (u64)
//   24      4     vocab size (u32): every token id is < this
//   28      4     end-of-text id (u32) the documents are joined with
//   32      4     payload checksum (u32): FNV-1a 32 over the payload bytes
//   36      216   reserved, zero
//   252     4     header checksum (u32): FNV-1a 32 over bytes 0..251
//   256     ...   payload: token count x token width bytes
//
// uint16 is used when vocab size <= 65,536, uint32 otherwise.

import { DataError } from "./errors.js";
import { fnv1a32 } from "./checksum.js";

export const SHARD_MAGIC = "LRCSHARD";
export const SHARD_VERSION = 1;
export const HEADER_BYTES = 256;
const HEADER_CHECKSUM_OFFSET = 252;

export type TokenDtype = "uint16" | "uint32";

export interface ShardHeader {
  readonly version: number;
  readonly dtype: TokenDtype;
  readonly tokenCount: number;
  readonly vocabSize: number;
  readonly eosId: number;
  readonly checksum: number;
}

/** The narrowest token dtype that holds ids 0..vocabSize-1. */
export function dtypeForVocab(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? "uint16" : "uint32";
}

export function dtypeBytes(dtype: TokenDtype): 2 | 4 {
  return dtype === "uint16" ? 2 : 4;
}

/** Serialises a header into a fresh 256-byte buffer (with its header checksum). */
export function encodeHeader(h: ShardHeader): Uint8Array {
  const buf = new Uint8Array(HEADER_BYTES);
  const dv = new DataView(buf.buffer);
  for (let i = 0; i < 8; i++) buf[i] = SHARD_MAGIC.charCodeAt(i);
  dv.setUint32(8, h.version, true);
  dv.setUint32(12, dtypeBytes(h.dtype), true);
  dv.setBigUint64(16, BigInt(h.tokenCount), true);
  dv.setUint32(24, h.vocabSize, true);
  dv.setUint32(28, h.eosId, true);
  dv.setUint32(32, h.checksum >>> 0, true);
  dv.setUint32(HEADER_CHECKSUM_OFFSET, fnv1a32(buf.subarray(0, HEADER_CHECKSUM_OFFSET)), true);
  return buf;
}

/** Parses and checks a header; `file` names the shard in errors. `buf` must hold at least 256 bytes. */
export function decodeHeader(buf: Uint8Array, file: string): ShardHeader {
  if (buf.length < HEADER_BYTES)
    throw new DataError(file, "truncated", `file is ${buf.length} bytes, shorter than the ${HEADER_BYTES}-byte shard header`);
  const magic = String.fromCharCode(...buf.subarray(0, 8));
  if (magic !== SHARD_MAGIC)
    throw new DataError(file, "bad-magic", `not a token shard (magic ${JSON.stringify(magic)}, expected "${SHARD_MAGIC}")`);
  const dv = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
  const version = dv.getUint32(8, true);
  if (version !== SHARD_VERSION)
    throw new DataError(file, "bad-version", `unsupported shard format version ${version} (this reader reads version ${SHARD_VERSION})`);
  const width = dv.getUint32(12, true);
  if (width !== 2 && width !== 4)
    throw new DataError(file, "bad-dtype", `bad token width ${width} bytes in header (expected 2 for uint16 or 4 for uint32)`);
  const stored = dv.getUint32(HEADER_CHECKSUM_OFFSET, true);
  const actual = fnv1a32(buf.subarray(0, HEADER_CHECKSUM_OFFSET));
  if (stored !== actual)
    throw new DataError(file, "bad-header", `header checksum mismatch (stored ${hex32(stored)}, computed ${hex32(actual)}): the header is corrupt`);
  const count = dv.getBigUint64(16, true);
  if (count > BigInt(Number.MAX_SAFE_INTEGER)) throw new DataError(file, "bad-header", `token count ${count} is out of range`);
  const vocabSize = dv.getUint32(24, true);
  const dtype: TokenDtype = width === 2 ? "uint16" : "uint32";
  if (vocabSize === 0 || (dtype === "uint16" && vocabSize > 65536))
    throw new DataError(file, "bad-header", `vocab size ${vocabSize} does not fit token dtype ${dtype}`);
  const eosId = dv.getUint32(28, true);
  if (eosId >= vocabSize) throw new DataError(file, "bad-header", `end-of-text id ${eosId} >= vocab size ${vocabSize}`);
  return { version, dtype, tokenCount: Number(count), vocabSize, eosId, checksum: dv.getUint32(32, true) };
}

export function hex32(x: number): string {
  return "0x" + (x >>> 0).toString(16).padStart(8, "0");
}
