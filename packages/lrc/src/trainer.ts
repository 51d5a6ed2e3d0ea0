// The one trainer behind `distill`, `pretrain` and plain KD. A task (./tasks.ts) says which tensors train
// and how a batch becomes named loss terms; the trainer does the rest:
//   AdamW (torch semantics) with warmup then linear (or cosine) decay, gradient accumulation, global-norm
//   clipping, eval on the val split every N steps (the teacher's once, cached), JSONL metrics, a progress
//   line on stderr, an SVG plot, atomic checkpoints every N steps and at the end, bit-exact resume, Ctrl-C
//   (save, then stop with `interrupted`), and a stop at the first non-finite loss term or gradient norm.
//
// One step reads top to bottom in `step()`: lr from the schedule; per micro-batch, inside a tensor-core
// scope, loss -> finiteness check -> backward -> add the gradients (scaled by 1/accum) into persistent
// accumulators; clip; AdamW; log.

import fs from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";
import { AdamW, Rng, clipGradNorm, full, keep, scope } from "@lrc-ts/tensor-core";
import type { AdamWState, FloatArray, Tensor } from "@lrc-ts/tensor-core";
import { CheckpointStore } from "./checkpoint.js";
import type { TrainerCheckpoint } from "./checkpoint.js";
import { MetricsLog } from "./metrics.js";
import { Progress } from "./progress.js";
import type { Batch, BatchSource, EvalSource, TaskLoss, TrainTask } from "./task.js";

export interface TrainerConfig {
  /** Optimizer steps to run in total (a resumed run continues to this). */
  readonly steps: number;
  /** Peak learning rate (default 1e-4, the LRC paper's). */
  readonly lr?: number;
  readonly weightDecay?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly adamEps?: number;
  /** "linear" (default: warmup then linear decay, LRC's), "cosine", or "constant" (after warmup). */
  readonly schedule?: "linear" | "cosine" | "constant";
  /** Warmup as a fraction of the steps (default 0.005, LRC's), at least one step when > 0. */
  readonly warmupFraction?: number;
  /** Warmup steps (overrides warmupFraction). */
  readonly warmupSteps?: number;
  /** Global gradient-norm clip (default 1.0; 0 disables). */
  readonly gradClip?: number;
  /** Micro-batches per optimizer step (default 1). */
  readonly gradAccum?: number;
  /** Evaluate every N steps (0: only at the end; default 0). */
  readonly evalEvery?: number;
  /** Checkpoint every N steps (0: only at the end; default 0). */
  readonly saveEvery?: number;
  /** Complete checkpoints to keep (default 2). */
  readonly keepCheckpoints?: number;
  /** Run directory: metrics.jsonl, loss.svg, checkpoints/. */
  readonly outDir: string;
  /** Resume from the latest checkpoint in outDir (fails if there is none). */
  readonly resume?: boolean;
  /** Seed of the trainer's RNG (saved in checkpoints). */
  readonly seed?: number;
  /** Progress line on stderr (default true). */
  readonly progress?: boolean;
  /** Called after every step with its metrics. */
  readonly onStep?: (m: StepMetrics) => void;
  /** Free-form log lines (default: stderr). */
  readonly log?: (line: string) => void;
  /** Save a checkpoint and stop on SIGINT (default false; the CLI turns it on). */
  readonly handleSigint?: boolean;
  /** Test hook: runs before step `step` (1-based). */
  readonly beforeStep?: (step: number) => void;
  /** Extra configuration folded into the checkpoint's config hash (the task's options). */
  readonly describe?: Record<string, unknown>;
}

export interface StepMetrics {
  readonly step: number;
  readonly totalSteps: number;
  /** Named scalars: total, ce, kl, clone and every clone term. */
  readonly losses: Record<string, number>;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokens: number;
  readonly tokensPerSecond: number;
  readonly elapsedSeconds: number;
}

export interface EvalMetrics {
  readonly step: number;
  readonly loss: number;
  readonly perplexity: number;
  readonly tokens: number;
  readonly teacherLoss: number | null;
}

export interface TrainResult {
  readonly step: number;
  readonly interrupted: boolean;
  /** Mean of each named loss over the last (up to 10) steps of this process. */
  readonly final: Record<string, number>;
  readonly lastEval: EvalMetrics | null;
  readonly tokens: number;
  readonly tokensPerSecond: number;
  readonly elapsedSeconds: number;
  readonly checkpoint: string | null;
}

