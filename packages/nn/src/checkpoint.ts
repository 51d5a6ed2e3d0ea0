// HF model directories on disk (Node): `config.json` plus `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (`{ "weight_map": { name: file } }`). F32, F16 and BF16 (and F64) tensors
// load, converted to the model's dtype. Parameter names are the HF names, so loading is a name lookup:
// missing, extra and mis-shaped tensors are errors naming the tensor and the file. A tied model accepts a
// checkpoint with or without `lm_head.weight` (its values are ignored: HF ties it to the embedding).
//
// Saving writes config.json, model.safetensors (F32, tied head omitted, as `save_pretrained` does) and the
// tokenizer files of another model directory, into a temporary directory next to the target that is then
// renamed into place, so a crash never leaves a half-written model.

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { readSafetensorsFile, writeSafetensorsFileSync } from "@lrc-ts/tensor-core";
import type { DType, SafetensorsFile, SafetensorsTensorInput, Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "./config.js";
import { configToJson, readConfigFile } from "./config.js";
import { CausalLM } from "./models/causal-lm.js";

export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";
/** Files copied from `tokenizerFrom` when present. */
export const TOKENIZER_FILES: readonly string[] = [
  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
  "generation_config.json", "added_tokens.json", "tokenizer.model",
];

/** A problem with a model directory's weights; the message starts with the file and names the tensor. */
export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

export interface LoadOptions {
  /** Parameter dtype (default float32). */
  readonly dtype?: DType;
}

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
    const wm = (json as { weight_map?: unknown } | null)?.weight_map;
    if (typeof wm !== "object" || wm === null || Array.isArray(wm))
      throw new CheckpointError(`${index}: weight_map: expected an object mapping tensor names to files`);
    const weightMap = new Map<string, string>();
    for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof file !== "string" || file.length === 0 || file.includes("/") || file.includes("\\") || file.startsWith("."))
        throw new CheckpointError(`${index}: weight_map["${name}"]: expected a file name in the same directory, got ${JSON.stringify(file)}`);
      const p = path.join(dir, file);
      if (!fs.existsSync(p)) throw new CheckpointError(`${p}: shard listed in ${WEIGHTS_INDEX_FILE} (for tensor "${name}") does not exist`);
      weightMap.set(name, p);
    }
    return { files: [...new Set(weightMap.values())].sort(), weightMap, describe: index };
  }
  if (fs.existsSync(single)) return { files: [single], weightMap: null, describe: single };
  const alt = ["pytorch_model.bin", "model.bin", "pytorch_model.bin.index.json"].find((f) => fs.existsSync(path.join(dir, f)));
  throw new CheckpointError(
    `${single}: no such file (and no ${WEIGHTS_INDEX_FILE})${alt !== undefined ? `; found ${alt}, which is not supported: convert it to safetensors` : ""}`,
  );
}

const LM_HEAD = "lm_head.weight";

/** Loads a model directory (config.json + safetensors weights) into a CausalLM. */
export async function loadCausalLM(dir: string, opts: LoadOptions = {}): Promise<CausalLM> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(`${dir}: no such model directory`);
  const config = readConfigFile(path.join(dir, CONFIG_FILE));
  const { files, weightMap, describe } = resolveWeightFiles(dir);
  const model = new CausalLM(config, { ...(opts.dtype !== undefined ? { dtype: opts.dtype } : {}), init: "zeros" });
  const params = new Map(model.namedParameters());
  const tied = config.tie_word_embeddings;
  const loaded = new Set<string>();
  if (weightMap !== null) {
    for (const [name, file] of weightMap)
      if (!params.has(name) && !(tied && name === LM_HEAD))
        throw new CheckpointError(`${file}: unexpected tensor "${name}" (listed in ${WEIGHTS_INDEX_FILE}; not a parameter of ${config.model_type} with this config)`);
  }
  for (const file of files) {
    let st: SafetensorsFile | null = await readSafetensorsFile(file);
    const names = weightMap === null ? st.names() : [...weightMap].filter(([, f]) => f === file).map(([n]) => n);
    for (const name of names) {
      if (!st.has(name)) throw new CheckpointError(`${file}: missing tensor "${name}" (listed in ${WEIGHTS_INDEX_FILE})`);
      const info = st.info(name);
      const param = params.get(name) ?? (tied && name === LM_HEAD ? model.lm_head.weight : undefined);
      if (param === undefined) throw new CheckpointError(`${file}: unexpected tensor "${name}" (not a parameter of ${config.model_type} with this config)`);
      if (info.shape.length !== param.shape.length || info.shape.some((d, i) => d !== param.shape[i]))
        throw new CheckpointError(`${file}: tensor "${name}" has shape [${info.shape.join(", ")}], expected [${param.shape.join(", ")}] from config.json`);
      if (info.dtype !== "F32" && info.dtype !== "F16" && info.dtype !== "BF16" && info.dtype !== "F64")
        throw new CheckpointError(`${file}: tensor "${name}" has dtype ${info.dtype}; only F32, F16, BF16 and F64 weights load`);
      if (tied && name === LM_HEAD) continue;
      param.buf.set(st.readFloat32(name));
      loaded.add(name);
    }
    st = null; // let the file's bytes go before reading the next shard
  }
  const missing = [...params.keys()].filter((n) => !loaded.has(n));
  if (missing.length > 0) {
    const shown = missing.slice(0, 6).map((n) => `"${n}"`).join(", ");
    throw new CheckpointError(`${describe}: missing tensor${missing.length > 1 ? "s" : ""} ${shown}${missing.length > 6 ? ` and ${missing.length - 6} more` : ""}`);
  }
  return model;
}

export interface SaveOptions {
  /** Copy the tokenizer files (tokenizer.json, ..., generation_config.json) found in this directory. */
  readonly tokenizerFrom?: string;
  /** Extra or replaced config.json fields. */
  readonly configOverrides?: Record<string, unknown>;
}

function float32Of(t: Tensor): Float32Array {
  const b = t.buf;
  return b instanceof Float32Array ? b : Float32Array.from(b);
}

/** The tensors `saveCausalLM` writes: HF names, F32 data, tied head omitted. */
export function checkpointTensors(model: CausalLM): Array<[string, SafetensorsTensorInput]> {
  return model.namedParameters().map(([name, t]) => [name, { shape: [...t.shape], data: float32Of(t) }]);
}

/**
 * Writes `model` as an HF model directory at `dir` (created or replaced atomically): config.json,
 * model.safetensors (F32) and, with `tokenizerFrom`, the tokenizer files found there.
 */
export async function saveCausalLM(model: CausalLM, dir: string, opts: SaveOptions = {}): Promise<void> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  if (fs.existsSync(target) && !fs.statSync(target).isDirectory()) throw new CheckpointError(`${dir}: exists and is not a directory`);
  const tmp = path.join(parent, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  fs.mkdirSync(tmp);
  try {
    const config: CausalLMConfig = model.config;
    fs.writeFileSync(path.join(tmp, CONFIG_FILE), `${JSON.stringify(configToJson(config, opts.configOverrides), null, 2)}\n`);
    writeSafetensorsFileSync(path.join(tmp, WEIGHTS_FILE), checkpointTensors(model), { format: "pt" });
    if (opts.tokenizerFrom !== undefined) {
      if (!fs.existsSync(opts.tokenizerFrom)) throw new CheckpointError(`${opts.tokenizerFrom}: tokenizerFrom directory does not exist`);
      for (const f of TOKENIZER_FILES) {
        const src = path.join(opts.tokenizerFrom, f);
        if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, f));
      }
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
    throw e;
  }
}
