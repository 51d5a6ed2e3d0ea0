// Training recipes brought from PyTorch / HF Trainer: AdamW's betas, epsilon and weight decay with
// parameter groups (no decay on biases, norm gains and, pretraining, the embedding), run.json, a fixed
// validation split (--val-data, tokenize --val-files), the warmup check and the clone terms logged at α = 0.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CausalLM, parseConfig } from "@lrc-ts/nn";
import { ShardDirectoryWriter, openShards } from "@lrc-ts/data";
import { parseFlags } from "./cli/args.js";
import { trainFlags, trainOptions } from "./commands/train-flags.js";
import { LowRankClone } from "./clone.js";
import { distill, pretrain } from "./node/run.js";
import { readMetrics } from "./node/metrics.js";
import type { TrainRow } from "./node/metrics.js";
import { LmTask, LrcTask } from "./task.js";
import { Trainer } from "./trainer.js";
import { runTraining } from "./node/train-loop.js";
import { spawnCli, tinyConfigJson, writeJson, writeMarkovShards } from "./testing-internal/fixtures.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-recipes-"));
const data = path.join(root, "shards");
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
beforeAll(() => writeMarkovShards(data, { vocab: 64, trainTokens: 3000, valTokens: 400 }));

const config = parseConfig(tinyConfigJson({ hidden: 16, vocab: 64, tied: false }));

/** A pretraining trainer of a fresh tiny Qwen2 (q/k/v biases, untied head) for `steps` steps. */
async function trainLm(out: string, opts: { weightDecay?: number; decayAll?: boolean; steps?: number; beta2?: number; adamEps?: number }) {
  const model = new CausalLM(config, { seed: 3 });
  const reader = openShards(data, { seqLen: 8, batchSize: 2, seed: 0 });
  try {
    const trainer = new Trainer(new LmTask(model), reader, null, { steps: opts.steps ?? 1, lr: 1e-2, schedule: "constant", warmupSteps: 0, ...opts });
    await runTraining(trainer, { outDir: out, progress: false, log: () => {} });
    return { trainer, model: Object.fromEntries(model.namedParameters().map(([n, t]) => [n, Float64Array.from(t.buf)])) };
  } finally {
    reader.close();
  }
}

