// Lying or corrupt inputs to the training runs (issue #20): shards of another tokenizer, a --seq-len beyond
// the model's positions, a corrupted val shard, damaged or lying checkpoints (each refused by name, and
// --resume falling back to the newest complete, verified checkpoint).

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import { syncBuiltinESMExports } from "node:module";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CausalLM, parseConfig, saveCausalLM } from "@lrc-ts/nn";
import { readManifest } from "@lrc-ts/data";
import fc from "fast-check";
import { corruptedBytes } from "@lrc-ts/tensor-core/testing/fuzz";
import { CheckpointError, readCheckpointState } from "./node/checkpoint.js";
import { main } from "./cli.js";
import { distill, pretrain } from "./node/run.js";
import { splitBackendLine } from "./testing-internal/cli-run.js";
import { TINY_TOKENIZER_JSON, tinyConfigJson, writeJson, writeMarkovShards } from "./testing-internal/fixtures.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-corrupt-"));
const data = path.join(root, "shards");
const teacher = path.join(root, "teacher");
const configFile = path.join(root, "config.json");
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const quiet = { progress: false, log: () => {} } as const;
const base = { teacher, hiddenSize: 8, data, batchSize: 2, seqLen: 8, lr: 1e-3, ...quiet };

beforeAll(async () => {
  writeMarkovShards(data, { vocab: 64, trainTokens: 2000, valTokens: 300 });
  writeJson(configFile, tinyConfigJson({ hidden: 16, vocab: 64 }));
  const tok = path.join(root, "tok");
  fs.mkdirSync(tok);
  fs.writeFileSync(path.join(tok, "tokenizer.json"), TINY_TOKENIZER_JSON);
  await saveCausalLM(new CausalLM(parseConfig(tinyConfigJson({ hidden: 16, vocab: 64 }), "config"), { seed: 1 }), teacher, { tokenizerFrom: tok });
});

/** A copy of the shard directory with `edit` applied to it. */
function shardCopy(name: string, edit: (dir: string) => void): string {
  const dir = path.join(root, name);
  fs.cpSync(data, dir, { recursive: true });
  edit(dir);
  return dir;
}

