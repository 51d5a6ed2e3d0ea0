// The shape every `lrc` subcommand has. Each lives in its own file under ../commands/ and is listed in
// ../cli.ts. `run` returns the process exit code; it throws UsageError for bad flags and any Error with a
// one-line message (naming the file or field) for bad input; cli.ts prints it and exits 1.

import type { FlagSpec, FlagSpecs, ParsedFlags } from "./args.js";

/** `--backend`, for commands that run models; cli.ts reads it (else LRC_BACKEND) before the command runs. */
export const backendFlag: FlagSpec = {
  kind: "string",
  help: "tensor backend: cpu | gpu (GPU.js) | webgpu (native WGSL kernels) | auto (webgpu on a hardware GPU adapter, else GPU.js on a GPU, else cpu) (default: LRC_BACKEND, else auto)",
};

/** `--pool-limit`, for commands that run models; cli.ts applies it (else LRC_POOL_LIMIT) before the command runs. */
export const poolLimitFlag: FlagSpec = {
  kind: "string",
  help: "bytes the CPU buffer pool may keep cached for reuse: 6GB, 512MiB or 30% (default: LRC_POOL_LIMIT, else half the memory)",
};

export interface Command {
  /** e.g. "tokenize" or "tokenizer train" */
  readonly name: string;
  readonly summary: string;
  /** Extra help text printed after the flag table (examples, notes). */
  readonly details?: string;
  readonly flags: FlagSpecs;
  run(flags: ParsedFlags): Promise<number>;
}
