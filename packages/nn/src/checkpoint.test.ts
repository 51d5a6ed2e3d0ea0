// Model directories: save -> load round trips (tied and untied, F32/F16/BF16 weights, sharded index),
// atomic replacement, tokenizer files copied, and every bad-input case failing with a message that names
// the file and the tensor or field.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { noGrad, readSafetensorsFile, readSafetensorsFileSync, writeSafetensorsFileSync } from "@lrc-ts/tensor-core";
import type { SafetensorsTensorInput } from "@lrc-ts/tensor-core";
import fc from "fast-check";
import { corruptedBytes } from "@lrc-ts/tensor-core/testing/fuzz";
import { SafetensorsError } from "@lrc-ts/tensor-core";
import { afterAll, describe, expect, it } from "vitest";
import { loadCausalLMFromFiles, serializeCausalLM } from "./checkpoint-files.js";
import { ConfigError } from "./config.js";
import { CheckpointError, TORCH_DTYPE, checkpointTensors, configDType, initCheckpoint, loadCausalLM, saveCausalLM } from "./checkpoint.js";
import { configToJson } from "./config.js";
import { CausalLM } from "./models/causal-lm.js";
import { tinyLlama, tinyQwen } from "./testing-internal/tiny.js";
import { parameterCount, parameterShapes, parameterSpecs } from "./weights.js";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures");
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "nn-ckpt-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
const tmpDir = () => path.join(tmpRoot, `m${n++}`);

const IDS = [[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 9, 3]];

/** Writes a model dir by hand: config + the given tensors. */
function writeDir(dir: string, model: CausalLM, tensors: Array<[string, SafetensorsTensorInput]>, config?: Record<string, unknown>): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config ?? configToJson(model.config)));
  writeSafetensorsFileSync(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
}

