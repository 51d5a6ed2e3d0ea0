// The example's command line: `pnpm --filter @lrc-ts/example-distill-qwen start [-- flags]`. Parses the flags,
// runs the pipeline (./pipeline.ts) and prints the summary; errors print one clear line and exit 1.

import path from "node:path";
import { initBackendFromEnvAsync } from "@lrc-ts/tensor-core";
import { repoRoot } from "./cache.js";
import { DEFAULT_PRESET, HELP, HUB_PRESET, QUICK_PRESET, SAMPLE_PROMPTS, UsageError, parseCli } from "./options.js";
import { runDistillQwen } from "./pipeline.js";

async function main(argv: readonly string[]): Promise<number> {
  let cli;
  try {
    cli = parseCli(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`distill-qwen: ${e.message}\n(run with --help for the flags)\n`);
      return 1;
    }
    throw e;
  }
  if (cli.help) {
    process.stdout.write(HELP);
    return 0;
  }
  // LRC_BACKEND, else auto; the pipeline's first line names the backend and why auto took it. It reads values
  // asynchronously: auto may take WebGPU on a GPU.
  await initBackendFromEnvAsync(process.env, () => {}, { asyncReads: true, fallback: "auto" });
  const preset = cli.teacher !== null ? HUB_PRESET : cli.quick ? QUICK_PRESET : DEFAULT_PRESET;
  // `pnpm --filter ... start` runs in the example's directory; INIT_CWD is where the user typed the command.
  const base = process.env.INIT_CWD ?? process.cwd();
  const out = path.resolve(base, cli.out ?? path.join(repoRoot(), "runs", cli.quick ? "distill-qwen-quick" : "distill-qwen"));
  const result = await runDistillQwen({
    preset,
    teacherDir: cli.teacher === null ? null : path.resolve(base, cli.teacher),
    data: cli.data.map((d) => path.resolve(base, d)),
    out,
    seed: cli.seed,
    hiddenSize: cli.hiddenSize,
    tokens: cli.tokens,
    baselineMultiple: cli.baselineMultiple,
    lr: cli.lr,
    prompts: cli.prompts ?? SAMPLE_PROMPTS,
    tasksDir: cli.tasks === null ? null : path.resolve(base, cli.tasks),
    taskLimit: cli.taskLimit,
    init: cli.init,
    initTokens: cli.initTokens,
    ablate: cli.ablate,
  });
  process.stdout.write(result.terminal);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = e as Error;
    process.stderr.write(`\ndistill-qwen: error: ${err.message ?? String(e)}\n`);
    if (process.env.LRC_DEBUG) process.stderr.write(`${err.stack ?? ""}\n`);
    process.exit(1);
  },
);
