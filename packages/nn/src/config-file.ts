// Reading a config.json from disk (Node). The parsing and validation are in ./config.ts, which runs anywhere;
// in a browser, parse the file's text with `parseConfig(JSON.parse(text), name)`.

import { readFileSync } from "node:fs";
import type { CausalLMConfig } from "./config.js";
import { ConfigError, parseConfig } from "./config.js";

/** Reads and validates `<file>` (a config.json path). */
export function readConfigFile(file: string): CausalLMConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: ${code === "ENOENT" ? "no such file (a model directory needs a config.json)" : `cannot read: ${(e as Error).message}`}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  return parseConfig(json, file);
}
