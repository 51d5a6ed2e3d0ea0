// `lrc eval-tasks`: zero-shot multiple-choice accuracy of an HF model directory on lm-evaluation-harness
// tasks, scored as lm-eval scores them (@lrc-ts/nn's evaluateMultipleChoice; task templates in
// ../eval-tasks.ts). Each --task NAME=FILE reads a Hub dataset split exported to JSONL or kept as parquet.
// Prints a table (n, acc ± stderr, acc_norm ± stderr per task) and, with several tasks, the average of the
// paper's metric (acc_norm for arc_challenge and logiqa, acc elsewhere); --json prints one JSON object as the
// last line; --log-samples writes one JSON line per document. Progress goes to stderr. Ctrl-C or SIGTERM stops
// it between forward passes and reports the tasks finished (exit 130 / 143).

import fs from "node:fs";
import path from "node:path";
import { DataError, loadTokenizer, readRows } from "@lrc-ts/data";
import { writeFileAtomic } from "@lrc-ts/tensor-core";
import type { TextTokenizer } from "@lrc-ts/data";
import { evaluateMultipleChoice, loadCausalLM, readConfigFile } from "@lrc-ts/nn";
import type { LanguageModel, MultipleChoiceDoc, MultipleChoiceResult } from "@lrc-ts/nn";
import { UsageError } from "../cli/args.js";
import { backendFlag, defineCommand, keepHalfDType, modelDTypeFlag } from "../cli/command.js";
import { onInterrupt } from "../node/interrupt.js";
import { statusLine } from "../node/status-line.js";
import { TASKS, TaskRowError, taskDoc } from "../eval-tasks.js";
import type { TaskAdapter, TaskMetric } from "../eval-tasks.js";

export interface TaskFile {
  readonly task: TaskAdapter;
  readonly file: string;
}

/** Parses `NAME=FILE` task arguments (names must be known and distinct). */
export function parseTaskArgs(args: readonly string[]): TaskFile[] {
  const seen = new Set<string>();
  return args.map((a) => {
    const eq = a.indexOf("=");
    if (eq <= 0 || eq === a.length - 1) throw new UsageError(`--task expects NAME=FILE, got '${a}'`);
    const name = a.slice(0, eq);
    const task = TASKS.get(name);
    if (task === undefined) throw new UsageError(`--task: unknown task '${name}' (known: ${[...TASKS.keys()].join(", ")})`);
    if (seen.has(name)) throw new UsageError(`--task: '${name}' given twice`);
    seen.add(name);
    return { task, file: a.slice(eq + 1) };
  });
}

/** The task files of a directory: `<task>.jsonl`, `<task>.json` or `<task>.parquet` for known task names, sorted. */
export function taskFilesInDir(dir: string): TaskFile[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    throw new Error(`${dir}: no such task directory`);
  }
  const out: TaskFile[] = [];
  for (const name of names) {
    const m = /^(.+)\.(jsonl|json|parquet)$/.exec(name);
    const task = m === null ? undefined : TASKS.get(m[1]!);
    if (task === undefined) continue;
    if (out.some((t) => t.task === task)) throw new Error(`${dir}: two files for task ${task.name}`);
    out.push({ task, file: path.join(dir, name) });
  }
  if (out.length === 0) throw new Error(`${dir}: no task files (<task>.jsonl or <task>.parquet with task one of ${[...TASKS.keys()].join(", ")})`);
  return out;
}

/** The documents of a task file (the first `limit`), each with its line number; a bad row names file, line and field. */
export async function readTaskDocs(tf: TaskFile, limit?: number): Promise<{ docs: MultipleChoiceDoc[]; lines: number[] }> {
  const docs: MultipleChoiceDoc[] = [], lines: number[] = [];
  for await (const { line, row } of readRows(tf.file)) {
    if (limit !== undefined && docs.length >= limit) break;
    try {
      docs.push(taskDoc(tf.task, row));
    } catch (e) {
      if (e instanceof TaskRowError) throw new DataError(tf.file, "input", `line ${line}: ${tf.task.name}: ${e.message}`);
      throw e;
    }
    lines.push(line);
  }
  if (docs.length === 0) throw new DataError(tf.file, "input", `no rows for task ${tf.task.name}`);
  return { docs, lines };
}

/**
 * lm-eval's prefix token for empty contexts: the tokenizer's BOS (tokenizer_config.json bos_token) when it has
 * one, else its EOS.
 */
