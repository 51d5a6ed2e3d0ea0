// `distill(options)` and `pretrain(options)`: what `lrc distill` / `lrc pretrain` run, callable in-process
// (examples/distill-qwen does). Each opens the shard directory, builds the task, runs the Trainer in
// `<out>/` (metrics.jsonl, loss.svg, checkpoints/) and exports the model as an HF directory
// (`<out>/student/` for distill, `<out>/model/` for pretrain).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CausalLM, loadCausalLM, parameterCount, readConfigFile } from "@lrc-ts/nn";
import { makeDirectory } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "@lrc-ts/nn";
import { MANIFEST_FILE, openShards, readManifest, verifySplit, verifyTokenizer, windowCount } from "@lrc-ts/data";
import type { Manifest, Split } from "@lrc-ts/data";
import { LowRankClone } from "./lrc.js";
import type { LowRankCloneOptions } from "./lrc.js";
import { LmTask, LrcTask, readerSource, valSource } from "./task.js";
import type { TrainTask } from "./task.js";
import { Trainer } from "./trainer.js";
import type { EvalMetrics, StepMetrics, TrainerConfig } from "./trainer.js";

export interface TrainRunOptions {
  /** Shard directory (`lrc tokenize` output); its val split is the evaluation data unless valData is given. */
  readonly data: string;
  /**
   * A second shard directory to evaluate on (a fixed validation set): its val split, or its train split when
   * it has no val split (a directory tokenized from the validation files alone). Same tokenizer as `data`.
   */
  readonly valData?: string;
  /** Run directory. */
  readonly out: string;
  /** Optimizer steps; or give `tokens` (steps = ceil(tokens / (batchSize · seqLen · gradAccum))). */
  readonly steps?: number;
  readonly tokens?: number;
  /** Sequences per micro-batch (default 8). */
  readonly batchSize?: number;
  /** Tokens per sequence (default 128). */
  readonly seqLen?: number;
  readonly gradAccum?: number;
  readonly lr?: number;
  /** AdamW weight decay (default 0) and its groups: see TrainerCoreConfig.decayAll and TrainTask.noDecay. */
  readonly weightDecay?: number;
  readonly decayAll?: boolean;
  /** AdamW β1, β2, ε (defaults 0.9, 0.999, 1e-8, as HF Trainer). */
  readonly beta1?: number;
  readonly beta2?: number;
  readonly adamEps?: number;
  readonly schedule?: "linear" | "cosine" | "constant";
  readonly warmupFraction?: number;
  readonly warmupSteps?: number;
  readonly gradClip?: number;
  /** Evaluate on the val split every N steps (0: only at the end; default 0). */
  readonly evalEvery?: number;
  /** Val batches per evaluation (default 8). */
  readonly evalBatches?: number;
  /** Checkpoint every N steps (0: only at the end; default 0). */
  readonly saveEvery?: number;
  readonly keepCheckpoints?: number;
  readonly resume?: boolean;
  /** Seed of the data order and the initialisation (default 0). */
  readonly seed?: number;
  /** Progress line on stderr (default true). */
  readonly progress?: boolean;
  readonly handleSigint?: boolean;
  readonly onStep?: (m: StepMetrics) => void | Promise<void>;
  readonly log?: (line: string) => void;
  /** Test hook (see TrainerConfig.beforeStep). */
  readonly beforeStep?: (step: number) => void;
}

export interface DistillOptions extends TrainRunOptions, Omit<LowRankCloneOptions, "seed"> {
  /** Teacher model directory (HF layout), or a loaded CausalLM (then give tokenizerFrom to copy a tokenizer). */
  readonly teacher: string | CausalLM;
  /** Directory whose tokenizer files go into the export (default: the teacher directory). */
  readonly tokenizerFrom?: string;
}

