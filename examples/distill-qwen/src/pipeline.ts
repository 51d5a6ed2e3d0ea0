// The example end to end, as one function the CLI (./main.ts) and the tests call:
//   1 data      corpus -> tokenizer -> train/val shards (embedded: cached), or the user's text (--teacher)
//   2 teacher   a small Qwen2 pretrained from scratch with lrc `pretrain` (cached by content key), or a Hub
//               checkpoint directory
//   3 LRC       Low-Rank Clone student, hidden d = D/2, N steps of B x T tokens (lrc Trainer + LrcTask)
//   4 baseline  the same student architecture from random init, plain CE, the same batches in the same
//               order; trained on to k x N steps to see how many tokens it needs to match the LRC student
//   5 report    val perplexity of all models on one fixed spread of held-out windows, token efficiency,
//               tokens/s, parameters, greedy samples, and with tasksDir zero-shot accuracy on lm-eval tasks
//               (lrc eval-tasks' scoring); report.md / report.json / val-ppl.svg
// LRC and baseline share one schedule (warmup, then constant LR), so the baseline's first N steps are
// exactly a standalone N-step baseline and one run gives both the equal-budget point and the long curve.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CausalLM, configToJson, generate, loadCausalLM, makeConfig } from "@lrc-ts/nn";
import type { CausalLMConfig, LanguageModel } from "@lrc-ts/nn";
import {
  LmTask, LowRankClone, LrcTask, Trainer, clock, exportStudent, exportTrained, initClone, initLine, loadTasks, lrcVersion, prefixToken, pretrain, readMetrics, runTraining, scoreTasks,
  taskFilesInDir,
} from "@lrc-ts/lrc";
import type { CloneInitReport, EvalSource, InitMethod, LoadedTask, TrainResult } from "@lrc-ts/lrc";
import { describeChoice, getBackend } from "@lrc-ts/tensor-core";
import type { TextTokenizer } from "@lrc-ts/data";
import { cacheRoot, contentKey, readDone, writeDone } from "./cache.js";
import { prepareEmbeddedData, prepareUserData, type PreparedData } from "./data.js";
import { budgetPlan, evalSource, evaluateOn, openTrainBatches, spreadEvalSet, type BatchPlan, type EvalSet } from "./batches.js";
import type { Preset } from "./options.js";
import {
  renderCurveSvg, renderMarkdown, renderTerminal, tokenEfficiency, tokensToReach,
  type AblationRow, type AccuracyRow, type CurvePoint, type ModelRow, type RunReport, type Sample, type WallClock,
} from "./report.js";

/** Bumped when the teacher recipe changes in a way the cache key would not see. */
const TEACHER_RECIPE_VERSION = 1;

export interface RunOptions {
  readonly preset: Preset;
  /** A Hugging Face model directory to distil (null: the embedded from-scratch teacher). */
  readonly teacherDir: string | null;
  /** With teacherDir: text inputs or a shard directory. */
  readonly data: readonly string[];
  readonly out: string;
  readonly seed: number;
  /** Student hidden size (default: teacher's / 2). */
  readonly hiddenSize: number | null;
  /** LRC token budget (default: the preset's steps). */
  readonly tokens: number | null;
  readonly baselineMultiple: number | null;
  /** Peak LR of the LRC run (default: the preset's). */
  readonly lr: number | null;
  readonly prompts: readonly string[];
  /** Trainer progress lines on stderr (default true). */
  readonly progress?: boolean;
  /** Stage headers and notes (default: stderr). */
  readonly log?: (line: string) => void;
  /** A directory of lm-eval task files (<task>.jsonl / .parquet) to score the teacher, LRC student and baseline on. */
  readonly tasksDir?: string | null;
  /** Documents per task (default: all). */
  readonly taskLimit?: number | null;
  /** Projection init of the LRC student (default random). */
  readonly init?: InitMethod;
  /** Calibration tokens of the pca init (default 4096). */
  readonly initTokens?: number | null;
  /** Also train the ablation variants (LRC random / pca / svd init, alpha 0) on the same batches and budget. */
  readonly ablate?: boolean;
}

