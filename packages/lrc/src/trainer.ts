// The one trainer behind `distill`, `pretrain` and plain KD, for Node: TrainerCore (./trainer-core.ts: AdamW
// with warmup then decay, gradient accumulation, clipping, evaluation, the non-finite stop, one step at a
// time) plus the run loop: eval every N steps, JSONL metrics, a progress line on stderr, an SVG plot, atomic
// checkpoints every N steps and at the end, bit-exact resume, and Ctrl-C (save, then stop with
// `interrupted`).

import fs from "node:fs";
import path from "node:path";
import { Rng, fileSystemError, makeDirectory } from "@lrc-ts/tensor-core";
import { CheckpointStore } from "./checkpoint.js";
import type { TrainerCheckpoint } from "./checkpoint.js";
import { MetricsLog } from "./metrics.js";
import { Progress } from "./progress.js";
import type { BatchSource, EvalSource, TrainTask } from "./task-core.js";
import { TrainerCore, stableJson } from "./trainer-core.js";
import type { EvalMetrics, StepMetrics, TrainerCoreConfig } from "./trainer-core.js";

export { NonFiniteError, TrainerCore, learningRate, warmupStepsFor } from "./trainer-core.js";
export type { EvalMetrics, StepMetrics, TrainerCoreConfig } from "./trainer-core.js";

export interface TrainerConfig extends TrainerCoreConfig {
  /** Checkpoint every N steps (0: only at the end; default 0). */
  readonly saveEvery?: number;
  /** Complete checkpoints to keep (default 2). */
  readonly keepCheckpoints?: number;
  /** Run directory: metrics.jsonl, loss.svg, checkpoints/. */
  readonly outDir: string;
  /** Resume from the latest checkpoint in outDir (fails if there is none). */
  readonly resume?: boolean;
  /** Progress line on stderr (default true). */
  readonly progress?: boolean;
  /** Called after every step with its metrics. */
  readonly onStep?: (m: StepMetrics) => void | Promise<void>;
  /** Free-form log lines (default: stderr). */
  readonly log?: (line: string) => void;
  /** Save a checkpoint and stop on SIGINT (default false; the CLI turns it on). */
  readonly handleSigint?: boolean;
  /** Test hook: runs before step `step` (1-based). */
  readonly beforeStep?: (step: number) => void;
  /** More of the run's settings for run.json (the data directories, ...). */
  readonly runInfo?: Record<string, unknown>;
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

export class Trainer extends TrainerCore {
  override readonly cfg: TrainerConfig;
  readonly store: CheckpointStore;
  readonly metrics: MetricsLog;
  private elapsedBefore = 0;
  private lastCheckpoint: string | null = null;
  private savedStep = -1;

  constructor(task: TrainTask, train: BatchSource, val: EvalSource | null, cfg: TrainerConfig) {
    super(task, train, val, cfg);
    this.cfg = cfg;
    makeDirectory(cfg.outDir);
    this.store = new CheckpointStore(path.join(cfg.outDir, "checkpoints"), cfg.keepCheckpoints ?? 2);
    this.metrics = new MetricsLog(path.join(cfg.outDir, "metrics.jsonl"), path.join(cfg.outDir, "loss.svg"));
  }

  private log(line: string): void {
    (this.cfg.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
  }

  /** Restores everything from the latest checkpoint; returns its step. */
  async restore(): Promise<number> {
    const ck = await this.store.loadLatest(this.names, this.params, (l) => this.log(l));
    if (ck === null) throw new Error(`${this.store.dir}: no checkpoint to resume from`);
    if (ck.step > this.cfg.steps)
      throw new Error(`${path.join(ck.dir, "state.json")}: "step" ${ck.step} is beyond the run's ${this.cfg.steps} steps; resume with the same --steps/--tokens`);
    if (ck.configHash !== this.configHash) {
      const diffs = Object.keys({ ...this.identity, ...ck.config }).filter((k) => stableJson(this.identity[k]) !== stableJson(ck.config[k]));
      throw new Error(
        `${ck.dir}: the checkpoint was written with a different configuration (differs in: ${diffs.join(", ") || "unknown"}); ` +
          "resume with the same flags, or start a new --out directory",
      );
    }
    this.loadOptimizerState(ck.optimizer);
    try {
      this.train.restore(ck.reader);
    } catch (e) {
      throw new Error(`${path.join(ck.dir, "state.json")}: "reader" does not fit this data: ${(e as Error).message}`);
    }
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
    // Host copies of the trained tensors first (the gpu backend's webgpu mode reads only asynchronously).
    await Promise.all(this.params.map((p) => p.toHostAsync()));
    const optimizer = await this.optimizerState();
    const ck: Omit<TrainerCheckpoint, "dir"> = {
      step: this.step,
      tokens: this.tokens,
      elapsedSeconds,
      configHash: this.configHash,
      config: this.identity,
      optimizer,
      reader: this.train.state(),
      rng: this.rng.state(),
      teacherVal: this.teacherVal,
    };
    const dir = await this.store.save(ck, this.names, this.params);
    this.lastCheckpoint = dir;
    this.savedStep = this.step;
    return dir;
  }

  /**
   * Writes <outDir>/run.json (atomically) at the start of every run() call: the configuration that changes
   * the math (as in the checkpoints, with its hash), AdamW's weight-decay groups by tensor name, and the
   * settings that do not (evaluation, checkpoints, cfg.runInfo).
   */
  private writeRunJson(): void {
    const c = this.cfg;
    const run = {
      ...(c.runInfo ?? {}),
      configHash: this.configHash,
      config: this.identity,
      optimizer: {
        kind: "adamw", betas: [c.beta1 ?? 0.9, c.beta2 ?? 0.999], eps: c.adamEps ?? 1e-8, weightDecay: c.weightDecay ?? 0,
        decayAll: c.decayAll ?? false,
        groups: [{ weightDecay: c.weightDecay ?? 0, params: this.groups.decay }, { weightDecay: 0, params: this.groups.noDecay }],
      },
      evalEvery: c.evalEvery ?? 0, evaluates: this.val !== null, saveEvery: c.saveEvery ?? 0, keepCheckpoints: c.keepCheckpoints ?? 2,
      resumedFromStep: c.resume ? this.step : null,
    };
    const file = path.join(c.outDir, "run.json");
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      fs.writeFileSync(tmp, `${JSON.stringify(run, null, 2)}\n`);
      fs.renameSync(tmp, file);
    } catch (e) {
      throw fileSystemError(file, "cannot write", e);
    }
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
    this.writeRunJson();
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
        const s = await this.step1();
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
        await cfg.onStep?.(m);
        const eta = this.step > startStep ? (runSeconds / (this.step - startStep)) * (cfg.steps - this.step) : NaN;
        progress.update(this.step, s.losses, tps, eta);
        const last = this.step === cfg.steps;
        if ((evalEvery > 0 && this.step % evalEvery === 0) || last) {
          const e = await this.evaluate();
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

