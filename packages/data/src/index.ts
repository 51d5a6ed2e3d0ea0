// @lrc-ts/data: tokenizers (HF tokenizer.json loading, a byte-level BPE trainer), the token shard format,
// the shard writer and the streaming, resumable batch reader. See ../README.md for the file format.
// Node entry point: the platform-neutral API (./browser.ts) plus everything that reads or writes files.

export * from "./browser.js";
export { MANIFEST_FILE, readManifest } from "./manifest.js";
export { loadTokenizer } from "./tokenizer.js";
export { trainBpeTokenizer, writeTokenizerJson } from "./bpe-trainer.js";
export { expandInputs, readDocuments, readUtf8File, inputKind, type ReadDocumentsOptions, type InputKind } from "./inputs.js";
export {
  ShardDirectoryWriter,
  writeShards,
  writeTextPieces,
  DEFAULT_SHARD_TOKENS,
  type ShardDirectoryWriterOptions,
  type WriteShardsOptions,
  type WriteProgress,
  type DocumentSource,
  type TextPiece,
} from "./shard-writer.js";
export {
  openShards,
  ShardReader,
  readSplitTokens,
  verifySplit,
  evalWindows,
  verifyTokenizer,
  type OpenShardsOptions,
  type OpenSplitOptions,
  type EvalWindowsOptions,
} from "./shard-reader.js";
export { readRows } from "./rows.js";
export type { TableRow } from "./rows.js";
