// The platform-neutral entry points (packages/*/src/browser.ts, what a browser bundle gets through the
// "browser" export condition): their static import graphs reach no Node module, and the whole in-memory
// path works: pretrain a tiny teacher and Low-Rank-Clone it with the Trainer over tokens in memory (losses
// fall), export the student as files and load them back with the same logits; and the Node entry exports
// the same classes.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { CausalLM, loadCausalLMFromFiles, makeConfig } from "@lrc-ts/nn/browser";
import { TokenWindowReader } from "@lrc-ts/data/browser";
import { Rng, noGrad } from "@lrc-ts/tensor-core/browser";
import { isNodeBuiltin, runtimeImports } from "./testing-internal/imports.js";
import * as browserEntry from "./browser.js";
import * as nodeEntry from "./index.js";
import { LmTask, LowRankClone, LrcTask, Trainer, tokenEvalSource } from "./browser.js";

const PACKAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-browser-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Every module reachable from `entry` without leaving the workspace packages' browser entries. */
function browserGraph(entry: string): { files: Set<string>; external: Map<string, string> } {
  const files = new Set<string>();
  const external = new Map<string, string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of runtimeImports(fs.readFileSync(file, "utf8"))) {
      if (spec.startsWith(".")) todo.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, ".ts")));
      else if (spec.startsWith("@lrc-ts/")) todo.push(path.join(PACKAGES, spec.slice("@lrc-ts/".length).split("/")[0]!, "src", "browser.ts"));
      else external.set(spec, path.relative(PACKAGES, file));
    }
  }
  return { files, external };
}

describe("browser entry points", () => {
  it.each(["tensor-core", "nn", "data", "lrc"])("%s: no Node module is reachable", (pkg) => {
    const { files, external } = browserGraph(path.join(PACKAGES, pkg, "src", "browser.ts"));
    expect(files.size).toBeGreaterThan(1);
    const node = [...external].filter(([spec]) => isNodeBuiltin(spec));
    expect(node, `Node modules imported by: ${node.map(([s, f]) => `${f} -> ${s}`).join(", ")}`).toEqual([]);
    for (const [spec] of external) expect(["gpu.js", "@huggingface/tokenizers"]).toContain(spec);
  });

  it("the graph walker sees Node imports where there are some", () => {
    const { external } = browserGraph(path.join(PACKAGES, "lrc", "src", "index.ts"));
    expect([...external.keys()]).toContain("node:fs");
  });
});

/** A token stream from a sparse random Markov chain (3 successors per token), documents joined by 0. */
function markovTokens(vocab: number, n: number, seed: number): Int32Array {
  const r = new Rng(seed);
  const next = Array.from({ length: vocab }, () => [r.int(vocab - 1) + 1, r.int(vocab - 1) + 1, r.int(vocab - 1) + 1]);
  const out = new Int32Array(n);
  let prev = 1;
  for (let i = 0; i < n; i++) {
    prev = i % 50 === 49 ? 0 : next[prev]![r.int(3)]!;
    out[i] = prev;
  }
  return out;
}

describe("the in-memory path (what the browser example runs)", () => {
  it("pretrains a teacher, clones it with falling losses, exports files that load back", async () => {
    const V = 48;
    const tokens = markovTokens(V, 6000, 3);
    const config = makeConfig({
      model_type: "qwen2", vocab_size: V, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true,
    });
    const teacher = new CausalLM(config, { seed: 1 });
    const pre = new Trainer(new LmTask(teacher), new TokenWindowReader(tokens, { seqLen: 16, batchSize: 8, seed: 1 }), null, {
      steps: 80, lr: 1e-2, warmupSteps: 5,
    });
    const first = (await pre.step1()).losses.ce!;
    let last = first;
    while (pre.step < 80) last = (await pre.step1()).losses.ce!;
    expect(last).toBeLessThan(first - 1);
    teacher.freeze();

    const clone = new LowRankClone(teacher, { hiddenSize: 16, alpha: 0.5, temperature: 2 });
    const val = tokenEvalSource(tokens.subarray(0, 600), { seqLen: 16, batchSize: 4, maxBatches: 4 });
    const cfg = { steps: 40, lr: 5e-3, warmupSteps: 2 } as const;
    const source = () => new TokenWindowReader(tokens, { seqLen: 16, batchSize: 4, seed: 2 });
    const trainer = new Trainer(new LrcTask(clone), source(), val, cfg);
    const before = (await trainer.evaluate())!;
    const losses: Array<Record<string, number>> = [];
    while (trainer.step < cfg.steps) losses.push((await trainer.step1()).losses);
    const after = (await trainer.evaluate())!;
    const mean = (rows: typeof losses, k: string) => rows.reduce((s, r) => s + r[k]!, 0) / rows.length;
    for (const k of ["total", "ce", "kl"]) expect(mean(losses.slice(-5), k)).toBeLessThan(mean(losses.slice(0, 5), k));
    expect(after.loss).toBeLessThan(before.loss);
    expect(after.teacherLoss).toBe(before.teacherLoss);

    const files = await clone.exportStudentFiles({ tokenizerFiles: new Map([["tokenizer.json", new TextEncoder().encode("{}")]]) });
    expect([...files.keys()].sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    expect(JSON.parse(new TextDecoder().decode(files.get("config.json")!)).hidden_size).toBe(16);
    const student = await loadCausalLMFromFiles(files);
    const folded = await clone.fold();
    const ids = [[1, 5, 9, 2, 7, 3]];
    const a = noGrad(() => student.logits(ids)).buf, b = noGrad(() => folded.logits(ids)).buf;
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 5);
  });

  it("@lrc-ts/lrc and @lrc-ts/lrc/browser export the same classes; the Node entry adds only names of its own", async () => {
    const node = await import("@lrc-ts/lrc");
    const browser = await import("@lrc-ts/lrc/browser");
    expect(node.LowRankClone).toBe(browser.LowRankClone);
    for (const name of ["LowRankClone", "LrcTask", "LmTask", "Trainer", "Projections"] as const) expect(node[name], name).toBe(browser[name]);
    for (const [name, value] of Object.entries(browserEntry)) expect((nodeEntry as Record<string, unknown>)[name], name).toBe(value);
    // Types too: a name exported by both entries would be two declarations (index.ts's shadows browser.ts's `export *`).
    const exported = (file: string) => {
      const code = fs.readFileSync(path.join(PACKAGES, "lrc", "src", file), "utf8");
      return [...code.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)].flatMap((m) => m[1]!.split(",").map((n) => n.trim().split(/\s+as\s+/).pop()!).filter((n) => n !== ""));
    };
    const browserNames = new Set(exported("browser.ts"));
    expect(browserNames.size).toBeGreaterThan(20);
    expect(exported("index.ts").filter((n) => browserNames.has(n))).toEqual([]);
  });

  it("no two packages export different values under one name (one CheckpointError, one clock, ...)", async () => {
    const entries = {
      "tensor-core": await import("@lrc-ts/tensor-core"), data: await import("@lrc-ts/data"), nn: await import("@lrc-ts/nn"), lrc: await import("@lrc-ts/lrc"),
    } as Record<string, Record<string, unknown>>;
    const first = new Map<string, [string, unknown]>();
    const clashes: string[] = [];
    for (const [pkg, m] of Object.entries(entries))
      for (const [name, value] of Object.entries(m)) {
        const seen = first.get(name);
        if (seen === undefined) first.set(name, [pkg, value]);
        else if (seen[1] !== value) clashes.push(`${name}: ${seen[0]} and ${pkg}`);
      }
    expect(clashes).toEqual([]);
  });
});