export interface PretrainOptions extends TrainRunOptions {
  /** config.json path or a resolved config. */
  readonly config: string | CausalLMConfig;
  /** Init std (default: the config's initializer_range, else 0.02). */
  readonly initStd?: number;
  /** Teacher directory for plain KD (CE + KL). */
  readonly teacher?: string | CausalLM;
  /** KD temperature (default 1). */
  readonly temperature?: number;
  readonly klWeight?: number;
  /** tokenizer.json file or a directory holding the tokenizer files, copied into the export. */
  readonly tokenizer?: string;
}

export interface RunResult {
  readonly steps: number;
  readonly interrupted: boolean;
  /** Mean of each loss term over the last steps. */
  readonly final: Record<string, number>;
  readonly val: EvalMetrics | null;
  readonly tokens: number;
  readonly tokensPerSecond: number;
  readonly elapsedSeconds: number;
  /** The exported HF directory (null when interrupted). */
  readonly exported: string | null;
  readonly trainable: number;
}

function resolveSteps(o: TrainRunOptions, B: number, T: number): number {
  const accum = o.gradAccum ?? 1;
  if (o.steps !== undefined && o.tokens !== undefined) throw new RangeError("give either steps or tokens, not both");
  const steps = o.steps ?? (o.tokens !== undefined ? Math.ceil(o.tokens / (B * T * accum)) : undefined);
  if (steps === undefined) throw new RangeError("give the run length: steps or tokens");
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
  return steps;
}

/** What the data and the flags are checked against before training: the model's limits and where they come from. */
interface ModelLimits {
  readonly vocabSize: number;
  readonly maxPositions: number;
  /** The config.json (or a description of the in-memory model) the limits come from, for messages. */
  readonly config: string;
}

/** Where a model's config came from, for messages: its config.json, or a description of the model object. */
function configWhere(source: string | CausalLM | CausalLMConfig, what: string): string {
  if (typeof source !== "string") return `the ${what}'s config`;
  return source.endsWith(".json") ? source : path.join(source, "config.json");
}

async function runTask(task: TrainTask, o: TrainRunOptions, exportDir: string, tokenizerFrom: string | undefined, limits: ModelLimits, defaultLr: number, describe: Record<string, unknown>, info: Record<string, unknown>): Promise<RunResult> {
  const B = o.batchSize ?? 8, T = o.seqLen ?? 128;
  const manifest = readManifest(o.data);
  const manifestFile = path.join(o.data, MANIFEST_FILE);
  if (manifest.vocabSize > limits.vocabSize)
    throw new RangeError(`${manifestFile}: the shards' vocabulary (${manifest.vocabSize}) is larger than vocab_size ${limits.vocabSize} of ${limits.config}`);
  // The windows must fit the model (the final evaluation and every resume would fail there otherwise).
  if (T > limits.maxPositions) throw new RangeError(`--seq-len ${T} exceeds max_position_embeddings ${limits.maxPositions} of ${limits.config}`);
  // The shards must hold this tokenizer's ids (the manifest records the sha256 of the tokenizer.json they were made with).
  if (tokenizerFrom !== undefined && fs.existsSync(path.join(tokenizerFrom, "tokenizer.json"))) verifyTokenizer(o.data, tokenizerFrom);
  // The logits of one micro-batch alone ([B, T, vocab] float32) must fit in memory.
  const logitBytes = B * T * limits.vocabSize * 4;
  if (logitBytes > os.totalmem())
    throw new RangeError(
      `--batch-size ${B} x --seq-len ${T}: the logits alone need about ${Math.round(logitBytes / 1024 ** 3)} GiB (x vocab_size ${limits.vocabSize}, float32), ` +
        `more than this machine's ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB; lower --batch-size and use --grad-accum`,
    );
  const steps = resolveSteps(o, B, T);
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const evalOn = evalData(o, manifest, limits.vocabSize, T, log);
  // The evaluation split is verified (checksums, id range) once here; the evaluations then read it unverified.
  if (evalOn !== null) verifySplit(evalOn.dir, evalOn.split);
  const reader = openShards(o.data, { split: "train", seqLen: T, batchSize: B, seed: o.seed ?? 0 });
  try {
    const val = evalOn === null ? null : valSource(evalOn.dir, { seqLen: T, batchSize: B, maxBatches: o.evalBatches ?? 8, split: evalOn.split });
    const cfg: TrainerConfig = {
      steps, outDir: o.out, lr: o.lr ?? defaultLr, describe,
      runInfo: { ...info, data: o.data, evalData: evalOn, batchSize: B, seqLen: T, evalBatches: o.evalBatches ?? 8, exportTo: exportDir },
      ...pick(o, ["weightDecay", "decayAll", "beta1", "beta2", "adamEps", "schedule", "warmupFraction", "warmupSteps", "gradClip", "gradAccum", "evalEvery", "saveEvery", "keepCheckpoints", "resume", "seed", "progress", "handleSigint", "onStep", "log", "beforeStep"]),
    };
    const trainer = new Trainer(task, readerSource(reader), val, cfg);
    const r = await trainer.run();
    let exported: string | null = null;
    if (!r.interrupted) {
      await task.export(exportDir, tokenizerFrom !== undefined ? { tokenizerFrom } : {});
      exported = exportDir;
    }
    return {
      steps: r.step, interrupted: r.interrupted, final: r.final, val: r.lastEval, tokens: r.tokens, tokensPerSecond: r.tokensPerSecond,
      elapsedSeconds: r.elapsedSeconds, exported, trainable: trainer.params.reduce((s, p) => s + p.size, 0),
    };
  } finally {
    reader.close();
  }
}

