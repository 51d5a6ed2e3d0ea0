// The example end to end with the --quick preset (what CI exercises): corpus -> tokenizer -> shards ->
// teacher pretraining -> LRC -> baseline -> report, in a temporary output and cache directory. Checks that
// every reported number is finite, the students trained on the same batches and budget, the teacher cache
// is reused on a second run, the exported LRC student loads as a plain Qwen2 model and runs forward, and with
// tasksDir the report's zero-shot accuracy rows are the lrc eval-tasks scores of those models.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCausalLM } from "@lrc-ts/nn";
import { loadTasks, prefixToken, scoreTasks, taskFilesInDir } from "@lrc-ts/lrc";
import { loadTokenizer } from "@lrc-ts/data";
import { QUICK_PRESET, SAMPLE_PROMPTS } from "./options.js";
import { runDistillQwen, type RunOutput } from "./pipeline.js";

let tmp = "";
let first: RunOutput;
const savedCache = process.env.LRC_CACHE_DIR;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "distill-qwen-quick-"));
  process.env.LRC_CACHE_DIR = path.join(tmp, "cache");
  const tasksDir = path.join(tmp, "tasks");
  fs.mkdirSync(tasksDir);
  fs.writeFileSync(path.join(tasksDir, "mc.jsonl"), [
    { context: "The Congress of the United", choices: ["States", "banana"], gold: 0 },
    { context: "Fellow citizens of the Senate and", choices: ["House of Representatives", "the sea"], gold: 0 },
    { context: "Our economy is", choices: ["strong", "purple"], gold: 0 },
  ].map((r) => JSON.stringify(r)).join("\n"));
  fs.writeFileSync(path.join(tasksDir, "arc_challenge.jsonl"), JSON.stringify({
    id: "1", question: "Who makes the laws?", choices: { text: ["the Congress", "the weather"], label: ["A", "B"] }, answerKey: "A",
  }));
  fs.writeFileSync(path.join(tasksDir, "notes.txt"), "ignored: not a task file");
  first = await runDistillQwen({
    preset: QUICK_PRESET, teacherDir: null, data: [], out: path.join(tmp, "run"), seed: 0, hiddenSize: null, tokens: null,
    baselineMultiple: null, lr: null, prompts: SAMPLE_PROMPTS, progress: false, log: () => {}, tasksDir,
  });
}, 300_000);

