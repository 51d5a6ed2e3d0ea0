// `lrc eval` and `lrc generate` end to end, in-process through `main`, on a copy of the nn fixture model
// `qwen2-tied-f32` (vocab 96) with a hand-written 96-token byte-level BPE tokenizer.json: results equal the
// library's, and bad input exits 1 with one line naming the file and the problem.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadTokenizer, writeShards } from "@lrc-ts/data";
import { evaluate, generate, loadCausalLM, saveCausalLM } from "@lrc-ts/nn";
import { bufferPoolStats, setBufferPoolLimit } from "@lrc-ts/tensor-core";
import { run, tinyTokenizerJson } from "../testing-internal/cli-run.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, "..", "..", "..", "nn", "fixtures", "qwen2-tied-f32");
const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-cli-eval-"));
const modelDir = path.join(root, "model");
const textFile = path.join(root, "text.txt");
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const TEXT = "the cat sat on the mat. it is a test of the eval command, and then another line.\nstart to end!";

beforeAll(() => {
  fs.cpSync(fixture, modelDir, { recursive: true });
  fs.rmSync(path.join(modelDir, "golden.safetensors"));
  fs.writeFileSync(path.join(modelDir, "tokenizer.json"), tinyTokenizerJson());
  fs.writeFileSync(textFile, TEXT);
});