/** Where evaluation reads: valData's val (else train) split, or data's val split; null (with a note) when data has none. */
function evalData(o: TrainRunOptions, manifest: Manifest, vocab: number, T: number, log: (l: string) => void): { dir: string; split: Split } | null {
  if (o.valData === undefined) {
    if (windowCount(manifest.splits.val.tokens, T) > 0) return { dir: o.data, split: "val" };
    log(`note: ${o.data} has no val split of at least ${T + 1} tokens; skipping evaluation`);
    return null;
  }
  const file = path.join(o.valData, "manifest.json");
  const m = readManifest(o.valData);
  if (m.tokenizer.hash !== manifest.tokenizer.hash)
    throw new RangeError(`${file}: tokenized with another tokenizer (hash ${m.tokenizer.hash.slice(0, 12)}) than ${o.data} (${manifest.tokenizer.hash.slice(0, 12)})`);
  if (m.vocabSize > vocab) throw new RangeError(`${file}: the shards' vocabulary (${m.vocabSize}) is larger than the model's vocab_size ${vocab}`);
  const split: Split = windowCount(m.splits.val.tokens, T) > 0 ? "val" : "train";
  if (windowCount(m.splits[split].tokens, T) === 0) throw new RangeError(`${file}: no split holds ${T + 1} tokens (one --seq-len window) to evaluate on`);
  log(`evaluating on the ${split} split of ${o.valData} (${m.splits[split].tokens.toLocaleString("en-US")} tokens)`);
  return { dir: o.valData, split };
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** Low-Rank Clone training from a teacher directory; exports `<out>/student/`. */
export async function distill(o: DistillOptions): Promise<RunResult> {
  const teacher = typeof o.teacher === "string" ? await loadCausalLM(o.teacher) : o.teacher;
  const tokenizerFrom = o.tokenizerFrom ?? (typeof o.teacher === "string" ? o.teacher : undefined);
  const cloneOpts = pick(o, ["hiddenSize", "initStd", "tieLmHeadProjection", "studentEps", "alpha", "logCloneTerms", "temperature", "attnOut", "cloneTerms", "cloneLayers", "banLayers", "klWeight", "ceWeight"]) as LowRankCloneOptions;
  const clone = new LowRankClone(teacher, { ...cloneOpts, hiddenSize: o.hiddenSize, seed: o.seed ?? 0 });
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const tc = teacher.config, sc = clone.studentConfig;
  log(
    `distill: teacher ${tc.model_type} D=${tc.hidden_size} L=${tc.num_hidden_layers} H=${tc.num_attention_heads}/${tc.num_key_value_heads} ` +
      `F=${tc.intermediate_size} V=${tc.vocab_size} -> student d=${sc.hidden_size} (${clone.numTrainable().toLocaleString("en-US")} trainable values; ` +
      `alpha ${clone.loss.alpha}, tau ${clone.loss.temperature}, attn-out ${clone.loss.attnOut})`,
  );
  const limits = { vocabSize: tc.vocab_size, maxPositions: tc.max_position_embeddings, config: configWhere(o.teacher, "teacher") };
  return runTask(new LrcTask(clone), o, path.join(o.out, "student"), tokenizerFrom, limits, 1e-4, {}, {
    command: "distill", teacher: typeof o.teacher === "string" ? o.teacher : null, logCloneTerms: clone.loss.logCloneTerms,
  });
}

/** Training a CausalLM from random init (CE, or CE + KL with a teacher); exports `<out>/model/`. */
export async function pretrain(o: PretrainOptions): Promise<RunResult> {
  const config = typeof o.config === "string" ? readConfigFile(o.config) : o.config;
  // Bounded before allocating: weights, gradients and the two AdamW moments, float32 each.
  const count = parameterCount(config), need = count * 16;
  if (need > os.totalmem())
    throw new RangeError(
      `${configWhere(o.config, "model")}: the model's ${count.toLocaleString("en-US")} parameters need about ${(need / 1024 ** 3).toFixed(1)} GiB to train ` +
        `(weights, gradients and AdamW moments as float32), more than this machine's ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    );
  const model = new CausalLM(config, { seed: o.seed ?? 0, ...(o.initStd !== undefined ? { std: o.initStd } : {}) });
  const teacher = o.teacher === undefined ? null : typeof o.teacher === "string" ? await loadCausalLM(o.teacher) : o.teacher;
  const task = new LmTask(model, {
    teacher, ...(o.temperature !== undefined ? { temperature: o.temperature } : {}), ...(o.klWeight !== undefined ? { klWeight: o.klWeight } : {}),
  });
  let tokenizerFrom: string | undefined;
  if (o.tokenizer !== undefined) {
    if (!fs.existsSync(o.tokenizer)) throw new Error(`${o.tokenizer}: no such tokenizer file or directory`);
    tokenizerFrom = fs.statSync(o.tokenizer).isDirectory() ? o.tokenizer : stageTokenizer(o.tokenizer, o.out);
  } else if (typeof o.teacher === "string") tokenizerFrom = o.teacher;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  log(
    `pretrain: ${config.model_type} d=${config.hidden_size} L=${config.num_hidden_layers} H=${config.num_attention_heads}/${config.num_key_value_heads} ` +
      `F=${config.intermediate_size} V=${config.vocab_size} (${model.numParameters().toLocaleString("en-US")} parameters)` +
      (teacher !== null ? `, KD from a teacher at tau ${task.temperature}` : ""),
  );
  const tPos = teacher?.config.max_position_embeddings ?? Infinity;
  const limits = tPos < config.max_position_embeddings
    ? { vocabSize: config.vocab_size, maxPositions: tPos, config: configWhere(o.teacher!, "teacher") }
    : { vocabSize: config.vocab_size, maxPositions: config.max_position_embeddings, config: configWhere(o.config, "model") };
  return runTask(task, o, path.join(o.out, "model"), tokenizerFrom, limits, 1e-3, { initStd: o.initStd ?? null }, {
    command: "pretrain", configFile: typeof o.config === "string" ? o.config : null, teacher: typeof o.teacher === "string" ? o.teacher : null,
  });
}

/** A lone tokenizer.json goes into a small staging directory so saveCausalLM can copy it. */
function stageTokenizer(file: string, out: string): string {
  const dir = path.join(out, ".tokenizer");
  makeDirectory(dir);
  fs.copyFileSync(file, path.join(dir, "tokenizer.json"));
  return dir;
}
