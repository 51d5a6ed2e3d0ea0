// `lrc import-reference`: a save of the reference PyTorch trainer (one safetensors file, a sharded
// model.safetensors.index.json or the directory holding either; trainable-only or a full state dict) checked
// against the teacher and folded into a plain HF student directory (../node/handoff.ts).

import { defineCommand } from "../cli/command.js";
import { UsageError } from "../cli/args.js";
import { importReference } from "../node/handoff.js";

export const importReferenceCommand = defineCommand({
  name: "import-reference",
  summary: "fold a save of the reference PyTorch trainer into a plain HF student directory",
  flags: {
    checkpoint: { kind: "string", required: true, help: "the reference save: a .safetensors file, a model.safetensors.index.json, or a directory with either" },
    teacher: { kind: "string", required: true, help: "teacher HF model directory (the weights the reference trained against)" },
    out: { kind: "string", required: true, help: "output HF model directory (tokenizer files copied from the teacher)" },
    "student-eps": { kind: "number", help: "student RMSNorm eps (default: what the save's metadata or config.json says, else 1e-5, the reference's default)" },
    json: { kind: "boolean", help: "print the summary as JSON" },
  },
  details: [
    "d, the tie flag and the layer count come from the tensors; they, every tensor's shape and any settings in the",
    "file's metadata (lrc export-reference) or in the config.json the reference writes beside its saves are",
    "checked against the teacher, naming the tensor or the field.",
    "",
    "example:",
    "  lrc import-reference --checkpoint ckpts/run/checkpoint-20000 --teacher models/Qwen2.5-3B --out student/",
  ].join("\n"),
  async run(flags) {
    const eps = flags["student-eps"];
    if (eps !== undefined && !(eps > 0)) throw new UsageError(`--student-eps must be positive, got ${eps}`);
    const r = await importReference({
      checkpoint: flags.checkpoint, teacher: flags.teacher, out: flags.out,
      ...(eps !== undefined ? { studentEps: eps } : {}),
    });
    if (flags.json) console.log(JSON.stringify(r));
    else {
      const s = r.settings;
      console.log(`wrote ${r.out}: ${s.modelType} student d=${s.hiddenSize} (${s.tieLmHeadProjection ? "tied" : "separate"} LM-head projection), ${r.notes.join("; ")}`);
    }
    return 0;
  },
});