describe("save -> load", () => {
  it.each([["tied qwen2", tinyQwen()], ["untied llama with biases", tinyLlama()]])("%s gives identical logits", async (_, cfg) => {
    const m = new CausalLM(cfg, { seed: 7, std: 0.3 });
    const dir = tmpDir();
    await saveCausalLM(m, dir);
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "model.safetensors"]);
    const back = await loadCausalLM(dir);
    expect(back.config).toEqual({ ...m.config, extra: { ...m.config.extra, torch_dtype: "float32" } });
    expect([...noGrad(() => back.logits(IDS)).buf]).toEqual([...noGrad(() => m.logits(IDS)).buf]);
    expect(back.namedParameters().map(([k]) => k)).toEqual(m.namedParameters().map(([k]) => k));
  });

  it("a float64 model saves as F32 and loads as float64 on request", async () => {
    const m = new CausalLM(tinyQwen(), { seed: 1, dtype: "float64" });
    const dir = tmpDir();
    await saveCausalLM(m, dir);
    const back = await loadCausalLM(dir, { dtype: "float64" });
    expect(back.model.norm.weight.dtype).toBe("float64");
    const w = m.model.layers.items[0]!.self_attn.q_proj.weight.buf;
    expect([...back.model.layers.items[0]!.self_attn.q_proj.weight.buf]).toEqual([...w].map(Math.fround));
  });

  it("replaces an existing directory atomically and copies tokenizer files", async () => {
    const src = tmpDir();
    fs.mkdirSync(src);
    for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) fs.writeFileSync(path.join(src, f), `{"f":"${f}"}`);
    fs.writeFileSync(path.join(src, "unrelated.txt"), "x");
    const dir = tmpDir();
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "stale.bin"), "old");
    const m = new CausalLM(tinyQwen(), { seed: 2 });
    await saveCausalLM(m, dir, { tokenizerFrom: src, configOverrides: { eos_token_id: 5 } });
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")).eos_token_id).toBe(5);
    // no temporary directories left behind
    expect(fs.readdirSync(tmpRoot).filter((f) => f.startsWith("."))).toEqual([]);
  });

  it("saves BF16 / F16 weights with a matching torch_dtype, and extra files", async () => {
    const m = new CausalLM(tinyQwen(), { seed: 3, std: 0.3 });
    for (const dtype of ["BF16", "F16"] as const) {
      const dir = tmpDir();
      await saveCausalLM(m, dir, { dtype, extraFiles: { "README.md": "# card\n" } });
      expect(fs.readdirSync(dir).sort()).toEqual(["README.md", "config.json", "model.safetensors"]);
      expect(fs.readFileSync(path.join(dir, "README.md"), "utf8")).toBe("# card\n");
      expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")).torch_dtype).toBe(TORCH_DTYPE[dtype]);
      const st = await readSafetensorsFile(path.join(dir, "model.safetensors"));
      expect(st.info("model.norm.weight").dtype).toBe(dtype);
      const back = await loadCausalLM(dir);
      expect(configDType(back.config)).toBe(dtype);
      const w = m.model.layers.items[0]!.self_attn.q_proj.weight.buf;
      const got = back.model.layers.items[0]!.self_attn.q_proj.weight.buf;
      for (let i = 0; i < w.length; i++) expect(Math.abs(got[i]! - w[i]!)).toBeLessThanOrEqual(Math.abs(w[i]!) * (dtype === "BF16" ? 2 ** -8 : 2 ** -11) + 1e-7);
    }
    await expect(saveCausalLM(m, tmpDir(), { extraFiles: { "../x": "no" } })).rejects.toThrow(/extra file name '\.\.\/x'/);
  });

  it("loads F16 and BF16 weights (converted to float32)", async () => {
    const m = new CausalLM(tinyLlama(), { seed: 3, std: 0.3 });
    for (const dtype of ["F16", "BF16"] as const) {
      const dir = tmpDir();
      writeDir(dir, m, checkpointTensors(m).map(([k, t]) => [k, { ...t, dtype }]));
      const back = await loadCausalLM(dir);
      const a = back.model.layers.items[1]!.mlp.up_proj.weight.buf, b = m.model.layers.items[1]!.mlp.up_proj.weight.buf;
      let maxRel = 0;
      for (let i = 0; i < a.length; i++) maxRel = Math.max(maxRel, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-3));
      expect(maxRel).toBeGreaterThan(0);
      expect(maxRel).toBeLessThan(dtype === "F16" ? 1e-3 : 8e-3);
    }
  });

  it("a tied checkpoint that also holds lm_head.weight loads", async () => {
    const m = new CausalLM(tinyQwen(), { seed: 4 });
    const dir = tmpDir();
    const ts = checkpointTensors(m);
    writeDir(dir, m, [...ts, ["lm_head.weight", ts[0]![1]]]);
    const back = await loadCausalLM(dir);
    expect(back.lm_head.weight).toBe(back.model.embed_tokens.weight);
    expect([...noGrad(() => back.logits(IDS)).buf]).toEqual([...noGrad(() => m.logits(IDS)).buf]);
  });

  it("the sharded fixture equals the single-file one", async () => {
    const a = await loadCausalLM(path.join(FIXTURES, "llama-gqa-llama3rope-f32"));
    const b = await loadCausalLM(path.join(FIXTURES, "llama-gqa-llama3rope-f32-sharded"));
    expect([...noGrad(() => b.logits([[1, 2, 3]])).buf]).toEqual([...noGrad(() => a.logits([[1, 2, 3]])).buf]);
  });
});

