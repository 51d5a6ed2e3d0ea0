// `distill(options)` and `pretrain(options)`: what `lrc distill` / `lrc pretrain` run, callable in-process
// (examples/distill-qwen does). Each opens the shard directory, builds the task, runs the Trainer (runTraining) in
// `<out>/` (run.json, metrics.jsonl, loss.svg, checkpoints/) and exports the model as an HF directory
// (`<out>/student/` for distill, `<out>/model/` for pretrain) with its training record in config.json, the
// generation/tokenizer configs a Hub user expects and a model card README.md.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CausalLM, TORCH_DTYPE, configDType, loadCausalLM, loadedBytes, parameterCount, readConfigFile } from "@lrc-ts/nn";
import { bufferPoolStats, getBackend, makeDirectory, memoryLimit, writeFileAtomic } from "@lrc-ts/tensor-core";
import type { SafetensorsFloatDType } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "@lrc-ts/nn";
import { MANIFEST_FILE, openShards, readManifest, verifySplit, verifyTokenizer, windowCount } from "@lrc-ts/data";
import type { Manifest, Split } from "@lrc-ts/data";
import { LowRankClone } from "../clone.js";
import type { LowRankCloneOptions } from "../clone.js";
import { initClone, initLine } from "../init.js";
import type { CloneInitReport, InitMethod } from "../init.js";
import { LmTask, LrcTask } from "../task.js";
import type { TrainTask } from "../task.js";
import { Trainer } from "../trainer.js";
import type { EvalMetrics, StepMetrics, TrainerConfig } from "../trainer.js";
import { estimateMemory, memoryVerdict } from "../plan.js";
import type { MemoryEstimate, RecomputeChoice, RunShape } from "../plan.js";
import { TRAINING_CONFIG_FIELD } from "../training-record.js";
import { exportConfigFiles, modelCard } from "./model-card.js";
import { CheckpointStore } from "./checkpoint.js";
import { checkSameTeacher } from "./handoff.js";
import { finalLosses, lastEvaluation, readMetrics } from "./metrics.js";
import type { ResolvedLossOptions } from "../losses.js";
import { lrcVersion } from "./version.js";
import { exportTrained } from "./model-files.js";
import { valSource } from "./sources.js";
import { runTraining } from "./train-loop.js";
import type { RunTrainingOptions } from "./train-loop.js";

/** The trainer's math settings a run passes through unchanged (documented on TrainerConfig). */
type RunTrainerSettings = Partial<
  Pick<
    TrainerConfig,
    | "gradAccum" | "lr" | "weightDecay" | "decayAll" | "beta1" | "beta2" | "adamEps"
    | "schedule" | "warmupFraction" | "warmupSteps" | "gradClip" | "evalEvery"
  >
>;

export interface TrainRunOptions extends RunTrainerSettings {
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
  /** Weight dtype of the exported model (default: the teacher's config.json torch_dtype, else f32). */
  readonly dtype?: "bf16" | "f16" | "f32";
  /**
   * Keep a BF16 or F16 teacher's weight matrices in memory in that dtype (`--teacher-dtype keep`: half the bytes
   * of float32; the kernels widen them exactly, so losses and the exported student are bit-identical); false
   * widens them to float32 on load (`--teacher-dtype float32`). Default: on the cpu and webgpu backends (GPU.js
   * has no 16-bit kernels: its matmuls would run on cpu). Ignored without a teacher.
   */
  readonly keepTeacherDType?: boolean;
  readonly onStep?: (m: StepMetrics) => void | Promise<void>;
  readonly log?: (line: string) => void;
  /** Test hook (see RunTrainingOptions.beforeStep). */
  readonly beforeStep?: (step: number) => void;
}

