// HF model checkpoints as in-memory files (file name -> bytes), with no file system: what a browser reads
// from files the user picked and offers back as downloads, and what the Node directory functions of
// ./checkpoint.ts share. `loadCausalLMFromFiles` takes config.json plus model.safetensors, or the shards
// listed by model.safetensors.index.json; F32, F16, BF16 (and F64) tensors load, converted to float32 (or, with
// keepDType, a BF16 or F16 checkpoint's weight matrices kept as frozen bfloat16 / float16 tensors).
// Parameter names are the HF names, so loading is a name lookup: missing, extra and mis-shaped tensors are
// errors naming the tensor and the file, and so is a NaN or infinite value. A tied model accepts a checkpoint with or without `lm_head.weight`.
// `serializeCausalLM` gives the files `saveCausalLM` writes (config.json, F32 model.safetensors with the
// tied head omitted, plus any tokenizer files passed in), byte for byte.

import { bfloat16Tensor, float16Tensor, isHalf, parseSafetensors, serializeSafetensors, tensor } from "@lrc-ts/tensor-core";
import type { DType, SafetensorsFile, SafetensorsFloatDType, SafetensorsTensorInput, Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "./config.js";
import { ConfigError, configToJson, parseConfig } from "./config.js";
import { CausalLM } from "./models/causal-lm.js";
import { parameterCount, parameterSpecs } from "./weights.js";

export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";
/** Tokenizer and generation files that travel with a model (copied by `saveCausalLM`'s `tokenizerFrom`). */
export const TOKENIZER_FILES: readonly string[] = [
  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
  "generation_config.json", "added_tokens.json", "tokenizer.model",
];

/**
 * A checkpoint that cannot be used: a model's weights (the message starts with the file and names the tensor),
 * or, in @lrc-ts/lrc, a training checkpoint (unreadable, truncated, a field of the wrong type, a checksum mismatch).
 */
export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

export interface LoadOptions {
  /** Parameter dtype (default float32). */
  readonly dtype?: DType;
  /**
   * Keep the weight matrices (embedding, projections, LM head) stored as BF16 or F16 as frozen bfloat16 / float16
   * tensors, at half the memory of float32 (norm gains, biases and F32 matrices load as float32). Such a model runs forward
   * (matmul and embedding widen the values exactly, so its outputs are the bits of the float32 load's) but cannot
   * train those matrices. Default false.
   */
  readonly keepDType?: boolean;
  /** Refuse, before allocating anything, a model whose parameters would take more bytes (Node's loadCausalLM: the machine's memory). */
  readonly maxBytes?: number;
}

const GIB = 1024 ** 3;
/** Bytes as GiB for messages. */
function gib(bytes: number): string {
  return (bytes / GIB).toFixed(bytes < 10 * GIB ? 2 : 0);
}

/**
 * Validates a parsed model.safetensors.index.json and returns tensor name -> shard location. `locate` maps a
 * shard file name to its location (a path, or the name itself) and `exists` says whether it is there.
 */
export function parseWeightIndex(json: unknown, index: string, locate: (file: string) => string, exists: (location: string) => boolean): Map<string, string> {
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm))
    throw new CheckpointError(`${index}: weight_map: expected an object mapping tensor names to files`);
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== "string" || file.length === 0 || file.includes("/") || file.includes("\\") || file.startsWith("."))
      throw new CheckpointError(`${index}: weight_map["${name}"]: expected a file name in the same directory, got ${JSON.stringify(file)}`);
    const p = locate(file);
    if (!exists(p)) throw new CheckpointError(`${p}: shard listed in ${WEIGHTS_INDEX_FILE} (for tensor "${name}") does not exist`);
    weightMap.set(name, p);
  }
  return weightMap;
}

/** config.json's name for a safetensors float dtype. */
export const TORCH_DTYPE: Readonly<Record<SafetensorsFloatDType, string>> = { F32: "float32", BF16: "bfloat16", F16: "float16" };

/** The weight dtype a config.json declares (torch_dtype, or dtype in newer transformers), if it is one of the three. */
export function configDType(config: CausalLMConfig): SafetensorsFloatDType | undefined {
  const v = config.extra.torch_dtype ?? config.extra.dtype;
  return (Object.keys(TORCH_DTYPE) as SafetensorsFloatDType[]).find((k) => TORCH_DTYPE[k] === v);
}

const LM_HEAD = "lm_head.weight";

/**
 * Bytes the parameters of a model of `config` take once loaded with `opts`: 4 a value (8 as float64), or with
 * keepDType and a config.json that declares a 16-bit torch_dtype, 2 a value of the weight matrices (the
 * embedding, the projections, the LM head).
 */
export function loadedBytes(config: CausalLMConfig, opts: Pick<LoadOptions, "dtype" | "keepDType"> = {}): number {
  const half = opts.keepDType === true && (configDType(config) === "BF16" || configDType(config) === "F16");
  if (!half) return parameterCount(config) * (opts.dtype === "float64" ? 8 : 4);
  return parameterSpecs(config).reduce((b, p) => b + p.shape.reduce((x, y) => x * y, 1) * (p.init === "normal" ? 2 : 4), 0);
}

