#!/usr/bin/env node
// The `lrc` command line: `lrc <command> [flags]`, `lrc <command> --help`, `lrc --help`.
// Every command prints a one-line error and exits 1 on bad input.

import { formatFlags, parseFlags, UsageError } from "./cli/args.js";
import type { Command } from "./cli/command.js";
import { commands } from "./commands/index.js";
import { initBackend, initBackendFromEnvAsync, parsePoolLimit, setBufferPoolLimit } from "@lrc-ts/tensor-core";

function usage(): string {
  const w = Math.max(...commands.map((c) => c.name.length), 8) + 2;
  return [
    "usage: lrc <command> [flags]      (lrc <command> --help for its flags)",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
  ].join("\n");
}

function commandHelp(c: Command): string {
  return [`usage: lrc ${c.name} [flags]`, "", c.summary, "", "flags:", formatFlags(c.flags), c.details ? `\n${c.details}` : ""].join("\n");
}

export async function main(argv: readonly string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    console.log(usage());
    return argv.length === 0 ? 1 : 0;
  }
  // Longest match so "tokenizer train" wins over a hypothetical "tokenizer".
  const match = commands
    .filter((c) => {
      const words = c.name.split(" ");
      return words.every((w, i) => argv[i] === w);
    })
    .sort((a, b) => b.name.length - a.name.length)[0];
  if (match === undefined) {
    console.error(`lrc: unknown command '${argv[0]}'\n\n${usage()}`);
    return 1;
  }
  const rest = argv.slice(match.name.split(" ").length);
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(commandHelp(match));
    return 0;
  }
  try {
    const flags = parseFlags(rest, match.flags);
    if (typeof flags["pool-limit"] === "string") {
      try {
        setBufferPoolLimit(parsePoolLimit(flags["pool-limit"], "--pool-limit"));
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    // The one place a backend is chosen: --backend, else LRC_BACKEND (the gpu backend loads GPU.js
    // asynchronously and verifies which mode really runs; it says so on stderr). lrc reads values
    // asynchronously, so auto may take WebGPU where its adapter is a GPU.
    if (typeof flags.backend === "string") {
      const info = await initBackend(flags.backend, { asyncReads: true });
      console.error(`lrc backend: ${info.description}`);
    } else await initBackendFromEnvAsync(process.env, console.error, { asyncReads: true });
    return await match.run(flags);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`lrc ${match.name}: ${e.message}\n(see lrc ${match.name} --help)`);
    } else {
      console.error(`lrc ${match.name}: ${e instanceof Error ? e.message : String(e)}`);
      if (process.env.LRC_DEBUG && e instanceof Error) console.error(e.stack);
    }
    return 1;
  }
}

const isEntry = process.argv[1] !== undefined && /cli\.(ts|js)$/.test(process.argv[1]);
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`lrc: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}