export function prefixToken(tokenizer: TextTokenizer, modelDir: string): number {
  const file = path.join(modelDir, "tokenizer_config.json");
  if (fs.existsSync(file)) {
    const cfg = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    const bos = cfg.bos_token;
    const name = typeof bos === "string" ? bos : bos !== null && typeof bos === "object" ? (bos as { content?: unknown }).content : undefined;
    if (typeof name === "string") {
      const id = tokenizer.tokenToId(name);
      if (id !== undefined) return id;
    }
  }
  return tokenizer.eosId;
}

export interface TaskScore {
  readonly n: number;
  readonly acc: number;
  readonly acc_stderr: number;
  readonly acc_norm: number;
  readonly acc_norm_stderr: number;
}

/** Mean over tasks of each task's paper metric. */
export function paperAverage(scores: ReadonlyMap<string, TaskScore>): { average: number; metrics: Record<string, TaskMetric> } {
  const metrics: Record<string, TaskMetric> = {};
  let sum = 0;
  for (const [name, s] of scores) {
    const m = TASKS.get(name)!.paperMetric;
    metrics[name] = m;
    sum += m === "acc" ? s.acc : s.acc_norm;
  }
  return { average: sum / scores.size, metrics };
}

function fmt(x: number, se: number): string {
  return `${x.toFixed(4)} ± ${Number.isFinite(se) ? se.toFixed(4) : "n/a"}`;
}

/** The result table (and the average line with several tasks). */
export function formatTable(scores: ReadonlyMap<string, TaskScore>): string {
  const w = Math.max(4, ...[...scores.keys()].map((k) => k.length));
  const rows = [`${"task".padEnd(w)}  ${"n".padStart(6)}  ${"acc".padEnd(17)}  acc_norm`];
  for (const [name, s] of scores) rows.push(`${name.padEnd(w)}  ${String(s.n).padStart(6)}  ${fmt(s.acc, s.acc_stderr).padEnd(17)}  ${fmt(s.acc_norm, s.acc_norm_stderr)}`);
  if (scores.size > 1) {
    const { average, metrics } = paperAverage(scores);
    const norm = Object.entries(metrics).filter(([, m]) => m === "acc_norm").map(([k]) => k);
    rows.push(`average ${average.toFixed(4)} (acc_norm for ${norm.length > 0 ? norm.join(", ") : "none"}, acc for the others)`);
  }
  return rows.join("\n");
}

function score(r: MultipleChoiceResult): TaskScore {
  return { n: r.n, acc: r.acc, acc_stderr: r.accStderr, acc_norm: r.accNorm, acc_norm_stderr: r.accNormStderr };
}

/** Progress on stderr (statusLine: redrawn on a terminal, else a line at most every 30 s and the last state). */
function progress(label: string): { update: (done: number, total: number) => void; end: () => void } {
  const status = statusLine(process.stderr, 30_000);
  const start = Date.now();
  return {
    update(done, total) {
      const s = (Date.now() - start) / 1000;
      status.update(`${label} ${done}/${total} requests (${((100 * done) / Math.max(total, 1)).toFixed(0)}%)  ${(done / Math.max(s, 1e-3)).toFixed(1)} req/s`);
    },
    end: () => status.done(),
  };
}

/** A task's documents, read and checked. */
export interface LoadedTask extends TaskFile {
  readonly docs: MultipleChoiceDoc[];
  /** The row number of each document in its file. */
  readonly lines: number[];
}

/** Reads every task file (the first `limit` documents of each), so bad rows stop a run before any scoring. */
export async function loadTasks(tasks: readonly TaskFile[], limit?: number): Promise<LoadedTask[]> {
  const out: LoadedTask[] = [];
  for (const tf of tasks) out.push({ ...tf, ...(await readTaskDocs(tf, limit)) });
  return out;
}

export interface ScoreTasksOptions {
  readonly batchSize?: number;
  /** Called with each task's per-document results. */
  readonly onSamples?: (task: LoadedTask, result: MultipleChoiceResult) => void;
  /** A progress line on stderr. */
  readonly progress?: boolean;
  /** Stops between forward passes once aborted; the scores returned are then those of the tasks finished. */
  readonly signal?: AbortSignal;
}

/** Scores loaded tasks with a model; the scores by task name, in order. */
export async function scoreTasks(
  model: LanguageModel, tokenizer: TextTokenizer, prefix: number, tasks: readonly LoadedTask[], opts: ScoreTasksOptions = {},
): Promise<Map<string, TaskScore>> {
  const scores = new Map<string, TaskScore>();
  for (const t of tasks) {
    const bar = progress(t.task.name);
    let r: MultipleChoiceResult;
    try {
      r = await evaluateMultipleChoice(model, (s) => tokenizer.encode(s), t.docs, {
        prefixToken: prefix,
        ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
        ...(opts.progress ? { onProgress: bar.update } : {}),
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
      });
    } catch (e) {
      if (opts.signal?.aborted !== true) throw e;
      if (opts.progress) bar.end();
      break;
    }
    if (opts.progress) bar.end();
    opts.onSamples?.(t, r);
    scores.set(t.task.name, score(r));
  }
  return scores;
}

