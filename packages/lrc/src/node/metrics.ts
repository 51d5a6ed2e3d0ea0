// The run's metrics: one JSON object per line in metrics.jsonl (a "train" row per step with every loss
// term, lr, gradient norm, tokens, tokens/s, elapsed time, a wall-clock `time` and the process's resident memory; an "eval" row per evaluation) and an SVG plot
// of the curves next to it (./plot.ts). A resumed run drops the rows after its checkpoint and appends.

import fs from "node:fs";
import { fileSystemError, writeFileAtomic } from "@lrc-ts/tensor-core";
import type { EvalMetrics, StepMetrics } from "../trainer.js";
import { lossPlotSvg } from "../plot.js";
import type { Series } from "../plot.js";

export interface TrainRow {
  readonly type: "train";
  readonly step: number;
  readonly losses: Record<string, number>;
  readonly lr: number;
  readonly grad_norm: number;
  readonly tokens: number;
  readonly tokens_per_s: number;
  readonly elapsed_s: number;
  /** Wall-clock time the row was written (ISO 8601, UTC). */
  readonly time: string;
  /** Resident set size of the process after the step, MiB (absent in rows written before it was recorded). */
  readonly rss_mib?: number;
}

export interface EvalRow {
  readonly type: "eval";
  readonly step: number;
  readonly val_loss: number;
  readonly val_ppl: number;
  readonly val_tokens: number;
  readonly teacher_val_loss: number | null;
  readonly time: string;
}

export type MetricsRow = TrainRow | EvalRow;

/** Reads a metrics.jsonl file (missing file: no rows; a torn last line from a crash is skipped). */
export function readMetrics(file: string): MetricsRow[] {
  if (!fs.existsSync(file)) return [];
  const rows: MetricsRow[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    try {
      rows.push(JSON.parse(line) as MetricsRow);
    } catch {
      // a line cut short by a kill; everything before it is intact
    }
  }
  return rows;
}

/** The run's final losses: each term's mean over the last (up to) 10 train rows (a resumed run's earlier rows included). */
export function finalLosses(rows: readonly MetricsRow[]): Record<string, number> {
  const recent = rows.filter((r): r is TrainRow => r.type === "train").slice(-10);
  const final: Record<string, number> = {};
  for (const r of recent) for (const [k, v] of Object.entries(r.losses)) final[k] = (final[k] ?? 0) + v / recent.length;
  return final;
}

/** The run's last evaluation among the rows (null without one). */
export function lastEvaluation(rows: readonly MetricsRow[]): EvalMetrics | null {
  const e = rows.filter((r): r is EvalRow => r.type === "eval").at(-1);
  return e === undefined ? null : { step: e.step, loss: e.val_loss, perplexity: e.val_ppl, tokens: e.val_tokens, teacherLoss: e.teacher_val_loss };
}

/** Runs a write of `file`, naming the file in its error (Node's messages for writes name no path). */
function writing(file: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    throw fileSystemError(file, "cannot write", e);
  }
}

export class MetricsLog {
  private rows: MetricsRow[] = [];

  constructor(readonly file: string, readonly plotFile: string) {}

  /** The last evaluation so far (a resumed run's included). */
  lastEvaluation(): EvalMetrics | null {
    return lastEvaluation(this.rows);
  }

  /** The final losses so far (finalLosses over the rows, a resumed run's included). */
  finalLosses(): Record<string, number> {
    return finalLosses(this.rows);
  }

  reset(): void {
    this.rows = [];
    writing(this.file, () => fs.writeFileSync(this.file, ""));
  }

  /** Keeps the rows up to `step` (a resumed run) and rewrites the file. */
  truncateAfter(step: number): void {
    this.rows = readMetrics(this.file).filter((r) => r.step <= step);
    writing(this.file, () => fs.writeFileSync(this.file, this.rows.map((r) => `${JSON.stringify(r)}\n`).join("")));
  }

  private append(r: MetricsRow): void {
    this.rows.push(r);
    writing(this.file, () => fs.appendFileSync(this.file, `${JSON.stringify(r)}\n`));
  }

  train(m: StepMetrics): void {
    this.append({
      type: "train", step: m.step, losses: m.losses, lr: m.lr, grad_norm: m.gradNorm, tokens: m.tokens,
      tokens_per_s: Math.round(m.tokensPerSecond * 10) / 10, elapsed_s: Math.round(m.elapsedSeconds * 1000) / 1000,
      time: new Date().toISOString(),
      rss_mib: Math.round(process.memoryUsage.rss() / 2 ** 20),
    });
  }

  eval(e: EvalMetrics): void {
    this.append({ type: "eval", step: e.step, val_loss: e.loss, val_ppl: e.perplexity, val_tokens: e.tokens, teacher_val_loss: e.teacherLoss, time: new Date().toISOString() });
  }

  /** Writes the SVG plot of the curves so far. */
  plot(title = "loss"): void {
    const train = this.rows.filter((r): r is TrainRow => r.type === "train");
    const evals = this.rows.filter((r): r is EvalRow => r.type === "eval");
    const series: Series[] = [];
    // Without a KL or clone term (plain pretraining) total is ce: one curve, not two drawn on top of each other.
    const totalIsCe = train.every((r) => r.losses.total === r.losses.ce);
    for (const key of ["total", "ce", "kl", "clone"]) {
      if (key === "total" && totalIsCe) continue;
      const pts = train.filter((r) => r.losses[key] !== undefined).map((r) => [r.step, r.losses[key]!] as const);
      if (pts.length > 0) series.push({ name: `train ${key}`, points: pts });
    }
    if (evals.length > 0) series.push({ name: "val ce", points: evals.map((r) => [r.step, r.val_loss] as const), markers: true });
    const teacher = evals.find((r) => r.teacher_val_loss !== null)?.teacher_val_loss;
    const svg = lossPlotSvg(series, { title, ...(teacher !== undefined && teacher !== null ? { reference: { name: "teacher val ce", value: teacher } } : {}) });
    writeFileAtomic(this.plotFile, svg);
  }
}