/** Default calibration tokens of the pca init (lrc distill's default). */
const DEFAULT_INIT_TOKENS = 4096;

export interface RunOutput {
  readonly report: RunReport;
  readonly markdown: string;
  readonly terminal: string;
}

export function archLine(c: CausalLMConfig): string {
  return (
    `${c.model_type === "qwen2" ? "Qwen2" : "Llama"} D=${c.hidden_size} L=${c.num_hidden_layers} H=${c.num_attention_heads}/${c.num_key_value_heads} ` +
    `dh=${c.head_dim} F=${c.intermediate_size} V=${c.vocab_size}${c.tie_word_embeddings ? " tied" : ""}`
  );
}

/** The embedded teacher's config: Qwen2 (q/k/v biases), tied embeddings, head_dim = D / H. */
export function embeddedTeacherConfig(preset: Preset, tokenizer: TextTokenizer): CausalLMConfig {
  const t = preset.teacher;
  if (t.hiddenSize % t.heads !== 0) throw new RangeError(`teacher hidden size ${t.hiddenSize} is not a multiple of its ${t.heads} heads`);
  return makeConfig({
    model_type: "qwen2",
    vocab_size: tokenizer.vocabSize,
    hidden_size: t.hiddenSize,
    intermediate_size: t.ffn,
    num_hidden_layers: t.layers,
    num_attention_heads: t.heads,
    num_key_value_heads: t.kvHeads,
    head_dim: t.hiddenSize / t.heads,
    max_position_embeddings: preset.seqLen,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    extra: { bos_token_id: tokenizer.eosId, eos_token_id: tokenizer.eosId, initializer_range: 0.02 },
  });
}

interface TeacherDone {
  readonly valLoss: number | null;
  readonly tokens: number;
  readonly tokensPerSecond: number;
  readonly elapsedSeconds: number;
  readonly steps: number;
}

interface TeacherResult {
  readonly model: CausalLM;
  readonly dir: string;
  readonly trained: TeacherDone | null;
  readonly cached: boolean;
}