describe("AdamW settings and weight-decay groups", () => {
  it("pretraining: biases, norm gains and the embedding are not decayed; every other tensor is, by exactly lr·wd·w", async () => {
    const init = Object.fromEntries(new CausalLM(config, { seed: 3 }).namedParameters().map(([n, t]) => [n, Float64Array.from(t.buf)]));
    const plain = await trainLm(path.join(root, "wd0"), { weightDecay: 0 });
    const decayed = await trainLm(path.join(root, "wd"), { weightDecay: 0.5 });
    const { decay, noDecay } = decayed.trainer.groups;
    expect(noDecay).toEqual(expect.arrayContaining(["model.embed_tokens.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight",
      "model.layers.1.post_attention_layernorm.weight", "model.layers.0.self_attn.q_proj.bias"]));
    expect(noDecay.every((n) => n.endsWith(".bias") || n.endsWith("norm.weight") || n === "model.embed_tokens.weight")).toBe(true);
    expect(decay).toEqual(expect.arrayContaining(["lm_head.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"]));
    expect([...decay, ...noDecay].sort()).toEqual(Object.keys(init).sort());
    // One step from the same init on the same batch: the Adam update is the same, so the runs differ by the
    // decoupled decay alone, w · (1 - lr·wd), on the decayed tensors, and not at all on the others.
    for (const n of noDecay) expect(decayed.model[n], n).toEqual(plain.model[n]);
    for (const n of decay) {
      const w0 = init[n]!, a = decayed.model[n]!, b = plain.model[n]!;
      for (let i = 0; i < w0.length; i++) expect(a[i]! - b[i]!).toBeCloseTo(-1e-2 * 0.5 * w0[i]!, 6);
    }
    const all = await trainLm(path.join(root, "wd-all"), { weightDecay: 0.5, decayAll: true });
    expect(all.trainer.groups.noDecay).toEqual([]);
    expect(all.model["model.norm.weight"]).not.toEqual(plain.model["model.norm.weight"]);
  });

  it("run.json lists the groups and the AdamW settings, written atomically", async () => {
    const out = path.join(root, "runjson");
    const { trainer } = await trainLm(out, { weightDecay: 0.1, beta2: 0.95, adamEps: 1e-6, steps: 2 });
    const run = JSON.parse(fs.readFileSync(path.join(out, "run.json"), "utf8"));
    expect(run.configHash).toBe(trainer.configHash);
    expect(run.optimizer).toMatchObject({ kind: "adamw", betas: [0.9, 0.95], eps: 1e-6, weightDecay: 0.1, decayAll: false });
    expect(run.optimizer.groups).toEqual([{ weightDecay: 0.1, params: trainer.groups.decay }, { weightDecay: 0, params: trainer.groups.noDecay }]);
    expect(run.config.noDecay).toEqual(trainer.groups.noDecay);
    // Without weight decay, or with every tensor decayed, the groups do not change the math, and the
    // configuration (which a resumed checkpoint must match) has no noDecay entry.
    const plain = await trainLm(path.join(root, "runjson-wd0"), {});
    expect(plain.trainer.identity).not.toHaveProperty("noDecay");
    expect(plain.trainer.groups.noDecay.length).toBeGreaterThan(0);
    const all = await trainLm(path.join(root, "runjson-all"), { weightDecay: 0.1, decayAll: true });
    expect(all.trainer.identity).not.toHaveProperty("noDecay");
    expect(fs.readdirSync(out).filter((f) => f.includes(".tmp"))).toEqual([]);
  });

  it("distillation: the student gains are not decayed, every projection is", async () => {
    const teacher = new CausalLM(parseConfig(tinyConfigJson({ hidden: 32, vocab: 64 })), { seed: 1 });
    const task = new LrcTask(new LowRankClone(teacher, { hiddenSize: 16 }));
    const names = Object.keys(task.params());
    const off = names.filter((n) => task.noDecay(n));
    expect(off.sort()).toEqual(["layers.0.input_layernorm", "layers.0.post_attention_layernorm", "layers.1.input_layernorm", "layers.1.post_attention_layernorm", "norm"]);
    for (const n of names) if (!off.includes(n)) expect(task.params()[n]!.shape, n).toHaveLength(2);
  });

  it("the CLI flags: HF Trainer defaults, checked ranges", () => {
    const base = ["--data", "d", "--out", "o", "--steps", "3"];
    expect(trainOptions(parseFlags(base, trainFlags))).toMatchObject({ weightDecay: 0, decayAll: false, beta1: 0.9, beta2: 0.999, adamEps: 1e-8 });
    expect(trainOptions(parseFlags(base, trainFlags)).valData).toBeUndefined();
    expect(trainOptions(parseFlags([...base, "--val-data", "held"], trainFlags)).valData).toBe("held");
    expect(trainOptions(parseFlags([...base, "--adam-beta2", "0.95", "--adam-eps", "1e-6", "--weight-decay", "0.1", "--decay-all"], trainFlags)))
      .toMatchObject({ weightDecay: 0.1, decayAll: true, beta2: 0.95, adamEps: 1e-6 });
    expect(() => trainOptions(parseFlags([...base, "--adam-beta1", "1"], trainFlags))).toThrow(/--adam-beta1 must be in \[0, 1\), got 1/);
    expect(() => trainOptions(parseFlags([...base, "--adam-eps", "0"], trainFlags))).toThrow(/--adam-eps must be > 0/);
  });
});

