// config.json parsing: HF defaults, derived fields, the supported subset, and errors that name the file and
// the field.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, configToJson, oBias, parseConfig, qkvBias } from "./config.js";
import { readConfigFile } from "./config-file.js";
import { ropeInverseFrequencies } from "./layers/rope.js";

const qwen = {
  architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", vocab_size: 151936, hidden_size: 896,
  intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2,
  max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000.0, sliding_window: 32768,
  use_sliding_window: false, max_window_layers: 21, tie_word_embeddings: true, hidden_act: "silu",
  bos_token_id: 151643, eos_token_id: 151645, torch_dtype: "bfloat16", rope_scaling: null,
};

const llama = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: 128256, hidden_size: 2048,
  intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64,
  max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000.0, tie_word_embeddings: true,
  attention_bias: false, mlp_bias: false, hidden_act: "silu", eos_token_id: 128001,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
};

describe("parseConfig", () => {
  it("resolves Qwen2.5-0.5B-Instruct's config", () => {
    const c = parseConfig(qwen);
    expect(c.model_type).toBe("qwen2");
    expect(c.head_dim).toBe(64);
    expect(c.tie_word_embeddings).toBe(true);
    expect(qkvBias(c)).toBe(true);
    expect(oBias(c)).toBe(false);
    expect(c.rope_scaling).toBeNull();
    expect(c.extra.eos_token_id).toBe(151645);
    expect(c.extra.torch_dtype).toBe("bfloat16");
  });

  it("resolves Llama-3.2-1B's config with llama3 rope scaling", () => {
    const c = parseConfig(llama);
    expect(c.rope_scaling).toEqual(llama.rope_scaling);
    expect(qkvBias(c)).toBe(false);
    expect(c.head_dim).toBe(64);
  });

  it("fills HF defaults: num_key_value_heads, head_dim, tie_word_embeddings, eps, theta, max positions", () => {
    const minimal = { architectures: ["LlamaForCausalLM"], vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 };
    const c = parseConfig(minimal);
    expect(c.num_key_value_heads).toBe(2);
    expect(c.head_dim).toBe(4);
    expect(c.tie_word_embeddings).toBe(false);
    expect(c.rms_norm_eps).toBe(1e-6);
    expect(c.rope_theta).toBe(10000);
    expect(c.max_position_embeddings).toBe(2048);
    expect(parseConfig({ ...minimal, architectures: ["Qwen2ForCausalLM"] }).max_position_embeddings).toBe(32768);
    expect(parseConfig({ ...minimal, num_key_value_heads: null }).num_key_value_heads).toBe(2);
  });

  it("accepts an explicit head_dim that differs from hidden/heads (LRC students)", () => {
    const c = parseConfig({ ...qwen, hidden_size: 256, head_dim: 64 });
    expect(c.head_dim).toBe(64);
  });

  it("accepts transformers 5 rope_parameters", () => {
    const { rope_theta: _t, rope_scaling: _s, ...rest } = llama;
    const c = parseConfig({ ...rest, rope_parameters: { rope_theta: 500000, ...llama.rope_scaling } });
    expect(c.rope_theta).toBe(500000);
    expect(c.rope_scaling?.factor).toBe(32);
    expect(parseConfig({ ...rest, rope_parameters: { rope_theta: 7, rope_type: "default" } }).rope_scaling).toBeNull();
  });

  it("configToJson round trips", () => {
    for (const j of [qwen, llama]) {
      const c = parseConfig(j);
      expect(parseConfig(JSON.parse(JSON.stringify(configToJson(c))))).toEqual({ ...c, extra: { ...c.extra, torch_dtype: "float32" } });
    }
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ["unsupported architecture", { ...qwen, architectures: ["MistralForCausalLM"] }, /f\.json: architectures: unsupported architecture "MistralForCausalLM"/],
    ["unsupported model_type", { ...qwen, architectures: undefined, model_type: "gpt2" }, /f\.json: model_type: unsupported model_type "gpt2"/],
    ["conflicting model_type", { ...qwen, model_type: "llama" }, /model_type: "llama" does not match architectures\[0\] "Qwen2ForCausalLM"/],
    ["no architecture", { ...qwen, architectures: undefined, model_type: undefined }, /f\.json: architectures: missing/],
    ["missing hidden_size", { ...qwen, hidden_size: undefined }, /f\.json: hidden_size: required field is missing/],
    ["non-integer layers", { ...qwen, num_hidden_layers: 2.5 }, /num_hidden_layers: expected a positive integer, got 2\.5/],
    ["zero vocab", { ...qwen, vocab_size: 0 }, /vocab_size: expected a positive integer, got 0/],
    ["string size", { ...qwen, intermediate_size: "4864" }, /intermediate_size: expected a positive integer, got "4864"/],
    ["kv heads not dividing", { ...qwen, num_key_value_heads: 3 }, /num_key_value_heads: 3 does not divide num_attention_heads 14/],
    ["odd head_dim", { ...qwen, head_dim: 7 }, /head_dim: 7 must be even/],
    ["gelu", { ...qwen, hidden_act: "gelu" }, /hidden_act: unsupported activation "gelu"/],
    ["mlp bias", { ...llama, mlp_bias: true }, /mlp_bias: true is not supported/],
    ["sliding window", { ...qwen, use_sliding_window: true }, /use_sliding_window: sliding-window attention is not supported/],
    ["llama sliding window", { ...llama, sliding_window: 4096 }, /sliding_window: sliding-window attention is not supported/],
    ["yarn", { ...llama, rope_scaling: { rope_type: "yarn", factor: 4 } }, /f\.json: rope_scaling\.rope_type: unsupported rope scaling "yarn"/],
    ["linear (old 'type' key)", { ...llama, rope_scaling: { type: "linear", factor: 2 } }, /rope_scaling\.rope_type: unsupported rope scaling "linear"/],
    ["llama3 missing factor", { ...llama, rope_scaling: { ...llama.rope_scaling, factor: undefined } }, /rope_scaling\.factor: expected a positive number/],
    ["negative eps", { ...qwen, rms_norm_eps: -1 }, /rms_norm_eps: expected a positive number, got -1/],
    ["bool tie", { ...qwen, tie_word_embeddings: "yes" }, /tie_word_embeddings: expected true or false/],
    // Wrong JSON types and lying sizes in the remaining fields (issue #20).
    ["string max positions", { ...qwen, max_position_embeddings: "32768" }, /f\.json: max_position_embeddings: expected a positive integer, got "32768"/],
    ["negative rope_theta", { ...qwen, rope_theta: -1 }, /f\.json: rope_theta: expected a positive number, got -1/],
    ["string head_dim", { ...qwen, head_dim: "64" }, /f\.json: head_dim: expected a positive integer, got "64"/],
    ["zero heads", { ...qwen, num_attention_heads: 0 }, /f\.json: num_attention_heads: expected a positive integer, got 0/],
    ["string attention_bias", { ...llama, attention_bias: "no" }, /f\.json: attention_bias: expected true or false/],
    ["a vocabulary beyond 2^53", { ...qwen, vocab_size: 2 ** 60 }, /f\.json: vocab_size: expected a positive integer/],
    ["layers as an array", { ...qwen, num_hidden_layers: [24] }, /f\.json: num_hidden_layers: expected a positive integer, got \[24\]/],
  ];
  it.each(bad)("rejects %s, naming the file and field", (_, json, re) => {
    expect(() => parseConfig(json, "f.json")).toThrow(ConfigError);
    expect(() => parseConfig(json, "f.json")).toThrow(re);
  });
});

describe("readConfigFile", () => {
  it("names the file when it is missing or not JSON", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nn-config-"));
    const f = path.join(dir, "config.json");
    expect(() => readConfigFile(f)).toThrow(`${f}: no such file`);
    fs.writeFileSync(f, "{ not json");
    expect(() => readConfigFile(f)).toThrow(new RegExp(`^${f.replace(/[.]/g, "\\.")}: invalid JSON`));
    fs.writeFileSync(f, JSON.stringify(qwen));
    expect(readConfigFile(f).hidden_size).toBe(896);
    fs.rmSync(dir, { recursive: true });
  });
});

describe("rope inverse frequencies", () => {
  it("default: 1 / theta^(2i/dh) in float32", () => {
    const inv = ropeInverseFrequencies(10000, 8, null);
    expect([...inv]).toEqual([1, 0.1, 0.01, 0.001].map(Math.fround));
  });

  it("llama3: high frequencies kept, low ones divided by factor, the band smoothed", () => {
    const s = { rope_type: "llama3" as const, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 128 };
    const inv = ropeInverseFrequencies(10000, 8, s);
    // wavelengths 6.3 (kept), 63 (smoothed), 628 and 6283 (divided by 8): tools/README.md
    expect(inv[0]).toBe(1);
    expect(inv[1]).toBeCloseTo(0.042751, 6);
    expect(inv[2]).toBe(Math.fround(Math.fround(0.01) / 8));
    expect(inv[3]).toBe(Math.fround(Math.fround(0.001) / 8));
  });
});
