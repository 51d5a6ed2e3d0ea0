// `lrc distill`: Low-Rank Clone training of a student with hidden size d from an HF teacher directory.
// Writes <out>/run.json, <out>/student/ (HF directory in the teacher's dtype or --dtype, tokenizer copied from
// the teacher, a model card), <out>/metrics.jsonl, <out>/loss.svg and <out>/checkpoints/. Exit 0 when done, 130 after Ctrl-C (checkpoint saved), 1 on error.

import type { Command } from "../cli/command.js";
import { UsageError } from "../cli/args.js";
import { MATRICES } from "../projection.js";
import type { MatrixName } from "../projection.js";
import { INIT_METHODS } from "../init.js";
import { DEFAULT_INIT_TOKENS, distill, distillDryRun } from "../node/run.js";
import { report, reportDryRun, trainFlags, trainOptions } from "./train-flags.js";

function layerList(v: unknown, flag: string): number[] | undefined {
  if (v === undefined) return undefined;
  return (v as string[]).map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${flag}: '${s}' is not a layer index`);
    return n;
  });
}

export const distillCommand: Command = {
  name: "distill",
  summary: "Low-Rank Clone: train a d-wide student from a teacher model directory",
  flags: {
    teacher: { kind: "string", required: true, help: "teacher HF model directory (config.json + safetensors)" },
    "hidden-size": { kind: "int", required: true, help: "student hidden size d" },
    ...trainFlags,
    alpha: { kind: "number", default: 0.5, help: "weight of the clone (activation MSE) loss" },
    "log-clone-terms": { kind: "boolean", help: "with --alpha 0, still compute the clone terms without gradient and log them (default on; --log-clone-terms=false skips them)" },
    temperature: { kind: "number", default: 40, help: "KL temperature tau" },
    "attn-out": { kind: "string", default: "reference", help: "attention-out clone term: reference (c W_o^T in D, as the released checkpoints) | paper (o_S vs o_T P_o)" },
    "clone-terms": { kind: "list", help: `clone terms to use (default all: ${MATRICES.join(",")})` },
    "clone-layers": { kind: "list", help: "layers whose clone terms are used (default all)" },
    "ban-layers": { kind: "list", help: "layers whose clone terms are dropped" },
    "kl-weight": { kind: "number", default: 1, help: "weight of the KL term (0: off)" },
    "ce-weight": { kind: "number", default: 1, help: "weight of the CE term (0: off)" },
    "student-eps": { kind: "number", help: "student RMSNorm eps (default: the teacher's rms_norm_eps; the reference trains with 1e-5)" },
    "tie-lm-head-projection": { kind: "string", help: "true | false: reuse the embedding projection for the LM head (default: the teacher's tie flag)" },
    "init-std": { kind: "number", default: 0.02, help: "std of the projection init N(0, std^2)" },
    init: { kind: "string", default: "random", help: "projection init: random (the paper's N(0, std^2)) | pca (the teacher's residual-stream principal directions on --init-tokens training tokens) | svd (singular vectors of the teacher's residual-writing weights, no data)" },
    "init-tokens": { kind: "int", default: DEFAULT_INIT_TOKENS, help: "calibration tokens of --init pca, drawn from the training split" },
  },
  details: [
    "examples:",
    "  lrc distill --teacher models/Qwen2.5-0.5B --hidden-size 448 --data shards --out runs/lrc --tokens 2000000",
    "  lrc distill --teacher teacher --hidden-size 64 --data shards --out runs/a --steps 500 --save-every 100 --eval-every 100",
    "  lrc distill ... --resume                  (continue the run in --out from its latest checkpoint)",
  ].join("\n"),
  async run(flags) {
    const base = trainOptions(flags);
    const terms = flags["clone-terms"] as string[] | undefined;
    if (terms !== undefined)
      for (const t of terms) if (!(MATRICES as readonly string[]).includes(t)) throw new UsageError(`--clone-terms: unknown term '${t}' (known: ${MATRICES.join(",")})`);
    const attnOut = flags["attn-out"] as string;
    if (attnOut !== "paper" && attnOut !== "reference") throw new UsageError(`--attn-out must be paper or reference, got '${attnOut}'`);
    const tie = flags["tie-lm-head-projection"] as string | undefined;
    if (tie !== undefined && tie !== "true" && tie !== "false") throw new UsageError(`--tie-lm-head-projection must be true or false, got '${tie}'`);
    const init = flags.init as string;
    if (!(INIT_METHODS as readonly string[]).includes(init)) throw new UsageError(`--init must be ${INIT_METHODS.join(", ")}, got '${init}'`);
    const initTokens = flags["init-tokens"] as number;
    if (initTokens < 1) throw new UsageError(`--init-tokens must be positive, got ${initTokens}`);
    const d = flags["hidden-size"] as number;
    if (d < 1) throw new UsageError(`--hidden-size must be positive, got ${d}`);
    const opt: Record<string, unknown> = {
      ...base,
      teacher: flags.teacher as string,
      hiddenSize: d,
      alpha: flags.alpha,
      logCloneTerms: flags["log-clone-terms"],
      temperature: flags.temperature,
      attnOut,
      cloneTerms: terms as MatrixName[] | undefined,
      cloneLayers: layerList(flags["clone-layers"], "clone-layers"),
      banLayers: layerList(flags["ban-layers"], "ban-layers"),
      klWeight: flags["kl-weight"],
      ceWeight: flags["ce-weight"],
      studentEps: flags["student-eps"],
      tieLmHeadProjection: tie === undefined ? undefined : tie === "true",
      initStd: flags["init-std"],
      init,
      initTokens,
    };
    for (const k of Object.keys(opt)) if (opt[k] === undefined) delete opt[k];
    if (flags["dry-run"] === true) return reportDryRun("distill", await distillDryRun(opt as unknown as Parameters<typeof distillDryRun>[0]), flags);
    const r = await distill(opt as unknown as Parameters<typeof distill>[0]);
    return report("distill", r, flags);
  },
};
