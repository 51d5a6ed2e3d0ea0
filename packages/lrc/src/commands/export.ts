// `lrc export`: the newest verified checkpoint of a `lrc distill` run (finished, stopped with Ctrl-C, killed, or
// still running) folded into the plain HF student directory the run writes at its end (../node/run.ts exportRun).

import { defineCommand } from "../cli/command.js";
import { exportRun } from "../node/run.js";

export const exportCommand = defineCommand({
  name: "export",
  summary: "fold the latest checkpoint of a distill run into a plain HF student directory",
  flags: {
    run: { kind: "string", required: true, help: "run directory of lrc distill (its newest checkpoint that verifies is folded)" },
    out: { kind: "string", help: "student directory to write (replaced atomically) (default: the run's own, <run>/student)" },
    teacher: { kind: "string", help: "teacher directory (default: the one the run's run.json names); checked against the run's teacher" },
    dtype: { kind: "string", choices: ["bf16", "f16", "f32"], help: "weight dtype: bf16 | f16 | f32 (default: the run's export dtype)" },
    json: { kind: "boolean", help: "print the summary as JSON" },
  },
  details: [
    "The student is what lrc distill writes at its end (config.json with the training window, the weights,",
    "the tokenizer files, generation and tokenizer configs, a model card with the losses up to the",
    "checkpoint's step), folded from the checkpoint's projections and the teacher: lrc eval, lrc generate",
    "and Python transformers load it. The run itself is not touched; --resume continues it.",
    "",
    "example:",
    "  lrc export --run runs/lrc                          (writes runs/lrc/student)",
    "  lrc export --run runs/lrc --out students/step-2000 --dtype f32",
  ].join("\n"),
  async run(flags) {
    const r = await exportRun({
      run: flags.run, log: (l) => console.error(l),
      ...(flags.out !== undefined ? { out: flags.out } : {}),
      ...(flags.teacher !== undefined ? { teacher: flags.teacher } : {}),
      ...(flags.dtype !== undefined ? { dtype: flags.dtype as "bf16" | "f16" | "f32" } : {}),
    });
    if (flags.json) console.log(JSON.stringify(r));
    else console.log(`wrote ${r.out} from ${r.checkpoint} (step ${r.step} of ${r.steps}, ${r.tokens.toLocaleString("en-US")} tokens)`);
    return 0;
  },
});
