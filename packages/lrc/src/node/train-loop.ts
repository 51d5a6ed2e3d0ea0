// The run loop of the one trainer in Node: runTraining drives a Trainer (../trainer.ts, one step at a
// time, no files) to cfg.steps with run.json at the start, eval every N steps, JSONL metrics, a progress
// line on stderr, an SVG plot (rewritten at every eval and checkpoint), atomic checkpoints every N steps and
// at the end, bit-exact resume, and Ctrl-C or SIGTERM (save, then stop with `interrupted`).

import path from "node:path";
import { makeDirectory, writeFileAtomic } from "@lrc-ts/tensor-core";
import { CheckpointStore } from "./checkpoint.js";
import { MetricsLog } from "./metrics.js";
import { EtaClock } from "../clock.js";
import { Progress } from "./progress.js";
import { onInterrupt } from "./interrupt.js";
import { lrcVersion } from "./version.js";
import type { EvalMetrics, StepMetrics, Trainer } from "../trainer.js";

export interface RunTrainingOptions {
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
  /** Save a checkpoint and stop on SIGINT or SIGTERM (default false; the CLI turns it on). */
  readonly handleSigint?: boolean;
  /** Test hook: runs before step `step` (1-based). */
  readonly beforeStep?: (step: number) => void;
  /** More of the run's settings for run.json (the data directories, ...). */
  readonly runInfo?: Record<string, unknown>;
}

export interface TrainResult {
  readonly step: number;
  readonly interrupted: boolean;
  /** Mean of each named loss over the run's last (up to 10) steps (metrics.jsonl's rows, before a resume too). */
  readonly final: Record<string, number>;
  readonly lastEval: EvalMetrics | null;
  readonly tokens: number;
  /** Tokens trained in this process over the seconds its training steps took (evaluations and checkpoints excluded). */
  readonly tokensPerSecond: number;
  readonly elapsedSeconds: number;
  readonly checkpoint: string | null;
}

/**
 * Runs (or, with opts.resume, resumes) `trainer` to its cfg.steps in the run directory opts.outDir:
 * metrics.jsonl, loss.svg, run.json and checkpoints/.
 */
