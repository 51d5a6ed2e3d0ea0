// `lrc init` end to end, in-process through `main`: the written checkpoint loads and equals
// `new CausalLM(config, { seed })` (rounded to the dtype), shards above --max-shard-size, copies the
// tokenizer, and bad configs or flags exit 1 with one line naming the file and field or the flag.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { CausalLM, configToJson, loadCausalLM, makeConfig } from "@lrc-ts/nn";
import { run } from "../testing-internal/cli-run.js";
import { parseByteSize } from "./init.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-cli-init-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());


const config = makeConfig({
  model_type: "qwen2", vocab_size: 64, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true, extra: { initializer_range: 0.1 },
});
const configFile = path.join(root, "config.json");
fs.writeFileSync(configFile, JSON.stringify(configToJson(config)));

describe("lrc init", () => {
  it("writes a loadable F16 checkpoint equal to CausalLM's init at that seed, with the tokenizer", async () => {
    const out = path.join(root, "m16");
    const tok = path.join(root, "tok.json");
    fs.writeFileSync(tok, '{"model":{}}');
    const r = await run(["init", "--config", configFile, "--out", out, "--dtype", "f16", "--seed", "4", "--tokenizer", tok, "--json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out);
    const want = new CausalLM(config, { seed: 4 });
    const n = want.namedParameters().reduce((a, [, t]) => a + t.size, 0);
    expect(summary).toMatchObject({ out, parameters: n, bytes: 2 * n, dtype: "f16", files: [path.join(out, "model.safetensors")] });
    expect(fs.readdirSync(out).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    expect(JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")).torch_dtype).toBe("float16");
    const back = await loadCausalLM(out);
    for (const [name, t] of want.namedParameters()) {
      const got = back.namedParameters().find(([m]) => m === name)![1].buf;
      // f16 keeps 11 significant bits: relative error at most 2^-11 (these values are far from subnormal)
      t.buf.forEach((v, i) => expect(Math.abs(got[i]! - v), name).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 1e-7));
    }
  });

  it("--num-hidden-layers writes the config's shape with that many layers, equal to CausalLM's init of it at the seed", async () => {
    const out = path.join(root, "one-layer");
    const r = await run(["init", "--config", configFile, "--out", out, "--seed", "4", "--num-hidden-layers", "1"]);
    expect(r.code, r.err).toBe(0);
    const written = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    expect(written.num_hidden_layers).toBe(1);
    expect(written.hidden_size).toBe(16);
    const back = await loadCausalLM(out);
    const want = new CausalLM({ ...config, num_hidden_layers: 1 }, { seed: 4 });
    expect(back.namedParameters().map(([n]) => n)).toEqual(want.namedParameters().map(([n]) => n));
    for (const [name, t] of want.namedParameters()) expect(back.namedParameters().find(([m]) => m === name)![1].buf, name).toEqual(t.buf);
    const bad = await run(["init", "--config", configFile, "--out", path.join(root, "zero-layers"), "--num-hidden-layers", "0"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("--num-hidden-layers must be positive, got 0");
  });

  it("shards above --max-shard-size and prints a one-line summary", async () => {
    const out = path.join(root, "sharded");
    const r = await run(["init", "--config", configFile, "--out", out, "--max-shard-size", "4KB"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^wrote .*sharded: 0\.0M parameters, 0\.0 MB f32 in \d+ files, \d+\.\d s$/);
    expect(fs.existsSync(path.join(out, "model.safetensors.index.json"))).toBe(true);
    const a = await loadCausalLM(out);
    const b = new CausalLM(config, { seed: 0 });
    expect([...a.model.embed_tokens.weight.buf]).toEqual([...b.model.embed_tokens.weight.buf]);
  });

  it("refuses bad configs naming the file and field, and bad flags naming the flag", async () => {
    const bad = (name: string, json: Record<string, unknown>) => {
      const f = path.join(root, name);
      fs.writeFileSync(f, JSON.stringify(json));
      return f;
    };
    const base = configToJson(config);
    const cases: Array<[string[], RegExp]> = [
      [["--config", bad("kv.json", { ...base, num_key_value_heads: 3 })], /kv\.json: num_key_value_heads: 3 does not divide num_attention_heads 4/],
      [["--config", bad("range.json", { ...base, initializer_range: -1 })], /range\.json: initializer_range: expected a positive number, got -1/],
      [["--config", bad("vocab.json", { ...base, vocab_size: 0 })], /vocab\.json: vocab_size: expected a positive integer, got 0/],
      [["--config", path.join(root, "none.json")], /none\.json: no such file/],
      [["--config", configFile, "--dtype", "f8"], /--dtype must be f32, bf16 or f16, got 'f8'/],
      [["--config", configFile, "--max-shard-size", "lots"], /--max-shard-size expects a size/],
      [["--config", configFile, "--init-std", "0"], /--init-std expects a positive number/],
    ];
    for (const [argv, msg] of cases) {
      const out = path.join(root, "never");
      const r = await run(["init", ...argv, "--out", out]);
      expect(r.code, argv.join(" ")).toBe(1);
      expect(r.err.split("\n")[0]).toMatch(msg);
      expect(fs.existsSync(out)).toBe(false);
    }
  });

  it("parses HF-style sizes", () => {
    expect(parseByteSize("x", "5GB")).toBe(5e9);
    expect(parseByteSize("x", "500mb")).toBe(5e8);
    expect(parseByteSize("x", "1.5KB")).toBe(1500);
    expect(parseByteSize("x", "123")).toBe(123);
    expect(() => parseByteSize("x", "-1GB")).toThrow(/--x expects a size/);
  });
});
