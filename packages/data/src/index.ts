// @lrc-ts/data: tokenizers (HF tokenizer.json loading, a byte-level BPE trainer), the token shard format,
// the shard writer and the streaming, resumable batch reader. See ../README.md for the file format.

export { DataError, type DataErrorCode } from "./errors.js";
export { fnv1a32, fnv1a32Update, FNV1A32_INIT } from "./checksum.js";
export { SplitMix32, epochPermutation, documentUniform, deriveSeed, mix32 } from "./sampler.js";
export {
  SHARD_MAGIC,
  SHARD_VERSION,
  HEADER_BYTES,
  encodeHeader,
  decodeHeader,
  dtypeForVocab,
  dtypeBytes,
  type ShardHeader,
  type TokenDtype,
} from "./shard-format.js";
export { MANIFEST_FILE, readManifest, type Manifest, type ShardEntry, type Split, type SplitSummary } from "./manifest.js";
export {
  loadTokenizer,
  tokenizerFromJson,
  sha256Hex,
  WELL_KNOWN_EOS_TOKENS,
  type TextTokenizer,
  type LoadTokenizerOptions,
  type TokenizerFromJsonOptions,
} from "./tokenizer.js";
export { BYTE_TO_CHAR, GPT2_SPLIT_PATTERN, gpt2SplitRegex } from "./byte-level.js";
export {
  trainBpeTokenizer,
  learnBpe,
  countPreTokens,
  bpeTokenizerJson,
  writeTokenizerJson,
  DEFAULT_SPECIAL_TOKENS,
  type TrainBpeOptions,
  type TrainedBpeTokenizer,
  type LearnedBpe,
  type BpeProgress,
} from "./bpe-trainer.js";
export { expandInputs, readDocuments, inputKind, type ReadDocumentsOptions, type InputKind } from "./inputs.js";
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
  evalWindows,
  verifyTokenizer,
  windowCount,
  type Batch,
  type ReaderState,
  type OpenShardsOptions,
  type OpenSplitOptions,
  type EvalWindowsOptions,
} from "./shard-reader.js";