/** A non-finite loss term or gradient norm; the message names the step and the term. */
export class NonFiniteError extends Error {
  override readonly name = "NonFiniteError";
  constructor(readonly step: number, readonly term: string, readonly value: number) {
    super(`step ${step}: ${term === "gradient norm" ? "gradient norm" : `loss term ${term}`} is ${Number.isNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf"}`);
  }
}

/** The learning rate at 0-based step s: linear warmup over W steps (never 0), then decay. */
export function learningRate(s: number, total: number, peak: number, warmup: number, kind: "linear" | "cosine" | "constant"): number {
  if (s < warmup) return (peak * (s + 1)) / warmup;
  const span = Math.max(1, total - warmup);
  const p = (s - warmup) / span; // 0 at the end of warmup, (span-1)/span at the last step
  if (kind === "constant") return peak;
  if (kind === "linear") return peak * (1 - p);
  return peak * 0.5 * (1 + Math.cos(Math.PI * p));
}

export function warmupStepsFor(cfg: Pick<TrainerConfig, "steps" | "warmupSteps" | "warmupFraction">): number {
  if (cfg.warmupSteps !== undefined) return Math.max(0, Math.min(cfg.steps, Math.floor(cfg.warmupSteps)));
  const f = cfg.warmupFraction ?? 0.005;
  if (!(f >= 0 && f < 1)) throw new RangeError(`warmup fraction must be in [0, 1), got ${f}`);
  return f === 0 ? 0 : Math.max(1, Math.round(f * cfg.steps));
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (v !== null && typeof v === "object")
    return `{${Object.keys(v as object).sort().map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
  return JSON.stringify(v) ?? "null";
}

export class Trainer {
  readonly task: TrainTask;
  readonly train: BatchSource;
  readonly val: EvalSource | null;
  readonly cfg: TrainerConfig;
  readonly names: string[];
  readonly params: Tensor[];
  readonly optimizer: AdamW;
  rng: Rng;
  readonly store: CheckpointStore;
  readonly metrics: MetricsLog;
  /** The configuration that must match on resume, and its hash. */
  readonly identity: Record<string, unknown>;
  readonly configHash: string;
  private readonly accum: Tensor[];
  private readonly warmup: number;
  step = 0;
  tokens = 0;
  private elapsedBefore = 0;
  private teacherVal: number | null = null;
  private lastEval: EvalMetrics | null = null;
  private lastCheckpoint: string | null = null;
  private savedStep = -1;

  constructor(task: TrainTask, train: BatchSource, val: EvalSource | null, cfg: TrainerConfig) {
    if (!Number.isInteger(cfg.steps) || cfg.steps < 1) throw new RangeError(`steps must be a positive integer, got ${cfg.steps}`);
    const accum = cfg.gradAccum ?? 1;
    if (!Number.isInteger(accum) || accum < 1) throw new RangeError(`gradAccum must be a positive integer, got ${accum}`);
    this.task = task;
    this.train = train;
    this.val = val;
    this.cfg = cfg;
    const named = task.params();
    this.names = Object.keys(named);
    this.params = Object.values(named);
    this.optimizer = new AdamW(this.params, {
      lr: cfg.lr ?? 1e-4, weightDecay: cfg.weightDecay ?? 0, beta1: cfg.beta1 ?? 0.9, beta2: cfg.beta2 ?? 0.999, eps: cfg.adamEps ?? 1e-8,
    });
    this.accum = this.params.map((p) => keep(full(p.shape, 0, { dtype: p.dtype })));
    this.rng = new Rng(cfg.seed ?? 0);
    this.warmup = warmupStepsFor(cfg);
    this.identity = JSON.parse(JSON.stringify({
      task: task.describe(),
      params: this.names.map((n, i) => [n, this.params[i]!.shape]),
      steps: cfg.steps, lr: cfg.lr ?? 1e-4, weightDecay: cfg.weightDecay ?? 0, betas: [cfg.beta1 ?? 0.9, cfg.beta2 ?? 0.999],
      adamEps: cfg.adamEps ?? 1e-8, schedule: cfg.schedule ?? "linear", warmup: this.warmup, gradClip: cfg.gradClip ?? 1,
      gradAccum: accum, seed: cfg.seed ?? 0, batch: train.describe(), extra: cfg.describe ?? null,
    })) as Record<string, unknown>;
    this.configHash = createHash("sha256").update(stableJson(this.identity)).digest("hex").slice(0, 16);
    fs.mkdirSync(cfg.outDir, { recursive: true });
    this.store = new CheckpointStore(path.join(cfg.outDir, "checkpoints"), cfg.keepCheckpoints ?? 2);
    this.metrics = new MetricsLog(path.join(cfg.outDir, "metrics.jsonl"), path.join(cfg.outDir, "loss.svg"));
  }

  private log(line: string): void {
    (this.cfg.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
  }

  /** Restores everything from the latest checkpoint; returns its step. */
  async restore(): Promise<number> {
    const ck = await this.store.loadLatest(this.names, this.params);
    if (ck === null) throw new Error(`${this.store.dir}: no checkpoint to resume from`);
    if (ck.configHash !== this.configHash) {
      const diffs = Object.keys({ ...this.identity, ...ck.config }).filter((k) => stableJson(this.identity[k]) !== stableJson(ck.config[k]));
      throw new Error(
        `${ck.dir}: the checkpoint was written with a different configuration (differs in: ${diffs.join(", ") || "unknown"}); ` +
          "resume with the same flags, or start a new --out directory",
      );
    }
    this.optimizer.loadState(ck.optimizer);
    this.train.restore(ck.reader);
    this.rng = Rng.fromState(ck.rng);
    this.step = ck.step;
    this.tokens = ck.tokens;
    this.elapsedBefore = ck.elapsedSeconds;
    this.teacherVal = ck.teacherVal;
    this.lastCheckpoint = ck.dir;
    this.metrics.truncateAfter(ck.step);
    return ck.step;
  }

  /** Writes a checkpoint of the current state (atomically). */
  async save(elapsedSeconds: number): Promise<string> {
    const ck: Omit<TrainerCheckpoint, "dir"> = {
      step: this.step,
      tokens: this.tokens,
      elapsedSeconds,
      configHash: this.configHash,
      config: this.identity,
      optimizer: this.optimizer.state() as AdamWState,
      reader: this.train.state(),
      rng: this.rng.state(),
      teacherVal: this.teacherVal,
    };
    const dir = await this.store.save(ck, this.names, this.params);
    this.lastCheckpoint = dir;
    this.savedStep = this.step;
    return dir;
  }

  /** Mean loss / perplexity of the task's model on the val source (teacher's once, cached). */
  evaluate(): EvalMetrics | null {
    if (this.val === null) return null;
    const r = this.val.evaluate(this.task.evalModel());
    if (this.teacherVal === null) {
      const tm = this.task.teacherEvalModel?.() ?? null;
      if (tm !== null) this.teacherVal = this.val.evaluate(tm).loss;
    }
    const m: EvalMetrics = { step: this.step, loss: r.loss, perplexity: Math.exp(r.loss), tokens: r.tokens, teacherLoss: this.teacherVal };
    this.lastEval = m;
    return m;
  }

  /** One optimizer step (gradAccum micro-batches). Returns its metrics (mean over micro-batches). */
  step1(): { losses: Record<string, number>; lr: number; gradNorm: number; tokens: number } {
    const stepNo = this.step + 1;
    const lr = learningRate(this.step, this.cfg.steps, this.cfg.lr ?? 1e-4, this.warmup, this.cfg.schedule ?? "linear");
    this.optimizer.lr = lr;
    const accum = this.cfg.gradAccum ?? 1;
    for (const a of this.accum) a.buf.fill(0);
    const sums: Record<string, number> = {};
    let tokens = 0;
    for (let micro = 0; micro < accum; micro++) {
      const batch: Batch = this.train.next();
      tokens += batch.inputs.length;
      scope(() => {
        const l: TaskLoss = this.task.loss(batch);
        const values: Record<string, number> = { total: l.total.item() };
        for (const [k, t] of Object.entries(l.parts)) values[k] = t.item();
        // Name the most specific term first: clone terms, then ce/kl/clone, then the total.
        const order = [...Object.keys(l.parts).filter((k) => k.startsWith("layers.")), ...Object.keys(l.parts).filter((k) => !k.startsWith("layers.")), "total"];
        for (const k of order) if (!Number.isFinite(values[k]!)) throw new NonFiniteError(stepNo, k, values[k]!);
        for (const [k, v] of Object.entries(values)) sums[k] = (sums[k] ?? 0) + v / accum;
        l.total.backward();
        this.params.forEach((p, i) => {
          const g = p.grad;
          if (g === null) return;
          const a = this.accum[i]!.buf as FloatArray, gb = g.buf;
          if (accum === 1) a.set(gb);
          else for (let j = 0; j < a.length; j++) a[j] += gb[j]! / accum;
          g.dispose();
          p.grad = null;
        });
        return null;
      });
    }
    const clip = this.cfg.gradClip ?? 1;
    const gradNorm = clipGradNorm(this.accum, clip > 0 ? clip : Infinity);
    if (!Number.isFinite(gradNorm)) throw new NonFiniteError(stepNo, "gradient norm", gradNorm);
    this.optimizer.step(this.accum);
    this.step = stepNo;
    this.tokens += tokens;
    return { losses: sums, lr, gradNorm, tokens };
  }

  /** Runs (or resumes) to cfg.steps. */
  async run(): Promise<TrainResult> {
    const cfg = this.cfg;
    if (cfg.resume) {
      const from = await this.restore();
      this.log(`resumed from ${this.lastCheckpoint} (step ${from} of ${cfg.steps})`);
    } else {
      if (this.store.hasAny())
        throw new Error(`${this.store.dir}: holds checkpoints of an earlier run; pass --resume to continue it, or use a new --out directory`);
      this.metrics.reset();
    }
    const startStep = this.step;
    const startTokens = this.tokens;
    const t0 = Date.now();
    const elapsed = () => this.elapsedBefore + (Date.now() - t0) / 1000;
    const progress = new Progress({ enabled: cfg.progress ?? true, total: cfg.steps, label: this.task.label });
    let interrupted = false;
    const onSigint = () => {
      if (interrupted) return;
      interrupted = true;
      this.log("\ninterrupt: saving a checkpoint after this step (Ctrl-C again to abort)");
      process.once("SIGINT", () => process.exit(130));
    };
    if (cfg.handleSigint) process.once("SIGINT", onSigint);
    const recent: Array<Record<string, number>> = [];
    const evalEvery = cfg.evalEvery ?? 0, saveEvery = cfg.saveEvery ?? 0;
    try {
      while (this.step < cfg.steps && !interrupted) {
        cfg.beforeStep?.(this.step + 1);
        const s = this.step1();
        const el = elapsed();
        const runSeconds = (Date.now() - t0) / 1000;
        const tps = runSeconds > 0 ? (this.tokens - startTokens) / runSeconds : 0;
        const m: StepMetrics = {
          step: this.step, totalSteps: cfg.steps, losses: s.losses, lr: s.lr, gradNorm: s.gradNorm, tokens: this.tokens,
          tokensPerSecond: tps, elapsedSeconds: el,
        };
        recent.push(s.losses);
        if (recent.length > 10) recent.shift();
        this.metrics.train(m);
        cfg.onStep?.(m);
        const eta = this.step > startStep ? (runSeconds / (this.step - startStep)) * (cfg.steps - this.step) : NaN;
        progress.update(this.step, s.losses, tps, eta);
        const last = this.step === cfg.steps;
        if ((evalEvery > 0 && this.step % evalEvery === 0) || last) {
          const e = this.evaluate();
          if (e !== null) {
            this.metrics.eval(e);
            progress.note(
              `step ${e.step}: val loss ${e.loss.toFixed(4)} ppl ${e.perplexity.toFixed(2)}` +
                (e.teacherLoss !== null ? ` (teacher ${e.teacherLoss.toFixed(4)})` : ""),
            );
          }
        }
        if ((saveEvery > 0 && this.step % saveEvery === 0) || last) {
          await this.save(elapsed());
          this.metrics.plot();
        }
        // Let signals and other callbacks in between steps.
        await new Promise<void>((r) => setImmediate(r));
      }
      if (interrupted && this.step < cfg.steps) {
        const dir = this.savedStep === this.step && this.lastCheckpoint !== null ? this.lastCheckpoint : await this.save(elapsed());
        progress.done();
        this.log(`saved ${dir} at step ${this.step}; resume with --resume`);
      }
    } finally {
      progress.done();
      if (cfg.handleSigint) process.removeListener("SIGINT", onSigint);
      this.metrics.plot();
    }
    const final: Record<string, number> = {};
    for (const r of recent) for (const [k, v] of Object.entries(r)) final[k] = (final[k] ?? 0) + v / recent.length;
    const runSeconds = (Date.now() - t0) / 1000;
    return {
      step: this.step,
      interrupted,
      final,
      lastEval: this.lastEval,
      tokens: this.tokens,
      tokensPerSecond: runSeconds > 0 ? (this.tokens - startTokens) / runSeconds : 0,
      elapsedSeconds: elapsed(),
      checkpoint: this.lastCheckpoint,
    };
  }
}

