// Where the example keeps things: the repository root (found from this file), the cache under
// `<root>/.lrc-cache/distill-qwen/` (gitignored) for the tokenizer, shards and pretrained teacher of the
// embedded run, and content keys (sha256 of a canonical JSON) that name each cached entry, so a change to
// anything that affects an entry gives it a new directory instead of reusing a stale one.

import fs from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "@lrc-ts/tensor-core";

/** The monorepo root (the directory holding pnpm-workspace.yaml), else the example directory. */
export function repoRoot(): string {
  const exampleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  for (let dir = exampleDir; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "pnpm-workspace.yaml"))) return dir;
    if (path.dirname(dir) === dir) return exampleDir;
  }
}

/** `<root>/.lrc-cache/distill-qwen` unless LRC_CACHE_DIR points elsewhere. */
export function cacheRoot(): string {
  const env = process.env.LRC_CACHE_DIR;
  return env !== undefined && env !== "" ? path.resolve(env, "distill-qwen") : path.join(repoRoot(), ".lrc-cache", "distill-qwen");
}

/** JSON with object keys sorted, so equal values always serialise (and hash) the same. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object")
    return `{${Object.keys(v as object)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(v) ?? "null";
}

/** First 16 hex digits of the sha256 of the canonical JSON of `v`. */
export function contentKey(v: unknown): string {
  return createHash("sha256").update(canonicalJson(v)).digest("hex").slice(0, 16);
}

/** The marker file written last into a finished cache entry. */
export const DONE_FILE = "done.json";

/** Reads a finished entry's marker, or null when the entry is absent or incomplete. */
export function readDone<T>(dir: string): T | null {
  const file = path.join(dir, DONE_FILE);
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return null;
  }
}

/** Writes an entry's marker atomically (temporary name, then rename). */
export function writeDone(dir: string, value: unknown): void {
  writeFileAtomic(path.join(dir, DONE_FILE), `${JSON.stringify(value, null, 2)}\n`);
}