describe("keepDType: a BF16 checkpoint's matrices kept as bfloat16", () => {
  it.each([["tied qwen2", tinyQwen({ vocab_size: 300, hidden_size: 32 })], ["untied llama with biases", tinyLlama()]] as const)(
    "%s: matrices bfloat16, norms and biases float32; the same logits, bit for bit, sharded or not; saves the same file",
    async (_, cfg) => {
      const dir = tmpDir(), sharded = tmpDir();
      initCheckpoint(cfg, dir, { seed: 3, std: 0.2, dtype: "BF16" });
      initCheckpoint(cfg, sharded, { seed: 3, std: 0.2, dtype: "BF16", maxShardBytes: 3000 });
      const plain = await loadCausalLM(dir);
      for (const d of [dir, sharded]) {
        const kept = await loadCausalLM(d, { keepDType: true });
        for (const [name, t] of kept.namedParameters()) {
          expect(t.dtype, name).toBe(t.rank === 2 ? "bfloat16" : "float32");
          expect(t.requiresGrad, name).toBe(t.rank !== 2); // frozen storage; the rest as loadCausalLM leaves it
        }
        if (cfg.tie_word_embeddings) expect(kept.lm_head.weight).toBe(kept.model.embed_tokens.weight);
        expect([...noGrad(() => kept.logits(IDS)).buf]).toEqual([...noGrad(() => plain.logits(IDS)).buf]);
        const a = checkpointTensors(kept), b = checkpointTensors(plain);
        expect(a.map(([n, t]) => [n, [...t.data]])).toEqual(b.map(([n, t]) => [n, [...t.data]]));
      }
      expect(() => (plain.setRequiresGrad(true), 0)).not.toThrow();
      const kept = await loadCausalLM(dir, { keepDType: true });
      expect(() => kept.unfreeze()).toThrow(/is bfloat16, a frozen storage dtype: it cannot require grad/);
    },
  );

  it("the memory bound counts 2 bytes per matrix value; F32 checkpoints load as float32; mismatches and bad values are named", async () => {
    const cfg = tinyQwen({ vocab_size: 300, hidden_size: 32 });
    const dir = tmpDir();
    initCheckpoint(cfg, dir, { seed: 4, dtype: "BF16" });
    const specs = parameterSpecs(cfg);
    const bytes = specs.reduce((b, p) => b + p.shape.reduce((x, y) => x * y, 1) * (p.shape.length === 2 ? 2 : 4), 0);
    await expect(loadCausalLM(dir, { keepDType: true, maxBytes: bytes })).resolves.toBeDefined();
    await expect(loadCausalLM(dir, { keepDType: true, maxBytes: bytes - 1 })).rejects.toThrow(/need about/);
    await expect(loadCausalLM(dir, { maxBytes: bytes })).rejects.toThrow(/need about/); // float32: 4 bytes each
    await expect(loadCausalLM(dir, { keepDType: true, dtype: "float64" })).rejects.toThrow(/config\.json: keepDType .* does not combine with dtype float64/);
    const f32 = tmpDir();
    initCheckpoint(cfg, f32, { seed: 4 });
    expect((await loadCausalLM(f32, { keepDType: true })).model.embed_tokens.weight.dtype).toBe("float32");
    // Matrices stored otherwise than config.json says are swapped in as stored: F32 ones as float32, BF16 as bfloat16.
    const m = new CausalLM(cfg, { seed: 1 });
    const t = checkpointTensors(m).map(([n, x]): [string, SafetensorsTensorInput] => [n, { ...x, ...(n.includes("mlp") ? {} : { dtype: "BF16" }) }]);
    for (const torch_dtype of ["bfloat16", "float32"]) {
      const mixed = tmpDir();
      writeDir(mixed, m, t, { ...configToJson(cfg), torch_dtype });
      const kept = await loadCausalLM(mixed, { keepDType: true }), plain = await loadCausalLM(mixed);
      for (const [name, w] of kept.namedParameters()) expect(w.dtype, name).toBe(w.rank === 2 && !name.includes("mlp") ? "bfloat16" : "float32");
      expect(kept.lm_head.weight).toBe(kept.model.embed_tokens.weight);
      expect(kept.model.layers.items[0]!.mlp.up_proj.weight.requiresGrad).toBe(true);
      expect([...noGrad(() => kept.logits(IDS)).buf]).toEqual([...noGrad(() => plain.logits(IDS)).buf]);
    }
    // An infinite BF16 value.
    const inf = tmpDir();
    (t.find(([n]) => n === "model.layers.1.mlp.up_proj.weight")![1].data as Float32Array)[5] = -Infinity;
    writeDir(inf, m, t, { ...configToJson(cfg), torch_dtype: "bfloat16" });
    await expect(loadCausalLM(inf, { keepDType: true })).rejects.toThrow(/tensor "model\.layers\.1\.mlp\.up_proj\.weight" holds -Infinity at index 5/);
  });
});

