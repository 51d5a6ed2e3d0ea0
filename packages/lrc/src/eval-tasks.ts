// Task adapters for `lrc eval-tasks`: one Hugging Face dataset row (its own field names) -> one
// multiple-choice document, with the prompt templates of lm-evaluation-harness's task YAMLs and utils
// (lm_eval/tasks/<task>/...; docs/eval-tasks.md). Zero-shot: no few-shot examples; a task's `description`
// (MMLU's "The following are multiple choice questions (with answers) about {subject}.\n\n") comes first, as
// lm-eval's fewshot_context puts it. Platform-neutral: reading the files is the CLI's job.

import { PY_WHITESPACE, docProblem } from "@lrc-ts/nn";
import type { MultipleChoiceDoc } from "@lrc-ts/nn";

/** A row without a field the task needs, or with one of the wrong kind. */
export class TaskRowError extends Error {
  override name = "TaskRowError";
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

export type TaskMetric = "acc" | "acc_norm";

export interface TaskAdapter {
  readonly name: string;
  /** The Hub dataset (and split) lm-eval reads, for --help. */
  readonly dataset: string;
  /** The metric the LRC paper averages (acc_norm for ARC-Challenge and LogiQA, acc elsewhere). */
  readonly paperMetric: TaskMetric;
  doc(row: Record<string, unknown>): MultipleChoiceDoc;
}

function field(row: Record<string, unknown>, name: string): unknown {
  let v: unknown = row;
  for (const part of name.split(".")) {
    if (v === null || typeof v !== "object" || !(part in (v as object))) throw new TaskRowError(name, `missing field '${name}'`);
    v = (v as Record<string, unknown>)[part];
  }
  if (v === null || v === undefined) throw new TaskRowError(name, `missing field '${name}'`);
  return v;
}

function str(row: Record<string, unknown>, name: string): string {
  const v = field(row, name);
  if (typeof v !== "string") throw new TaskRowError(name, `field '${name}' must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function strs(row: Record<string, unknown>, name: string, length?: number): string[] {
  const v = field(row, name);
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    throw new TaskRowError(name, `field '${name}' must be a list of strings, got ${JSON.stringify(v)}`);
  if (length !== undefined && v.length < length) throw new TaskRowError(name, `field '${name}' must hold at least ${length} strings, got ${v.length}`);
  return v as string[];
}

/** An integer field; digit strings count (lm-eval turns a digit target into an int). */
function int(row: Record<string, unknown>, name: string): number {
  const v = field(row, name);
  const n = typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== "number" || !Number.isInteger(n)) throw new TaskRowError(name, `field '${name}' must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

/** The index of `key` in `labels`, as lm-eval's `choices.label.index(answerKey)`. */
function indexOf(labels: readonly string[], key: string, name: string): number {
  const i = labels.indexOf(key);
  if (i < 0) throw new TaskRowError(name, `field '${name}' is ${JSON.stringify(key)}, not one of ${JSON.stringify(labels)}`);
  return i;
}

const LETTERS = ["A", "B", "C", "D", "E"];

/** Python's str.lstrip / strip. */
const LEADING = new RegExp(`^${PY_WHITESPACE}+`, "u"), TRAILING = new RegExp(`${PY_WHITESPACE}+$`, "u");
const lstrip = (s: string) => s.replace(LEADING, "");
const strip = (s: string) => lstrip(s).replace(TRAILING, "");

/** Python's str.capitalize: first character upper case, the rest lower case. */
function capitalize(s: string): string {
  const [first, ...rest] = s;
  return first === undefined ? "" : first.toUpperCase() + rest.join("").toLowerCase();
}

/** HellaSwag's preprocess (lm_eval/tasks/hellaswag/utils.py). */
export function hellaswagPreprocess(text: string): string {
  return strip(text).replaceAll(" [title]", ". ").replace(/\[.*?\]/g, "").replaceAll("  ", " ");
}

function arc(name: string, dataset: string, paperMetric: TaskMetric): TaskAdapter {
  return {
    name, dataset, paperMetric,
    doc: (row) => {
      const labels = strs(row, "choices.label");
      const choices = strs(row, "choices.text");
      return { context: `Question: ${str(row, "question")}\nAnswer:`, choices, gold: indexOf(labels, str(row, "answerKey"), "answerKey") };
    },
  };
}

const adapters: TaskAdapter[] = [
  arc("arc_easy", "allenai/ai2_arc ARC-Easy, test", "acc"),
  arc("arc_challenge", "allenai/ai2_arc ARC-Challenge, test", "acc_norm"),
  {
    name: "sciq", dataset: "allenai/sciq, test", paperMetric: "acc",
    doc: (row) => ({
      context: `${lstrip(str(row, "support"))}\nQuestion: ${str(row, "question")}\nAnswer:`,
      choices: [str(row, "distractor1"), str(row, "distractor2"), str(row, "distractor3"), str(row, "correct_answer")],
      gold: 3,
    }),
  },
  {
    name: "piqa", dataset: "piqa (ybisk/piqa), validation", paperMetric: "acc",
    doc: (row) => ({ context: `Question: ${str(row, "goal")}\nAnswer:`, choices: [str(row, "sol1"), str(row, "sol2")], gold: int(row, "label") }),
  },
  {
    name: "winogrande", dataset: "winogrande winogrande_xl, validation", paperMetric: "acc",
    doc: (row) => {
      const sentence = str(row, "sentence");
      const at = sentence.indexOf("_");
      if (at < 0) throw new TaskRowError("sentence", "field 'sentence' has no '_' blank");
      const answer = str(row, "answer");
      if (answer !== "1" && answer !== "2") throw new TaskRowError("answer", `field 'answer' must be "1" or "2", got ${JSON.stringify(answer)}`);
      return {
        contexts: [sentence.slice(0, at) + str(row, "option1"), sentence.slice(0, at) + str(row, "option2")],
        target: strip(sentence.slice(at + 1)),
        gold: Number(answer) - 1,
      };
    },
  },
  {
    name: "logiqa", dataset: "EleutherAI/logiqa, test", paperMetric: "acc_norm",
    doc: (row) => {
      const options = strs(row, "options");
      const lines = options.slice(0, 4).map((o, i) => `${LETTERS[i]}. ${o}\n`).join("");
      const label = strip(str(row, "label"));
      return {
        context: `Passage: ${str(row, "context")}\nQuestion: ${str(row, "question")}\nChoices:\n${lines}Answer:`,
        choices: options,
        gold: indexOf(["a", "b", "c", "d"], label, "label"),
      };
    },
  },
  {
    name: "boolq", dataset: "super_glue boolq (aps/super_glue), validation", paperMetric: "acc",
    doc: (row) => ({ context: `${str(row, "passage")}\nQuestion: ${str(row, "question")}?\nAnswer:`, choices: ["no", "yes"], gold: int(row, "label") }),
  },
  {
    name: "mmlu", dataset: "cais/mmlu all, test", paperMetric: "acc",
    doc: (row) => {
      const c = strs(row, "choices", 4);
      const description = `The following are multiple choice questions (with answers) about ${str(row, "subject").replaceAll("_", " ")}.\n\n`;
      return {
        context: `${description}${strip(str(row, "question"))}\nA. ${c[0]}\nB. ${c[1]}\nC. ${c[2]}\nD. ${c[3]}\nAnswer:`,
        choices: LETTERS.slice(0, 4),
        gold: int(row, "answer"),
      };
    },
  },
  {
    name: "commonsense_qa", dataset: "tau/commonsense_qa, validation", paperMetric: "acc",
    doc: (row) => {
      const t = strs(row, "choices.text", 5);
      const lines = LETTERS.map((l, i) => `${l}. ${t[i]}\n`).join("");
      return { context: `Question: ${strip(str(row, "question"))}\n${lines}Answer:`, choices: LETTERS, gold: indexOf(LETTERS, str(row, "answerKey"), "answerKey") };
    },
  },
  {
    name: "hellaswag", dataset: "hellaswag (Rowan/hellaswag), validation", paperMetric: "acc",
    doc: (row) => ({
      context: hellaswagPreprocess(`${str(row, "activity_label")}: ${str(row, "ctx_a")} ${capitalize(str(row, "ctx_b"))}`),
      choices: strs(row, "endings").map(hellaswagPreprocess),
      gold: int(row, "label"),
    }),
  },
  {
    name: "openbookqa", dataset: "allenai/openbookqa main, test", paperMetric: "acc",
    doc: (row) => ({
      context: str(row, "question_stem"),
      choices: strs(row, "choices.text"),
      gold: indexOf(strs(row, "choices.label"), lstrip(str(row, "answerKey")), "answerKey"),
    }),
  },
  {
    name: "mc", dataset: 'generic: {"context": "...", "choices": ["...", ...], "gold": 0}', paperMetric: "acc",
    doc: (row) => ({ context: str(row, "context"), choices: strs(row, "choices"), gold: int(row, "gold") }),
  },
];

/** The task adapters by name. */
export const TASKS: ReadonlyMap<string, TaskAdapter> = new Map(adapters.map((a) => [a.name, a]));

/** A row's document, checked: at least two choices, and a gold index among them. */
export function taskDoc(task: TaskAdapter, row: Record<string, unknown>): MultipleChoiceDoc {
  const doc = task.doc(row);
  const problem = docProblem(doc);
  if (problem !== null) throw new TaskRowError(problem.field, problem.message);
  return doc;
}
