// One way to write a file so a crash never leaves it half-written: a temporary name in the same directory,
// then a rename (run.json, loss.svg, the model card). A failure names the file (Node's messages do not).

import fs from "node:fs";
import path from "node:path";
import { fileSystemError } from "@lrc-ts/tensor-core";

/** Writes a file through a temporary name in the same directory and a rename. */
export function writeFileAtomic(file: string, body: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    fs.writeFileSync(tmp, body);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw fileSystemError(file, "cannot write", e);
  }
}