export const evalTasksCommand = defineCommand({
  name: "eval-tasks",
  summary: "zero-shot multiple-choice accuracy on lm-evaluation-harness tasks (acc, acc_norm), scored as lm-eval does",
  flags: {
    model: { kind: "string", required: true, help: "HF model directory (config.json, model.safetensors, tokenizer.json)" },
    task: { kind: "list", required: true, help: "NAME=FILE, repeatable: a task and its rows (.jsonl or .parquet)" },
    limit: { kind: "int", help: "score only the first N documents of each task" },
    "batch-size": { kind: "int", default: 4, help: "continuations of one context per forward pass" },
    "log-samples": { kind: "string", help: "write one JSON line per document (loglikelihoods, is_greedy, gold, pred, pred_norm)" },
    backend: backendFlag,
    "model-dtype": modelDTypeFlag,
    json: { kind: "boolean", help: "print one JSON object {tasks: {NAME: {n, acc, acc_stderr, acc_norm, acc_norm_stderr}}, average, metrics} last" },
  },
  details: [
    "tasks (NAME: the Hub dataset and split lm-eval scores, with its own field names):",
    ...[...TASKS.values()].map((t) => `  ${t.name.padEnd(15)} ${t.dataset}${t.paperMetric === "acc_norm" ? "  [paper: acc_norm]" : ""}`),
    "",
    "Each choice is scored as log P(' ' + choice | context) with lm-eval's token boundary and left truncation to",
    "max_position_embeddings; acc_norm divides by the choice's length in characters. WinoGrande uses partial",
    "scoring. Export a split with datasets' to_json(), or pass the Hub's parquet file. The average uses the",
    "LRC paper's metric per task: acc_norm for arc_challenge and logiqa, acc elsewhere.",
    "",
    "examples:",
    "  lrc eval-tasks --model models/Qwen2.5-0.5B --task arc_easy=data/arc_easy_test.jsonl --task piqa=data/piqa_val.parquet",
    "  lrc eval-tasks --model out/student --task mmlu=mmlu_test.parquet --limit 500 --json --log-samples samples.jsonl",
  ].join("\n"),
  async run(flags) {
    const dir = flags.model;
    const tasks = parseTaskArgs(flags.task);
    const limit = flags.limit;
    if (limit !== undefined && limit < 1) throw new UsageError(`--limit must be positive, got ${limit}`);
    const batchSize = flags["batch-size"];
    if (batchSize < 1) throw new UsageError(`--batch-size must be positive, got ${batchSize}`);
    const logFile = flags["log-samples"];

    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: no such model directory`);
    readConfigFile(path.join(dir, "config.json"));
    const tokenizer = loadTokenizer(dir);
    const loaded = await loadTasks(tasks, limit);
    const model = await loadCausalLM(dir, { keepDType: keepHalfDType(flags["model-dtype"]) });
    const lines: string[] = [];
    const interrupt = onInterrupt("stopping; the tasks finished so far are reported");
    let scores: Map<string, TaskScore>;
    try {
      scores = await scoreTasks(model, tokenizer, prefixToken(tokenizer, dir), loaded, {
        batchSize,
        progress: true,
        signal: interrupt.signal,
        onSamples: (t, r) => {
          if (logFile === undefined) return;
          r.samples.forEach((s, i) => lines.push(JSON.stringify({
            task: t.task.name, line: t.lines[i], loglikelihoods: s.loglikelihoods, is_greedy: s.isGreedy, gold: s.gold, pred: s.pred, pred_norm: s.predNorm,
          })));
        },
      });
    } finally {
      interrupt.dispose();
    }
    const interrupted = scores.size < loaded.length;
    if (logFile !== undefined) {
      writeFileAtomic(logFile, lines.map((l) => `${l}\n`).join(""));
    }
    if (interrupted) console.error(`eval-tasks: interrupted during ${loaded[scores.size]!.task.name}; ${scores.size} of ${loaded.length} tasks scored`);
    if (scores.size > 0) console.log(formatTable(scores));
    if (flags.json) console.log(JSON.stringify({ tasks: Object.fromEntries(scores), ...paperAverage(scores), ...(interrupted ? { interrupted: true } : {}) }));
    return interrupted ? interrupt.exitCode() : 0;
  },
});
