// `lrc export-reference`: the latest checkpoint of a `lrc distill` run, for the reference PyTorch trainer
// (CURRENTF/LowRankClone hf_trainer.py): <out>/projections.safetensors in its layout with the settings in the
// metadata, and <out>/handoff.md with the exact command line. A warm start, not a resume (../node/handoff.ts).

import type { SafetensorsFloatDType } from "@lrc-ts/tensor-core";
import { UsageError } from "../cli/args.js";
import type { Command } from "../cli/command.js";
import { exportReference } from "../node/handoff.js";

export const exportReferenceCommand: Command = {
  name: "export-reference",
  summary: "hand a distill run to the reference PyTorch trainer (warm start): projections + handoff.md",
  flags: {
    run: { kind: "string", required: true, help: "run directory of lrc distill (its latest checkpoint is exported)" },
    out: { kind: "string", required: true, help: "output directory: projections.safetensors and handoff.md" },
    teacher: { kind: "string", help: "teacher directory: checked against the run and written into the command (default: a TEACHER_DIR placeholder)" },
    dtype: { kind: "string", default: "f32", help: "tensor dtype on disk: f32 | bf16 (the reference trains in bf16 and rounds on load)" },
    json: { kind: "boolean", help: "print the summary as JSON" },
  },
  details: [
    "The reference trainer takes the file with --load_model_weight_path: a warm start. AdamW moments, the",
    "schedule position, the step and the data position do not carry over; handoff.md says so and gives",
    "every flag (--tie_word_emb_proj, --target_rms_norm_eps, --use_all_attn 1, ...). Its saves come back",
    "with lrc import-reference.",
    "",
    "example:",
    "  lrc export-reference --run runs/lrc --teacher models/Qwen2.5-0.5B --out handoff/",
  ].join("\n"),
  async run(flags) {
    const dtype = (flags.dtype as string).toUpperCase();
    if (dtype !== "F32" && dtype !== "BF16") throw new UsageError(`--dtype must be f32 or bf16, got '${flags.dtype as string}'`);
    const r = await exportReference({
      run: flags.run as string, out: flags.out as string, dtype: dtype as SafetensorsFloatDType,
      ...(flags.teacher !== undefined ? { teacher: flags.teacher as string } : {}),
    });
    if (flags.json) console.log(JSON.stringify({ file: r.file, note: r.note, checkpoint: r.checkpoint, step: r.step, tokens: r.tokens, settings: r.settings, warnings: r.warnings }));
    else {
      console.log(`wrote ${r.file} and ${r.note} from ${r.checkpoint} (step ${r.step}): a warm start for the reference trainer, see ${r.note}`);
      for (const w of r.warnings) console.error(`lrc export-reference: warning: ${w}`);
    }
    return 0;
  },
};
