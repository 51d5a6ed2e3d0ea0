// HF model directories on disk (Node): `config.json` plus `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (`{ "weight_map": { name: file } }`). The checks and the name lookup are
// shared with the in-memory loader of ./checkpoint-files.ts (which a browser uses); this file adds the
// directory walking, reading each shard from disk in turn, and atomic saving.
//
// Saving writes config.json, model.safetensors (F32, tied head omitted, as `save_pretrained` does) and the
// tokenizer files of another model directory, into a temporary directory next to the target that is then
// renamed into place, so a crash never leaves a half-written model. `initCheckpoint` writes a random
// checkpoint of a config the same way, without building the model: one tensor drawn and encoded at a time,
// sharded with an index above a size limit as `save_pretrained` does.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Rng, SAFETENSORS_DTYPE_SIZE, fileSystemError, readSafetensorsFile, writeDirAtomic, writeSafetensorsFileSync } from "@lrc-ts/tensor-core";
import type { SafetensorsFloatDType } from "@lrc-ts/tensor-core";
import { parameterSpecs } from "./weights.js";
import type { ParameterSpec } from "./weights.js";
import { readConfigFile } from "./config-file.js";
import type { CausalLMConfig } from "./config.js";
import type { CausalLM } from "./models/causal-lm.js";
import {
  CONFIG_FILE, CheckpointError, TOKENIZER_FILES, TORCH_DTYPE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, checkpointTensors, configFileText, fillCausalLM,
  parseWeightIndex,
} from "./checkpoint-files.js";
import type { LoadOptions } from "./checkpoint-files.js";

export { CONFIG_FILE, CheckpointError, TOKENIZER_FILES, TORCH_DTYPE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, checkpointTensors, configDType } from "./checkpoint-files.js";
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


/**
 * Writes `model` as an HF model directory at `dir` (created or replaced atomically): config.json,
 * model.safetensors (F32 unless `dtype`), with `tokenizerFrom` the tokenizer files found there, and `extraFiles`.
 */
export async function saveCausalLM(model: CausalLM, dir: string, opts: SaveOptions = {}): Promise<void> {
  writeModelDir(dir, (tmp) => {
    const dtype = opts.dtype ?? "F32";
    const dtypeField = "dtype" in model.config.extra ? "dtype" : "torch_dtype";
    fs.writeFileSync(path.join(tmp, CONFIG_FILE), configFileText(model.config, { [dtypeField]: TORCH_DTYPE[dtype], ...opts.configOverrides }));
    writeSafetensorsFileSync(path.join(tmp, WEIGHTS_FILE), checkpointTensors(model), { format: "pt" }, { dtype });
    if (opts.tokenizerFrom !== undefined) copyTokenizerFiles(opts.tokenizerFrom, tmp);
    for (const [name, body] of Object.entries(opts.extraFiles ?? {})) {
      if (name !== path.basename(name) || name.startsWith(".")) throw new CheckpointError(`${dir}: extra file name '${name}' is not a plain file name`);
      fs.writeFileSync(path.join(tmp, name), body);
    }
  });
}

/** Writes the model directory whole through writeDirAtomic (tensor-core): a crash never leaves a half-written one. */
function writeModelDir(dir: string, fill: (tmp: string) => void): void {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new CheckpointError(`${dir}: exists and is not a directory`);
  // Node's own messages for write, fsync and rename calls name no path.
  writeDirAtomic(dir, fill, { error: (e) => ((e as NodeJS.ErrnoException).code !== undefined ? fileSystemError(dir, "cannot write the model", e) : (e as Error)) });
}

/** Copies the tokenizer files of directory `from` into `to`; a lone file is copied as tokenizer.json. */
function copyTokenizerFiles(from: string, to: string): void {
  if (!fs.existsSync(from)) throw new CheckpointError(`${from}: no such tokenizer file or directory`);
  if (!fs.statSync(from).isDirectory()) {
    fs.copyFileSync(from, path.join(to, "tokenizer.json"));
    return;
  }
  for (const f of TOKENIZER_FILES) {
    const src = path.join(from, f);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(to, f));
  }
}

