// Test fixtures for the lrc package: a learnable synthetic token corpus written as a shard directory, tiny
// model configs, and a way to run the `lrc` CLI in a child process (for kill -9 / Ctrl-C tests).

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ShardDirectoryWriter, sha256Hex } from "@lrc-ts/data";
import { Rng } from "@lrc-ts/tensor-core";

export const REPO_ROOT = path.resolve(import.meta.dirname, "../../../..");
export const CLI = path.resolve(import.meta.dirname, "../cli.ts");

/** The placeholder tokenizer.json the tests copy into their models; writeMarkovShards records its sha256 by default. */
export const TINY_TOKENIZER_JSON = "{}\n";

/**
 * Documents from a sparse Markov chain over `vocab` tokens (each token has 3 likely successors), so a
 * model can learn it quickly and CE falls well below ln(vocab).
 */
export function writeMarkovShards(dir: string, opts: { vocab: number; trainTokens: number; valTokens: number; seed?: number; tokenizerHash?: string }): void {
  const r = new Rng(opts.seed ?? 1);
  const V = opts.vocab;
  const next = Array.from({ length: V }, () => [r.int(V - 1) + 1, r.int(V - 1) + 1, r.int(V - 1) + 1]);
  const w = new ShardDirectoryWriter({ out: dir, vocabSize: V, eosId: 0, tokenizerHash: opts.tokenizerHash ?? sha256Hex(new TextEncoder().encode(TINY_TOKENIZER_JSON)), shardTokens: 4096 });
  for (const [split, total] of [["train", opts.trainTokens], ["val", opts.valTokens]] as const) {
    let written = 0;
    while (written < total) {
      const len = 20 + r.int(40);
      const doc: number[] = [1 + r.int(V - 1)];
      for (let i = 1; i < len; i++) {
        const p = r.uniform();
        const succ = next[doc[i - 1]!]!;
        doc.push(p < 0.7 ? succ[0]! : p < 0.9 ? succ[1]! : succ[2]!);
      }
      w.addDocument(split, doc);
      written += doc.length + 1;
    }
  }
  w.finish();
}

/** A tiny Qwen2 config.json object. */
export function tinyConfigJson(o: { hidden: number; layers?: number; vocab?: number; tied?: boolean; ffn?: number }): Record<string, unknown> {
  return {
    architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", vocab_size: o.vocab ?? 64, hidden_size: o.hidden,
    intermediate_size: o.ffn ?? 2 * o.hidden, num_hidden_layers: o.layers ?? 2, num_attention_heads: 4, num_key_value_heads: 2,
    max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: o.tied ?? true, initializer_range: 0.02,
  };
}

export function writeJson(file: string, v: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(v, null, 2)}\n`);
}

/** Starts `lrc <args>` in a child node process (TypeScript sources through tsx). */
export function spawnCli(args: readonly string[]): { child: ChildProcess; stdout: () => string; stderr: () => string; exit: Promise<{ code: number | null; signal: string | null }> } {
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", CLI, ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, FORCE_COLOR: "0" },
  });
  let out = "", err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exit };
}

/** Resolves once `cond()` holds (polling), or rejects after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