export async function runTraining(trainer: Trainer, opts: RunTrainingOptions): Promise<TrainResult> {
  makeDirectory(opts.outDir);
  const store = new CheckpointStore(path.join(opts.outDir, "checkpoints"), opts.keepCheckpoints ?? 2);
  const metrics = new MetricsLog(path.join(opts.outDir, "metrics.jsonl"), path.join(opts.outDir, "loss.svg"));
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const steps = trainer.cfg.steps;
  let elapsedBefore = 0;
  let lastCheckpoint: string | null = null;
  let savedStep = -1;
  if (opts.resume) {
    const ck = await store.loadLatest(trainer.names, trainer.params, log);
    if (ck === null) throw new Error(`${store.dir}: no checkpoint to resume from`);
    trainer.restore(ck, ck.dir);
    elapsedBefore = ck.elapsedSeconds;
    lastCheckpoint = ck.dir;
    metrics.truncateAfter(ck.step);
    log(`resumed from ${lastCheckpoint} (step ${ck.step} of ${steps})`);
  } else {
    if (store.hasAny()) throw new Error(`${store.dir}: holds checkpoints of an earlier run; pass --resume to continue it, or use a new --out directory`);
    metrics.reset();
  }
  writeRunJson(trainer, opts);
  /** Writes a checkpoint of the current state (atomically). */
  const save = async (elapsedSeconds: number): Promise<string> => {
    // Host copies of the trained tensors first (the gpu backend's webgpu mode reads only asynchronously).
    await Promise.all(trainer.params.map((p) => p.toHostAsync()));
    const dir = await store.save({ ...(await trainer.state()), elapsedSeconds }, trainer.names, trainer.params);
    lastCheckpoint = dir;
    savedStep = trainer.step;
    return dir;
  };
  const startStep = trainer.step;
  const startTokens = trainer.tokens;
  const t0 = Date.now();
  const etaClock = new EtaClock(startStep);
  const elapsed = () => elapsedBefore + (Date.now() - t0) / 1000;
  // Throughput of the training steps of this process: evaluations and checkpoints (minutes at real scale) excluded.
  let stepSeconds = 0;
  const tokensPerSecond = () => (stepSeconds > 0 ? (trainer.tokens - startTokens) / stepSeconds : 0);
  const progress = new Progress({ enabled: opts.progress ?? true, total: steps, label: trainer.task.label });
  const interrupt = opts.handleSigint ? onInterrupt("saving a checkpoint after this step", log) : null;
  const interrupted = () => interrupt?.signal.aborted === true;
  const evalEvery = trainer.cfg.evalEvery ?? 0, saveEvery = opts.saveEvery ?? 0;
  try {
    while (trainer.step < steps && !interrupted()) {
      opts.beforeStep?.(trainer.step + 1);
      const stepStart = performance.now();
      const s = await trainer.step1();
      stepSeconds += (performance.now() - stepStart) / 1000;
      const el = elapsed();
      const tps = tokensPerSecond();
      const m: StepMetrics = {
        step: trainer.step, totalSteps: steps, losses: s.losses, lr: s.lr, gradNorm: s.gradNorm, tokens: trainer.tokens,
        tokensPerSecond: tps, elapsedSeconds: el,
      };
      metrics.train(m);
      await opts.onStep?.(m);
      const eta = etaClock.after(trainer.step, steps);
      progress.update(trainer.step, s.losses, tps, eta);
      const last = trainer.step === steps;
      if (trainer.val !== null && ((evalEvery > 0 && trainer.step % evalEvery === 0) || last)) {
        // An evaluation takes minutes at real scale (the teacher's val loss too, the first time): say so first.
        progress.note(`step ${trainer.step}: evaluating on the val batches`);
        const e = await trainer.evaluate();
        if (e !== null) {
          metrics.eval(e);
          metrics.plot();
          progress.note(
            `step ${e.step}: val loss ${e.loss.toFixed(4)} ppl ${e.perplexity.toFixed(2)}` +
              (e.teacherLoss !== null ? ` (teacher ${e.teacherLoss.toFixed(4)})` : ""),
          );
        }
      }
      if ((saveEvery > 0 && trainer.step % saveEvery === 0) || last) {
        await save(elapsed());
        metrics.plot();
      }
      // Let signals and other callbacks in between steps.
      await new Promise<void>((r) => setImmediate(r));
    }
    if (interrupted() && trainer.step < steps) {
      const dir = savedStep === trainer.step && lastCheckpoint !== null ? lastCheckpoint : await save(elapsed());
      progress.done();
      log(`saved ${dir} at step ${trainer.step}; resume with --resume`);
    }
  } finally {
    progress.done();
    interrupt?.dispose();
    metrics.plot();
  }
  const final = metrics.finalLosses();
  return {
    step: trainer.step,
    interrupted: interrupted(),
    final,
    // A run resumed from its last checkpoint evaluates nothing: its last evaluation is in metrics.jsonl.
    lastEval: trainer.lastEval ?? metrics.lastEvaluation(),
    tokens: trainer.tokens,
    tokensPerSecond: tokensPerSecond(),
    elapsedSeconds: elapsed(),
    checkpoint: lastCheckpoint,
  };
}

/**
 * Writes <outDir>/run.json (atomically) at the start of every runTraining call: the lrc-ts version, the start
 * time, the configuration that changes the math (as in the checkpoints, with its hash), AdamW's weight-decay
 * groups by tensor name, and the settings that do not (evaluation, checkpoints, cfg.runInfo).
 */
function writeRunJson(trainer: Trainer, opts: RunTrainingOptions): void {
  const c = trainer.cfg;
  const run = {
    lrcVersion: lrcVersion(),
    startedAt: new Date().toISOString(),
    ...(opts.runInfo ?? {}),
    configHash: trainer.configHash,
    config: trainer.identity,
    optimizer: {
      kind: "adamw", betas: [c.beta1 ?? 0.9, c.beta2 ?? 0.999], eps: c.adamEps ?? 1e-8, weightDecay: c.weightDecay ?? 0,
      decayAll: c.decayAll ?? false,
      groups: [{ weightDecay: c.weightDecay ?? 0, params: trainer.groups.decay }, { weightDecay: 0, params: trainer.groups.noDecay }],
    },
    evalEvery: c.evalEvery ?? 0, evaluates: trainer.val !== null, saveEvery: opts.saveEvery ?? 0, keepCheckpoints: opts.keepCheckpoints ?? 2,
    resumedFromStep: opts.resume ? trainer.step : null,
  };
  writeFileAtomic(path.join(opts.outDir, "run.json"), `${JSON.stringify(run, null, 2)}\n`);
}
