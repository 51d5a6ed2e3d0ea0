// Loading a tokenizer from a tokenizer.json file or a model directory (Node). Everything that works on the
// JSON in memory (the TextTokenizer, the end-of-text choice, the byte-level fast path) is ./tokenizer-json.ts.

import fs from "node:fs";
import path from "node:path";
import { DataError } from "./errors.js";
import { tokenizerFromJson } from "./tokenizer-json.js";
import type { LoadTokenizerOptions, TextTokenizer } from "./tokenizer-json.js";

export { WELL_KNOWN_EOS_TOKENS, sha256Hex, tokenizerFromJson } from "./tokenizer-json.js";
export type { LoadTokenizerOptions, TextTokenizer, TokenizerFromJsonOptions } from "./tokenizer-json.js";

/**
 * Loads a tokenizer from a `tokenizer.json` file or a model directory holding one. A `tokenizer_config.json`
 * next to it is read for `eos_token` and decode settings when present.
 */
export function loadTokenizer(pathOrDir: string, options: LoadTokenizerOptions = {}): TextTokenizer {
  let file = pathOrDir;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(pathOrDir);
  } catch {
    throw new DataError(pathOrDir, "tokenizer", "no such tokenizer file or model directory");
  }
  if (stat.isDirectory()) {
    file = path.join(pathOrDir, "tokenizer.json");
    if (!fs.existsSync(file)) throw new DataError(pathOrDir, "tokenizer", "model directory has no tokenizer.json");
  }
  const bytes = fs.readFileSync(file);
  const configFile = path.join(path.dirname(file), "tokenizer_config.json");
  let config: Record<string, unknown> = {};
  if (fs.existsSync(configFile)) {
    try {
      config = JSON.parse(fs.readFileSync(configFile, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new DataError(configFile, "tokenizer", `invalid JSON: ${(e as Error).message}`);
    }
  }
  return tokenizerFromJson(bytes, { ...options, config, path: file });
}
