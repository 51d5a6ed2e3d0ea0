// The run's report: what each model is, its validation perplexity, the tokens it trained on, wall time,
// tokens/s, parameter counts, the token-efficiency ratio (tokens the from-scratch baseline needed to match
// the LRC student), greedy samples and (with --tasks) zero-shot accuracy on lm-eval tasks; rendered as Markdown (report.md), JSON (report.json) and a terminal
// summary, plus an SVG of validation perplexity against training tokens.

import { lossPlotSvg, paperAverage } from "@lrc-ts/lrc";
import type { TaskScore } from "@lrc-ts/lrc";

export interface ModelRow {
  readonly name: string;
  /** Short architecture line, e.g. "Qwen2 D=128 L=4 H=4/2 dh=32 F=352 V=4096". */
  readonly arch: string;
  readonly parameters: number;
  /** Trainable values in its training run (LRC: projections + gains). */
  readonly trainable: number | null;
  readonly valLoss: number;
  readonly valPerplexity: number;
  /** Training tokens (null: not trained here, e.g. a Hub teacher). */
  readonly tokens: number | null;
  readonly wallSeconds: number | null;
  readonly tokensPerSecond: number | null;
  /** Where it was exported. */
  readonly dir: string | null;
  readonly note?: string;
}

/** A validation point: training tokens so far and the val loss there. */
export interface CurvePoint {
  readonly tokens: number;
  readonly loss: number;
}

export interface Efficiency {
  /** The LRC student's val loss, the target. */
  readonly targetLoss: number;
  readonly lrcTokens: number;
  /** First evaluated token count at which the baseline's val loss <= target, or null if it never did. */
  readonly baselineTokens: number | null;
  /** The most tokens the baseline trained on. */
  readonly baselineMaxTokens: number;
  /** baselineTokens / lrcTokens, or a lower bound (baselineMaxTokens / lrcTokens) when never matched. */
  readonly ratio: number;
  readonly matched: boolean;
}

export interface Sample {
  readonly model: string;
  readonly prompt: string;
  readonly completion: string;
}

/** One model's zero-shot scores by task (lrc eval-tasks). */
export interface AccuracyRow {
  readonly model: string;
  readonly tasks: Record<string, TaskScore>;
}

export interface RunReport {
  readonly title: string;
  readonly mode: "embedded" | "teacher";
  readonly preset: string;
  readonly corpus: string;
  readonly tokenizer: string;
  readonly backend: string;
  readonly seed: number;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly evalDescription: string;
  readonly teacher: ModelRow;
  readonly lrc: ModelRow;
  /** The baseline at the LRC student's token budget. */
  readonly baseline: ModelRow;
  /** The baseline after its longest training (when trained past the budget). */
  readonly baselineLong: ModelRow | null;
  readonly efficiency: Efficiency;
  /** sha256 of the batches the LRC run consumed and of the baseline's first as many batches. */
  readonly batches: { readonly lrc: string | null; readonly baseline: string | null; readonly identical: boolean };
  readonly lrcCurve: readonly CurvePoint[];
  readonly baselineCurve: readonly CurvePoint[];
  readonly samples: readonly Sample[];
  /** Zero-shot accuracy of the teacher, the LRC student and the baseline at its budget (null: no --tasks). */
  readonly accuracy?: readonly AccuracyRow[] | null;
  readonly stages: readonly { readonly name: string; readonly seconds: number; readonly cached?: boolean }[];
  readonly totalSeconds: number;
  /** CPU time of the process (all threads): with an idle machine, about totalSeconds x threads used. */
  readonly cpuSeconds: number;
  readonly files: Record<string, string>;
  readonly settings: Record<string, unknown>;
}

/** Token-efficiency from the baseline's validation curve (in training order) and the LRC student's loss. */
export function tokenEfficiency(baselineCurve: readonly CurvePoint[], lrcLoss: number, lrcTokens: number): Efficiency {
  if (!(lrcTokens > 0)) throw new RangeError(`LRC token count must be positive, got ${lrcTokens}`);
  const hit = baselineCurve.find((p) => p.loss <= lrcLoss);
  const max = baselineCurve.reduce((m, p) => Math.max(m, p.tokens), 0);
  return {
    targetLoss: lrcLoss,
    lrcTokens,
    baselineTokens: hit?.tokens ?? null,
    baselineMaxTokens: max,
    ratio: (hit?.tokens ?? max) / lrcTokens,
    matched: hit !== undefined,
  };
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");
const ppl = (x: number) => (Number.isFinite(x) ? (x >= 1000 ? x.toFixed(0) : x.toFixed(2)) : String(x));
const secs = (s: number | null) => (s === null ? "-" : s >= 90 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${s.toFixed(1)} s`);

export function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** The efficiency as one sentence. */
export function efficiencySentence(e: Efficiency): string {
  if (e.matched)
    return (
      `the from-scratch baseline needed ${int(e.baselineTokens!)} tokens to reach the LRC student's val loss ${e.targetLoss.toFixed(4)} ` +
      `(LRC: ${int(e.lrcTokens)} tokens): ${e.ratio.toFixed(2)}x the tokens`
    );
  return (
    `the from-scratch baseline did not reach the LRC student's val loss ${e.targetLoss.toFixed(4)} within ${int(e.baselineMaxTokens)} tokens ` +
    `(> ${e.ratio.toFixed(2)}x the LRC student's ${int(e.lrcTokens)} tokens)`
  );
}