describe("training refuses data or flags that do not fit the model", () => {
  it("shards made with another tokenizer: distill and pretrain name the tokenizer and the manifest", async () => {
    const other = path.join(root, "other-teacher");
    fs.cpSync(teacher, other, { recursive: true });
    fs.writeFileSync(path.join(other, "tokenizer.json"), '{"model":{}}\n');
    const msg = new RegExp(`${path.join(other, "tokenizer.json")}: tokenizer sha256 .* differs from ${path.join(data, "manifest.json")}`);
    await expect(distill({ ...base, teacher: other, out: path.join(root, "tok-d"), steps: 1 })).rejects.toThrow(msg);
    await expect(pretrain({ config: configFile, teacher: other, data, out: path.join(root, "tok-p"), steps: 1, batchSize: 2, seqLen: 8, ...quiet })).rejects.toThrow(msg);
    const lone = path.join(root, "lone-tokenizer.json");
    fs.writeFileSync(lone, '{"model":{}}\n');
    await expect(pretrain({ config: configFile, tokenizer: lone, data, out: path.join(root, "tok-p2"), steps: 1, batchSize: 2, seqLen: 8, ...quiet })).rejects.toThrow(/differs from .*manifest\.json/);
    // The same tokenizer trains.
    await expect(distill({ ...base, out: path.join(root, "tok-ok"), steps: 1 })).resolves.toMatchObject({ steps: 1 });
  });

  it("--seq-len above max_position_embeddings is refused before training, naming the config", async () => {
    const out = path.join(root, "seqlen");
    await expect(distill({ ...base, seqLen: 65, out, steps: 1 })).rejects.toThrow(`--seq-len 65 exceeds max_position_embeddings 64 of ${path.join(teacher, "config.json")}`);
    await expect(pretrain({ config: configFile, data, out, steps: 1, batchSize: 2, seqLen: 100, ...quiet })).rejects.toThrow(`--seq-len 100 exceeds max_position_embeddings 64 of ${configFile}`);
    expect(fs.existsSync(path.join(out, "checkpoints"))).toBe(false);
  });

  it("--hidden-size above the teacher's, and a config too big for this machine, are refused before allocating", async () => {
    await expect(distill({ ...base, hiddenSize: 1_000_000, out: path.join(root, "wide"), steps: 1 })).rejects.toThrow(
      "LowRankClone: hiddenSize (--hidden-size) 1000000 exceeds the teacher's hidden_size 16: a low-rank clone has d <= D",
    );
    const huge = path.join(root, "huge-config.json");
    writeJson(huge, { ...tinyConfigJson({ hidden: 16, vocab: 64 }), num_hidden_layers: 1_000_000_000 });
    const t0 = Date.now();
    await expect(pretrain({ config: huge, data, out: path.join(root, "huge"), steps: 1, batchSize: 2, seqLen: 8, ...quiet })).rejects.toThrow(
      new RegExp(`${huge}: the model's [\\d,]+ parameters need about [\\d.]+ GiB to train \\(weights, gradients and AdamW moments as float32\\), more than this machine's`),
    );
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("a corrupted val shard is refused by name before training (its checksum is verified)", async () => {
    const dir = shardCopy("bad-val", (d) => {
      const val = readManifest(d).shards.find((s) => s.split === "val")!;
      const f = path.join(d, val.file);
      const b = fs.readFileSync(f);
      b[b.length - 2]! ^= 0x01;
      fs.writeFileSync(f, b);
    });
    const val = readManifest(dir).shards.find((s) => s.split === "val")!;
    await expect(distill({ ...base, data: dir, out: path.join(root, "bad-val-run"), steps: 1 })).rejects.toThrow(
      new RegExp(`${path.join(dir, val.file)}: payload checksum mismatch`),
    );
  });
});

describe("checkpoints: every state.json field validated, weights checksummed, --resume falls back", () => {
  const run = path.join(root, "ck-run");
  const opts = { ...base, steps: 4, saveEvery: 2, keepCheckpoints: 2 };
  const step = (n: number) => `step-${String(n).padStart(8, "0")}`;
  beforeAll(async () => {
    await distill({ ...opts, out: run });
  });

  const state = (s: Record<string, unknown>) => (f: string) => {
    const j = JSON.parse(fs.readFileSync(f, "utf8")) as Record<string, unknown>;
    fs.writeFileSync(f, JSON.stringify({ ...j, ...s }));
  };
  const flip = (at: (n: number) => number) => (f: string) => {
    const b = fs.readFileSync(f);
    b[at(b.length)]! ^= 0x10;
    fs.writeFileSync(f, b);
  };
  // [what, file in the latest checkpoint, how it is damaged, what the message says (after the file name)]
  const cases: Array<[string, string, (f: string) => void, RegExp]> = [
    ["step as a string", "state.json", state({ step: "4" }), /"step" must be a non-negative integer, got "4"/],
    ["a negative step", "state.json", state({ step: -1 }), /"step" must be a non-negative integer, got -1/],
    ["a step other than the directory's", "state.json", state({ step: 40 }), /"step" must be 4 \(the directory's step\), got 40/],
    ["tokens as a string", "state.json", state({ tokens: "64" }), /"tokens" must be a non-negative integer/],
    ["a fractional optimizer step", "state.json", state({ optimizerStep: 1.5 }), /"optimizerStep" must be a non-negative integer/],
    ["negative elapsed time", "state.json", state({ elapsedSeconds: -3 }), /"elapsedSeconds" must be a non-negative number/],
    ["configHash not a string", "state.json", state({ configHash: 7 }), /"configHash" must be a string/],
    ["config an array", "state.json", state({ config: [] }), /"config" must be an object/],
    ["reader null", "state.json", state({ reader: null }), /"reader" must be a data reader state \{ version: 1, split, /],
    ["a reader with a string position", "state.json", state({ reader: { version: 1, split: "train", seed: 1, epoch: 0, position: "8", seqLen: 16, batchSize: 2, numWindows: 9 } }), /"reader" must be a data reader state .*"position":"8"/],
    ["rng a string", "state.json", state({ rng: "x" }), /"rng" must be an object/],
    ["rng of three numbers", "state.json", state({ rng: { s: [1, 2, 3], spare: null } }), /"rng" must be \{ s: 4 unsigned 32-bit integers/],
    ["a changed count of the right type", "state.json", state({ tokens: 65 }), /its content hashes to [0-9a-f]{64}, not the "stateSha256" it records/],
    ["no self-checksum", "state.json", state({ stateSha256: undefined }), /"stateSha256" must be 64 hex digits/],
    ["teacherVal a string", "state.json", state({ teacherVal: "1.2" }), /"teacherVal" must be a finite number or null/],
    ["no checksums", "state.json", state({ files: undefined }), /"files" must be an object of checksums/],
    ["a checksum that is not hex", "state.json", state({ files: { "trainable.safetensors": { sha256: "xyz", bytes: 1 }, "optimizer.safetensors": { sha256: "0".repeat(64), bytes: 1 } } }), /"files\.trainable\.safetensors" must be/],
    ["another format", "state.json", state({ format: "other" }), /not an lrc-ts checkpoint/],
    ["truncated state.json", "state.json", (f) => fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 40)), /unreadable checkpoint state/],
    ["truncated weights", "trainable.safetensors", (f) => fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 100)), /100 bytes, but .*state\.json records \d+ \(truncated or replaced\)/],
    ["a flipped bit in the weights", "trainable.safetensors", flip((n) => n - 3), /sha256 [0-9a-f]{64} differs from [0-9a-f]{64} recorded in .*state\.json: the file is corrupt/],
    ["a flipped bit in the weights' header", "trainable.safetensors", flip(() => 20), /sha256 .* differs/],
    ["a flipped bit in the optimizer moments", "optimizer.safetensors", flip((n) => n - 5), /sha256 .* differs/],
    ["missing weights", "trainable.safetensors", (f) => fs.rmSync(f), /cannot read: ENOENT/],
  ];

  it.each(cases)("%s: skipped by name, the run resumes from the previous checkpoint and says so", async (_what, file, damage, msg) => {
    const dir = path.join(root, `ck-${_what.replace(/\W+/g, "-")}`);
    fs.cpSync(run, dir, { recursive: true });
    const bad = path.join(dir, "checkpoints", step(4));
    damage(path.join(bad, file));
    const lines: string[] = [];
    const r = await distill({ ...opts, out: dir, resume: true, log: (l) => lines.push(l) });
    expect(r.steps).toBe(4);
    const note = lines.find((l) => l.startsWith("resuming from"));
    expect(note).toContain(`resuming from ${path.join(dir, "checkpoints", step(2))}, the newest complete, verified checkpoint (skipped: ${path.join(bad, file)}: `);
    expect(note).toMatch(msg);
  });

  it("when no checkpoint verifies, --resume stops naming each damaged one", async () => {
    const dir = path.join(root, "ck-all-bad");
    fs.cpSync(run, dir, { recursive: true });
    for (const n of [2, 4]) flip((k) => k - 1)(path.join(dir, "checkpoints", step(n), "trainable.safetensors"));
    const err = await distill({ ...opts, out: dir, resume: true }).catch((e: Error) => e);
    expect(String(err)).toMatch(/checkpoints: no checkpoint verifies: .*step-00000004\/trainable\.safetensors: sha256 .*; .*step-00000002\/trainable\.safetensors: sha256/);
  });

  it("a verified checkpoint beyond the run's steps is refused", async () => {
    const lines: string[] = [];
    await expect(distill({ ...opts, steps: 3, out: run, resume: true, log: (l) => lines.push(l) })).rejects.toThrow(/"step" 4 is beyond the run's 3 steps/);
  });

  it("random and mutated bytes in state.json: a CheckpointError naming the file, or a valid state (fast-check)", () => {
    const dir = path.join(root, "ck-fuzz", step(4));
    fs.cpSync(path.join(run, "checkpoints", step(4)), dir, { recursive: true });
    const file = path.join(dir, "state.json");
    const valid = fs.readFileSync(file);
    fc.assert(
      fc.property(corruptedBytes(valid), (b) => {
        fs.writeFileSync(file, b);
        try {
          readCheckpointState(dir);
        } catch (e) {
          if (!(e instanceof CheckpointError) || !e.message.startsWith(`${file}: `)) throw e;
        }
      }),
      { numRuns: 300 },
    );
  });

  it("a reader state that does not fit the data names state.json", async () => {
    const dir = path.join(root, "ck-reader");
    fs.cpSync(run, dir, { recursive: true });
    const f = path.join(dir, "checkpoints", step(4), "state.json");
    const { stateSha256: _old, ...j } = JSON.parse(fs.readFileSync(f, "utf8")) as Record<string, unknown>;
    const edited = { ...j, reader: { ...(j.reader as object), position: 3 } };
    fs.writeFileSync(f, JSON.stringify({ ...edited, stateSha256: createHash("sha256").update(JSON.stringify(edited)).digest("hex") }));
    await expect(distill({ ...opts, out: dir, resume: true })).rejects.toThrow(`${f}: "reader" does not fit this data: `);
  });

  it("state.json records the sha256 and size of both weight files", () => {
    const s = JSON.parse(fs.readFileSync(path.join(run, "checkpoints", step(4), "state.json"), "utf8")) as { version: number; files: Record<string, { sha256: string; bytes: number }> };
    expect(s.version).toBe(2);
    for (const f of ["trainable.safetensors", "optimizer.safetensors"])
      expect(s.files[f]!.bytes).toBe(fs.statSync(path.join(run, "checkpoints", step(4), f)).size);
  });
});

describe("a full disk names the file being written", () => {
  afterEach(() => vi.restoreAllMocks());
  const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", syscall: "write" });

  it("while exporting the model", async () => {
    const out = path.join(root, "enospc-export");
    const write = fs.writeFileSync;
    vi.spyOn(fs, "writeFileSync").mockImplementation((f, ...rest) => {
      if (String(f).endsWith("config.json")) throw enospc();
      return write(f, ...(rest as [string]));
    });
    syncBuiltinESMExports(); // nn imports node:fs as a namespace
    try {
      await expect(distill({ ...base, out, steps: 1 })).rejects.toThrow(`${path.join(out, "student")}: cannot write the model: ENOSPC: no space left on device`);
    } finally {
      vi.restoreAllMocks();
      syncBuiltinESMExports();
    }
  });

  it("while writing the loss plot", async () => {
    const out = path.join(root, "enospc-plot");
    const write = fs.writeFileSync;
    vi.spyOn(fs, "writeFileSync").mockImplementation((f, ...rest) => {
      if (String(f).includes("loss.svg")) throw enospc();
      return write(f, ...(rest as [string]));
    });
    await expect(distill({ ...base, out, steps: 1 })).rejects.toThrow(`${path.join(out, "loss.svg")}: cannot write: ENOSPC: no space left on device`);
  });

  it("while writing a checkpoint (the previous one stays the latest)", async () => {
    const out = path.join(root, "enospc-ck");
    const write = fs.writeFileSync;
    vi.spyOn(fs, "writeFileSync").mockImplementation((...a: unknown[]) => {
      // the first checkpoint's state.json is written, the second's (in its temporary directory) is not
      if (String(a[0]).includes("step-00000002")) throw enospc();
      return (write as (...x: unknown[]) => void)(...a);
    });
    await expect(distill({ ...base, out, steps: 2, saveEvery: 1 })).rejects.toThrow(
      `${path.join(out, "checkpoints", "step-00000002")}: cannot write the checkpoint: ENOSPC: no space left on device`,
    );
    expect(fs.readFileSync(path.join(out, "checkpoints", "latest"), "utf8").trim()).toBe("step-00000001");
  });
});

describe("lrc distill / pretrain flags of the wrong type or lying: exit 1 with one line naming the flag", () => {
  afterEach(() => vi.restoreAllMocks());
  async function run(argv: string[]): Promise<{ code: number; err: string }> {
    const err: string[] = [];
    vi.spyOn(console, "log").mockImplementation(() => {});
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const code = await main(argv);
    vi.restoreAllMocks();
    return { code, err: splitBackendLine(err).err };
  }
  const distillArgs = () => ["distill", "--teacher", teacher, "--hidden-size", "8", "--data", data, "--steps", "1", "--batch-size", "2", "--seq-len", "8", "--no-progress"];
  const cases: Array<[string, string[], string | RegExp]> = [
    ["--steps not a number", ["--steps", "abc"], "--steps expects an integer, got 'abc'"],
    ["--steps fractional", ["--steps", "1.5"], "--steps expects an integer, got '1.5'"],
    ["--steps zero", ["--steps", "0"], "--steps must be > 0, got 0"],
    ["--lr NaN", ["--lr", "nan"], "--lr expects a number, got 'nan'"],
    ["--lr negative", ["--lr", "-1"], "--lr must be > 0, got -1"],
    ["--warmup not a fraction", ["--warmup", "1.5"], "--warmup must be a fraction in [0, 1), got 1.5"],
    ["--schedule unknown", ["--schedule", "step"], "--schedule must be linear, cosine or constant, got 'step'"],
    ["--grad-accum zero", ["--grad-accum", "0"], "--grad-accum must be > 0, got 0"],
    ["--keep-checkpoints zero", ["--keep-checkpoints", "0"], "--keep-checkpoints must be > 0, got 0"],
    ["--hidden-size zero", ["--hidden-size", "0"], "--hidden-size must be positive, got 0"],
    ["--hidden-size above the teacher's", ["--hidden-size", "1000000"], "hiddenSize (--hidden-size) 1000000 exceeds the teacher's hidden_size 16"],
    ["--seq-len beyond the positions", ["--seq-len", "100000"], `--seq-len 100000 exceeds max_position_embeddings 64 of ${path.join(teacher, "config.json")}`],
    ["--batch-size that cannot fit in memory", ["--batch-size", "1000000000"], /^lrc distill: --batch-size 1000000000 x --seq-len 8: a step needs about \d+\.\d\d GiB by the memory estimate \(the largest part: activations \d+\.\d\d GiB\), more than \d+\.\d\d GiB, the (machine's memory|cgroup memory limit)/],
    ["--clone-terms unknown", ["--clone-terms", "q,zz"], "--clone-terms: unknown value 'zz' (known: q,k,v,o,gate,up,down)"],
    ["--ban-layers negative", ["--ban-layers", "-1"], "--ban-layers: '-1' is not a layer index"],
    ["--ban-layers beyond the teacher", ["--ban-layers", "7"], /banLayers \(--ban-layers\): layer 7 does not exist \(the teacher has 2 layers\)/],
    ["--clone-layers beyond the teacher", ["--clone-layers", "0,2"], /cloneLayers \(--clone-layers\): layer 2 does not exist \(the teacher has 2 layers\)/],
    ["--attn-out unknown", ["--attn-out", "both"], "--attn-out must be paper or reference, got 'both'"],
    ["--tie-lm-head-projection not a boolean", ["--tie-lm-head-projection", "maybe"], "--tie-lm-head-projection must be true or false, got 'maybe'"],
    ["an unknown flag", ["--learning-rate", "1"], /unknown flag --learning-rate/],
    ["--teacher missing", ["--teacher", path.join(root, "nope")], `${path.join(root, "nope")}: no such model directory`],
    ["--data missing", ["--data", path.join(root, "nope")], `${path.join(root, "nope")}: no such shard directory`],
    // Checked before the teacher is loaded (seconds at real scale): with both wrong, the data directory is named.
    ["--data missing, checked before the teacher loads", ["--teacher", path.join(root, "nope-teacher"), "--data", path.join(root, "nope")], `${path.join(root, "nope")}: no such shard directory`],
    ["--val-data missing, checked before the teacher loads", ["--teacher", path.join(root, "nope-teacher"), "--val-data", path.join(root, "nope")], `${path.join(root, "nope")}: no such shard directory`],
  ];
  it.each(cases)("%s", async (_what, extra, msg) => {
    const r = await run([...distillArgs(), ...extra, "--out", path.join(root, `flags-${_what.replace(/\W+/g, "-")}`)]);
    expect(r.code).toBe(1);
    expect(r.err.split("\n")[0]).toMatch(typeof msg === "string" ? new RegExp(msg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : msg);
  });
});
