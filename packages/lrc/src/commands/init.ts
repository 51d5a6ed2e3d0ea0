// `lrc init`: a randomly initialised Hugging Face checkpoint of any supported config.json (HF's init:
// N(0, initializer_range²) weights, RMSNorm gains 1, biases 0), in F32, BF16 or F16, written tensor by tensor
// (a 1.5B model never needs its f32 copy in memory) and sharded with an index above --max-shard-size, as
// `save_pretrained` does. From-scratch baselines start from it; tests and benchmarks make real-shaped teachers.

import { initCheckpoint, readConfigFile } from "@lrc-ts/nn";
import type { SafetensorsFloatDType } from "@lrc-ts/tensor-core";
import { UsageError } from "../cli/args.js";
import { defineCommand } from "../cli/command.js";

const DTYPES = { f32: "F32", bf16: "BF16", f16: "F16" } as const satisfies Record<string, SafetensorsFloatDType>;

/** "5GB", "500MB", "64KB" or a plain byte count (decimal units, as HF's max_shard_size). */
export function parseByteSize(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?$/i.exec(raw.trim());
  const unit = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[(m?.[2] ?? "B").toUpperCase() as "B" | "KB" | "MB" | "GB"];
  const v = m === null ? NaN : Math.floor(Number(m[1]) * unit);
  if (!(v > 0)) throw new UsageError(`--${flag} expects a size such as 5GB, 500MB or a byte count, got '${raw}'`);
  return v;
}

export const initCommand = defineCommand({
  name: "init",
  summary: "write a randomly initialised HF checkpoint of a config.json",
  flags: {
    config: { kind: "string", required: true, help: "HF config.json (Qwen2ForCausalLM or LlamaForCausalLM)" },
    out: { kind: "string", required: true, help: "model directory to write (replaced atomically)" },
    dtype: { kind: "string", default: "f32", choices: ["f32", "bf16", "f16"], help: "weight dtype on disk: f32 | bf16 | f16" },
    seed: { kind: "int", default: 0, help: "seed of the random weights" },
    "init-std": { kind: "number", help: "std of the random weights (default: the config's initializer_range, else 0.02)" },
    tokenizer: { kind: "string", help: "tokenizer.json (or a directory with tokenizer files) to copy in" },
    "num-hidden-layers": { kind: "int", help: "layers to write instead of the config's num_hidden_layers (e.g. 4: a shallow model of the same shape)" },
    "max-shard-size": { kind: "string", default: "5GB", help: "shard the weights above this size (HF's default 5GB)" },
    json: { kind: "boolean", help: "print the summary as JSON" },
  },
  details: [
    "Weights: Linear and Embedding ~ N(0, std²), RMSNorm weights 1, biases 0 (transformers' _init_weights);",
    "the same values as new CausalLM(config, { seed }) in @lrc-ts/nn.",
    "",
    "examples:",
    "  lrc init --config qwen2.5-0.5b.json --out models/qwen-0.5b-random --dtype bf16 --tokenizer tok/tokenizer.json",
    "  lrc init --config qwen2.5-0.5b.json --out models/qwen-0.5b-l4 --dtype bf16 --num-hidden-layers 4   (its first 4 layers' shape)",
  ].join("\n"),
  async run(flags) {
    const file = flags.config;
    const layers = flags["num-hidden-layers"];
    if (layers !== undefined && layers < 1) throw new UsageError(`--num-hidden-layers must be positive, got ${layers}`);
    const read = readConfigFile(file);
    const config = layers === undefined ? read : { ...read, num_hidden_layers: layers };
    const range = config.extra.initializer_range;
    if (range !== undefined && !(typeof range === "number" && Number.isFinite(range) && range > 0))
      throw new Error(`${file}: initializer_range: expected a positive number, got ${JSON.stringify(range)}`);
    const dtype = DTYPES[flags.dtype];
    const std = flags["init-std"];
    if (std !== undefined && !(std > 0)) throw new UsageError(`--init-std expects a positive number, got ${std}`);
    const out = flags.out;
    const t0 = performance.now();
    const r = initCheckpoint(config, out, {
      dtype,
      seed: flags.seed,
      maxShardBytes: parseByteSize("max-shard-size", flags["max-shard-size"]),
      ...(std !== undefined ? { std } : {}),
      ...(flags.tokenizer !== undefined ? { tokenizer: flags.tokenizer } : {}),
    });
    const summary = { out, parameters: r.parameters, bytes: r.bytes, dtype: flags.dtype, files: r.files, seconds: (performance.now() - t0) / 1000 };
    if (flags.json) console.log(JSON.stringify(summary));
    else
      console.log(
        `wrote ${out}: ${(r.parameters / 1e6).toFixed(1)}M parameters, ${(r.bytes / 1e6).toFixed(1)} MB ${summary.dtype} ` +
          `in ${r.files.length} file${r.files.length > 1 ? "s" : ""}, ${summary.seconds.toFixed(1)} s`,
      );
    return 0;
  },
});