/** The embedded teacher: loaded from the cache, or pretrained into it (an interrupted run resumes). */
async function embeddedTeacher(preset: Preset, data: PreparedData, seed: number, progress: boolean, log: (l: string) => void): Promise<TeacherResult> {
  const config = embeddedTeacherConfig(preset, data.tokenizer);
  const recipe = {
    steps: preset.teacherSteps, lr: preset.teacherLr, schedule: "linear", warmupFraction: 0.05,
    batchSize: preset.batchSize, seqLen: preset.seqLen, seed,
  };
  const key = contentKey({
    config: configToJson(config),
    tokenizer: data.tokenizer.hash,
    shards: data.manifest.shards.map((s) => [s.file, s.split, s.tokens, s.checksum]),
    recipe,
    version: TEACHER_RECIPE_VERSION,
  });
  const dir = path.join(cacheRoot(), `teacher-${key}`);
  const modelDir = path.join(dir, "model");
  const done = readDone<TeacherDone>(dir);
  if (done !== null) {
    try {
      log(`  cached teacher: ${modelDir}`);
      return { model: await loadCausalLM(modelDir), dir: modelDir, trained: done, cached: true };
    } catch (e) {
      log(`  the cached teacher in ${dir} does not load (${(e as Error).message}); pretraining it again`);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const resume = fs.existsSync(path.join(dir, "checkpoints")) && fs.readdirSync(path.join(dir, "checkpoints")).length > 0;
  const run = async (resumeIt: boolean) =>
    pretrain({
      config, data: data.shards, out: dir, steps: recipe.steps, lr: recipe.lr, schedule: "linear", warmupFraction: recipe.warmupFraction,
      batchSize: recipe.batchSize, seqLen: recipe.seqLen, seed, tokenizer: path.join(data.tokenizerDir, "tokenizer.json"),
      evalEvery: 0, evalBatches: 4, saveEvery: Math.max(1, Math.ceil(recipe.steps / 8)), keepCheckpoints: 1, resume: resumeIt,
      progress, handleSigint: true, log,
    });
  let r;
  try {
    r = await run(resume);
  } catch (e) {
    if (!resume) throw e;
    log(`  could not resume the teacher from ${dir} (${(e as Error).message}); starting it again`);
    fs.rmSync(dir, { recursive: true, force: true });
    r = await run(false);
  }
  if (r.interrupted) throw new Error(`interrupted while pretraining the teacher; its checkpoint is in ${dir}: run again to resume`);
  const info: TeacherDone = { valLoss: r.val?.loss ?? null, tokens: r.tokens, tokensPerSecond: r.tokensPerSecond, elapsedSeconds: r.elapsedSeconds, steps: r.steps };
  fs.rmSync(path.join(dir, "checkpoints"), { recursive: true, force: true });
  writeDone(dir, info);
  return { model: await loadCausalLM(modelDir), dir: modelDir, trained: info, cached: false };
}

/** An eval source that also clocks itself, so training tokens/s can leave evaluation time out. */
/** An eval source that times itself: `seconds` in all, `after[i]` the total after its i-th evaluation. */
function timedEval(set: EvalSet): EvalSource & { seconds: number; after: number[] } {
  const inner = evalSource(set);
  const timed = {
    seconds: 0,
    after: [] as number[],
    async evaluate(model: LanguageModel) {
      const t0 = performance.now();
      try {
        return await inner.evaluate(model);
      } finally {
        timed.seconds += (performance.now() - t0) / 1000;
        timed.after.push(timed.seconds);
      }
    },
  };
  return timed;
}

/**
 * Training seconds (evaluations left out) until the eval at curve index `i` of a run's metrics.jsonl: the
 * elapsed time of that step's train row (written before that step's evaluation) less the evaluations before it.
 */
function secondsToEval(metricsFile: string, step: number, i: number, evalSecondsAfter: readonly number[]): number {
  const row = readMetrics(metricsFile).find((r) => r.type === "train" && r.step === step);
  if (row === undefined || row.type !== "train") throw new Error(`${metricsFile}: no train row for step ${step}`);
  return row.elapsed_s - (i > 0 ? evalSecondsAfter[i - 1]! : 0);
}

/** `git rev-parse --short HEAD` of the checkout this runs from, "+ uncommitted changes" when dirty; null outside git. */
function gitCommit(): string | null {
  try {
    const git = (args: string[]) => execFileSync("git", args, { cwd: import.meta.dirname, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const head = git(["rev-parse", "--short=12", "HEAD"]);
    return git(["status", "--porcelain", "--untracked-files=no"]) === "" ? head : `${head} + uncommitted changes`;
  } catch {
    return null;
  }
}

function evalCurve(metricsFile: string, stepTokens: number): CurvePoint[] {
  const out: CurvePoint[] = [];
  for (const row of readMetrics(metricsFile)) if (row.type === "eval") out.push({ tokens: row.step * stepTokens, loss: row.val_loss });
  return out;
}

async function greedySamples(name: string, model: LanguageModel, tokenizer: TextTokenizer, prompts: readonly string[], maxNew: number): Promise<Sample[]> {
  const out: Sample[] = [];
  for (const prompt of prompts) {
    const ids = tokenizer.encode(prompt);
    const room = model.config.max_position_embeddings - ids.length;
    const r = await generate(model, ids, { maxNewTokens: Math.max(0, Math.min(maxNew, room)), stopTokens: [tokenizer.eosId] });
    out.push({ model: name, prompt, completion: tokenizer.decode(r.tokens) });
  }
  return out;
}

/** CPU seconds (user + system, worker threads included) since `from`. */
function cpuSeconds(from: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1e6;
}

function trainSeconds(r: TrainResult, evalSeconds: number): number {
  return Math.max(1e-9, r.elapsedSeconds - evalSeconds);
}

/** Runs the whole example and writes report.md, report.json and val-ppl.svg into `o.out`. */
export async function runDistillQwen(o: RunOptions): Promise<RunOutput> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const progress = o.progress ?? true;
  const p = o.preset;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const elapsed = () => (performance.now() - t0) / 1000;
  const stages: { name: string; seconds: number; cached?: boolean }[] = [];
  let stageStart = t0;
  let stageNo = 0;
  const stage = (name: string) => {
    stageNo++;
    stageStart = performance.now();
    log(`\n[${clock(elapsed())}] ${stageNo}/5 ${name}`);
  };
  const endStage = (name: string, cached?: boolean) =>
    stages.push({ name, seconds: (performance.now() - stageStart) / 1000, ...(cached !== undefined ? { cached } : {}) });
  const backend = getBackend().description;
  log(describeChoice(getBackend())); // what runs, and for auto why
  log(`distill-qwen (${o.teacherDir === null ? `embedded run, preset ${p.name}` : `teacher ${o.teacherDir}`}); backend ${backend}; output ${o.out}`);
  fs.mkdirSync(o.out, { recursive: true });
  // Task files are read (and checked) before any training.
  const tasks: LoadedTask[] | null =
    o.tasksDir === null || o.tasksDir === undefined ? null : await loadTasks(taskFilesInDir(o.tasksDir), o.taskLimit ?? undefined);

  // 1. Data.
  stage(o.teacherDir === null ? "data: State of the Union corpus, BPE tokenizer, shards" : "data: tokenizing --data with the teacher's tokenizer");
  const data =
    o.teacherDir === null
      ? await prepareEmbeddedData({ addresses: p.addresses, valEvery: p.valEvery, vocabSize: p.vocabSize, log })
      : await prepareUserData({ teacherDir: o.teacherDir, inputs: o.data, out: o.out, seed: o.seed, valFraction: 0.1, log });
  log(`  ${data.description}`);
  log(`  shards ${data.shards}${data.cached ? " (cached)" : ""}: ${data.manifest.splits.train.tokens.toLocaleString("en-US")} train / ${data.manifest.splits.val.tokens.toLocaleString("en-US")} val tokens`);
  endStage("data", data.cached);

  // 2. Teacher.
  stage(o.teacherDir === null ? "teacher: Qwen2 pretrained from scratch (cached after the first run)" : `teacher: loading ${o.teacherDir}`);
  const teacherRes: TeacherResult =
    o.teacherDir === null
      ? await embeddedTeacher(p, data, o.seed, progress, log)
      : { model: await loadCausalLM(o.teacherDir), dir: o.teacherDir, trained: null, cached: true };
  const teacher = teacherRes.model;
  const tc = teacher.config;
  const teacherName = o.teacherDir === null ? "teacher (from scratch)" : `teacher (${path.basename(path.resolve(o.teacherDir))})`;
  const accuracy = async (name: string, model: LanguageModel): Promise<AccuracyRow> => {
    log(`  zero-shot accuracy: ${name}`);
    const scores = await scoreTasks(model, data.tokenizer, prefixToken(data.tokenizer, data.tokenizerDir), tasks!, { batchSize: 4, progress });
    return { model: name, tasks: Object.fromEntries(scores) };
  };
  log(`  ${archLine(tc)}: ${teacher.numParameters().toLocaleString("en-US")} parameters`);
  if (data.manifest.vocabSize > tc.vocab_size)
    throw new Error(`${data.shards}: the shards' vocabulary (${data.manifest.vocabSize}) is larger than the teacher's vocab_size ${tc.vocab_size}`);
  endStage("teacher", teacherRes.cached);
  // Windows never exceed the teacher's context (a Hub teacher may have a short one).
  const T = Math.min(p.seqLen, tc.max_position_embeddings), B = p.batchSize;
  const evalSet = spreadEvalSet(data.shards, { seqLen: T, windows: p.evalWindows, batchSize: B });
  const evalDescription = `${evalSet.windows} windows of ${T} tokens spread evenly over the ${evalSet.ofWindows} windows of the held-out split (${evalSet.tokens.toLocaleString("en-US")} tokens scored per evaluation)`;

  // 3. LRC student.
  const d = o.hiddenSize ?? Math.floor(tc.hidden_size / 2);
  if (d >= tc.hidden_size) throw new Error(`--hidden-size ${d} must be smaller than the teacher's hidden size ${tc.hidden_size}`);
  const plan: BatchPlan = { shards: data.shards, seqLen: T, batchSize: B, seed: o.seed };
  const ablate = o.ablate ?? false;
  const budget = budgetPlan({
    plan, tokens: o.tokens, defaultSteps: p.lrcSteps, evalsPerBudget: ablate ? Math.max(8, p.evalsPerBudget) : p.evalsPerBudget,
    multiple: o.baselineMultiple ?? p.baselineMultiple,
  });
  const { lrcSteps: steps, evalEvery, warmupSteps, multiple, tokensPerStep: perStep } = budget;
  const lrcLr = o.lr ?? p.lrcLr;
  const init = o.init ?? "random";
  const initTokens = o.initTokens ?? DEFAULT_INIT_TOKENS;
  // Calibration windows of the train split (never validation), in an order of their own (seed + 1); the start
  // losses are measured on the first of them.
  const calibration = (() => {
    const src = openTrainBatches({ ...plan, seed: (o.seed + 1) >>> 0 }, 0);
    try {
      return Array.from({ length: Math.ceil(initTokens / perStep) }, () => src.next());
    } finally {
      src.close();
    }
  })();
  /** One LRC run on the plan's batches: init, train (evaluating every evalEvery steps), metrics in `dir`. */
  const trainLrc = async (dir: string, how: InitMethod, alpha: number) => {
    fs.rmSync(dir, { recursive: true, force: true });
    const clone = new LowRankClone(teacher, { hiddenSize: d, alpha, seed: o.seed });
    const initReport = await initClone(clone, { method: how, calibration: how === "pca" ? calibration : [], check: calibration[0]! });
    log(`  ${initLine(initReport)}`);
    const source = openTrainBatches(plan, steps);
    const evalSrc = timedEval(evalSet);
    try {
      const trainer = new Trainer(new LrcTask(clone), source, evalSrc, { steps, lr: lrcLr, schedule: "constant", warmupSteps, evalEvery, seed: o.seed });
      const run = await runTraining(trainer, { outDir: dir, progress, log, keepCheckpoints: 1 });
      return { clone, run, initReport, evalSeconds: evalSrc.seconds, digest: source.digest(), curve: evalCurve(path.join(dir, "metrics.jsonl"), perStep) };
    } finally {
      source.close();
    }
  };
  stage(`LRC student: d=${d}, ${init} init, ${steps} steps x ${perStep} tokens = ${(steps * perStep).toLocaleString("en-US")} tokens`);
  const lrcDir = path.join(o.out, "lrc");
  const main = await trainLrc(lrcDir, init, p.alpha);
  const { clone, run: lrcRun } = main;
  const studentConfig = clone.studentConfig;
  log(`  student ${archLine(studentConfig)}; ${clone.numTrainable().toLocaleString("en-US")} trainable values (projections + gains), alpha ${p.alpha}, lr ${lrcLr}`);
  const lrcEval = { seconds: main.evalSeconds };
  const studentDir = path.join(lrcDir, "student");
  await exportStudent(clone, studentDir, { tokenizerFrom: data.tokenizerDir });
  const student = await loadCausalLM(studentDir);
  // The exported student, not the training graph, is what gets reported (and what a user loads).
  const lrcVal = await evaluateOn(evalSet, student);
  // The trainer scored the teacher on the same set once (its reference line); reuse that.
  const teacherLoss = lrcRun.lastEval?.teacherLoss ?? (await evaluateOn(evalSet, teacher)).loss;
  const teacherVal = { loss: teacherLoss, perplexity: Math.exp(teacherLoss) };
  // The ablation: the same batches and budget, every init at the preset's alpha, and alpha 0 at random init.
  interface Variant { readonly name: string; readonly init: InitMethod; readonly alpha: number; readonly initReport: CloneInitReport; readonly valLoss: number; readonly curve: CurvePoint[]; readonly digest: string | null }
  const variants: Variant[] = [];
  if (ablate) {
    const wanted: Array<[InitMethod, number]> = [["random", p.alpha], ["pca", p.alpha], ["svd", p.alpha], ["random", 0]];
    for (const [how, alpha] of wanted) {
      const name = `LRC, ${how} init${alpha === 0 ? ", alpha 0" : ""}`;
      if (how === init && alpha === p.alpha) {
        variants.push({ name, init: how, alpha, initReport: main.initReport, valLoss: lrcVal.loss, curve: main.curve, digest: main.digest });
        continue;
      }
      log(`  ablation: ${name}`);
      const v = await trainLrc(path.join(o.out, "ablation", `${how}-alpha${alpha}`), how, alpha);
      const folded = await v.clone.fold();
      try {
        variants.push({ name, init: how, alpha, initReport: v.initReport, valLoss: (await evaluateOn(evalSet, folded)).loss, curve: v.curve, digest: v.digest });
      } finally {
        folded.dispose();
      }
    }
  }
  endStage("LRC student");

  // 4. Baseline.
  const baseSteps = budget.baselineSteps;
  stage(`baseline: same architecture from scratch, plain CE, same batches, ${baseSteps} steps (${multiple}x the budget)`);
  const baseDir = path.join(o.out, "baseline");
  fs.rmSync(baseDir, { recursive: true, force: true });
  const baseModel = new CausalLM(studentConfig, { seed: o.seed });
  const baseSource = openTrainBatches(plan, steps);
  const baseEval = timedEval(evalSet);
  let baseSamplesAtBudget: Sample[] = [];
  let baseAccuracy: AccuracyRow | null = null;
  let budgetSeconds = 0;
  let baseRun: TrainResult;
  try {
    const trainer = new Trainer(new LmTask(baseModel), baseSource, baseEval, { steps: baseSteps, lr: p.baselineLr, schedule: "constant", warmupSteps, evalEvery, seed: o.seed });
    baseRun = await runTraining(trainer, {
      outDir: baseDir, progress, log, keepCheckpoints: 1,
      onStep: async (m) => {
        if (m.step !== steps) return;
        budgetSeconds = m.elapsedSeconds - baseEval.seconds;
        baseSamplesAtBudget = await greedySamples(`from scratch (${(steps * perStep).toLocaleString("en-US")} tokens)`, baseModel, data.tokenizer, o.prompts, p.sampleTokens);
        if (tasks !== null) baseAccuracy = await accuracy("from scratch, same tokens", baseModel);
      },
    });
  } finally {
    baseSource.close();
  }
  if (lrcRun.interrupted || baseRun.interrupted) throw new Error("interrupted");
  const baseModelDir = path.join(baseDir, "model");
  await exportTrained(new LmTask(baseModel), baseModelDir, { tokenizerFrom: data.tokenizerDir });
  const baseCurve = evalCurve(path.join(baseDir, "metrics.jsonl"), perStep);
  const lrcCurve = main.curve;
  const atBudget = baseCurve.find((c) => c.tokens === steps * perStep);
  if (atBudget === undefined) throw new Error(`${baseDir}/metrics.jsonl: no evaluation at step ${steps} (the LRC budget)`);
  const baseFinal = baseCurve.at(-1)!;
  endStage("baseline");
  const ablation: AblationRow[] | null = ablate ? ablationRows(variants, baseCurve, atBudget.loss, steps * perStep, baseSource.digest()) : null;

  // 5. Report.
  stage("report: samples and summary");
  const lrcTokens = lrcRun.tokens;
  const efficiency = tokenEfficiency(baseCurve, lrcVal.loss, lrcTokens);
  const matchIndex = efficiency.baselineTokens === null ? -1 : baseCurve.findIndex((c) => c.tokens === efficiency.baselineTokens);
  const samples: Sample[] = [
    ...(await greedySamples("teacher", teacher, data.tokenizer, o.prompts, p.sampleTokens)),
    ...(await greedySamples("LRC student", student, data.tokenizer, o.prompts, p.sampleTokens)),
    ...baseSamplesAtBudget,
    ...(multiple > 1 ? await greedySamples(`from scratch (${(baseSteps * perStep).toLocaleString("en-US")} tokens)`, baseModel, data.tokenizer, o.prompts, p.sampleTokens) : []),
  ];
  const accuracyRows: AccuracyRow[] | null =
    tasks === null ? null : [await accuracy(teacherName, teacher), await accuracy("LRC student", student), baseAccuracy!];
  const studentParams = student.numParameters();
  const teacherRow: ModelRow = {
    name: teacherName,
    arch: archLine(tc),
    parameters: teacher.numParameters(),
    trainable: null,
    valLoss: teacherVal.loss,
    valPerplexity: teacherVal.perplexity,
    tokens: teacherRes.trained?.tokens ?? null,
    wallSeconds: teacherRes.trained?.elapsedSeconds ?? null,
    tokensPerSecond: teacherRes.trained?.tokensPerSecond ?? null,
    dir: teacherRes.dir,
    ...(teacherRes.cached && teacherRes.trained !== null ? { note: "cached; time and tokens/s from its first run" } : {}),
  };
  const lrcSeconds = trainSeconds(lrcRun, lrcEval.seconds);
  const lrcRow: ModelRow = {
    name: "LRC student",
    arch: archLine(student.config),
    parameters: studentParams,
    trainable: clone.numTrainable(),
    valLoss: lrcVal.loss,
    valPerplexity: lrcVal.perplexity,
    tokens: lrcTokens,
    wallSeconds: lrcSeconds,
    tokensPerSecond: lrcTokens / lrcSeconds,
    dir: studentDir,
  };
  const baseRow: ModelRow = {
    name: "from scratch, same tokens",
    arch: archLine(studentConfig),
    parameters: baseModel.numParameters(),
    trainable: baseModel.numParameters(),
    valLoss: atBudget.loss,
    valPerplexity: Math.exp(atBudget.loss),
    tokens: atBudget.tokens,
    wallSeconds: budgetSeconds,
    tokensPerSecond: budgetSeconds > 0 ? atBudget.tokens / budgetSeconds : null,
    dir: null,
  };
  const baseSeconds = trainSeconds(baseRun, baseEval.seconds);
  const baseLongRow: ModelRow | null =
    multiple > 1
      ? {
          ...baseRow,
          name: `from scratch, ${multiple}x tokens`,
          valLoss: baseFinal.loss,
          valPerplexity: Math.exp(baseFinal.loss),
          tokens: baseRun.tokens,
          wallSeconds: baseSeconds,
          tokensPerSecond: baseRun.tokens / baseSeconds,
          dir: baseModelDir,
        }
      : null;
  const wallClock: WallClock = {
    lrcSeconds, teacherSeconds: teacherRes.trained?.elapsedSeconds ?? null, baselineMaxSeconds: baseSeconds,
    baselineSeconds: matchIndex < 0 ? null : secondsToEval(path.join(baseDir, "metrics.jsonl"), baseCurve[matchIndex]!.tokens / perStep, matchIndex, baseEval.after),
  };
  const lrcDigest = main.digest;
  const baseDigest = baseSource.digest();
  const files: Record<string, string> = {
    report: path.join(o.out, "report.md"),
    "report (JSON)": path.join(o.out, "report.json"),
    "val perplexity plot": path.join(o.out, "val-ppl.svg"),
    "LRC student (HF directory)": studentDir,
    "LRC loss curves": path.join(lrcDir, "loss.svg"),
    "LRC metrics": path.join(lrcDir, "metrics.jsonl"),
    [`baseline after ${baseSteps} steps (HF directory)`]: baseModelDir,
    "baseline loss curves": path.join(baseDir, "loss.svg"),
    teacher: teacherRes.dir,
    shards: data.shards,
  };
  if (teacherRes.trained !== null && o.teacherDir === null) {
    const plot = path.join(path.dirname(teacherRes.dir), "loss.svg");
    if (fs.existsSync(plot)) {
      fs.copyFileSync(plot, path.join(o.out, "teacher-loss.svg"));
      files["teacher loss curves"] = path.join(o.out, "teacher-loss.svg");
    }
  }
  endStage("report");
  const report: RunReport = {
    title: o.teacherDir === null ? `distill-qwen: LRC vs from scratch on the State of the Union (${p.name} preset)` : `distill-qwen: LRC of ${o.teacherDir}`,
    mode: o.teacherDir === null ? "embedded" : "teacher",
    preset: p.name,
    corpus: data.description,
    tokenizer:
      o.teacherDir === null
        ? `byte-level BPE, ${data.tokenizer.vocabSize} tokens, trained on the train split only (sha256 ${data.tokenizer.hash.slice(0, 12)})`
        : `the teacher's tokenizer.json (${data.tokenizer.vocabSize} tokens)`,
    backend,
    seed: o.seed,
    seqLen: T,
    batchSize: B,
    evalDescription,
    teacher: teacherRow,
    lrc: lrcRow,
    baseline: baseRow,
    baselineLong: baseLongRow,
    efficiency,
    wallClock,
    stamp: { version: lrcVersion(), commit: gitCommit(), node: process.version },
    batches: { lrc: lrcDigest, baseline: baseDigest, identical: lrcDigest !== null && lrcDigest === baseDigest },
    lrcCurve,
    baselineCurve: baseCurve,
    ablation,
    samples,
    accuracy: accuracyRows,
    stages,
    totalSeconds: elapsed(),
    cpuSeconds: cpuSeconds(cpu0),
    files,
    settings: {
      preset: p,
      lrc: {
        hiddenSize: d, steps, lr: lrcLr, schedule: "warmup then constant", warmupSteps, alpha: p.alpha, temperature: clone.loss.temperature, attnOut: clone.loss.attnOut,
        init, ...(init === "pca" || ablate ? { initTokens: calibration.length * perStep } : {}),
      },
      baseline: { steps: baseSteps, lr: p.baselineLr, schedule: "warmup then constant", warmupSteps, loss: "cross-entropy" },
      evalEvery,
    },
  };
  const markdown = renderMarkdown(report);
  fs.writeFileSync(path.join(o.out, "report.md"), markdown);
  fs.writeFileSync(path.join(o.out, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(path.join(o.out, "val-ppl.svg"), renderCurveSvg(report));
  return { report, markdown, terminal: renderTerminal(report) };
}

/**
 * The ablation table: each LRC variant's start losses, val loss at the budget, the tokens it needed to reach
 * the random-init LRC student's final val loss (on its eval curve) and its token-efficiency ratio against the
 * from-scratch baseline; the baseline last.
 */
function ablationRows(
  variants: ReadonlyArray<{ name: string; init: InitMethod; alpha: number; initReport: CloneInitReport; valLoss: number; curve: CurvePoint[]; digest: string | null }>,
  baseCurve: readonly CurvePoint[],
  baseLossAtBudget: number,
  budgetTokens: number,
  baseDigest: string | null,
): AblationRow[] {
  const random = variants.find((v) => v.init === "random" && v.alpha !== 0);
  if (random === undefined) throw new Error("ablation: no random-init LRC run to compare with");
  const target = random.curve.at(-1)!.loss;
  const rows: AblationRow[] = variants.map((v) => ({
    name: v.name,
    init: v.init,
    alpha: v.alpha,
    startCe: v.initReport.start.ce,
    startClone: v.initReport.start.clone,
    valLoss: v.valLoss,
    valPerplexity: Math.exp(v.valLoss),
    tokens: budgetTokens,
    tokensToRandomFinal: tokensToReach(v.curve, target),
    efficiency: tokenEfficiency(baseCurve, v.valLoss, budgetTokens),
    curve: v.curve,
    sameBatches: v.digest !== null && v.digest === random.digest,
  }));
  rows.push({
    name: "from scratch", init: null, alpha: null, startCe: null, startClone: null, valLoss: baseLossAtBudget, valPerplexity: Math.exp(baseLossAtBudget),
    tokens: budgetTokens, tokensToRandomFinal: tokensToReach(baseCurve, target), efficiency: null, curve: [...baseCurve], sameBatches: baseDigest !== null && baseDigest === random.digest,
  });
  return rows;
}