describe("warmup longer than the run", () => {
  it("is refused naming both numbers, before anything is written", async () => {
    writeJson(path.join(root, "config.json"), tinyConfigJson({ hidden: 16, vocab: 64 }));
    const out = path.join(root, "warmup");
    const p = spawnCli(["pretrain", "--config", path.join(root, "config.json"), "--data", data, "--out", out, "--tokens", "80",
      "--batch-size", "2", "--seq-len", "8", "--warmup-steps", "6", "--no-progress"]);
    const ex = await p.exit;
    expect(ex.code).toBe(1);
    expect(p.stderr()).toContain("lrc pretrain: warmup of 6 steps is longer than the run's 5 steps");
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe("clone terms logged at alpha 0", () => {
  const teacher = new CausalLM(parseConfig(tinyConfigJson({ hidden: 32, vocab: 64 })), { seed: 1 });
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 7 + 3) % 64);
  const batch = { inputs: ids, targets: Int32Array.from(ids, (x) => (x + 1) % 64), shape: [2, 8] as const };
  const run = (opts: { alpha: number; logCloneTerms?: boolean }) => {
    const clone = new LowRankClone(teacher, { hiddenSize: 16, seed: 4, temperature: 2, ...opts });
    const r = clone.forward(batch);
    r.total.backward();
    const grads = Object.fromEntries(Object.entries(clone.params).map(([n, p]) => [n, Float64Array.from(p.grad!.buf)]));
    const terms = Object.fromEntries(Object.entries(r.terms).map(([n, t]) => [n, { value: t.item(), onTape: t.requiresGrad }]));
    return { total: r.total.item(), clone: r.clone?.item() ?? null, terms, grads };
  };

  it("are computed without gradient and leave the loss and its gradients bit for bit as without them", () => {
    const logged = run({ alpha: 0 }), off = run({ alpha: 0, logCloneTerms: false }), trained = run({ alpha: 0.5 });
    expect(Object.keys(off.terms)).toEqual([]);
    expect(off.clone).toBeNull();
    expect(Object.keys(logged.terms).sort()).toEqual(Object.keys(trained.terms).sort());
    expect(Object.keys(logged.terms)).toHaveLength(2 * 7);
    for (const [n, t] of Object.entries(logged.terms)) {
      expect(t.onTape, n).toBe(false);
      expect(t.value, n).toBe(trained.terms[n]!.value);
    }
    expect(logged.clone).toBe(trained.clone);
    expect(logged.total).toBe(off.total);
    for (const n of Object.keys(off.grads)) expect(logged.grads[n], n).toEqual(off.grads[n]);
    expect(trained.total).toBeCloseTo(off.total + 0.5 * trained.clone!, 5);
  });

  it("reach metrics.jsonl in a distill run with alpha 0 (not with logCloneTerms false)", async () => {
    const base = { teacher, hiddenSize: 16, data, steps: 2, batchSize: 2, seqLen: 8, alpha: 0, temperature: 2, progress: false, log: () => {} };
    for (const logCloneTerms of [undefined, false]) {
      const out = path.join(root, `alpha0-${String(logCloneTerms)}`);
      await distill({ ...base, out, ...(logCloneTerms !== undefined ? { logCloneTerms } : {}) });
      const rows = readMetrics(path.join(out, "metrics.jsonl")).filter((r): r is TrainRow => r.type === "train");
      const keys = Object.keys(rows[0]!.losses);
      expect(JSON.parse(fs.readFileSync(path.join(out, "run.json"), "utf8"))).toMatchObject({ command: "distill", logCloneTerms: logCloneTerms ?? true });
      if (logCloneTerms === false) expect(keys.sort()).toEqual(["ce", "kl", "total"]);
      else expect(keys).toEqual(expect.arrayContaining(["clone", "layers.0.q", "layers.1.down"]));
    }
  });
});

describe("--val-data: a fixed validation set in a second shard directory", () => {
  const cfg = () => path.join(root, "config.json");
  const base = { steps: 3, batchSize: 2, seqLen: 8, lr: 1e-2, warmupSteps: 1, evalEvery: 3, seed: 1, progress: false, log: () => {} };
  beforeAll(() => writeJson(cfg(), tinyConfigJson({ hidden: 16, vocab: 64 })));
  const evalRows = (out: string) => readMetrics(path.join(out, "metrics.jsonl")).filter((r) => r.type === "eval");

  it("evaluates on its val split, or on its train split when it has none; run.json names it", async () => {
    const same = path.join(root, "vd-same"), plain = path.join(root, "vd-plain");
    const a = await pretrain({ config: cfg(), data, valData: data, out: same, ...base });
    const b = await pretrain({ config: cfg(), data, out: plain, ...base });
    expect(a.val!.loss).toBe(b.val!.loss);
    expect(JSON.parse(fs.readFileSync(path.join(same, "run.json"), "utf8"))).toMatchObject({
      command: "pretrain", configFile: cfg(), teacher: null, data, evalData: { dir: data, split: "val" }, batchSize: 2, seqLen: 8, evalEvery: 3,
      exportTo: path.join(same, "model")
    });

    const trainOnly = path.join(root, "train-only"), held = path.join(root, "held-out");
    writeMarkovShards(trainOnly, { vocab: 64, trainTokens: 2000, valTokens: 0, seed: 1 });
    writeMarkovShards(held, { vocab: 64, trainTokens: 300, valTokens: 0, seed: 9 });
    const out = path.join(root, "vd-held");
    const lines: string[] = [];
    const r = await pretrain({ config: cfg(), data: trainOnly, valData: held, out, ...base, log: (l) => lines.push(l) });
    expect(r.val!.tokens).toBeGreaterThan(0);
    expect(evalRows(out)).toHaveLength(1);
    expect(lines.join("\n")).toContain(`evaluating on the train split of ${held}`);
    expect(JSON.parse(fs.readFileSync(path.join(out, "run.json"), "utf8")).evalData).toEqual({ dir: held, split: "train" });
    // Without --val-data the same train-only data skips evaluation.
    const skipped = await pretrain({ config: cfg(), data: trainOnly, out: path.join(root, "vd-none"), ...base });
    expect(skipped.val).toBeNull();
  });

  it("refuses a directory of another tokenizer, naming its manifest", async () => {
    const other = path.join(root, "other-tok");
    const w = new ShardDirectoryWriter({ out: other, vocabSize: 64, eosId: 0, tokenizerHash: "1".repeat(64), shardTokens: 4096 });
    w.addDocument("val", Array.from({ length: 50 }, (_, i) => 1 + (i % 63)));
    w.finish();
    await expect(pretrain({ config: cfg(), data, valData: other, out: path.join(root, "vd-bad"), ...base }))
      .rejects.toThrow(`${path.join(other, "manifest.json")}: tokenized with another tokenizer`);
  });
});
