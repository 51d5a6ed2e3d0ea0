// `lrc eval-tasks` end to end, in-process through `main`, on a copy of the nn fixture model qwen2-tied-f32
// with the tiny BPE tokenizer: the --json scores and --log-samples lines equal nn's evaluateMultipleChoice on
// the adapters' documents (JSONL and parquet input), --limit, the table and its average, and bad input
// exiting 1 with the file, line and field.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadTokenizer } from "@lrc-ts/data";
import { evaluateMultipleChoice, loadCausalLM } from "@lrc-ts/nn";
import { TASKS, taskDoc } from "../eval-tasks.js";
import { run, tinyTokenizerJson } from "../testing-internal/cli-run.js";
import { formatTable, paperAverage } from "./eval-tasks.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, "..", "..", "..", "nn", "fixtures", "qwen2-tied-f32");
const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-cli-eval-tasks-"));
const modelDir = path.join(root, "model");
const arcFile = path.join(root, "arc.jsonl");
const winoFile = path.join(root, "wino.parquet");
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const ARC = [
  { id: "1", question: "Which is a planet?", choices: { text: ["the sun", "mars", "a rock"], label: ["A", "B", "C"] }, answerKey: "B" },
  { id: "2", question: "What do cats eat?", choices: { text: ["fish", "stones"], label: ["1", "2"] }, answerKey: "1" },
  { id: "3", question: "Is ice cold?", choices: { text: ["yes", "no", "it is hot", "never"], label: ["A", "B", "C", "D"] }, answerKey: "A" },
];
const WINO = [
  { sentence: "The cat sat on the mat because _ was tired.", option1: "the cat", option2: "the mat", answer: "1" },
  { sentence: "Tom gave Ann the book since _ had read it.", option1: "Tom", option2: "Ann", answer: "1" },
];