/**
 * Builds a CausalLM for `config` and fills every parameter from the weight files (`files`, opened one at a
 * time by `open`; `weightMap` from an index, or null for one file holding everything; `bytes` their total
 * size). `describe` names the checkpoint in the error for missing tensors. Before anything is allocated,
 * the config is checked against the files' size (every parameter needs at least 2 bytes, as BF16) and the
 * memory estimate (parameters x 4 bytes as float32) against `opts.maxBytes`, so a config.json that lies
 * about its sizes cannot exhaust memory.
 */
export async function fillCausalLM(
  config: CausalLMConfig,
  weights: { files: readonly string[]; weightMap: ReadonlyMap<string, string> | null; describe: string; bytes?: number; config?: string },
  open: (file: string) => SafetensorsFile | Promise<SafetensorsFile>,
  opts: LoadOptions = {},
): Promise<CausalLM> {
  const { files, weightMap, describe } = weights;
  const configFile = weights.config ?? CONFIG_FILE;
  // One file is opened (and its format checked) first, so a damaged file is blamed before the config is.
  let first: SafetensorsFile | null = weightMap === null && files.length === 1 ? await open(files[0]!) : null;
  const count = parameterCount(config);
  const n = (x: number) => x.toLocaleString("en-US");
  if (weights.bytes !== undefined && weights.bytes < 2 * count)
    throw new CheckpointError(
      `${configFile}: describes ${n(count)} parameters (vocab_size ${config.vocab_size}, hidden_size ${config.hidden_size}, ` +
        `num_hidden_layers ${config.num_hidden_layers}, intermediate_size ${config.intermediate_size}), at least ${n(2 * count)} bytes as BF16, ` +
        `but ${describe} holds ${n(weights.bytes)} bytes: the config does not match the weights`,
    );
  const keep = opts.keepDType === true;
  if (keep && (opts.dtype ?? "float32") !== "float32")
    throw new CheckpointError(`${configFile}: keepDType keeps BF16 matrices beside float32 norms and biases; it does not combine with dtype ${opts.dtype}`);
  // The matrices are built as what config.json says the checkpoint holds; one stored otherwise is swapped on load.
  const declared = configDType(config);
  const matrixDType = !keep ? undefined : declared === "BF16" ? "bfloat16" : declared === "F16" ? "float16" : undefined;
  const need = loadedBytes(config, opts);
  if (opts.maxBytes !== undefined && need > opts.maxBytes)
    throw new CheckpointError(`${configFile}: the model's ${count.toLocaleString("en-US")} parameters need about ${gib(need)} GiB, more than the ${gib(opts.maxBytes)} GiB available`);
  const model = new CausalLM(config, { ...(opts.dtype !== undefined ? { dtype: opts.dtype } : {}), init: "zeros", ...(matrixDType !== undefined ? { matrixDType } : {}) });
  const params = new Map(model.namedParameters());
  const tied = config.tie_word_embeddings;
  const loaded = new Set<string>();
  if (weightMap !== null) {
    for (const [name, file] of weightMap)
      if (!params.has(name) && !(tied && name === LM_HEAD))
        throw new CheckpointError(`${file}: unexpected tensor "${name}" (listed in ${WEIGHTS_INDEX_FILE}; not a parameter of ${config.model_type} with this config)`);
  }
  for (const file of files) {
    let st: SafetensorsFile | null = first ?? (await open(file));
    first = null;
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
      if (keep && param.rank === 2 && (info.dtype === "BF16" || info.dtype === "F16")) {
        const half = info.dtype === "BF16" ? "bfloat16" : "float16";
        const bits = half === "bfloat16" ? st.readBF16Bits(name) : st.readF16Bits(name);
        // exponent all ones: infinite or NaN (BF16: 8 exponent bits above 7 of mantissa; F16: 5 above 10)
        const [exp, mant] = half === "bfloat16" ? [0x7f80, 0x7f] : [0x7c00, 0x3ff];
        const bad = bits.findIndex((b) => (b & exp) === exp);
        if (bad >= 0) {
          const b = bits[bad]!;
          throw new CheckpointError(`${file}: tensor "${name}" holds ${(b & mant) !== 0 ? NaN : b & 0x8000 ? -Infinity : Infinity} at index ${bad}: the weights are corrupt or diverged`);
        }
        if (param.dtype === half) param.bits.set(bits);
        else swap(model, param, (half === "bfloat16" ? bfloat16Tensor : float16Tensor)(bits, param.shape));
        loaded.add(name);
        continue;
      }
      const values = st.readFloat32(name);
      const bad = values.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) throw new CheckpointError(`${file}: tensor "${name}" holds ${values[bad]} at index ${bad}: the weights are corrupt or diverged`);
      if (isHalf(param.dtype)) swap(model, param, tensor(values, param.shape, { requiresGrad: true }));
      else param.buf.set(values);
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

/** Puts t in place of the model's parameter old (a placeholder of the other dtype), which is freed. */
function swap(model: CausalLM, old: Tensor, t: Tensor): void {
  model.swapParameter(old, t);
  old.dispose();
}

export interface LoadFromFilesOptions extends LoadOptions {
  /** Prefix for file names in error messages (e.g. the folder the user picked). */
  readonly source?: string;
}

/**
 * Loads a model from in-memory files keyed by file name (config.json, model.safetensors or
 * model.safetensors.index.json and its shards; other files are ignored).
 */
export async function loadCausalLMFromFiles(files: ReadonlyMap<string, Uint8Array>, opts: LoadFromFilesOptions = {}): Promise<CausalLM> {
  const where = (f: string) => (opts.source !== undefined && opts.source !== "" ? `${opts.source}/${f}` : f);
  const configBytes = files.get(CONFIG_FILE);
  if (configBytes === undefined) throw new ConfigError(`${where(CONFIG_FILE)}: no such file (a model needs a config.json)`);
  let configJson: unknown;
  try {
    configJson = JSON.parse(new TextDecoder().decode(configBytes));
  } catch (e) {
    throw new ConfigError(`${where(CONFIG_FILE)}: invalid JSON: ${(e as Error).message}`);
  }
  const config = parseConfig(configJson, where(CONFIG_FILE));
  const byLocation = new Map<string, Uint8Array>();
  for (const [name, bytes] of files) byLocation.set(where(name), bytes);
  const indexBytes = files.get(WEIGHTS_INDEX_FILE);
  let weights: { files: string[]; weightMap: Map<string, string> | null; describe: string; bytes?: number; config: string };
  if (indexBytes !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(indexBytes));
    } catch (e) {
      throw new CheckpointError(`${where(WEIGHTS_INDEX_FILE)}: invalid JSON: ${(e as Error).message}`);
    }
    const weightMap = parseWeightIndex(json, where(WEIGHTS_INDEX_FILE), where, (p) => byLocation.has(p));
    weights = { files: [...new Set(weightMap.values())].sort(), weightMap, describe: where(WEIGHTS_INDEX_FILE), config: where(CONFIG_FILE) };
  } else if (files.has(WEIGHTS_FILE)) {
    weights = { files: [where(WEIGHTS_FILE)], weightMap: null, describe: where(WEIGHTS_FILE), config: where(CONFIG_FILE) };
  } else {
    const alt = ["pytorch_model.bin", "model.bin", "pytorch_model.bin.index.json"].find((f) => files.has(f));
    throw new CheckpointError(
      `${where(WEIGHTS_FILE)}: no such file (and no ${WEIGHTS_INDEX_FILE})${alt !== undefined ? `; found ${alt}, which is not supported: convert it to safetensors` : ""}`,
    );
  }
  weights.bytes = weights.files.reduce((n, f) => n + byLocation.get(f)!.length, 0);
  return fillCausalLM(config, weights, (loc) => parseSafetensors(byLocation.get(loc)!, loc), opts);
}

