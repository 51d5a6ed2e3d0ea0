// run.json: a run directory's full configuration, written when the run starts. One helper for every writer
// (the trainer writes its resolved configuration, distill/pretrain add their inputs, a recipe can add its own
// part): each call merges its top-level fields over the file's and rewrites it atomically (temp + rename).

import fs from "node:fs";
import path from "node:path";

export const RUN_JSON = "run.json";

/** Merges `fields` over `<outDir>/run.json` (created if missing) and writes it atomically. */
export function writeRunJson(outDir: string, fields: Record<string, unknown>): void {
  const file = path.join(outDir, RUN_JSON);
  let prev: Record<string, unknown> = {};
  if (fs.existsSync(file)) {
    try {
      const v: unknown = JSON.parse(fs.readFileSync(file, "utf8"));
      if (typeof v === "object" && v !== null && !Array.isArray(v)) prev = v as Record<string, unknown>;
    } catch {
      // an unreadable earlier file is replaced
    }
  }
  fs.mkdirSync(outDir, { recursive: true });
  writeFileAtomic(file, `${JSON.stringify({ ...prev, ...fields }, null, 2)}\n`);
}

/** Writes a file through a temporary name in the same directory and a rename. */
export function writeFileAtomic(file: string, body: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  fs.writeFileSync(tmp, body);
  fs.renameSync(tmp, file);
}