export interface DistillOptions extends TrainRunOptions, Omit<LowRankCloneOptions, "seed"> {
  /** Teacher model directory (HF layout), or a loaded CausalLM (then give tokenizerFrom to copy a tokenizer). */
  readonly teacher: string | CausalLM;
  /** Directory whose tokenizer files go into the export (default: the teacher directory). */
  readonly tokenizerFrom?: string;
  /**
   * Projection init (default "random", the paper's N(0, initStd²)); "pca" and "svd" derive it from the teacher
   * (./init.ts). Ignored on resume (the checkpoint holds the projections).
   */
  readonly init?: InitMethod;
  /** Calibration tokens for init "pca", drawn from the training split (default 4096). */
  readonly initTokens?: number;
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
  /** Tokens trained in this process over the seconds its training steps took (evaluations, checkpoints and the export excluded). */
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

/** What distill / pretrain hand runTask besides the options. */
interface RunSpec {
  readonly task: TrainTask;
  readonly exportDir: string;
  readonly tokenizerFrom: string | undefined;
  /** The trained model's reference config (the teacher's for distill): bos/eos ids for the exported configs. */
  readonly config: CausalLMConfig;
  /** What the data and the flags are checked against. */
  readonly limits: ModelLimits;
  readonly defaultLr: number;
  readonly describe: Record<string, unknown>;
  /** Weight dtype of the export. */
  readonly dtype: SafetensorsFloatDType;
  /** For the model card: how the model was trained, and the teacher directory if any. */
  readonly method: string;
  readonly teacher: string | null;
  /** More of the run's settings for run.json (the command, its inputs). */
  readonly info: Record<string, unknown>;
  /** The shapes the dry run's memory estimate is made of. */
  readonly shape: Omit<RunShape, "batchSize" | "seqLen">;
  /** The teacher's weights as kept in their checkpoint dtype and as float32, and which was taken (null: no teacher). */
  readonly teacherDType: TeacherDType | null;
  /** LRC: whether the generated weights are recomputed, and why (for the batch of the run). */
  readonly recompute: RecomputeChoice | null;
  /** Runs after the input checks, before training (distill: the projection init and its start line). */
  readonly prepare?: () => Promise<void>;
}

/** The export dtype: o.dtype, else the teacher's config.json torch_dtype, else F32. */
function exportDType(o: TrainRunOptions, teacher: CausalLMConfig | null): SafetensorsFloatDType {
  if (o.dtype !== undefined) {
    const d = DTYPES[o.dtype];
    if (d === undefined) throw new RangeError(`dtype must be bf16, f16 or f32, got '${String(o.dtype)}'`);
    return d;
  }
  return (teacher !== null ? configDType(teacher) : undefined) ?? "F32";
}

const DTYPES: Readonly<Record<string, SafetensorsFloatDType>> = { bf16: "BF16", f16: "F16", f32: "F32" };

/** The training data and the flags checked against the model's limits (before training or a dry run); the manifest. */
function checkData(o: TrainRunOptions, limits: ModelLimits, tokenizerFrom: string | undefined, B: number, T: number): Manifest {
  const manifest = readManifest(o.data);
  const manifestFile = path.join(o.data, MANIFEST_FILE);
  if (manifest.vocabSize > limits.vocabSize)
    throw new RangeError(`${manifestFile}: the shards' vocabulary (${manifest.vocabSize}) is larger than vocab_size ${limits.vocabSize} of ${limits.config}`);
  // The windows must fit the model (the final evaluation and every resume would fail there otherwise).
  if (T > limits.maxPositions) throw new RangeError(`--seq-len ${T} exceeds max_position_embeddings ${limits.maxPositions} of ${limits.config}`);
  // The shards must hold this tokenizer's ids (the manifest records the sha256 of the tokenizer.json they were made with).
  if (tokenizerFrom !== undefined && fs.existsSync(path.join(tokenizerFrom, "tokenizer.json"))) verifyTokenizer(o.data, tokenizerFrom);
  return manifest;
}

/**
 * A step of this batch against the memory (before training or a dry run, so the OOM killer never has to say
 * it): refused when its estimate exceeds the memory limit, a warning on `log` when twice it does (plan.ts memoryVerdict).
 */
function checkMemory(spec: RunSpec, o: TrainRunOptions, B: number, T: number, log: (l: string) => void): void {
  const accum = o.gradAccum ?? 1;
  const m = estimateMemory({ ...spec.shape, batchSize: B, seqLen: T, gradAccum: accum });
  const v = memoryVerdict(m, memoryLimit(), `--batch-size ${B} x --seq-len ${T}`, spec.recompute?.recompute ?? null);
  if (v.verdict === "refuse") throw new RangeError(v.message);
  if (v.verdict === "warn") log(v.message);
}

async function runTask(o: TrainRunOptions, spec: RunSpec): Promise<RunResult> {
  const { task, exportDir, tokenizerFrom, config, limits, defaultLr, describe } = spec;
  const B = o.batchSize ?? 8, T = o.seqLen ?? 128;
  const manifest = checkData(o, limits, tokenizerFrom, B, T);
  const steps = resolveSteps(o, B, T);
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  checkMemory(spec, o, B, T, log);
  const evalOn = evalData(o, manifest, limits.vocabSize, T, log);
  // The evaluation split is verified (checksums, id range) once here; the evaluations then read it unverified.
  if (evalOn !== null) verifySplit(evalOn.dir, evalOn.split);
  await spec.prepare?.();
  const reader = openShards(o.data, { split: "train", seqLen: T, batchSize: B, seed: o.seed ?? 0 });
  try {
    const val = evalOn === null ? null : valSource(evalOn.dir, { seqLen: T, batchSize: B, maxBatches: o.evalBatches ?? 8, split: evalOn.split });
    const cfg: TrainerConfig = {
      steps, lr: o.lr ?? defaultLr, describe,
      ...pick(o, ["weightDecay", "decayAll", "beta1", "beta2", "adamEps", "schedule", "warmupFraction", "warmupSteps", "gradClip", "gradAccum", "evalEvery", "seed"]),
    };
    const runOpts: RunTrainingOptions = {
      outDir: o.out,
      runInfo: {
        ...spec.info, data: o.data, evalData: evalOn, batchSize: B, seqLen: T, evalBatches: o.evalBatches ?? 8, exportTo: exportDir,
        tokenizerFrom: tokenizerFrom ?? null, exportDType: spec.dtype,
      },
      ...pick(o, ["saveEvery", "keepCheckpoints", "resume", "progress", "handleSigint", "onStep", "log", "beforeStep"]),
    };
    const trainer = new Trainer(task, reader, val, cfg);
    const r = await runTraining(trainer, runOpts);
    let exported: string | null = null;
    if (!r.interrupted) {
      await writeExport(task, exportDir, {
        config, tokenizerFrom, dtype: spec.dtype, seqLen: T, method: spec.method, teacher: spec.teacher, steps: r.step, tokens: r.tokens, final: r.final, val: r.lastEval,
      });
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

/**
 * Writes a task's trained model as an HF directory `dir`: config.json with the training record (the window T),
 * the weights in `dtype`, the tokenizer files and the generation / tokenizer configs derived from `config`
 * (the reference model's: the teacher's for distill), and the model card README.md.
 */
async function writeExport(task: TrainTask, dir: string, e: {
  config: CausalLMConfig; tokenizerFrom: string | undefined; dtype: SafetensorsFloatDType; seqLen: number; method: string; teacher: string | null;
  steps: number; tokens: number; final: Record<string, number>; val: EvalMetrics | null;
}): Promise<void> {
  const configOverrides = { [TRAINING_CONFIG_FIELD]: { train_seq_len: e.seqLen, version: lrcVersion() } };
  await exportTrained(task, dir, {
    configOverrides, dtype: e.dtype, extraFiles: exportConfigFiles(e.config, e.tokenizerFrom), ...(e.tokenizerFrom !== undefined ? { tokenizerFrom: e.tokenizerFrom } : {}),
  });
  const exportedConfig = readConfigFile(path.join(dir, "config.json"));
  writeFileAtomic(path.join(dir, "README.md"), modelCard({
    config: exportedConfig, parameters: parameterCount(exportedConfig),
    method: e.method, teacher: e.teacher, steps: e.steps, tokens: e.tokens, seqLen: e.seqLen, dtype: TORCH_DTYPE[e.dtype],
    final: e.final, val: e.val, version: lrcVersion(),
  }));
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

/** The teacher's storage (`--teacher-dtype`): the bytes of its weights both ways, and the one taken. */
export interface TeacherDType {
  readonly setting: "keep" | "float32";
  /** Bytes as loaded with its matrices in the checkpoint's dtype (config.json's torch_dtype: BF16 / F16 matrices at 2 bytes). */
  readonly keepBytes: number;
  /** Bytes with every value widened to float32. */
  readonly float32Bytes: number;
}

/** Whether a teacher's matrices stay in their checkpoint dtype: o.keepTeacherDType, else on the cpu and webgpu backends. */
function keepTeacher(o: TrainRunOptions): boolean {
  return o.keepTeacherDType ?? ["cpu", "webgpu"].includes(getBackend().name);
}

/** Loads a teacher directory, a BF16 / F16 checkpoint's matrices kept 16-bit as keepTeacher says. */
function loadTeacher(dir: string, o: TrainRunOptions): Promise<CausalLM> {
  return loadCausalLM(dir, { keepDType: keepTeacher(o) });
}

function teacherDType(teacher: CausalLMConfig, o: TrainRunOptions): TeacherDType {
  return { setting: keepTeacher(o) ? "keep" : "float32", keepBytes: loadedBytes(teacher, { keepDType: true }), float32Bytes: loadedBytes(teacher) };
}

function bytesOf(m: CausalLM): number {
  return m.namedParameters().reduce((a, [, t]) => a + t.nbytes, 0);
}

async function distillTask(o: DistillOptions): Promise<RunSpec> {
  const teacher = typeof o.teacher === "string" ? await loadTeacher(o.teacher, o) : o.teacher;
  const tokenizerFrom = o.tokenizerFrom ?? (typeof o.teacher === "string" ? o.teacher : undefined);
  const teacherSource = typeof o.teacher === "string" ? path.join(o.teacher, "config.json") : "the teacher's config";
  // Wider than the teacher is refused by LowRankClone; as wide gives nothing a student is for.
  if (o.hiddenSize === teacher.config.hidden_size)
    throw new RangeError(`hidden size ${o.hiddenSize} is the hidden_size of ${teacherSource}; LRC clones a narrower student`);
  const cloneOpts = pick(o, [
    "hiddenSize", "initStd", "tieLmHeadProjection", "studentEps", "alpha", "logCloneTerms", "temperature", "attnOut", "cloneTerms", "cloneLayers", "banLayers",
    "klWeight", "ceWeight", "recomputeWeights",
  ]) as LowRankCloneOptions;
  const clone = new LowRankClone(teacher, { ...cloneOpts, hiddenSize: o.hiddenSize, seed: o.seed ?? 0 });
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const tc = teacher.config, sc = clone.studentConfig;
  log(
    `distill: teacher ${tc.model_type} D=${tc.hidden_size} L=${tc.num_hidden_layers} H=${tc.num_attention_heads}/${tc.num_key_value_heads} ` +
      `F=${tc.intermediate_size} V=${tc.vocab_size} -> student d=${sc.hidden_size} (${clone.numTrainable().toLocaleString("en-US")} trainable values; ` +
      `alpha ${clone.loss.alpha}, tau ${clone.loss.temperature}, attn-out ${clone.loss.attnOut})`,
  );
  const recompute = clone.recomputePlan(o.batchSize ?? 8, o.seqLen ?? 128);
  log(`distill: ${recomputeLine(recompute)}`);
  const teacherDir = typeof o.teacher === "string" ? o.teacher : null;
  const limits = { vocabSize: tc.vocab_size, maxPositions: tc.max_position_embeddings, config: configWhere(o.teacher, "teacher") };
  return {
    task: new LrcTask(clone), exportDir: path.join(o.out, "student"), tokenizerFrom, config: tc, limits, defaultLr: 1e-4,
    describe: {}, dtype: exportDType(o, tc), teacher: teacherDir,
    method: distillMethod(sc.hidden_size, tc.hidden_size, clone.loss, o.init ?? "random"),
    info: {
      command: "distill", teacher: teacherDir, logCloneTerms: clone.loss.logCloneTerms,
      init: o.init ?? "random", initTokens: o.init === "pca" ? (o.initTokens ?? DEFAULT_INIT_TOKENS) : null,
    },
    prepare: async () => {
      if (o.resume !== true) log(initLine(await initFromShards(clone, o)));
    },
    shape: { ...clone.runShape(), recomputeWeights: recompute.recompute },
    teacherDType: teacherDType(tc, o), recompute,
  };
}

/**
 * The shard directories' manifests read before a model is loaded, so a wrong --data or --val-data stops at once
 * (loading a Qwen2.5-0.5B teacher takes ~10 s) with the directory named; runTask checks them in full.
 */
function checkDataDirs(o: TrainRunOptions): void {
  readManifest(o.data);
  if (o.valData !== undefined) readManifest(o.valData);
}

/** The model card's description of a distill run. */
function distillMethod(d: number, D: number, loss: Pick<ResolvedLossOptions, "alpha" | "temperature" | "attnOut">, init: string): string {
  return `Low-Rank Clone (LRC): student hidden size ${d} from the teacher's ${D}; alpha ${loss.alpha}, KL temperature ${loss.temperature}, attention-out term ${loss.attnOut}, ${init} projection init`;
}

export interface ExportRunOptions {
  /** Run directory of `lrc distill` (run.json, checkpoints/): its newest verified checkpoint is folded. */
  readonly run: string;
  /** Output HF directory (default: the run's own export directory, `<run>/student`). */
  readonly out?: string;
  /** The teacher directory (default: the one run.json names); checked against the teacher the run was trained from. */
  readonly teacher?: string;
  /** Weight dtype (default: the run's, its teacher's torch_dtype unless distill was given --dtype). */
  readonly dtype?: "bf16" | "f16" | "f32";
  readonly log?: (line: string) => void;
}

export interface ExportRunResult {
  readonly out: string;
  readonly checkpoint: string;
  readonly step: number;
  readonly steps: number;
  readonly tokens: number;
}

/**
 * `lrc export`: folds the newest verified checkpoint of a distill run (finished, interrupted or still running)
 * into the plain HF student `lrc distill` writes at its end: the same files, the model card's losses from
 * metrics.jsonl up to the checkpoint's step.
 */
export async function exportRun(o: ExportRunOptions): Promise<ExportRunResult> {
  const runFile = path.join(o.run, "run.json");
  if (!fs.existsSync(runFile)) throw new Error(`${runFile}: missing: not a run directory of lrc distill`);
  let run: Record<string, unknown>;
  try {
    run = JSON.parse(fs.readFileSync(runFile, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${runFile}: not valid JSON: ${(e as Error).message}`);
  }
  if (run.command !== "distill") throw new Error(`${runFile}: command is ${JSON.stringify(run.command)}: lrc export folds distill runs (a pretrain run exports its model/ when it ends)`);
  const task = (run.config as { task?: Record<string, unknown> } | undefined)?.task ?? {};
  const { hiddenSize, studentEps, tieLmHeadProjection, loss } = task as { hiddenSize?: unknown; studentEps?: unknown; tieLmHeadProjection?: unknown; loss?: ResolvedLossOptions };
  if (typeof hiddenSize !== "number" || typeof studentEps !== "number" || typeof tieLmHeadProjection !== "boolean" || loss === undefined)
    throw new Error(`${runFile}: config.task: missing hiddenSize, studentEps, tieLmHeadProjection or loss`);
  const teacherDir = o.teacher ?? (typeof run.teacher === "string" ? run.teacher : undefined);
  if (teacherDir === undefined) throw new Error(`${runFile}: names no teacher directory (the run was given a loaded model); pass --teacher`);
  const seqLen = run.seqLen;
  if (typeof seqLen !== "number") throw new Error(`${runFile}: seqLen: expected a number, got ${JSON.stringify(seqLen)}`);
  const runTeacher = task.teacher as CausalLMConfig | undefined;
  if (runTeacher !== undefined) checkSameTeacher(readConfigFile(path.join(teacherDir, "config.json")), runTeacher, path.join(teacherDir, "config.json"), runFile);
  const teacher = await loadCausalLM(teacherDir, { keepDType: ["cpu", "webgpu"].includes(getBackend().name) });
  try {
    const clone = new LowRankClone(teacher, { hiddenSize, studentEps, tieLmHeadProjection });
    const lrcTask = new LrcTask(clone);
    const named = lrcTask.params();
    const store = new CheckpointStore(path.join(o.run, "checkpoints"));
    const ck = await store.loadLatest(Object.keys(named), Object.values(named), o.log ?? (() => {}));
    if (ck === null) throw new Error(`${store.dir}: no checkpoint to export (a run saves one every --save-every steps, at Ctrl-C and at its end)`);
    const rows = readMetrics(path.join(o.run, "metrics.jsonl")).filter((r) => r.step <= ck.step);
    const final = finalLosses(rows);
    const val = lastEvaluation(rows);
    // <run>/student, where distill exports (run.json's exportTo is absolute: a moved run would write elsewhere).
    const out = o.out ?? path.join(o.run, "student");
    const dtype = o.dtype !== undefined ? DTYPES[o.dtype]! : typeof run.exportDType === "string" && ["BF16", "F16", "F32"].includes(run.exportDType) ? (run.exportDType as SafetensorsFloatDType) : (configDType(teacher.config) ?? "F32");
    const tokenizerFrom = typeof run.tokenizerFrom === "string" ? run.tokenizerFrom : teacherDir;
    await writeExport(lrcTask, out, {
      config: teacher.config, tokenizerFrom, dtype, seqLen, method: distillMethod(hiddenSize, teacher.config.hidden_size, loss, typeof run.init === "string" ? run.init : "random"),
      teacher: teacherDir, steps: ck.step, tokens: ck.tokens, final, val,
    });
    const steps = (run.config as { steps?: unknown }).steps;
    return { out, checkpoint: ck.dir, step: ck.step, steps: typeof steps === "number" ? steps : ck.step, tokens: ck.tokens };
  } finally {
    teacher.dispose();
  }
}

/** Low-Rank Clone training from a teacher directory; exports `<out>/student/`. */
export async function distill(o: DistillOptions): Promise<RunResult> {
  checkDataDirs(o);
  return runTask(o, await distillTask(o));
}

/** Default calibration tokens of the pca init. */
export const DEFAULT_INIT_TOKENS = 4096;

/**
 * Initialises the clone with o.init from windows of the training split (never validation), read in an order
 * of their own (seed + 1), and measures the start losses on the first of them.
 */
async function initFromShards(clone: LowRankClone, o: DistillOptions): Promise<CloneInitReport> {
  const B = o.batchSize ?? 8, T = o.seqLen ?? 128;
  const method = o.init ?? "random";
  const tokens = o.initTokens ?? DEFAULT_INIT_TOKENS;
  if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError(`initTokens must be a positive integer, got ${tokens}`);
  const reader = openShards(o.data, { split: "train", seqLen: T, batchSize: B, seed: ((o.seed ?? 0) + 1) >>> 0 });
  try {
    const n = method === "pca" ? Math.ceil(tokens / (B * T)) : 1;
    const batches = Array.from({ length: n }, () => reader.next());
    return await initClone(clone, { method, calibration: batches, check: batches[0]! });
  } finally {
    reader.close();
  }
}

async function pretrainTask(o: PretrainOptions): Promise<RunSpec> {
  const config = typeof o.config === "string" ? readConfigFile(o.config) : o.config;
  // Bounded before allocating: weights, gradients and the two AdamW moments, float32 each.
  const count = parameterCount(config), need = count * 16;
  if (need > os.totalmem())
    throw new RangeError(
      `${configWhere(o.config, "model")}: the model's ${count.toLocaleString("en-US")} parameters need about ${(need / 1024 ** 3).toFixed(1)} GiB to train ` +
        `(weights, gradients and AdamW moments as float32), more than this machine's ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    );
  const model = new CausalLM(config, { seed: o.seed ?? 0, ...(o.initStd !== undefined ? { std: o.initStd } : {}) });
  const teacher = o.teacher === undefined ? null : typeof o.teacher === "string" ? await loadTeacher(o.teacher, o) : o.teacher;
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
  const teacherDir = typeof o.teacher === "string" ? o.teacher : null;
  return {
    task, exportDir: path.join(o.out, "model"), tokenizerFrom, config, limits, defaultLr: 1e-3, describe: { initStd: o.initStd ?? null },
    dtype: exportDType(o, teacher?.config ?? null), teacher: teacherDir,
    method: teacher !== null ? `pretraining from random init with CE + KL from a teacher (plain KD, temperature ${task.temperature})` : "pretraining from random init with next-token CE",
    info: { command: "pretrain", configFile: typeof o.config === "string" ? o.config : null, teacher: teacherDir },
    shape: { teacher: teacher?.config ?? null, teacherBytes: teacher === null ? 0 : bytesOf(teacher), student: config, trainable: model.numParameters(), generated: false },
    teacherDType: teacher === null ? null : teacherDType(teacher.config, o), recompute: null,
  };
}

/** Training a CausalLM from random init (CE, or CE + KL with a teacher); exports `<out>/model/`. */
export async function pretrain(o: PretrainOptions): Promise<RunResult> {
  checkDataDirs(o);
  return runTask(o, await pretrainTask(o));
}

export interface DryRunResult {
  readonly parameters: { readonly teacher: number | null; readonly student: number; readonly trainable: number };
  readonly memory: MemoryEstimate;
  /** Wall time of each timed step (the first includes warm-up: buffer allocation, JIT). */
  readonly stepSeconds: number[];
  readonly tokensPerStep: number;
  /** From the last timed step. */
  readonly tokensPerSecond: number;
  /** The run's steps and tokens (from --steps or --tokens) and its estimated duration at that speed. */
  readonly steps: number;
  readonly tokens: number;
  readonly etaSeconds: number;
  /** Peak resident set size of this process so far (after the timed steps). */
  readonly peakRssBytes: number;
  /** The CPU buffer pool's cache limit and where it came from (--pool-limit, LRC_POOL_LIMIT, a cgroup's limit, the machine). */
  readonly poolLimit: { readonly bytes: number; readonly source: string };
  /** The teacher's weights kept in their checkpoint dtype and as float32 (`--teacher-dtype`), null without a teacher. */
  readonly teacherDType: TeacherDType | null;
  /** LRC: whether each layer's generated weights are recomputed in the backward (`--recompute-weights`) and why; null for pretraining. */
  readonly recompute: RecomputeChoice | null;
}

/** The start-up line of a recomputeWeights decision. */
export function recomputeLine(c: RecomputeChoice): string {
  return `generated weights ${c.recompute ? "freed after each layer's forward and recomputed for its backward" : "kept from the forward to the backward"} (${c.reason})`;
}

/** Steps `dryRun` times. */
export const DRY_RUN_STEPS = 2;

/**
 * The plan of a run without running it: parameters, the memory estimate, and DRY_RUN_STEPS timed optimizer
 * steps on the first batches of the data (nothing is written to `out`).
 */
async function dryRun(p: RunSpec, o: TrainRunOptions): Promise<DryRunResult> {
  const B = o.batchSize ?? 8, T = o.seqLen ?? 128, accum = o.gradAccum ?? 1;
  checkData(o, p.limits, p.tokenizerFrom, B, T);
  checkMemory(p, o, B, T, o.log ?? ((l: string) => process.stderr.write(`${l}\n`)));
  await p.prepare?.();
  const steps = resolveSteps(o, B, T);
  const reader = openShards(o.data, { split: "train", seqLen: T, batchSize: B, seed: o.seed ?? 0 });
  try {
    const core = new Trainer(p.task, reader, null, {
      steps, lr: o.lr ?? p.defaultLr, ...pick(o, ["weightDecay", "decayAll", "beta1", "beta2", "adamEps", "schedule", "warmupFraction", "warmupSteps", "gradClip", "gradAccum", "seed"]),
    });
    const stepSeconds: number[] = [];
    for (let i = 0; i < DRY_RUN_STEPS; i++) {
      const t0 = performance.now();
      await core.step1();
      stepSeconds.push((performance.now() - t0) / 1000);
    }
    const tokensPerStep = B * T * accum;
    const last = stepSeconds.at(-1)!;
    return {
      parameters: {
        teacher: p.shape.teacher === null ? null : parameterCount(p.shape.teacher), student: parameterCount(p.shape.student), trainable: p.shape.trainable,
      },
      memory: estimateMemory({ ...p.shape, batchSize: B, seqLen: T, gradAccum: accum }),
      stepSeconds, tokensPerStep, tokensPerSecond: tokensPerStep / last, steps, tokens: steps * tokensPerStep, etaSeconds: steps * last,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      poolLimit: { bytes: bufferPoolStats().limitBytes, source: bufferPoolStats().limitSource },
      teacherDType: p.teacherDType, recompute: p.recompute,
    };
  } finally {
    reader.close();
  }
}

/** `distill`'s plan: parameters, memory by part, and two timed steps (`lrc distill --dry-run`). */
export async function distillDryRun(o: DistillOptions): Promise<DryRunResult> {
  checkDataDirs(o);
  return dryRun(await distillTask(o), o);
}

/** `pretrain`'s plan (`lrc pretrain --dry-run`). */
export async function pretrainDryRun(o: PretrainOptions): Promise<DryRunResult> {
  checkDataDirs(o);
  return dryRun(await pretrainTask(o), o);
}

/** A lone tokenizer.json goes into a small staging directory so saveCausalLM can copy it. */
function stageTokenizer(file: string, out: string): string {
  const dir = path.join(out, ".tokenizer");
  makeDirectory(dir);
  fs.copyFileSync(file, path.join(dir, "tokenizer.json"));
  return dir;
}