/** HF's default `max_shard_size` of `save_pretrained` ("5GB"). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface InitCheckpointOptions {
  /** On-disk dtype of the weights (default F32); config.json's torch_dtype says the same. */
  readonly dtype?: SafetensorsFloatDType;
  /** Seed of the random weights (default 0): the same weights as `new CausalLM(config, { seed })`. */
  readonly seed?: number;
  /** Standard deviation of the random weights (default: the config's initializer_range, else 0.02). */
  readonly std?: number;
  /** A tokenizer.json, or a directory whose tokenizer files are copied. */
  readonly tokenizer?: string;
  /** Above this many bytes of weights, shards `model-0000i-of-0000n.safetensors` plus an index (HF's layout). */
  readonly maxShardBytes?: number;
}

export interface InitCheckpointResult {
  /** The weight files written (one model.safetensors, or the shards). */
  readonly files: string[];
  readonly parameters: number;
  /** Bytes of tensor data (the index's total_size). */
  readonly bytes: number;
}


/**
 * Writes a randomly initialised HF checkpoint of `config` at `dir` (atomically) with HF's `_init_weights`:
 * Linear and Embedding weights ~ N(0, std²), RMSNorm gains 1, biases 0. The weights are drawn and encoded one
 * tensor at a time, so memory holds one f32 tensor, never the model.
 */
export function initCheckpoint(config: CausalLMConfig, dir: string, opts: InitCheckpointOptions = {}): InitCheckpointResult {
  const dtype = opts.dtype ?? "F32";
  const range = config.extra.initializer_range;
  const std = opts.std ?? (typeof range === "number" && range > 0 ? range : 0.02);
  const rng = new Rng(opts.seed ?? 0);
  const maxShard = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const specs = parameterSpecs(config);
  const bytesOf = (s: ParameterSpec) => s.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_SIZE[dtype];
  // HF's greedy split: a tensor that would overflow the current (non-empty) shard starts the next one.
  const shards: ParameterSpec[][] = [[]];
  let size = 0;
  for (const s of specs) {
    if (size + bytesOf(s) > maxShard && shards.at(-1)!.length > 0) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(s);
    size += bytesOf(s);
  }
  const names = shards.length === 1 ? [WEIGHTS_FILE] : shards.map((_, i) => `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`);
  const produce = (s: ParameterSpec) => (): Float32Array => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    if (s.init === "ones") out.fill(1);
    else if (s.init === "normal") for (let i = 0; i < n; i++) out[i] = std * rng.normal();
    return out;
  };
  writeModelDir(dir, (tmp) => {
    const dtypeKey = "dtype" in config.extra ? "dtype" : "torch_dtype";
    fs.writeFileSync(path.join(tmp, CONFIG_FILE), configFileText(config, { [dtypeKey]: TORCH_DTYPE[dtype] }));
    shards.forEach((shard, i) =>
      writeSafetensorsFileSync(path.join(tmp, names[i]!), shard.map((s) => [s.name, { shape: s.shape, produce: produce(s) }] as const), { format: "pt" }, { dtype }),
    );
    if (shards.length > 1) {
      const weightMap: Record<string, string> = {};
      shards.forEach((shard, i) => shard.forEach((s) => (weightMap[s.name] = names[i]!)));
      const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      const index = { metadata: { total_size: specs.reduce((a, s) => a + bytesOf(s), 0) }, weight_map: sorted };
      fs.writeFileSync(path.join(tmp, WEIGHTS_INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
    }
    if (opts.tokenizer !== undefined) copyTokenizerFiles(opts.tokenizer, tmp);
  });
  return {
    files: names.map((f) => path.join(dir, f)),
    parameters: specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0),
    bytes: specs.reduce((a, s) => a + bytesOf(s), 0),
  };
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
