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

// The dtype of the embedding of every model the commands load (the loader itself is nn's, unchanged).
const loaded = vi.hoisted(() => [] as string[]);
vi.mock("@lrc-ts/nn", async (importOriginal) => {
  const nn = await importOriginal<typeof import("@lrc-ts/nn")>();
  return {
    ...nn,
    loadCausalLM: async (...a: Parameters<typeof nn.loadCausalLM>) => {
      const m = await nn.loadCausalLM(...a);
      loaded.push(m.weights().embed.dtype);
      return m;
    },
  };
});

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
    const speed = JSON.parse(r.out) as { seconds: number; tokens_per_s: number; peak_rss_bytes: number };
    expect(speed.seconds).toBeGreaterThan(0);
    expect(speed.tokens_per_s).toBeCloseTo(got.tokens / speed.seconds, 6);
    expect(speed.peak_rss_bytes).toBeGreaterThan(2 ** 20);
  });

  it("memory is flat in the number of tokens: once warm, scoring 20 windows allocates no fresh buffers", async () => {
    const model = await loadCausalLM(modelDir);
    const ids = Array.from({ length: 16 * 20 + 1 }, (_, i) => (i * 7) % 96);
    await evaluate(model, ids.slice(0, 33), { window: 16 }); // fills the buffer pool
    const before = bufferPoolStats().freshBytes;
    await evaluate(model, ids, { window: 16 });
    expect(bufferPoolStats().freshBytes - before).toBe(0);
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
    expect(b.out).toMatch(/^loss \d+\.\d{4} {2}perplexity \d+\.\d{3} {2}tokens \d+ {2}window 128 \(max_position_embeddings\) {2}\(\d+\.\d s, \d+ tokens\/s, peak RSS \d+\.\d\d GiB\)$/);
    expect(JSON.parse(a.out).window).toBe(8);
  });

  it("defaults to the window recorded in config.json by training (lrc_ts.train_seq_len) and says so", async () => {
    const trained = path.join(root, "trained-model");
    fs.cpSync(modelDir, trained, { recursive: true });
    const cfgFile = path.join(trained, "config.json");
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, "utf8")), lrc_ts: { train_seq_len: 8 } }));
    const ids = loadTokenizer(modelDir).encode(TEXT);
    const want = await evaluate(await loadCausalLM(modelDir), ids, { window: 8 });
    const r = await run(["eval", "--model", trained, "--text", textFile]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ {2}window 8 \(the trained window\) {2}\(/);
    expect(Number(/^loss (\S+)/.exec(r.out)![1])).toBeCloseTo(want.loss, 4);
    const w = await run(["eval", "--model", trained, "--text", textFile, "--window", "16", "--json"]);
    expect(JSON.parse(w.out).window).toBe(16);
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

  it("--tokens N scores the first N tokens (--data: whole windows); fewer than one window is refused", async () => {
    const ids = loadTokenizer(modelDir).encode(TEXT);
    const want = await evaluate(await loadCausalLM(modelDir), ids.slice(0, 21), { window: 8 });
    const t = JSON.parse((await run(["eval", "--model", modelDir, "--text", textFile, "--window", "8", "--tokens", "20", "--json"])).out);
    expect(t.tokens).toBe(20);
    expect(t.loss).toBe(want.loss);
    const shards = path.join(root, "shards-tokens");
    const docs = Array.from({ length: 8 }, (_, i) => `${TEXT} ${i}`);
    await writeShards({ tokenizer: loadTokenizer(modelDir), out: shards, trainDocuments: docs, valDocuments: docs.slice(0, 1) });
    const base = ["eval", "--model", modelDir, "--data", shards, "--split", "train", "--window", "8", "--batch-size", "3", "--json"];
    const all = JSON.parse((await run(base)).out);
    expect(all.tokens).toBeGreaterThan(80);
    // 5 windows of 8: a batch of 3, then a batch cut to 2.
    const five = JSON.parse((await run([...base, "--tokens", "47"])).out);
    expect(five.tokens).toBe(40);
    const byWindow = JSON.parse((await run([...base, "--tokens", "40", "--batch-size", "1"])).out);
    expect(five.loss).toBeCloseTo(byWindow.loss, 6);
    expect(five.loss).not.toBe(all.loss);
    const few = await run([...base, "--tokens", "7"]);
    expect(few.code).toBe(1);
    expect(few.err).toContain("--tokens 7 is less than one window of 8 tokens");
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

describe("16-bit models", () => {
  it("eval, generate and eval-tasks keep a BF16 checkpoint 16-bit on cpu (--model-dtype float32 widens it), with the same results", async () => {
    const bf16 = path.join(root, "bf16");
    await saveCausalLM(await loadCausalLM(modelDir), bf16, { dtype: "BF16", tokenizerFrom: modelDir });
    const arc = path.join(root, "arc16.jsonl");
    fs.writeFileSync(arc, JSON.stringify({ id: "1", question: "Which is a planet?", choices: { text: ["the sun", "mars"], label: ["A", "B"] }, answerKey: "B" }) + "\n");
    const out = new Map<string, string>();
    for (const dtype of ["default", "float32"] as const) {
      const flag = dtype === "default" ? [] : ["--model-dtype", dtype];
      for (const argv of [
        ["eval", "--model", bf16, "--text", textFile, "--window", "16", "--json"],
        ["generate", "--model", bf16, "--prompt", "the cat", "--max-tokens", "6", "--json"],
        ["eval-tasks", "--model", bf16, "--task", `arc_easy=${arc}`, "--json"],
      ]) {
        loaded.length = 0;
        const r = await run([...argv, ...flag, "--backend", "cpu"]);
        expect(r.err).toBe("");
        expect(loaded).toEqual([dtype === "default" ? "bfloat16" : "float32"]);
        const o = JSON.parse(r.out.trim().split("\n").at(-1)!) as Record<string, unknown>; // eval-tasks: the table, then the JSON
        delete o.seconds, delete o.tokens_per_s, delete o.peak_rss_bytes;
        if (dtype === "default") out.set(argv[0]!, JSON.stringify(o));
        else expect(JSON.stringify(o)).toBe(out.get(argv[0]!)); // bit for bit
      }
    }
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
