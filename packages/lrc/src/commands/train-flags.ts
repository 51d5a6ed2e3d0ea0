// Flags shared by the training commands (`lrc distill`, `lrc pretrain`) and their translation into
// TrainRunOptions. With --json the final line on stdout is one JSON object; everything else is on stderr.

import type { Flags, FlagSpecs } from "../cli/args.js";
import { UsageError, withoutUndefined } from "../cli/args.js";
import { backendFlag, poolLimitFlag } from "../cli/command.js";
import { recomputeLine } from "../node/run.js";
import type { DryRunResult, RunResult, TrainRunOptions } from "../node/run.js";

export const trainFlags = {
  data: { kind: "string", required: true, help: "token shard directory (lrc tokenize output); its val split is evaluated unless --val-data" },
  "val-data": { kind: "string", help: "a second shard directory to evaluate on (same tokenizer): its val split, or its train split when it has no val split" },
  out: { kind: "string", required: true, help: "run directory: metrics.jsonl, loss.svg, checkpoints/ and the exported model" },
  steps: { kind: "int", help: "optimizer steps (or --tokens)" },
  tokens: { kind: "int", help: "training tokens; steps = ceil(tokens / (batch-size * seq-len * grad-accum))" },
  "batch-size": { kind: "int", default: 8, help: "sequences per micro-batch (a batch whose step's memory estimate exceeds the memory is refused before the run)" },
  "seq-len": { kind: "int", default: 128, help: "tokens per sequence" },
  "grad-accum": { kind: "int", default: 1, help: "micro-batches per optimizer step" },
  lr: { kind: "number", help: "peak learning rate (distill 1e-4 as the paper; pretrain 1e-3)" },
  "weight-decay": { kind: "number", default: 0, help: "AdamW decoupled weight decay (the default is HF Trainer's); not on biases, norm gains and (pretrain) the token embedding unless --decay-all" },
  "decay-all": { kind: "boolean", help: "weight-decay every trainable tensor (torch.optim.AdamW over all parameters)" },
  "adam-beta1": { kind: "number", default: 0.9, help: "AdamW beta1 (the default is HF Trainer's)" },
  "adam-beta2": { kind: "number", default: 0.999, help: "AdamW beta2 (the default is HF Trainer's)" },
  "adam-eps": { kind: "number", default: 1e-8, help: "AdamW epsilon (the default is HF Trainer's)" },
  schedule: { kind: "string", default: "linear", choices: ["linear", "cosine", "constant"], help: "linear | cosine | constant (after warmup)" },
  warmup: { kind: "number", default: 0.005, help: "warmup as a fraction of the steps (at least 1 step when > 0)" },
  "warmup-steps": { kind: "int", help: "warmup steps (overrides --warmup); longer than the run is an error" },
  clip: { kind: "number", default: 1, help: "gradient-norm clip (0: off)" },
  "eval-every": { kind: "int", default: 0, help: "evaluate every N steps (0: only at the end)" },
  "eval-batches": { kind: "int", default: 8, help: "val batches per evaluation" },
  "save-every": { kind: "int", default: 0, help: "checkpoint every N steps (0: only at the end)" },
  "keep-checkpoints": { kind: "int", default: 2, help: "complete checkpoints kept" },
  resume: { kind: "boolean", help: "continue from the newest checkpoint in --out that verifies (checksums), saying which it skipped" },
  seed: { kind: "int", default: 0, help: "seed of the data order and the initialisation" },
  dtype: { kind: "string", choices: ["bf16", "f16", "f32"], help: "weight dtype of the exported model: bf16 | f16 | f32 (default: the teacher's torch_dtype, else f32)" },
  "teacher-dtype": {
    kind: "string", choices: ["keep", "float32"],
    help: "how the teacher's weight matrices are held: keep (a BF16 / F16 checkpoint's stay 16-bit, half the bytes; default on the cpu and webgpu backends) | float32 (widened on load; the default on gpu)",
  },
  backend: backendFlag,
  "pool-limit": poolLimitFlag,
  "no-progress": { kind: "boolean", help: "no progress line on stderr" },
  json: { kind: "boolean", help: "print a JSON summary as the last line on stdout" },
  "dry-run": { kind: "boolean", help: "print the plan (parameters, memory by part), time 2 steps, print tokens/s and the ETA; train nothing" },
} as const satisfies FlagSpecs;

export type TrainFlags = Flags<typeof trainFlags>;

/** `v` when it is > 0 (>= 0 with allowZero), else a UsageError naming the flag. */
function positive<T extends number | undefined>(name: string, v: T, allowZero = false): T {
  if (v !== undefined && !(allowZero ? v >= 0 : v > 0)) throw new UsageError(`--${name} must be ${allowZero ? ">= 0" : "> 0"}, got ${v}`);
  return v;
}