function modelTable(rows: readonly ModelRow[]): string[] {
  const out = [
    "| model | architecture | parameters | val loss | val ppl | train tokens | wall time | tokens/s |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows)
    out.push(
      `| ${r.name} | ${r.arch} | ${int(r.parameters)}${r.trainable !== null && r.trainable !== r.parameters ? ` (${int(r.trainable)} trained)` : ""} | ` +
        `${r.valLoss.toFixed(4)} | **${ppl(r.valPerplexity)}** | ${r.tokens === null ? "-" : int(r.tokens)} | ${secs(r.wallSeconds)} | ` +
        `${r.tokensPerSecond === null ? "-" : int(r.tokensPerSecond)} |`,
    );
  return out;
}

/** The accuracy table: per task acc (acc_norm), and the average of the paper's metric per task. */
export function accuracyTable(rows: readonly AccuracyRow[]): string[] {
  const tasks = Object.keys(rows[0]?.tasks ?? {});
  const pct = (x: number) => (100 * x).toFixed(1);
  const metric = paperAverage(new Map(Object.entries(rows[0]!.tasks))).metrics;
  const out = [
    `| model | ${tasks.map((t) => `${t} (n=${rows[0]!.tasks[t]!.n})`).join(" | ")} | average |`,
    `|---|${tasks.map(() => "---:|").join("")}---:|`,
  ];
  for (const r of rows) {
    const cells = tasks.map((t) => {
      const s = r.tasks[t]!;
      return metric[t] === "acc_norm" ? `${pct(s.acc)} (**${pct(s.acc_norm)}**)` : `**${pct(s.acc)}** (${pct(s.acc_norm)})`;
    });
    out.push(`| ${r.model} | ${cells.join(" | ")} | ${pct(paperAverage(new Map(Object.entries(r.tasks))).average)} |`);
  }
  return out;
}

function rowsOf(r: RunReport): ModelRow[] {
  return [r.teacher, r.lrc, r.baseline, ...(r.baselineLong !== null ? [r.baselineLong] : [])];
}

/** report.md */
export function renderMarkdown(r: RunReport): string {
  const lines: string[] = [];
  lines.push(`# ${r.title}`, "");
  lines.push(`- corpus: ${r.corpus}`);
  lines.push(`- tokenizer: ${r.tokenizer}`);
  lines.push(`- windows: ${r.batchSize} x ${r.seqLen} tokens per step; seed ${r.seed}; backend ${r.backend}`);
  lines.push(`- evaluation: ${r.evalDescription}`);
  lines.push(`- total wall time: ${secs(r.totalSeconds)} (CPU time ${secs(r.cpuSeconds)})`, "");
  lines.push("## Validation perplexity", "");
  lines.push(...modelTable(rowsOf(r)), "");
  for (const m of rowsOf(r)) if (m.note !== undefined) lines.push(`- ${m.name}: ${m.note}`);
  if (rowsOf(r).some((m) => m.note !== undefined)) lines.push("");
  const gain = r.baseline.valPerplexity / r.lrc.valPerplexity;
  lines.push(
    `At an equal budget of ${int(r.lrc.tokens ?? 0)} tokens the LRC student reaches val perplexity **${ppl(r.lrc.valPerplexity)}**, ` +
      `the same architecture trained from scratch **${ppl(r.baseline.valPerplexity)}** (${gain.toFixed(2)}x higher); the teacher is at ${ppl(r.teacher.valPerplexity)}.`,
    "",
  );
  lines.push(`**Token efficiency:** ${efficiencySentence(r.efficiency)}.`, "");
  lines.push(
    `Same batches: the LRC run and the baseline's first ${int(r.lrc.tokens ?? 0)} tokens are ` +
      `${r.batches.identical ? "identical" : "**NOT identical**"} (sha256 ${r.batches.lrc?.slice(0, 16) ?? "-"} / ${r.batches.baseline?.slice(0, 16) ?? "-"}).`,
    "",
  );
  if (r.accuracy) {
    lines.push("## Zero-shot accuracy", "");
    lines.push(
      "acc (acc_norm) in %, scored as lm-evaluation-harness scores it (`lrc eval-tasks`); in bold the paper's metric (acc_norm for " +
        "arc_challenge and logiqa, acc elsewhere), which the average uses. The baseline is scored at the LRC student's budget.",
      "",
    );
    lines.push(...accuracyTable(r.accuracy), "");
  }
  lines.push("![val perplexity vs training tokens](val-ppl.svg)", "");
  lines.push("## Validation curve", "", "| tokens | LRC student val ppl | baseline val ppl |", "|---:|---:|---:|");
  const ticks = [...new Set([...r.lrcCurve.map((p) => p.tokens), ...r.baselineCurve.map((p) => p.tokens)])].sort((a, b) => a - b);
  for (const t of ticks) {
    const l = r.lrcCurve.find((p) => p.tokens === t);
    const b = r.baselineCurve.find((p) => p.tokens === t);
    lines.push(`| ${int(t)} | ${l ? ppl(Math.exp(l.loss)) : ""} | ${b ? ppl(Math.exp(b.loss)) : ""} |`);
  }
  lines.push("", "## Greedy samples", "");
  for (const prompt of [...new Set(r.samples.map((s) => s.prompt))]) {
    lines.push(`**${prompt}**`, "");
    for (const s of r.samples.filter((x) => x.prompt === prompt)) lines.push(`- _${s.model}_: ${JSON.stringify(prompt + s.completion)}`);
    lines.push("");
  }
  lines.push("## Stages", "", "| stage | wall time |", "|---|---:|");
  for (const s of r.stages) lines.push(`| ${s.name}${s.cached ? " (cached)" : ""} | ${secs(s.seconds)} |`);
  lines.push("", "## Files", "");
  for (const [k, v] of Object.entries(r.files)) lines.push(`- ${k}: \`${v}\``);
  lines.push("", "## Settings", "", "```json", JSON.stringify(r.settings, null, 2), "```", "");
  return lines.join("\n");
}

/** The terminal summary (stdout). */
export function renderTerminal(r: RunReport): string {
  const pad = (s: string, n: number) => s.padEnd(n);
  const lines = ["", `== ${r.title} ==`, ""];
  lines.push(`${pad("model", 28)}${pad("params", 12)}${pad("val ppl", 10)}${pad("tokens", 12)}${pad("time", 14)}tokens/s`);
  for (const m of rowsOf(r))
    lines.push(
      `${pad(m.name, 28)}${pad(human(m.parameters), 12)}${pad(ppl(m.valPerplexity), 10)}${pad(m.tokens === null ? "-" : human(m.tokens), 12)}` +
        `${pad(secs(m.wallSeconds), 14)}${m.tokensPerSecond === null ? "-" : int(m.tokensPerSecond)}`,
    );
  lines.push("", `token efficiency: ${efficiencySentence(r.efficiency)}`);
  lines.push(`same batches for LRC and baseline: ${r.batches.identical ? "yes" : "NO"}`);
  if (r.accuracy)
    for (const a of r.accuracy) {
      const avg = paperAverage(new Map(Object.entries(a.tasks)));
      const each = Object.entries(a.tasks).map(([t, s]) => `${t} ${(100 * (avg.metrics[t] === "acc_norm" ? s.acc_norm : s.acc)).toFixed(1)}`);
      lines.push(`zero-shot accuracy, ${pad(a.model, 28)} average ${(100 * avg.average).toFixed(1)}%: ${each.join(", ")}`);
    }
  lines.push("", "samples (greedy):");
  for (const s of r.samples) lines.push(`  [${s.model}] ${JSON.stringify(s.prompt + s.completion)}`);
  lines.push("", `total wall time ${secs(r.totalSeconds)} (CPU ${secs(r.cpuSeconds)}); report: ${r.files.report ?? "-"}`, "");
  return lines.join("\n");
}

/** val perplexity against training tokens for both students, the teacher as a dashed line. */
export function renderCurveSvg(r: RunReport): string {
  return lossPlotSvg(
    [
      { name: "LRC student", points: r.lrcCurve.map((p) => [p.tokens, Math.exp(p.loss)] as const), markers: true },
      { name: "from scratch", points: r.baselineCurve.map((p) => [p.tokens, Math.exp(p.loss)] as const), markers: true },
    ],
    { title: "validation perplexity vs training tokens", xLabel: "training tokens", yLabel: "val perplexity", reference: { name: "teacher", value: r.teacher.valPerplexity } },
  );
}