beforeAll(() => {
  fs.cpSync(fixture, modelDir, { recursive: true });
  fs.rmSync(path.join(modelDir, "golden.safetensors"));
  fs.writeFileSync(path.join(modelDir, "tokenizer.json"), tinyTokenizerJson());
  fs.writeFileSync(arcFile, ARC.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const cols = ["sentence", "option1", "option2", "answer"] as const;
  fs.writeFileSync(winoFile, new Uint8Array(parquetWriteBuffer({ columnData: cols.map((c) => ({ name: c, data: WINO.map((r) => r[c]) })) })));
});

async function library(task: string, rows: Record<string, unknown>[]) {
  const tok = loadTokenizer(modelDir);
  const docs = rows.map((r) => taskDoc(TASKS.get(task)!, r));
  return evaluateMultipleChoice(await loadCausalLM(modelDir), (s) => tok.encode(s), docs, { prefixToken: tok.eosId, shareContext: false });
}

describe("lrc eval-tasks", () => {
  it("--json and --log-samples equal the library's scores (JSONL and parquet)", async () => {
    const samples = path.join(root, "samples.jsonl");
    const r = await run(["eval-tasks", "--model", modelDir, "--task", `arc_easy=${arcFile}`, "--task", `winogrande=${winoFile}`, "--json", "--log-samples", samples]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const lines = r.out.split("\n");
    const got = JSON.parse(lines[lines.length - 1]!);
    const arc = await library("arc_easy", ARC), wino = await library("winogrande", WINO);
    for (const [name, want] of [["arc_easy", arc], ["winogrande", wino]] as const) {
      const t = got.tasks[name];
      expect([t.n, t.acc, t.acc_norm]).toEqual([want.n, want.acc, want.accNorm]);
      expect(t.acc_stderr).toBeCloseTo(want.accStderr, 12);
    }
    expect(got.average).toBeCloseTo((arc.acc + wino.acc) / 2, 12);
    expect(got.metrics).toEqual({ arc_easy: "acc", winogrande: "acc" });
    expect(lines[0]).toMatch(/^task\s+n\s+acc\s+acc_norm$/);
    expect(r.out).toMatch(/\naverage \d\.\d{4} \(acc_norm for none, acc for the others\)/);

    const logged = fs.readFileSync(samples, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(logged.length).toBe(5);
    const want = [...arc.samples, ...wino.samples];
    logged.forEach((s, i) => {
      expect(Object.keys(s)).toEqual(["task", "line", "loglikelihoods", "is_greedy", "gold", "pred", "pred_norm"]);
      s.loglikelihoods.forEach((l: number, j: number) => expect(l).toBeCloseTo(want[i]!.loglikelihoods[j]!, 4));
      expect([s.is_greedy, s.gold, s.pred, s.pred_norm]).toEqual([want[i]!.isGreedy, want[i]!.gold, want[i]!.pred, want[i]!.predNorm]);
    });
    expect(logged.map((s) => [s.task, s.line])).toEqual([["arc_easy", 1], ["arc_easy", 2], ["arc_easy", 3], ["winogrande", 1], ["winogrande", 2]]);
  });

  it("--limit takes the first N documents", async () => {
    const r = await run(["eval-tasks", "--model", modelDir, "--task", `arc_challenge=${arcFile}`, "--limit", "2", "--batch-size", "1", "--json"]);
    expect(r.code).toBe(0);
    const got = JSON.parse(r.out.split("\n").pop()!);
    const want = await library("arc_challenge", ARC.slice(0, 2));
    expect(got.tasks.arc_challenge.n).toBe(2);
    expect(got.tasks.arc_challenge.acc_norm).toBe(want.accNorm);
    expect(got.average).toBe(want.accNorm); // the paper's metric for ARC-Challenge
  });

  it("the table and the paper's average", () => {
    const s = { n: 10, acc: 0.5, acc_stderr: 0.1, acc_norm: 0.7, acc_norm_stderr: 0.2 };
    const scores = new Map([["arc_challenge", s], ["piqa", { ...s, acc: 0.6 }]]);
    expect(paperAverage(scores)).toEqual({ average: (0.7 + 0.6) / 2, metrics: { arc_challenge: "acc_norm", piqa: "acc" } });
    expect(formatTable(scores)).toBe([
      "task                n  acc                acc_norm",
      "arc_challenge      10  0.5000 ± 0.1000    0.7000 ± 0.2000",
      "piqa               10  0.6000 ± 0.1000    0.7000 ± 0.2000",
      "average 0.6500 (acc_norm for arc_challenge, acc for the others)",
    ].join("\n"));
  });

  it.each([
    ["a row without its field", () => {
      const f = path.join(root, "bad.jsonl");
      fs.writeFileSync(f, `${JSON.stringify(ARC[0])}\n${JSON.stringify({ id: "x", choices: ARC[0]!.choices, answerKey: "A" })}\n`);
      return [`arc_easy=${f}`];
    }, /bad\.jsonl: line 2: arc_easy: missing field 'question'/],
    ["an unknown task", () => ["nope=x.jsonl"], /unknown task 'nope'/],
    ["no '='", () => ["arc_easy"], /--task expects NAME=FILE/],
    ["a missing file", () => [`piqa=${path.join(root, "none.jsonl")}`], /none\.jsonl: no such file/],
    ["an empty file", () => {
      const f = path.join(root, "empty.jsonl");
      fs.writeFileSync(f, "");
      return [`piqa=${f}`];
    }, /empty\.jsonl: no rows for task piqa/],
  ])("%s exits 1 with one line", async (_, tasks, re) => {
    const r = await run(["eval-tasks", "--model", modelDir, ...tasks().flatMap((t) => ["--task", t])]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(re);
  });

  it("--help lists the tasks", async () => {
    const r = await run(["eval-tasks", "--help"]);
    expect(r.code).toBe(0);
    const text = r.out + r.stream;
    for (const name of TASKS.keys()) expect(text).toContain(`  ${name} `);
    expect(text).toContain("--log-samples");
  });
});
