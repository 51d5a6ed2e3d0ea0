// The shape every `lrc` subcommand has. Each lives in its own file under ../commands/, is written with
// defineCommand (so `run` gets its flags typed from the command's own table) and is listed in
// ../commands/index.ts. `run` returns the process exit code; it throws UsageError for bad flags and any Error with a
// one-line message (naming the file or field) for bad input; cli.ts prints it and exits 1.

import { getBackend } from "@lrc-ts/tensor-core";
import type { FlagSpec, Flags, FlagSpecs } from "./args.js";

/**
 * `--model-dtype`, for the commands that run a model directory (eval, generate, eval-tasks): how a BF16 / F16
 * checkpoint's weight matrices are held, as distill's `--teacher-dtype` holds the teacher's (keepHalfDType).
 */
export const modelDTypeFlag = {
  kind: "string",
  choices: ["keep", "float32"],
  help: "how the model's weight matrices are held: keep (a BF16 / F16 checkpoint's stay 16-bit, half the bytes; the kernels widen them exactly, so the results are the float32 load's; default on the cpu and webgpu backends) | float32 (widened on load; the default on gpu)",
} as const satisfies FlagSpec;

/**
 * Whether a BF16 / F16 checkpoint's weight matrices stay 16-bit: "keep" / "float32" as set, else on the cpu and
 * webgpu backends (GPU.js has no 16-bit kernels: its matmuls would run on cpu). `--model-dtype` and `--teacher-dtype`.
 */
export function keepHalfDType(setting: "keep" | "float32" | undefined): boolean {
  return setting === undefined ? ["cpu", "webgpu"].includes(getBackend().name) : setting === "keep";
}

/** `--backend`, for commands that run models; cli.ts reads it (else LRC_BACKEND) before the command runs. */
export const backendFlag = {
  kind: "string",
  choices: ["cpu", "gpu", "webgpu", "auto"],
  help: "tensor backend: cpu | gpu (GPU.js) | webgpu (native WGSL kernels) | auto (webgpu on a hardware GPU adapter, else GPU.js on a GPU, else cpu) (default: LRC_BACKEND, else auto)",
} as const satisfies FlagSpec;

/** `--pool-limit`, for commands that run models; cli.ts applies it (else LRC_POOL_LIMIT) before the command runs. */
export const poolLimitFlag = {
  kind: "string",
  help: "bytes the CPU buffer pool may keep cached for reuse: 6GB, 512MiB or 30% (default: LRC_POOL_LIMIT, else half the memory: a container's cgroup limit when set, else the machine's)",
} as const satisfies FlagSpec;

export interface Command<S extends FlagSpecs = FlagSpecs> {
  /** e.g. "tokenize" or "tokenizer train" */
  readonly name: string;
  readonly summary: string;
  /** Extra help text printed after the flag table (examples, notes). */
  readonly details?: string;
  /** The flag table: parsing, the types `run` sees and --help all come from it. */
  readonly flags: S;
  run(flags: Flags<S>): Promise<number>;
}

/** A command whose `run` sees its flags typed from its own table (the table keeps its literal types). */
export function defineCommand<const S extends FlagSpecs>(command: Command<S>): Command<S> {
  return command;
}
