// `lrc pretrain`: train a Qwen2/Llama model from random init (HF init: N(0, initializer_range²), norms 1)
// with next-token CE, or CE + KL(τ) from a teacher (plain knowledge distillation, the baseline). Writes
// <out>/model/ (HF directory), run.json, metrics.jsonl, loss.svg and checkpoints/ like `lrc distill`.

import { UsageError, withoutUndefined } from "../cli/args.js";
import { defineCommand } from "../cli/command.js";
import { pretrain, pretrainDryRun } from "../node/run.js";
import { report, reportDryRun, trainFlags, trainOptions } from "./train-flags.js";

export const pretrainCommand = defineCommand({
  name: "pretrain",
  summary: "train a model from random init (CE, or CE + KL from --teacher)",
  flags: {
    config: { kind: "string", required: true, help: "HF config.json of the model to train (Qwen2ForCausalLM or LlamaForCausalLM)" },
    ...trainFlags,
    teacher: { kind: "string", help: "teacher model directory for plain KD (adds KL(teacher || model) at --temperature)" },
    temperature: { kind: "number", default: 1, help: "KD temperature (with --teacher)" },
    "kl-weight": { kind: "number", default: 1, help: "weight of the KL term (with --teacher)" },
    tokenizer: { kind: "string", help: "tokenizer.json (or a directory with tokenizer files) to copy into the export" },
    "init-std": { kind: "number", help: "init std (default: the config's initializer_range, else 0.02)" },
  },
  details: [
    "examples:",
    "  lrc pretrain --config teacher-config.json --data shards --out runs/teacher --steps 2000 --tokenizer tok/tokenizer.json",
    "  lrc pretrain --config student-config.json --data shards --out runs/kd --tokens 1000000 --teacher runs/teacher/model --temperature 2",
  ].join("\n"),
  async run(flags) {
    if (flags["teacher-dtype"] !== undefined && flags.teacher === undefined) throw new UsageError("--teacher-dtype needs --teacher (it says how the KD teacher's weights are held)");
    const opt = {
      ...trainOptions(flags),
      ...withoutUndefined({
        config: flags.config,
        teacher: flags.teacher,
        temperature: flags.temperature,
        klWeight: flags["kl-weight"],
        tokenizer: flags.tokenizer,
        initStd: flags["init-std"],
      }),
    };
    if (flags["dry-run"]) return reportDryRun("pretrain", await pretrainDryRun(opt), flags.json);
    return report("pretrain", await pretrain(opt), flags.json);
  },
});
