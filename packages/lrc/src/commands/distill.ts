// `lrc distill`: Low-Rank Clone training of a student with hidden size d from an HF teacher directory.
// Writes <out>/run.json, <out>/student/ (HF directory in the teacher's dtype or --dtype, tokenizer copied from
// the teacher, a model card), <out>/metrics.jsonl, <out>/loss.svg and <out>/checkpoints/. Exit 0 when done, 130 after Ctrl-C (checkpoint saved), 1 on error.

import { defineCommand } from "../cli/command.js";
import { UsageError, withoutUndefined } from "../cli/args.js";
import { MATRICES } from "../projection.js";
import { INIT_METHODS } from "../init.js";
import { DEFAULT_INIT_TOKENS, distill, distillDryRun } from "../node/run.js";
import { report, reportDryRun, trainFlags, trainOptions } from "./train-flags.js";

function layerList(v: readonly string[] | undefined, flag: string): number[] | undefined {
  if (v === undefined) return undefined;
  return v.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${flag}: '${s}' is not a layer index`);
    return n;
  });
}

export const distillCommand = defineCommand({
  name: "distill",
  summary: "Low-Rank Clone: train a d-wide student from a teacher model directory",
  flags: {
    teacher: { kind: "string", required: true, help: "teacher HF model directory (config.json + safetensors)" },
    "hidden-size": { kind: "int", required: true, help: "student hidden size d" },
    ...trainFlags,
    alpha: { kind: "number", default: 0.5, help: "weight of the clone (activation MSE) loss" },
    "log-clone-terms": { kind: "boolean", default: true, help: "with --alpha 0, still compute the clone terms without gradient and log them (default on; --log-clone-terms=false skips them)" },
    temperature: { kind: "number", default: 40, help: "KL temperature tau" },
    "attn-out": { kind: "string", default: "reference", choices: ["paper", "reference"], help: "attention-out clone term: reference (c W_o^T in D, as the released checkpoints) | paper (o_S vs o_T P_o)" },
    "clone-terms": { kind: "list", choices: MATRICES, help: `clone terms to use (default all: ${MATRICES.join(",")})` },
    "clone-layers": { kind: "list", help: "layers whose clone terms are used (default all)" },
    "ban-layers": { kind: "list", help: "layers whose clone terms are dropped" },
    "kl-weight": { kind: "number", default: 1, help: "weight of the KL term (0: off)" },
    "ce-weight": { kind: "number", default: 1, help: "weight of the CE term (0: off)" },
    "student-eps": { kind: "number", help: "student RMSNorm eps (default: the teacher's rms_norm_eps; the reference trains with 1e-5)" },
    "tie-lm-head-projection": { kind: "string", choices: ["true", "false"], help: "true | false: reuse the embedding projection for the LM head (default: the teacher's tie flag)" },
    "init-std": { kind: "number", default: 0.02, help: "std of the projection init N(0, std^2)" },
    init: { kind: "string", default: "random", choices: INIT_METHODS, help: "projection init: random (the paper's N(0, std^2)) | pca (the teacher's residual-stream principal directions on --init-tokens training tokens) | svd (singular vectors of the teacher's residual-writing weights, no data)" },
    "init-tokens": { kind: "int", default: DEFAULT_INIT_TOKENS, help: "calibration tokens of --init pca, drawn from the training split" },
    "recompute-weights": {
      kind: "string", default: "auto", choices: ["auto", "on", "off"],
      help: "each layer's generated weights (W_teacher P): on = freed after its forward and recomputed for its backward (less memory, ~11% more flops) | off = kept | auto = kept when 2x the step's memory estimate with them kept fits the memory (the cgroup's limit, else the machine's)",
    },
  },
  details: [
    "examples:",
    "  lrc distill --teacher models/Qwen2.5-0.5B --hidden-size 448 --data shards --out runs/lrc --tokens 2000000",
    "  lrc distill --teacher teacher --hidden-size 64 --data shards --out runs/a --steps 500 --save-every 100 --eval-every 100",
    "  lrc distill ... --resume                  (continue the run in --out from its latest checkpoint)",
  ].join("\n"),
  async run(flags) {
    const base = trainOptions(flags);
    if (flags["init-tokens"] < 1) throw new UsageError(`--init-tokens must be positive, got ${flags["init-tokens"]}`);
    if (flags["hidden-size"] < 1) throw new UsageError(`--hidden-size must be positive, got ${flags["hidden-size"]}`);
    const tie = flags["tie-lm-head-projection"];
    const opt = {
      ...base,
      ...withoutUndefined({
        teacher: flags.teacher,
        hiddenSize: flags["hidden-size"],
        alpha: flags.alpha,
        logCloneTerms: flags["log-clone-terms"],
        temperature: flags.temperature,
        attnOut: flags["attn-out"],
        cloneTerms: flags["clone-terms"],
        cloneLayers: layerList(flags["clone-layers"], "clone-layers"),
        banLayers: layerList(flags["ban-layers"], "ban-layers"),
        klWeight: flags["kl-weight"],
        ceWeight: flags["ce-weight"],
        studentEps: flags["student-eps"],
        tieLmHeadProjection: tie === undefined ? undefined : tie === "true",
        initStd: flags["init-std"],
        init: flags.init,
        initTokens: flags["init-tokens"],
        recomputeWeights: flags["recompute-weights"] === "auto" ? ("auto" as const) : flags["recompute-weights"] === "on",
      }),
    };
    if (flags["dry-run"]) return reportDryRun("distill", await distillDryRun(opt), flags.json);
    return report("distill", await distill(opt), flags.json);
  },
});