function float32Of(t: Tensor): Float32Array {
  if (isHalf(t.dtype)) return t.data() as Float32Array; // a matrix kept as BF16 / F16 (keepDType), widened exactly
  const b = t.buf;
  return b instanceof Float32Array ? b : Float32Array.from(b);
}

/** The tensors `saveCausalLM` writes: HF names, F32 data, tied head omitted. */
export function checkpointTensors(model: CausalLM): Array<[string, SafetensorsTensorInput]> {
  return model.namedParameters().map(([name, t]) => [name, { shape: [...t.shape], data: float32Of(t) }]);
}

/** The config.json text `saveCausalLM` writes. */
export function configFileText(config: CausalLMConfig, overrides: Record<string, unknown> = {}): string {
  return `${JSON.stringify(configToJson(config, overrides), null, 2)}\n`;
}

export interface SerializeModelOptions {
  /** Extra or replaced config.json fields. */
  readonly configOverrides?: Record<string, unknown>;
  /** Tokenizer files to include (only the names in TOKENIZER_FILES are taken). */
  readonly tokenizerFiles?: ReadonlyMap<string, Uint8Array>;
}

/**
 * The HF model files of `model` in memory: config.json, model.safetensors (F32) and the given tokenizer
 * files; the same bytes `saveCausalLM` writes to a directory.
 */
export function serializeCausalLM(model: CausalLM, opts: SerializeModelOptions = {}): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  out.set(CONFIG_FILE, new TextEncoder().encode(configFileText(model.config, opts.configOverrides)));
  out.set(WEIGHTS_FILE, serializeSafetensors(checkpointTensors(model), { format: "pt" }));
  if (opts.tokenizerFiles !== undefined) for (const f of TOKENIZER_FILES) {
    const bytes = opts.tokenizerFiles.get(f);
    if (bytes !== undefined) out.set(f, bytes);
  }
  return out;
}
