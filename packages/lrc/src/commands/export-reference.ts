// `lrc export-reference`: the latest checkpoint of a `lrc distill` run, for the reference PyTorch trainer
// (CURRENTF/LowRankClone hf_trainer.py): <out>/projections.safetensors in its layout with the settings in the
// metadata, and <out>/handoff.md with the exact command line. A warm start, not a resume (../node/handoff.ts).

import { defineCommand } from "../cli/command.js";
import { exportReference } from "../node/handoff.js";

export const exportReferenceCommand = defineCommand({
  name: "export-reference",
  summary: "hand a distill run to the reference PyTorch trainer (warm start): projections + handoff.md",
  flags: {
    run: { kind: "string", required: true, help: "run directory of lrc distill (its latest checkpoint is exported)" },
    out: { kind: "string", required: true, help: "output directory: projections.safetensors and handoff.md" },
    teacher: { kind: "string", help: "teacher directory: checked against the run and written into the command (default: a TEACHER_DIR placeholder)" },
    dtype: { kind: "string", default: "f32", choices: ["f32", "bf16"], help: "tensor dtype on disk: f32 | bf16 (the reference trains in bf16 and rounds on load)" },
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
    const r = await exportReference({
      run: flags.run, out: flags.out, dtype: flags.dtype === "bf16" ? "BF16" : "F32",
      ...(flags.teacher !== undefined ? { teacher: flags.teacher } : {}),
    });
    if (flags.json) console.log(JSON.stringify({ file: r.file, note: r.note, checkpoint: r.checkpoint, step: r.step, tokens: r.tokens, settings: r.settings, warnings: r.warnings }));
    else {
      console.log(`wrote ${r.file} and ${r.note} from ${r.checkpoint} (step ${r.step}): a warm start for the reference trainer, see ${r.note}`);
      for (const w of r.warnings) console.error(`lrc export-reference: warning: ${w}`);
    }
    return 0;
  },
});
