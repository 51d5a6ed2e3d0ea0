// In-memory checkpoints (the browser's path): serializeCausalLM gives exactly the bytes saveCausalLM writes,
// loadCausalLMFromFiles reads them (single file and sharded index) to identical logits, and bad inputs fail
// with messages naming the file.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { noGrad, serializeSafetensors } from "@lrc-ts/tensor-core";
import { afterAll, describe, expect, it } from "vitest";
import { readModelFiles, saveCausalLM } from "./checkpoint.js";
import { CheckpointError, checkpointTensors, loadCausalLMFromFiles, serializeCausalLM } from "./checkpoint-files.js";
import { ConfigError, configToJson } from "./config.js";
import { CausalLM } from "./models/causal-lm.js";
import { tinyLlama, tinyQwen } from "./testing-internal/tiny.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "nn-files-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const IDS = [[3, 1, 4, 1, 5, 9, 2, 6]];
const enc = (s: string) => new TextEncoder().encode(s);

describe("serializeCausalLM / loadCausalLMFromFiles", () => {
  it.each([["tied qwen2", tinyQwen()], ["untied llama", tinyLlama()]])("%s: same bytes as saveCausalLM, same logits back", async (_, cfg) => {
    const m = new CausalLM(cfg, { seed: 3, std: 0.3 });
    const dir = path.join(tmpRoot, cfg.model_type);
    const tok = new Map([["tokenizer.json", enc('{"model":{}}')], ["notes.txt", enc("ignored")]]);
    fs.mkdirSync(path.join(tmpRoot, `${cfg.model_type}-tok`), { recursive: true });
    fs.writeFileSync(path.join(tmpRoot, `${cfg.model_type}-tok`, "tokenizer.json"), '{"model":{}}');
    await saveCausalLM(m, dir, { tokenizerFrom: path.join(tmpRoot, `${cfg.model_type}-tok`) });
    const files = serializeCausalLM(m, { tokenizerFiles: tok });
    expect([...files.keys()].sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
    const onDisk = readModelFiles(dir);
    for (const [name, bytes] of files) expect(Buffer.from(bytes).equals(Buffer.from(onDisk.get(name)!)), name).toBe(true);
    const back = await loadCausalLMFromFiles(files);
    expect([...noGrad(() => back.logits(IDS)).buf]).toEqual([...noGrad(() => m.logits(IDS)).buf]);
  });

  it("loads a sharded index", async () => {
    const m = new CausalLM(tinyQwen(), { seed: 5 });
    const tensors = checkpointTensors(m);
    const half = Math.floor(tensors.length / 2);
    const shards = [tensors.slice(0, half), tensors.slice(half)];
    const files = new Map<string, Uint8Array>([["config.json", enc(JSON.stringify(configToJson(m.config)))]]);
    const weightMap: Record<string, string> = {};
    shards.forEach((s, i) => {
      const name = `model-0000${i + 1}-of-00002.safetensors`;
      files.set(name, serializeSafetensors(s));
      for (const [n] of s) weightMap[n] = name;
    });
    files.set("model.safetensors.index.json", enc(JSON.stringify({ weight_map: weightMap })));
    const back = await loadCausalLMFromFiles(files);
    expect([...noGrad(() => back.logits(IDS)).buf]).toEqual([...noGrad(() => m.logits(IDS)).buf]);
    files.delete("model-00002-of-00002.safetensors");
    await expect(loadCausalLMFromFiles(files, { source: "picked" })).rejects.toThrow(
      /^picked\/model-00002-of-00002\.safetensors: shard listed in model\.safetensors\.index\.json/,
    );
  });

  it("names the file in errors", async () => {
    const m = new CausalLM(tinyQwen(), { seed: 1 });
    const files = serializeCausalLM(m);
    await expect(loadCausalLMFromFiles(new Map([...files].filter(([k]) => k !== "config.json")), { source: "teacher" })).rejects.toThrow(
      new ConfigError("teacher/config.json: no such file (a model needs a config.json)"),
    );
    await expect(loadCausalLMFromFiles(new Map([["config.json", enc("{")]]))).rejects.toThrow(/^config\.json: invalid JSON/);
    await expect(loadCausalLMFromFiles(new Map([...files].filter(([k]) => k !== "model.safetensors")))).rejects.toThrow(
      /^model\.safetensors: no such file/,
    );
    const partial = serializeSafetensors(checkpointTensors(m).slice(1));
    await expect(loadCausalLMFromFiles(new Map([...files, ["model.safetensors", partial]]))).rejects.toThrow(CheckpointError);
    await expect(loadCausalLMFromFiles(new Map([...files, ["model.safetensors", partial]]))).rejects.toThrow(/^model\.safetensors: missing tensor "model\.embed_tokens\.weight"/);
  });
});