describe("lrc eval", () => {
  it("--text --json equals evaluate() over the tokenized file", async () => {
    const r = await run(["eval", "--model", modelDir, "--text", textFile, "--json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const got = JSON.parse(r.out) as { loss: number; perplexity: number; tokens: number };
    const tok = loadTokenizer(modelDir);
    const ids = tok.encode(TEXT);
    expect(tok.decode(ids)).toBe(TEXT);
    const want = await evaluate(await loadCausalLM(modelDir), ids);
    expect(got.tokens).toBe(ids.length - 1);
    expect(got.loss).toBeCloseTo(want.loss, 6);
    expect(got.perplexity).toBeCloseTo(Math.exp(got.loss), 6);
    expect(got.loss).toBeGreaterThan(0);
  });

  it("--pool-limit sets the CPU buffer pool's cache limit; a bad size stops naming the flag", async () => {
    const before = bufferPoolStats().limitBytes;
    try {
      const r = await run(["eval", "--model", modelDir, "--text", textFile, "--json", "--pool-limit", "123MiB"]);
      expect(r.code).toBe(0);
      expect(bufferPoolStats().limitBytes).toBe(123 * 2 ** 20);
      const bad = await run(["eval", "--model", modelDir, "--text", textFile, "--pool-limit", "lots"]);
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(/^lrc eval: --pool-limit: expects a size such as 6GB, 512MiB, 30% \(of the memory\) or a byte count, got 'lots'/);
    } finally {
      setBufferPoolLimit(before);
    }
  });

  it("windows and batches; plain output", async () => {
    const a = await run(["eval", "--model", modelDir, "--text", textFile, "--window", "8", "--batch-size", "3", "--json"]);
    const ids = loadTokenizer(modelDir).encode(TEXT);
    const want = await evaluate(await loadCausalLM(modelDir), ids, { window: 8 });
    expect(JSON.parse(a.out).loss).toBeCloseTo(want.loss, 6);
    const b = await run(["eval", "--model", modelDir, "--text", textFile]);
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/^loss \d+\.\d{4} {2}perplexity \d+\.\d{3} {2}tokens \d+$/);
  });

  it("--data scores a shard split", async () => {
    const shards = path.join(root, "shards");
    const tok = loadTokenizer(modelDir);
    const docs = Array.from({ length: 6 }, (_, i) => `${TEXT} ${i}`);
    await writeShards({ tokenizer: tok, out: shards, trainDocuments: docs.slice(0, 4), valDocuments: docs.slice(4) });
    const r = await run(["eval", "--model", modelDir, "--data", shards, "--split", "train", "--window", "16", "--json"]);
    expect(r.err).toBe("");
    const got = JSON.parse(r.out);
    expect(got.tokens % 16).toBe(0);
    expect(got.tokens).toBeGreaterThan(0);
    expect(Number.isFinite(got.loss)).toBe(true);
  });

  it.each([
    ["neither --text nor --data", () => [], "give exactly one of --text"],
    ["both --text and --data", () => ["--text", textFile, "--data", root], "give exactly one of --text"],
    ["missing text file", () => ["--text", "/nonexistent/t.txt"], "/nonexistent/t.txt: cannot read: ENOENT"],
    ["a text file that is not UTF-8", () => (fs.writeFileSync(path.join(root, "latin1.txt"), Buffer.from("caf\xe9 au lait", "latin1")), ["--text", path.join(root, "latin1.txt")]), `${path.join(root, "latin1.txt")}: invalid UTF-8 at byte offset 3`],
    ["window too large", () => ["--text", textFile, "--window", "5000"], "--window 5000 exceeds max_position_embeddings 128"],
    ["bad split", () => ["--data", root, "--split", "test"], "--split must be train or val"],
  ])("%s exits 1", async (_, extra, msg) => {
    const r = await run(["eval", "--model", modelDir, ...extra()]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(msg);
  });
});

describe("lrc generate", () => {
  it("greedy: streams the decoded continuation, equal to nn's generate", async () => {
    const r = await run(["generate", "--model", modelDir, "--prompt", "the cat", "--max-tokens", "8", "--temperature", "0"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const tok = loadTokenizer(modelDir);
    const model = await loadCausalLM(modelDir);
    const res = await generate(model, tok.encode("the cat"), { maxNewTokens: 8, stopTokens: [2, 0] });
    expect(r.stream).toBe(`${tok.decode(res.tokens)}\n`);
  });

  it("--json reports tokens and the stop reason; sampling is seeded", async () => {
    const argv = ["generate", "--model", modelDir, "--prompt", "on the", "--max-tokens", "6", "--temperature", "1", "--seed", "3", "--json"];
    const a = JSON.parse((await run(argv)).out);
    const b = JSON.parse((await run(argv)).out);
    expect(a).toEqual(b);
    expect(a.tokens.length).toBeLessThanOrEqual(6);
    expect(["length", "stop"]).toContain(a.stopReason);
    expect(a.text).toBe(loadTokenizer(modelDir).decode(a.tokens));
    expect(a.promptTokens).toBe(loadTokenizer(modelDir).encode("on the").length);
  });

  it("rejects bad sampling flags", async () => {
    const r = await run(["generate", "--model", modelDir, "--prompt", "a", "--top-p", "0"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("--top-p must be in (0, 1]");
  });
});

describe("bad model directories exit 1 naming the file", () => {
  const broken = (name: string, edit: (dir: string) => void): string => {
    const dir = path.join(root, name);
    fs.cpSync(modelDir, dir, { recursive: true });
    edit(dir);
    return dir;
  };

  it.each([
    ["no config", (d: string) => fs.rmSync(path.join(d, "config.json")), /config\.json: no such file/],
    [
      "unsupported architecture",
      (d: string) => {
        const f = path.join(d, "config.json");
        fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, "utf8")), architectures: ["GemmaForCausalLM"], model_type: "gemma" }));
      },
      /config\.json: architectures: unsupported architecture "GemmaForCausalLM"/,
    ],
    ["corrupt safetensors", (d: string) => fs.writeFileSync(path.join(d, "model.safetensors"), "not a safetensors file"), /model\.safetensors: /],
    ["missing tokenizer", (d: string) => fs.rmSync(path.join(d, "tokenizer.json")), /has no tokenizer\.json/],
    ["no such directory", (d: string) => fs.rmSync(d, { recursive: true }), /no such model directory/],
  ])("%s", async (name, edit, re) => {
    const dir = broken(name.replace(/ /g, "-"), edit);
    for (const argv of [
      ["eval", "--model", dir, "--text", textFile],
      ["generate", "--model", dir, "--prompt", "the"],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(1);
      expect(r.err.split("\n").length).toBe(1);
      expect(r.err).toMatch(re);
      expect(r.err).toContain(dir);
    }
  });
});

describe("weights that are not finite, or that overflow", () => {
  it("eval refuses a NaN weight at load (naming file and tensor) and a model whose loss overflows (no \"loss\": null)", async () => {
    const nanDir = path.join(root, "nan-weight");
    const m = await loadCausalLM(modelDir);
    m.stateDict()["model.norm.weight"]!.buf[1] = NaN;
    await saveCausalLM(m, nanDir, { tokenizerFrom: modelDir });
    let r = await run(["eval", "--model", nanDir, "--text", textFile, "--json"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${path.join(nanDir, "model.safetensors")}: tensor "model.norm.weight" holds NaN at index 1`);
    // Finite weights whose logits overflow float32: the mean loss is not finite, and eval says so.
    const bigDir = path.join(root, "overflow");
    const b = await loadCausalLM(modelDir);
    b.stateDict()["model.norm.weight"]!.buf.fill(3e38);
    await saveCausalLM(b, bigDir, { tokenizerFrom: modelDir });
    r = await run(["eval", "--model", bigDir, "--text", textFile, "--json"]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(new RegExp(`${bigDir}: the model's mean loss is (NaN|Infinity): its weights overflow on this data \\(no result\\)`));
  });
});
