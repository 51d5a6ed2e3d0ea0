#!/usr/bin/env node
// The `lrc` command line: `lrc <command> [flags]`, `lrc <command> --help` (= `lrc help <command>`), `lrc --help`,
// `lrc --version`.
// Every command prints a one-line error and exits 1 on bad input.

import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { closest, formatFlags, parseFlags, UsageError } from "./cli/args.js";
import type { Command } from "./cli/command.js";
import { commands } from "./commands/index.js";
import { lrcVersion } from "./node/version.js";
import { describeChoice, initBackend, initBackendFromEnvAsync, parsePoolLimit, setBufferPoolLimit } from "@lrc-ts/tensor-core";

function usage(): string {
  const w = Math.max(...commands.map((c) => c.name.length), 8) + 2;
  return [
    "usage: lrc <command> [flags]      (lrc help <command> or lrc <command> --help for its flags; lrc --version)",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
  ].join("\n");
}

function commandHelp(c: Command): string {
  return [`usage: lrc ${c.name} [flags]`, "", c.summary, "", "flags:", formatFlags(c.flags), c.details ? `\n${c.details}` : ""].join("\n");
}

/** The command named by argv's leading words (longest match, so "tokenizer train" wins over a "tokenizer"). */
function findCommand(argv: readonly string[]): Command | undefined {
  return commands
    .filter((c) => c.name.split(" ").every((w, i) => argv[i] === w))
    .sort((a, b) => b.name.length - a.name.length)[0];
}

function unknownCommand(word: string): string {
  const near = closest(word, [...new Set(commands.map((c) => c.name.split(" ")[0]!)), "help"]);
  return `lrc: unknown command '${word}'${near !== undefined ? ` (did you mean '${near}'?)` : ""}\n\n${usage()}`;
}

export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === "--version" || argv[0] === "-V") {
    console.log(lrcVersion());
    return 0;
  }
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || (argv[0] === "help" && argv.length === 1)) {
    console.log(usage());
    return argv.length === 0 ? 1 : 0;
  }
  const helpFor = argv[0] === "help";
  const words = helpFor ? argv.slice(1) : argv;
  const match = findCommand(words);
  const wantsHelp = helpFor || words.includes("--help") || words.includes("-h");
  if (match === undefined) {
    // A word that only starts multi-word commands ("tokenizer"): list them.
    const group = commands.filter((c) => c.name.startsWith(`${words[0]} `));
    if (group.length === 0) {
      console.error(unknownCommand(words[0]!));
      return 1;
    }
    const list = group.map((c) => `  lrc ${c.name}  ${c.summary}`).join("\n");
    if (wantsHelp) console.log(`lrc ${words[0]} subcommands:\n${list}`);
    else console.error(`lrc ${words[0]}: give a subcommand\n${list}`);
    return wantsHelp ? 0 : 1;
  }
  if (wantsHelp) {
    console.log(commandHelp(match));
    return 0;
  }
  const rest = argv.slice(match.name.split(" ").length);
  try {
    const flags = parseFlags(rest, match.flags);
    if (typeof flags["pool-limit"] === "string") {
      try {
        setBufferPoolLimit(parsePoolLimit(flags["pool-limit"], "--pool-limit"), `--pool-limit ${flags["pool-limit"]}`);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    // The one place a backend is chosen: --backend, else LRC_BACKEND, else (commands that run models) auto:
    // native WebGPU on a hardware adapter, else GPU.js on a GPU, else cpu; what runs, and why for auto, goes to
    // stderr. lrc reads values
    // asynchronously, so auto may take WebGPU where its adapter is a GPU.
    if (typeof flags.backend === "string") {
      const info = await initBackend(flags.backend, { asyncReads: true });
      console.error(describeChoice(info));
    } else {
      const runsModels = match.flags.backend !== undefined; // commands without --backend keep cpu unless LRC_BACKEND says
      await initBackendFromEnvAsync(process.env, console.error, { asyncReads: true, ...(runsModels ? { fallback: "auto" } : {}) });
    }
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

/**
 * True when this module is the process's entry script. npm, yarn and global installs start the CLI through a
 * symlink (node_modules/.bin/lrc -> .../dist/cli.js) and node reports argv[1] as the link, so compare real paths.
 */
export function isEntryScript(argv1: string | undefined, moduleUrl: string): boolean {
  if (argv1 === undefined) return false;
  try {
    return fs.realpathSync(argv1) === fs.realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

const isEntry = isEntryScript(process.argv[1], import.meta.url);
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`lrc: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}
