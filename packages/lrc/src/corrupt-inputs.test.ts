// Lying or corrupt inputs to the training runs (issue #20): shards of another tokenizer, a --seq-len beyond
// the model's positions, a corrupted val shard, damaged or lying checkpoints (each refused by name, and
// --resume falling back to the newest complete, verified checkpoint).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CausalLM, parseConfig, saveCausalLM } from "@lrc-ts/nn";
import { readManifest } from "@lrc-ts/data";
import { distill, pretrain } from "./run.js";
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
