// Training a byte-level BPE tokenizer from files, directories and globs, and writing tokenizer.json (Node).
// The trainer itself (counting, merging, the tokenizer.json it writes) is ./bpe.ts, which runs anywhere.

import path from "node:path";
import { makeDirectory, writeFileAtomic } from "@lrc-ts/tensor-core";
import { DataError } from "./errors.js";
import { expandInputs, readDocuments } from "./inputs.js";
import { bpeTarget, trainBpeTokenizerOnTexts } from "./bpe.js";
import type { TrainBpeOptions, TrainedBpeTokenizer } from "./bpe.js";

export {
  DEFAULT_SPECIAL_TOKENS, countPreTokens, learnBpe, bpeTokenizerJson, trainBpeTokenizerOnTexts,
} from "./bpe.js";
export type { BpeProgress, LearnedBpe, TrainBpeOptions, TrainedBpeTokenizer } from "./bpe.js";

async function* textsOf(options: TrainBpeOptions): AsyncGenerator<string> {
  if (options.texts !== undefined) for await (const t of options.texts as AsyncIterable<string>) yield t;
  if (options.files !== undefined) {
    const readOpts = options.textField !== undefined ? { textField: options.textField } : {};
    for await (const p of readDocuments(expandInputs(options.files), readOpts)) yield p.text;
  }
}

/** Trains a byte-level BPE tokenizer on files and/or texts. */
export async function trainBpeTokenizer(options: TrainBpeOptions): Promise<TrainedBpeTokenizer> {
  bpeTarget(options);
  if (options.files === undefined && options.texts === undefined) throw new RangeError("give files or texts to train on");
  return trainBpeTokenizerOnTexts(textsOf(options), options);
}

/** Writes tokenizer.json text atomically (temp name, then rename). */
export function writeTokenizerJson(file: string, json: string): void {
  const error = (e: unknown) => new DataError(file, "io", `cannot write: ${(e as Error).message}`);
  try {
    makeDirectory(path.dirname(file));
  } catch (e) {
    throw error(e);
  }
  writeFileAtomic(file, json, { error });
}
