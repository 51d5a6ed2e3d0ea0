// @lrc-ts/data, platform-neutral entry point: tokenizers from tokenizer.json text or bytes, the byte-level
// BPE trainer on texts in memory, the shard format (encode/decode headers), and batches over a token
// stream in memory with the shard reader's semantics. Bundlers that set the "browser" condition resolve the
// package here; Node resolves ./index.ts, which adds files: loadTokenizer, training on files, the shard
// writer and reader, the manifest. Nothing reachable from here imports a Node module.

export { DataError, type DataErrorCode } from "./errors.js";
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
export type { Manifest, ShardEntry, Split, SplitSummary } from "./manifest.js";
export {
  tokenizerFromJson,
  sha256Hex,
  WELL_KNOWN_EOS_TOKENS,
  type TextTokenizer,
  type LoadTokenizerOptions,
  type TokenizerFromJsonOptions,
} from "./tokenizer-json.js";
export { BYTE_TO_CHAR, GPT2_SPLIT_PATTERN, gpt2SplitRegex } from "./byte-level.js";
export {
  trainBpeTokenizerOnTexts,
  learnBpe,
  countPreTokens,
  bpeTokenizerJson,
  DEFAULT_SPECIAL_TOKENS,
  type TrainBpeOptions,
  type TrainedBpeTokenizer,
  type LearnedBpe,
  type BpeProgress,
} from "./bpe.js";
export {
  TokenWindowReader,
  tokenWindows,
  joinDocuments,
  windowCount,
  type Batch,
  type ReaderState,
  type TokenArray,
  type TokenWindowOptions,
} from "./token-windows.js";
export { WindowBatcher, isReaderState, type WindowBatcherInit, type ReadWindow } from "./window-batcher.js";