afterAll(() => {
  if (savedCache === undefined) delete process.env.LRC_CACHE_DIR;
  else process.env.LRC_CACHE_DIR = savedCache;
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("distill-qwen --quick", () => {
  it("reports finite numbers for every model", () => {
    const r = first.report;
    for (const m of [r.teacher, r.lrc, r.baseline, r.baselineLong!]) {
      expect(Number.isFinite(m.valLoss), m.name).toBe(true);
      expect(m.valPerplexity).toBeGreaterThan(1);
      expect(m.valPerplexity).toBeLessThan(QUICK_PRESET.vocabSize * 2);
      expect(m.parameters).toBeGreaterThan(0);
    }
    for (const m of [r.lrc, r.baseline]) {
      expect(m.tokensPerSecond).toBeGreaterThan(0);
      expect(Number.isFinite(m.tokensPerSecond!)).toBe(true);
    }
    expect(r.efficiency.ratio).toBeGreaterThan(0);
    expect(Number.isFinite(r.efficiency.ratio)).toBe(true);
    expect(r.samples.length).toBe(SAMPLE_PROMPTS.length * 4);
    expect(r.totalSeconds).toBeGreaterThan(0);
  });

  it("trains both students on the same budget and the same batches; the student is half as wide", () => {
    const r = first.report;
    expect(r.lrc.tokens).toBe(QUICK_PRESET.lrcSteps * QUICK_PRESET.batchSize * QUICK_PRESET.seqLen);
    expect(r.baseline.tokens).toBe(r.lrc.tokens);
    expect(r.baselineLong!.tokens).toBe(r.lrc.tokens! * QUICK_PRESET.baselineMultiple);
    expect(r.batches.identical).toBe(true);
    expect(r.lrc.parameters).toBe(r.baseline.parameters);
    expect(r.lrc.arch).toContain(`D=${QUICK_PRESET.teacher.hiddenSize / 2} `);
  });

  it("writes report.md, report.json and the plots", () => {
    const out = path.join(tmp, "run");
    const md = fs.readFileSync(path.join(out, "report.md"), "utf8");
    expect(md).toContain("Token efficiency");
    expect(JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8")).lrc.valLoss).toBeCloseTo(first.report.lrc.valLoss, 10);
    for (const f of ["val-ppl.svg", "lrc/loss.svg", "baseline/loss.svg", "lrc/metrics.jsonl"]) expect(fs.existsSync(path.join(out, f)), f).toBe(true);
  });

  it("exports an LRC student that loads as a plain Qwen2 model and runs forward", async () => {
    const student = await loadCausalLM(first.report.lrc.dir!);
    expect(student.config.model_type).toBe("qwen2");
    expect(student.config.hidden_size).toBe(QUICK_PRESET.teacher.hiddenSize / 2);
    expect(student.config.head_dim).toBe(QUICK_PRESET.teacher.hiddenSize / QUICK_PRESET.teacher.heads);
    expect(fs.existsSync(path.join(first.report.lrc.dir!, "tokenizer.json"))).toBe(true);
    const logits = student.logits([[1, 2, 3, 4, 5]]);
    expect(logits.shape).toEqual([1, 5, student.config.vocab_size]);
    expect(Array.from(logits.buf).every(Number.isFinite)).toBe(true);
  });

  it("reports zero-shot accuracy of the teacher, the LRC student and the baseline (--tasks)", async () => {
    const acc = first.report.accuracy!;
    expect(acc.map((a) => a.model)).toEqual(["teacher (from scratch)", "LRC student", "from scratch, same tokens"]);
    for (const a of acc) {
      expect(Object.keys(a.tasks)).toEqual(["arc_challenge", "mc"]);
      expect(a.tasks.mc!.n).toBe(3);
      for (const s of Object.values(a.tasks)) expect(s.acc >= 0 && s.acc <= 1 && s.acc_norm >= 0 && s.acc_norm <= 1).toBe(true);
    }
    // The LRC row is the exported student's score.
    const dir = first.report.lrc.dir!;
    const tok = loadTokenizer(dir);
    const want = await scoreTasks(await loadCausalLM(dir), tok, prefixToken(tok, dir), await loadTasks(taskFilesInDir(path.join(tmp, "tasks"))));
    expect(acc[1]!.tasks).toEqual(Object.fromEntries(want));
    const md = fs.readFileSync(path.join(tmp, "run", "report.md"), "utf8");
    expect(md).toContain("## Zero-shot accuracy");
    expect(md).toMatch(/\| model \| arc_challenge \(n=1\) \| mc \(n=3\) \| average \|/);
    expect(first.terminal).toContain("zero-shot accuracy, LRC student");
  });

  it("reuses the cached tokenizer, shards and teacher on a second run", async () => {
    const second = await runDistillQwen({
      preset: QUICK_PRESET, teacherDir: null, data: [], out: path.join(tmp, "run2"), seed: 0, hiddenSize: null, tokens: null,
      baselineMultiple: 1, lr: null, prompts: ["The Congress"], progress: false, log: () => {},
    });
    const stage = (n: string) => second.report.stages.find((s) => s.name === n);
    expect(stage("data")?.cached).toBe(true);
    expect(stage("teacher")?.cached).toBe(true);
    expect(second.report.teacher.valLoss).toBeCloseTo(first.report.teacher.valLoss, 6);
    // Same seed, same batches: the LRC run is reproducible.
    expect(second.report.lrc.valLoss).toBeCloseTo(first.report.lrc.valLoss, 4);
    expect(second.report.baselineLong).toBeNull();
  }, 300_000);
});
