// HF model directories on disk (Node): `config.json` plus `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (`{ "weight_map": { name: file } }`). The checks and the name lookup are
// shared with the in-memory loader of ./checkpoint-files.ts (which a browser uses); this file adds the
// directory walking, reading each shard from disk in turn, and atomic saving.
//
// Saving writes config.json, model.safetensors (F32, tied head omitted, as `save_pretrained` does) and the
// tokenizer files of another model directory, into a temporary directory next to the target that is then
// renamed into place, so a crash never leaves a half-written model.

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileSystemError, makeDirectory, readSafetensorsFile, writeSafetensorsFileSync } from "@lrc-ts/tensor-core";
import type { SafetensorsFloatDType } from "@lrc-ts/tensor-core";
import { readConfigFile } from "./config-file.js";
import type { CausalLMConfig } from "./config.js";
import type { CausalLM } from "./models/causal-lm.js";
import {
  CONFIG_FILE, CheckpointError, TOKENIZER_FILES, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, checkpointTensors, configFileText, fillCausalLM,
  parseWeightIndex,
} from "./checkpoint-files.js";
import type { LoadOptions } from "./checkpoint-files.js";

export { CONFIG_FILE, CheckpointError, TOKENIZER_FILES, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, checkpointTensors } from "./checkpoint-files.js";
export type { LoadOptions } from "./checkpoint-files.js";

/** The weight files of a model directory: tensor name -> absolute file path (one file: all the same). */
export function resolveWeightFiles(dir: string): { files: string[]; weightMap: Map<string, string> | null; describe: string } {
  const index = path.join(dir, WEIGHTS_INDEX_FILE);
  const single = path.join(dir, WEIGHTS_FILE);
  if (fs.existsSync(index)) {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(index, "utf8"));
    } catch (e) {
      throw new CheckpointError(`${index}: invalid JSON: ${(e as Error).message}`);
    }
    const weightMap = parseWeightIndex(json, index, (file) => path.join(dir, file), (p) => fs.existsSync(p));
    return { files: [...new Set(weightMap.values())].sort(), weightMap, describe: index };
  }
  if (fs.existsSync(single)) return { files: [single], weightMap: null, describe: single };
  const alt = ["pytorch_model.bin", "model.bin", "pytorch_model.bin.index.json"].find((f) => fs.existsSync(path.join(dir, f)));
  throw new CheckpointError(
    `${single}: no such file (and no ${WEIGHTS_INDEX_FILE})${alt !== undefined ? `; found ${alt}, which is not supported: convert it to safetensors` : ""}`,
  );
}

/** Loads a model directory (config.json + safetensors weights) into a CausalLM. */
export async function loadCausalLM(dir: string, opts: LoadOptions = {}): Promise<CausalLM> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(`${dir}: no such model directory`);
  const configFile = path.join(dir, CONFIG_FILE);
  const config = readConfigFile(configFile);
  const weights = resolveWeightFiles(dir);
  const bytes = weights.files.reduce((n, f) => n + fs.statSync(f).size, 0);
  // Bounded before allocating: parameters as float32 plus the largest file read at once, within the machine's memory.
  const largest = Math.max(0, ...weights.files.map((f) => fs.statSync(f).size));
  const maxBytes = opts.maxBytes ?? Math.max(0, os.totalmem() - largest);
  return fillCausalLM(config, { ...weights, bytes, config: configFile }, (file) => readSafetensorsFile(file), { ...opts, maxBytes });
}

export interface SaveOptions {
  /** Copy the tokenizer files (tokenizer.json, ..., generation_config.json) found in this directory. */
  readonly tokenizerFrom?: string;
  /** Extra or replaced config.json fields. */
  readonly configOverrides?: Record<string, unknown>;
  /** Weight dtype of model.safetensors (default F32); config.json's torch_dtype (or dtype) says the same. */
  readonly dtype?: SafetensorsFloatDType;
  /** More files written into the directory with it (e.g. a model card README.md); they replace copied tokenizer files of the same name. */
  readonly extraFiles?: Readonly<Record<string, string | Uint8Array>>;
}

/** config.json's name for a safetensors float dtype. */
export const TORCH_DTYPE: Readonly<Record<SafetensorsFloatDType, string>> = { F32: "float32", BF16: "bfloat16", F16: "float16" };

/** The weight dtype a config.json declares (torch_dtype, or dtype in newer transformers), if it is one of the three. */
export function configDType(config: CausalLMConfig): SafetensorsFloatDType | undefined {
  const v = config.extra.torch_dtype ?? config.extra.dtype;
  return (Object.keys(TORCH_DTYPE) as SafetensorsFloatDType[]).find((k) => TORCH_DTYPE[k] === v);
}

/**
 * Writes `model` as an HF model directory at `dir` (created or replaced atomically): config.json,
 * model.safetensors (F32 unless `dtype`), with `tokenizerFrom` the tokenizer files found there, and `extraFiles`.
 */
export async function saveCausalLM(model: CausalLM, dir: string, opts: SaveOptions = {}): Promise<void> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  makeDirectory(parent);
  if (fs.existsSync(target) && !fs.statSync(target).isDirectory()) throw new CheckpointError(`${dir}: exists and is not a directory`);
  const tmp = path.join(parent, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    fs.mkdirSync(tmp);
  } catch (e) {
    throw fileSystemError(tmp, "cannot create directory", e);
  }
  try {
    const dtype = opts.dtype ?? "F32";
    const dtypeField = "dtype" in model.config.extra ? "dtype" : "torch_dtype";
    fs.writeFileSync(path.join(tmp, CONFIG_FILE), configFileText(model.config, { [dtypeField]: TORCH_DTYPE[dtype], ...opts.configOverrides }));
    writeSafetensorsFileSync(path.join(tmp, WEIGHTS_FILE), checkpointTensors(model), { format: "pt" }, { dtype });
    if (opts.tokenizerFrom !== undefined) {
      if (!fs.existsSync(opts.tokenizerFrom)) throw new CheckpointError(`${opts.tokenizerFrom}: tokenizerFrom directory does not exist`);
      for (const f of TOKENIZER_FILES) {
        const src = path.join(opts.tokenizerFrom, f);
        if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, f));
      }
    }
    for (const [name, body] of Object.entries(opts.extraFiles ?? {})) {
      if (name !== path.basename(name) || name.startsWith(".")) throw new CheckpointError(`${dir}: extra file name '${name}' is not a plain file name`);
      fs.writeFileSync(path.join(tmp, name), body);
    }
    if (fs.existsSync(target)) {
      const old = `${tmp}.old`;
      fs.renameSync(target, old);
      fs.renameSync(tmp, target);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, target);
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    // Node's own messages for write, fsync and rename calls name no path.
    throw (e as NodeJS.ErrnoException).code !== undefined ? fileSystemError(dir, "cannot write the model", e) : e;
  }
}

/** Reads the files of a model directory that `loadCausalLMFromFiles` and `serializeCausalLM` deal in. */
export function readModelFiles(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isFile() && (name.endsWith(".json") || name.endsWith(".safetensors") || TOKENIZER_FILES.includes(name)))
      out.set(name, new Uint8Array(fs.readFileSync(p)));
  }
  return out;
}