/** The trainer-related options from the flags. */
export function trainOptions(flags: TrainFlags): TrainRunOptions {
  if (flags.steps === undefined && flags.tokens === undefined) throw new UsageError("give the run length: --steps or --tokens");
  if (flags.steps !== undefined && flags.tokens !== undefined) throw new UsageError("give --steps or --tokens, not both");
  const warmup = flags.warmup;
  if (!(warmup >= 0 && warmup < 1)) throw new UsageError(`--warmup must be a fraction in [0, 1), got ${warmup}`);
  for (const b of ["adam-beta1", "adam-beta2"] as const) {
    const v = flags[b];
    if (!(v >= 0 && v < 1)) throw new UsageError(`--${b} must be in [0, 1), got ${v}`);
  }
  return withoutUndefined({
    data: flags.data, valData: flags["val-data"], out: flags.out, steps: positive("steps", flags.steps), tokens: positive("tokens", flags.tokens),
    batchSize: positive("batch-size", flags["batch-size"]), seqLen: positive("seq-len", flags["seq-len"]), gradAccum: positive("grad-accum", flags["grad-accum"]),
    lr: positive("lr", flags.lr), weightDecay: positive("weight-decay", flags["weight-decay"], true), decayAll: flags["decay-all"],
    beta1: flags["adam-beta1"], beta2: flags["adam-beta2"], adamEps: positive("adam-eps", flags["adam-eps"]), schedule: flags.schedule, warmupFraction: warmup,
    warmupSteps: positive("warmup-steps", flags["warmup-steps"], true), gradClip: positive("clip", flags.clip, true),
    evalEvery: positive("eval-every", flags["eval-every"], true), evalBatches: positive("eval-batches", flags["eval-batches"]),
    saveEvery: positive("save-every", flags["save-every"], true), keepCheckpoints: positive("keep-checkpoints", flags["keep-checkpoints"]),
    resume: flags.resume, seed: flags.seed, progress: !flags["no-progress"], handleSigint: true, dtype: flags.dtype,
    keepTeacherDType: flags["teacher-dtype"] === undefined ? undefined : flags["teacher-dtype"] === "keep",
  });
}

/** Prints the run summary (stderr) and, with --json, the JSON line (stdout). Returns the exit code. */
export function report(command: string, r: RunResult, json: boolean): number {
  const f = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(4));
  const lines = [
    `${command}: ${r.interrupted ? "interrupted" : "done"} at step ${r.steps}: ${r.tokens.toLocaleString("en-US")} tokens, ` +
      `${Math.round(r.tokensPerSecond)} tokens/s in its training steps, ${r.elapsedSeconds.toFixed(1)} s`,
    `  final loss ${f(r.final.total)}  ce ${f(r.final.ce)}${r.final.kl !== undefined ? `  kl ${f(r.final.kl)}` : ""}${r.final.clone !== undefined ? `  clone ${f(r.final.clone)}` : ""}`,
  ];
  if (r.val !== null) lines.push(`  val loss ${f(r.val.loss)}  ppl ${r.val.perplexity.toFixed(2)}${r.val.teacherLoss !== null ? `  (teacher ${f(r.val.teacherLoss)})` : ""}`);
  if (r.exported !== null) lines.push(`  model written to ${r.exported}`);
  process.stderr.write(`${lines.join("\n")}\n`);
  if (json)
    console.log(
      JSON.stringify({
        command, steps: r.steps, interrupted: r.interrupted, losses: r.final, val: r.val, tokens: r.tokens,
        tokens_per_s: r.tokensPerSecond, elapsed_s: r.elapsedSeconds, trainable: r.trainable, exported: r.exported,
      }),
    );
  return r.interrupted ? 130 : 0;
}

/** Prints a dry run's plan (stdout; --json: one JSON object). Returns the exit code. */
export function reportDryRun(command: string, r: DryRunResult, json: boolean): number {
  if (json) {
    console.log(JSON.stringify({ command, dryRun: true, ...r }));
    return 0;
  }
  const M = (n: number) => `${(n / 1e6).toFixed(1)}M`;
  const G = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const m = r.memory;
  const t = r.teacherDType;
  const teacherNote = t === null ? "" : ` (--teacher-dtype ${t.setting}; keep: ${G(t.keepBytes)}, float32: ${G(t.float32Bytes)})`;
  const duration = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);
  console.log(
    [
      `${command} --dry-run: the plan (nothing trained or written)`,
      `parameters: ${r.parameters.teacher !== null ? `teacher ${M(r.parameters.teacher)}, ` : ""}student ${M(r.parameters.student)}, trainable ${M(r.parameters.trainable)}`,
      `memory estimate: ${G(m.total)} in all`,
      ...([
        ["teacher weights", m.teacherWeights], ["student weights", m.studentWeights], ["trainable values", m.trainable],
        ["gradients", m.gradients], ["optimizer state", m.optimizer], ["activations", m.activations], ["logits", m.logits],
        ...(m.teacherGram > 0 ? [["teacher W_oᵀW_o", m.teacherGram] as const] : []),
        ["pool rounding", m.poolRounding], ["runtime", m.runtime],
      ] as const).map(([k, v]) => `  ${k.padEnd(17)}${G(v)}${k === "teacher weights" ? teacherNote : k === "pool rounding" ? " (the buffer pool's power-of-two buckets)" : k === "runtime" ? " (Node, modules, worker threads: measured)" : ""}`),
      ...(r.recompute !== null ? [recomputeLine(r.recompute)] : []),
      `buffer pool limit: ${G(r.poolLimit.bytes)} (${r.poolLimit.source})`,
      `timed ${r.stepSeconds.length} steps of ${r.tokensPerStep.toLocaleString("en-US")} tokens: ${r.stepSeconds.map((s) => `${s.toFixed(2)} s`).join(", ")} ` +
        `-> ${Math.round(r.tokensPerSecond)} tokens/s (last step); peak RSS ${G(r.peakRssBytes)}`,
      `run: ${r.steps.toLocaleString("en-US")} steps, ${r.tokens.toLocaleString("en-US")} tokens -> ETA ${duration(r.etaSeconds)}`,
    ].join("\n"),
  );
  return 0;
}
