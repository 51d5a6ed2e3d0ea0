// The page's run without the page: a small demo (tokenizer + briefly pretrained teacher from a public-domain
// paragraph) built in memory, then a DistillSession over it: clone losses fall, samples decode, the
// exported student loads back as an HF model with hidden_size d (and zips into the page's one download), and
// bad inputs fail with clear messages.

import { describe, expect, it } from "vitest";
import { loadCausalLMFromFiles } from "@lrc-ts/nn";
import { parseSafetensors } from "@lrc-ts/tensor-core";
import { buildDemo, DEMO_SETTINGS } from "./demo-data.js";
import { unzipSync } from "fflate";
import { DistillSession, DEFAULT_OPTIONS } from "./session.js";
import { studentZip, unzipStudent } from "./student-zip.js";

// The opening of Lincoln's Gettysburg Address (public domain), repeated with variations as a tiny corpus.
const LINCOLN =
  "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, " +
  "and dedicated to the proposition that all men are created equal. Now we are engaged in a great civil war, testing " +
  "whether that nation, or any nation so conceived and so dedicated, can long endure. We are met on a great " +
  "battle-field of that war. We have come to dedicate a portion of that field, as a final resting place for those " +
  "who here gave their lives that that nation might live.";
const TEXTS = Array.from({ length: 12 }, (_, i) => LINCOLN.split(". ").slice(i % 4).concat(LINCOLN.split(". ").slice(0, i % 4)).join(". "));

const small = { ...DEMO_SETTINGS, vocabSize: 300, hiddenSize: 32, pretrainSteps: 40, batchSize: 8, seqLen: 32, lr: 1e-2, corpusChars: 4000 };

describe("DistillSession on a small demo", () => {
  it("clones the teacher with falling losses and exports a loadable student", async () => {
    const demo = await buildDemo(TEXTS, small);
    expect(demo.pretrain.last).toBeLessThan(demo.pretrain.first);
    expect([...demo.teacher.keys()].sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    const opts = { ...DEFAULT_OPTIONS, hiddenSize: 16, steps: 30, batchSize: 4, seqLen: 16, lr: 1e-2 };
    const s = await DistillSession.create(demo.teacher, demo.corpus, opts);
    expect(s.info.teacher.hiddenSize).toBe(32);
    expect(s.info.trainTokens).toBeGreaterThan(s.info.valTokens);
    const before = await s.evaluate();
    const rows: Array<Record<string, number>> = [];
    while (!s.done) rows.push((await s.next()).losses);
    const after = await s.evaluate();
    const mean = (r: typeof rows, k: string) => r.reduce((a, x) => a + x[k]!, 0) / r.length;
    for (const k of ["total", "kl", "ce"]) expect(mean(rows.slice(-5), k), k).toBeLessThan(mean(rows.slice(0, 5), k));
    expect(after.loss).toBeLessThan(before.loss);
    expect(typeof (await s.sampleStudent("Four score"))).toBe("string");
    expect(typeof (await s.sampleTeacher("Four score"))).toBe("string");
    const files = await s.exportFiles();
    expect([...files.keys()].sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    const config = JSON.parse(new TextDecoder().decode(files.get("config.json")!));
    expect(config.hidden_size).toBe(16);
    expect(parseSafetensors(files.get("model.safetensors")!).info("model.embed_tokens.weight").shape).toEqual([config.vocab_size, 16]);
    expect((await loadCausalLMFromFiles(files)).config.hidden_size).toBe(16);
    // The page's one download: a zip with one folder holding the same files.
    const zip = studentZip([...files], 16);
    expect(zip.name).toBe("lrc-student-d16.zip");
    const back = unzipStudent(zip.bytes);
    expect([...back.keys()].sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    for (const [k, v] of files) expect(Buffer.compare(back.get(k)!, v), k).toBe(0);
    expect(Object.keys(unzipSync(zip.bytes)).every((n) => n.startsWith("lrc-student-d16/"))).toBe(true);
  });

  it("rejects bad settings and files with messages naming them", async () => {
    const demo = await buildDemo(TEXTS.slice(0, 3), { ...small, pretrainSteps: 1 });
    const opts = { ...DEFAULT_OPTIONS, hiddenSize: 16, steps: 5, batchSize: 2, seqLen: 16 };
    await expect(DistillSession.create(demo.teacher, demo.corpus, { ...opts, hiddenSize: 64 })).rejects.toThrow(/must be smaller than the teacher's hidden_size 32/);
    await expect(DistillSession.create(demo.teacher, "  ", opts)).rejects.toThrow(/corpus: the text is empty/);
    await expect(DistillSession.create(demo.teacher, "Four score.", opts)).rejects.toThrow(/too few/);
    const noTok = new Map([...demo.teacher].filter(([k]) => k !== "tokenizer.json"));
    await expect(DistillSession.create(noTok, demo.corpus, opts)).rejects.toThrow(/teacher\/tokenizer\.json: missing/);
    const noWeights = new Map([...demo.teacher].filter(([k]) => k !== "model.safetensors"));
    await expect(DistillSession.create(noWeights, demo.corpus, opts)).rejects.toThrow(/^teacher\/model\.safetensors: no such file/);
  });
});
