// The table of `lrc` subcommands, one module each.
import type { Command } from "../cli/command.js";
import { distillCommand } from "./distill.js";
import { evalCommand } from "./eval.js";
import { evalTasksCommand } from "./eval-tasks.js";
import { exportCommand } from "./export.js";
import { exportReferenceCommand } from "./export-reference.js";
import { generateCommand } from "./generate.js";
import { importReferenceCommand } from "./import-reference.js";
import { initCommand } from "./init.js";
import { pretrainCommand } from "./pretrain.js";
import { tokenizeCommand } from "./tokenize.js";
import { tokenizerTrainCommand } from "./tokenizer-train.js";

export const commands: Command[] = [
  distillCommand,
  evalCommand,
  evalTasksCommand,
  exportCommand,
  exportReferenceCommand,
  generateCommand,
  importReferenceCommand,
  initCommand,
  pretrainCommand,
  tokenizeCommand,
  tokenizerTrainCommand,
];
