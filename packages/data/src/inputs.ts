// Text inputs for the tokenizer trainer and the shard writer: expands files, directories (recursively) and
// globs (`*`, `?`, `**`) into a sorted file list, and streams documents out of them: a .txt/.md file is one
// document, a .jsonl file one document per line (its text field), a .parquet file (a Hub dataset split, read
// by ./rows.ts in chunks of rows, only the text column) one document per row. Nothing holds more than one document,
// and big .txt documents arrive in ~1 MiB pieces cut only between a newline and an ASCII letter or digit,
// where no common pre-tokenizer regex (GPT-2, Llama 3, Qwen) joins characters into one pre-token.

import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { DataError } from "./errors.js";
import { readRows } from "./rows.js";
import type { TextPiece } from "./shard-writer.js";

const TEXT_EXT = new Set([".txt", ".text", ".md"]);
const JSONL_EXT = new Set([".jsonl", ".ndjson"]);

export type InputKind = "text" | "jsonl" | "parquet";

export function inputKind(file: string): InputKind | null {
  const ext = path.extname(file).toLowerCase();
  return TEXT_EXT.has(ext) ? "text" : JSONL_EXT.has(ext) ? "jsonl" : ext === ".parquet" ? "parquet" : null;
}

function walk(dir: string, out: string[]): void {
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
}

function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      if (pattern[i + 2] === "/") {
        re += "(?:.*/)?";
        i += 2;
      } else {
        re += ".*";
        i += 1;
      }
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * Expands inputs into an ordered, de-duplicated list of .txt/.md/.jsonl/.parquet files. Directories contribute their
 * supported files (sorted, recursively, hidden entries skipped); a named file must be a supported type.
 */
export function expandInputs(inputs: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (f: string) => {
    const key = path.resolve(f);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(f);
    }
  };
  for (const input of inputs) {
    if (/[*?]/.test(input)) {
      const norm = input.split(path.sep).join("/");
      const segs = norm.split("/");
      const firstGlob = segs.findIndex((s) => /[*?]/.test(s));
      const base = segs.slice(0, firstGlob).join("/") || ".";
      const rest = segs.slice(firstGlob).join("/");
      const re = globToRegExp(rest);
      if (!fs.existsSync(base)) throw new DataError(input, "input", `no such directory ${base}`);
      const files: string[] = [];
      walk(base, files);
      const matched = files.filter((f) => re.test(path.relative(base, f).split(path.sep).join("/")) && inputKind(f) !== null);
      if (matched.length === 0) throw new DataError(input, "input", "pattern matches no .txt, .md, .jsonl or .parquet file");
      matched.forEach(add);
      continue;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(input);
    } catch {
      throw new DataError(input, "input", "no such file or directory");
    }
    if (stat.isDirectory()) {
      const files: string[] = [];
      walk(input, files);
      const matched = files.filter((f) => inputKind(f) !== null);
      if (matched.length === 0) throw new DataError(input, "input", "directory holds no .txt, .md, .jsonl or .parquet file");
      matched.forEach(add);
    } else {
      if (inputKind(input) === null)
        throw new DataError(input, "input", `unsupported input type '${path.extname(input) || "(none)"}' (expected .txt, .md, .jsonl or .parquet)`);
      add(input);
    }
  }
  return out;
}

export interface ReadDocumentsOptions {
  /** The field of each JSONL object, or the parquet column, holding the text (default "text"). */
  readonly textField?: string;
  /** Target piece size in UTF-16 units for long text documents (default 1 MiB). */
  readonly pieceChars?: number;
}

const SAFE_CUT = /\n[A-Za-z0-9]/g;

/** The last index p <= limit with text[p-1] == "\n" and text[p] an ASCII letter or digit, or -1. */
function lastSafeCut(text: string, limit: number): number {
  let best = -1;
  SAFE_CUT.lastIndex = Math.max(0, limit - (1 << 16));
  for (;;) {
    const m = SAFE_CUT.exec(text);
    if (m === null || m.index + 1 > limit) break;
    best = m.index + 1;
  }
  if (best < 0 && limit > 1 << 16) {
    SAFE_CUT.lastIndex = 0;
    for (;;) {
      const m = SAFE_CUT.exec(text);
      if (m === null || m.index + 1 > limit) break;
      best = m.index + 1;
    }
  }
  return best;
}

async function* readTextFile(file: string, pieceChars: number): AsyncGenerator<TextPiece> {
  let buf = "";
  let stream: fs.ReadStream;
  try {
    stream = fs.createReadStream(file, { encoding: "utf8", highWaterMark: 1 << 20 });
    for await (const chunk of stream as AsyncIterable<string>) {
      buf += chunk;
      if (buf.length >= 2 * pieceChars) {
        const cut = lastSafeCut(buf, buf.length - 1);
        if (cut > 0) {
          yield { text: buf.slice(0, cut), end: false };
          buf = buf.slice(cut);
        }
      }
    }
  } catch (e) {
    throw new DataError(file, "input", `cannot read: ${(e as Error).message}`);
  }
  yield { text: buf, end: true };
}

async function* readJsonlFile(file: string, field: string): AsyncGenerator<TextPiece> {
  const stream = fs.createReadStream(file, { encoding: "utf8" });
  const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim().length === 0) continue;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (e) {
        throw new DataError(file, "input", `line ${lineNo}: invalid JSON (${(e as Error).message})`);
      }
      if (typeof obj !== "object" || obj === null || Array.isArray(obj))
        throw new DataError(file, "input", `line ${lineNo}: expected a JSON object with a "${field}" field`);
      const text = (obj as Record<string, unknown>)[field];
      if (text === undefined) throw new DataError(file, "input", `line ${lineNo}: no "${field}" field`);
      if (typeof text !== "string") throw new DataError(file, "input", `line ${lineNo}: "${field}" is ${typeof text}, expected a string`);
      yield { text, end: true };
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(file, "input", `cannot read: ${(e as Error).message}`);
  } finally {
    lines.close();
    stream.destroy();
  }
}

/** One document per row of a parquet file's text column (only that column is decoded; null rows skipped). */
async function* readParquetFile(file: string, field: string): AsyncGenerator<TextPiece> {
  for await (const { line, row } of readRows(file, { columns: [field] })) {
    const text = row[field];
    if (text === null || text === undefined) continue;
    if (typeof text !== "string") throw new DataError(file, "input", `row ${line}: "${field}" is ${typeof text}, expected a string`);
    yield { text, end: true };
  }
}

/** Streams the documents of `files` (see expandInputs) as pieces, in order. */
export async function* readDocuments(files: readonly string[], options: ReadDocumentsOptions = {}): AsyncGenerator<TextPiece> {
  const field = options.textField ?? "text";
  const pieceChars = options.pieceChars ?? 1 << 20;
  for (const file of files) {
    const kind = inputKind(file);
    if (kind === null) throw new DataError(file, "input", `unsupported input type '${path.extname(file)}'`);
    if (kind === "jsonl") yield* readJsonlFile(file, field);
    else if (kind === "parquet") yield* readParquetFile(file, field);
    else yield* readTextFile(file, pieceChars);
  }
}
