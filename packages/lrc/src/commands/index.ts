// The table of `lrc` subcommands, one module each.
import type { Command } from "../cli/command.js";

export const commands: Command[] = [];