describe("bad model directories", () => {
  const m = new CausalLM(tinyLlama(), { seed: 5 });
  const good = checkpointTensors(m);

  const expectError = async (dir: string, re: RegExp) => {
    await expect(loadCausalLM(dir)).rejects.toThrow(re);
  };

  it("missing tensor", async () => {
    const dir = tmpDir();
    writeDir(dir, m, good.filter(([k]) => k !== "model.layers.1.self_attn.k_proj.bias"));
    await expectError(dir, new RegExp(`${dir}/model\\.safetensors: missing tensor "model\\.layers\\.1\\.self_attn\\.k_proj\\.bias"`));
  });

  it("extra tensor", async () => {
    const dir = tmpDir();
    writeDir(dir, m, [...good, ["model.layers.2.mlp.up_proj.weight", good[1]![1]]]);
    await expectError(dir, new RegExp(`${dir}/model\\.safetensors: unexpected tensor "model\\.layers\\.2\\.mlp\\.up_proj\\.weight"`));
  });

  it("wrong shape", async () => {
    const dir = tmpDir();
    writeDir(dir, m, good.map(([k, t]) => [k, k === "model.norm.weight" ? { shape: [3, 4], data: t.data } : t]));
    await expectError(dir, /model\.safetensors: tensor "model\.norm\.weight" has shape \[3, 4\], expected \[12\]/);
  });

  it("untied checkpoint without lm_head.weight", async () => {
    const dir = tmpDir();
    writeDir(dir, m, good.filter(([k]) => k !== "lm_head.weight"));
    await expectError(dir, /model\.safetensors: missing tensor "lm_head\.weight"/);
  });

  it("corrupt safetensors", async () => {
    const dir = tmpDir();
    writeDir(dir, m, good);
    const f = path.join(dir, "model.safetensors");
    fs.truncateSync(f, fs.statSync(f).size - 10);
    await expectError(dir, new RegExp(`^${f.replace(/\./g, "\\.")}: `));
    fs.writeFileSync(f, "garbage");
    await expectError(dir, new RegExp(`${f.replace(/\./g, "\\.")}: file is 7 bytes`));
  });

  it("int tensor where a float weight belongs", async () => {
    const dir = tmpDir();
    writeDir(dir, m, good.map(([k, t]) => [k, k === "model.norm.weight" ? { shape: t.shape, data: new Int32Array(t.data.length) } : t]));
    await expectError(dir, /tensor "model\.norm\.weight" has dtype I32/);
  });

  it("unsupported rope_scaling and architecture in config.json", async () => {
    const dir = tmpDir();
    writeDir(dir, m, good, { ...configToJson(m.config), rope_scaling: { rope_type: "dynamic", factor: 2 } });
    await expectError(dir, new RegExp(`${dir}/config\\.json: rope_scaling\\.rope_type: unsupported rope scaling "dynamic"`));
    writeDir(dir, m, good, { ...configToJson(m.config), architectures: ["GPT2LMHeadModel"], model_type: "gpt2" });
    await expectError(dir, new RegExp(`${dir}/config\\.json: architectures: unsupported architecture "GPT2LMHeadModel"`));
  });

  it("no config, no weights, no directory", async () => {
    const dir = tmpDir();
    fs.mkdirSync(dir);
    await expectError(dir, new RegExp(`${dir}/config\\.json: no such file`));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(configToJson(m.config)));
    await expectError(dir, new RegExp(`${dir}/model\\.safetensors: no such file \\(and no model\\.safetensors\\.index\\.json\\)`));
    fs.writeFileSync(path.join(dir, "pytorch_model.bin"), "");
    await expectError(dir, /found pytorch_model\.bin, which is not supported/);
    await expectError(path.join(dir, "nope"), /nope: no such model directory/);
    await expect(loadCausalLM(dir)).rejects.toBeInstanceOf(CheckpointError);
  });

  it.each([
    ["weight_map an array", [], /weight_map: expected an object mapping tensor names to files/],
    ["weight_map missing", undefined, /weight_map: expected an object mapping tensor names to files/],
    ["a file as a number", { "model.norm.weight": 5 }, /weight_map\["model\.norm\.weight"\]: expected a file name in the same directory, got 5/],
    ["a path outside the directory", { "model.norm.weight": "../model.safetensors" }, /weight_map\["model\.norm\.weight"\]: expected a file name in the same directory, got "\.\.\/model\.safetensors"/],
    ["a hidden file", { "model.norm.weight": ".x.safetensors" }, /weight_map\["model\.norm\.weight"\]: expected a file name in the same directory, got "\.x\.safetensors"/],
    ["an empty file name", { "model.norm.weight": "" }, /weight_map\["model\.norm\.weight"\]: expected a file name in the same directory, got ""/],
  ])("a sharded index with %s is refused, naming the index and the field", async (_what, weightMap, re) => {
    const dir = tmpDir();
    fs.cpSync(path.join(FIXTURES, "llama-gqa-llama3rope-f32-sharded"), dir, { recursive: true });
    const indexFile = path.join(dir, "model.safetensors.index.json");
    fs.writeFileSync(indexFile, JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await expect(loadCausalLM(dir)).rejects.toThrow(new RegExp(`^${indexFile.replace(/\./g, "\\.")}: ${re.source}`));
  });

  it("sharded index problems name the shard or index", async () => {
    const src = path.join(FIXTURES, "llama-gqa-llama3rope-f32-sharded");
    const dir = tmpDir();
    fs.cpSync(src, dir, { recursive: true });
    const indexFile = path.join(dir, "model.safetensors.index.json");
    const index = JSON.parse(fs.readFileSync(indexFile, "utf8"));
    // a tensor listed for the wrong shard
    const moved = { ...index, weight_map: { ...index.weight_map, "model.norm.weight": "model-00001-of-00002.safetensors" } };
    fs.writeFileSync(indexFile, JSON.stringify(moved));
    await expectError(dir, /model-00001-of-00002\.safetensors: missing tensor "model\.norm\.weight" \(listed in model\.safetensors\.index\.json\)/);
    // an unknown name in the index
    fs.writeFileSync(indexFile, JSON.stringify({ ...index, weight_map: { ...index.weight_map, "model.extra": "model-00002-of-00002.safetensors" } }));
    await expectError(dir, /model-00002-of-00002\.safetensors: unexpected tensor "model\.extra"/);
    // a missing shard file
    fs.rmSync(path.join(dir, "model-00002-of-00002.safetensors"));
    fs.writeFileSync(indexFile, JSON.stringify(index));
    await expectError(dir, /model-00002-of-00002\.safetensors: shard listed in model\.safetensors\.index\.json .* does not exist/);
    // a name missing from the index
    const { ["model.norm.weight"]: _drop, ...rest } = index.weight_map;
    fs.cpSync(path.join(src, "model-00002-of-00002.safetensors"), path.join(dir, "model-00002-of-00002.safetensors"));
    fs.writeFileSync(indexFile, JSON.stringify({ ...index, weight_map: rest }));
    await expectError(dir, new RegExp(`${indexFile.replace(/\./g, "\\.")}: missing tensor "model\\.norm\\.weight"`));
    fs.writeFileSync(indexFile, "{");
    await expectError(dir, /model\.safetensors\.index\.json: invalid JSON/);
  });

  it.each([["NaN", NaN], ["Infinity", Infinity], ["-Infinity", -Infinity]])("a %s weight is refused, naming the file, the tensor and the index", async (what, x) => {
    const dir = tmpDir();
    writeDir(dir, m, good.map(([k, t]) => [k, k === "model.layers.1.mlp.down_proj.weight" ? { shape: t.shape, data: Float32Array.from(t.data as Float32Array, (v, i) => (i === 7 ? x : v)) } : t]));
    await expectError(dir, new RegExp(`${dir}/model\\.safetensors: tensor "model\\.layers\\.1\\.mlp\\.down_proj\\.weight" holds ${what.replace("+", "")} at index 7`));
  });

  it.each([
    ["vocab_size", 1_000_000_000], ["num_hidden_layers", 1_000_000_000], ["hidden_size", 3_000_000], ["intermediate_size", 2_000_000_000],
  ])("a config.json whose %s lies is refused at once against the weights' size, before anything is allocated", async (field, v) => {
    const dir = tmpDir();
    const json = { ...configToJson(m.config), [field]: v, ...(field === "hidden_size" ? { head_dim: 4 } : {}) };
    writeDir(dir, m, good, json);
    const t0 = Date.now();
    await expectError(dir, new RegExp(`${dir}/config\\.json: describes [\\d,]+ parameters \\(.*${field} ${v}.*\\), at least [\\d,]+ bytes as BF16, but ${dir}/model\\.safetensors holds [\\d,]+ bytes: the config does not match the weights`));
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("a model larger than the memory allowed is refused with the estimate, before allocating", async () => {
    const dir = tmpDir();
    writeDir(dir, m, good);
    await expect(loadCausalLM(dir, { maxBytes: 1000 })).rejects.toThrow(
      new RegExp(`${dir}/config\\.json: the model's ${parameterCount(m.config).toLocaleString("en-US")} parameters need about 0\\.00 GiB, more than the 0\\.00 GiB available`),
    );
  });
});

describe("parameterShapes / parameterCount (from the config alone)", () => {
  it.each([["tied qwen2", tinyQwen()], ["untied llama with biases", tinyLlama()], ["qwen2 untied, head_dim != D/H", tinyQwen({ tie_word_embeddings: false, head_dim: 6 })]])(
    "%s: the same names and shapes as the allocated model",
    (_, cfg) => {
      const model = new CausalLM(cfg);
      const want = new Map([...model.namedParameters()].map(([k, t]) => [k, [...t.shape]]));
      expect(new Map([...parameterShapes(cfg)].map(([k, s]) => [k, [...s]]))).toEqual(want);
      expect(parameterCount(cfg)).toBe(model.numParameters());
    },
  );
});

describe("random and mutated bytes in a sharded index (fast-check)", () => {
  it("loading either succeeds or throws a named error starting with the index or a shard", async () => {
    const src = path.join(FIXTURES, "llama-gqa-llama3rope-f32-sharded");
    const files = new Map(fs.readdirSync(src).map((f) => [f, new Uint8Array(fs.readFileSync(path.join(src, f)))] as const));
    const valid = files.get("model.safetensors.index.json")!;
    await fc.assert(
      fc.asyncProperty(corruptedBytes(valid), async (b) => {
        const m = new Map(files);
        m.set("model.safetensors.index.json", b);
        try {
          await loadCausalLMFromFiles(m, { source: "fuzz" });
        } catch (e) {
          const named = e instanceof ConfigError || e instanceof CheckpointError || e instanceof SafetensorsError;
          if (!named || !(e as Error).message.startsWith("fuzz/")) throw e;
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe("random and mutated bytes in config.json and model.safetensors (fast-check)", () => {
  it("loading either succeeds or throws a ConfigError, CheckpointError or SafetensorsError naming the file", async () => {
    const files = await serializeCausalLM(new CausalLM(tinyQwen({ num_hidden_layers: 1 }), { seed: 1 }));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("config.json", "model.safetensors").chain((w) => corruptedBytes(files.get(w)!).map((b) => [w, b] as const)), async ([which, bytes]) => {
        const m = new Map(files);
        m.set(which, bytes);
        try {
          await loadCausalLMFromFiles(m, { source: "fuzz" });
        } catch (e) {
          const named = e instanceof ConfigError || e instanceof CheckpointError || e instanceof SafetensorsError;
          if (!named || !(e as Error).message.startsWith("fuzz/")) throw e;
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** v rounded to bfloat16 (nearest, ties to even; these values are finite). */
function toBf16(v: number): number {
  const bits = new Uint32Array(new Float32Array([v]).buffer)[0]!;
  return new Float32Array(new Uint32Array([((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16]).buffer)[0]!;
}

describe("initCheckpoint (a random HF checkpoint written tensor by tensor)", () => {
  const cases = [["tied qwen2", tinyQwen({ vocab_size: 300, hidden_size: 32 })], ["untied llama with biases", tinyLlama()]] as const;

  it.each(cases)("%s: parameterSpecs lists CausalLM's parameters, in order, with HF's init rule", (_, cfg) => {
    const m = new CausalLM(cfg, { seed: 1 });
    const specs = parameterSpecs(cfg);
    expect(specs.map((s) => [s.name, [...s.shape]])).toEqual(m.namedParameters().map(([n, t]) => [n, [...t.shape]]));
    for (const s of specs) {
      const t = m.namedParameters().find(([n]) => n === s.name)![1];
      if (s.init === "ones") expect([...t.buf].every((v) => v === 1)).toBe(true);
      if (s.init === "zeros") expect([...t.buf].every((v) => v === 0)).toBe(true);
      if (s.init === "normal") expect(new Set(t.buf).size).toBeGreaterThan(t.size / 2);
    }
  });

  it.each(cases)("%s: F32 weights equal new CausalLM(config, { seed })", async (_, cfg) => {
    const dir = tmpDir();
    const r = initCheckpoint(cfg, dir, { seed: 5 });
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "model.safetensors"]);
    expect(r.files).toEqual([path.join(dir, "model.safetensors")]);
    const want = new CausalLM(cfg, { seed: 5 });
    expect(r.parameters).toBe(want.namedParameters().reduce((a, [, t]) => a + t.size, 0));
    expect(r.bytes).toBe(4 * r.parameters);
    const back = await loadCausalLM(dir);
    for (const [n, t] of want.namedParameters()) expect([...back.namedParameters().find(([m]) => m === n)![1].buf], n).toEqual([...t.buf]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")).torch_dtype).toBe("float32");
  });

  it("BF16: the CausalLM weights rounded to bf16, torch_dtype bfloat16, std from initializer_range", async () => {
    const cfg = tinyQwen({ vocab_size: 2000, hidden_size: 32 });
    const cfgWithRange = { ...cfg, extra: { ...cfg.extra, initializer_range: 0.5 } };
    const dir = tmpDir();
    const r = initCheckpoint(cfgWithRange, dir, { seed: 2, dtype: "BF16" });
    expect(r.bytes).toBe(2 * r.parameters);
    const st = readSafetensorsFileSync(path.join(dir, "model.safetensors"));
    expect(st.names().every((n) => st.info(n).dtype === "BF16")).toBe(true);
    const want = new CausalLM(cfgWithRange, { seed: 2 });
    for (const [n, t] of want.namedParameters())
      expect([...st.readFloat32(n)], n).toEqual([...t.buf].map(toBf16));
    const embed = st.readFloat32("model.embed_tokens.weight");
    const mean = embed.reduce((a, v) => a + v, 0) / embed.length;
    const sd = Math.sqrt(embed.reduce((a, v) => a + (v - mean) ** 2, 0) / embed.length);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(sd).toBeGreaterThan(0.48);
    expect(sd).toBeLessThan(0.52);
    const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    expect(config.torch_dtype).toBe("bfloat16");
    expect(config.initializer_range).toBe(0.5);
    expect((await loadCausalLM(dir)).config.vocab_size).toBe(2000);
  });

  it("shards above maxShardBytes as HF does (greedy, index with total_size) and loads the same", async () => {
    const cfg = tinyLlama();
    const one = tmpDir(), many = tmpDir();
    initCheckpoint(cfg, one, { seed: 9 });
    const max = 2000;
    const r = initCheckpoint(cfg, many, { seed: 9, maxShardBytes: max });
    const index = JSON.parse(fs.readFileSync(path.join(many, "model.safetensors.index.json"), "utf8"));
    const n = r.files.length;
    expect(n).toBeGreaterThan(2);
    expect(r.files.map((f) => path.basename(f))).toEqual(Array.from({ length: n }, (_, i) => `model-0000${i + 1}-of-0000${n}.safetensors`));
    expect(index.metadata.total_size).toBe(r.bytes);
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(index.weight_map).sort());
    expect(new Set(Object.values(index.weight_map)).size).toBe(n);
    const specs = parameterSpecs(cfg);
    for (const f of r.files) {
      const st = readSafetensorsFileSync(f);
      const bytes = st.names().reduce((a, name) => a + 4 * st.info(name).shape.reduce((x, y) => x * y, 1), 0);
      // over the limit only when one tensor alone is (the embedding, 48 x 12 x 4 = 2304 bytes)
      expect(bytes <= max || st.names().length === 1).toBe(true);
      expect(st.names()).toEqual(specs.filter((s) => index.weight_map[s.name] === path.basename(f)).map((s) => s.name));
    }
    const [a, b] = [await loadCausalLM(one), await loadCausalLM(many)];
    expect([...noGrad(() => b.logits(IDS)).buf]).toEqual([...noGrad(() => a.logits(IDS)).buf]);
  });

  it("copies a tokenizer file or directory, replaces the target whole, and names a missing tokenizer", () => {
    const dir = tmpDir();
    const tok = path.join(tmpRoot, "tok.json");
    fs.writeFileSync(tok, "{}");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "stale.bin"), "x");
    initCheckpoint(tinyQwen(), dir, { tokenizer: tok });
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    const dir2 = tmpDir();
    initCheckpoint(tinyQwen(), dir2, { tokenizer: dir });
    expect(fs.readdirSync(dir2).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    const dir3 = tmpDir();
    expect(() => initCheckpoint(tinyQwen(), dir3, { tokenizer: path.join(tmpRoot, "nope.json") })).toThrow(/nope\.json: no such tokenizer file or directory/);
    expect(fs.existsSync(dir3)).toBe(false);
    expect(fs.readdirSync(tmpRoot).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });
});
