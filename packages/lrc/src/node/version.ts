// The @lrc-ts/lrc version, read from the package.json two levels above src/node/ and dist/node/ (Node only).

import fs from "node:fs";

let cached: string | undefined;

/** The installed @lrc-ts/lrc version, e.g. "0.1.0". */
export function lrcVersion(): string {
  cached ??= (JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  return cached;
}
