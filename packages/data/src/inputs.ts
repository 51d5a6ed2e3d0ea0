// Text inputs for the tokenizer trainer and the shard writer: expands files, directories (recursively) and
// globs (`*`, `?`, `**`) into a sorted file list, and streams documents out of them: a .txt/.md file is one
// document, a .jsonl file one document per line (its text field). Nothing holds more than one document,
// and big .txt documents arrive in ~1 MiB pieces cut only where no common pre-tokenizer regex (GPT-2,
// Llama 3, Qwen) joins characters into one pre-token (see SAFE_CUT): a single long line streams too.

import fs from "node:fs";
import path from "node:path";
import { DataError } from "./errors.js";
import type { TextPiece } from "./shard-writer.js";

const TEXT_EXT = new Set([".txt", ".text", ".md"]);
const JSONL_EXT = new Set([".jsonl", ".ndjson"]);

export type InputKind = "text" | "jsonl";

export function inputKind(file: string): InputKind | null {
  const ext = path.extname(file).toLowerCase();
  return TEXT_EXT.has(ext) ? "text" : JSONL_EXT.has(ext) ? "jsonl" : null;
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
 * Expands inputs into an ordered, de-duplicated list of .txt/.md/.jsonl files. Directories contribute their
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
      if (matched.length === 0) throw new DataError(input, "input", "pattern matches no .txt, .md or .jsonl file");
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
      if (matched.length === 0) throw new DataError(input, "input", "directory holds no .txt, .md or .jsonl file");
      matched.forEach(add);
    } else {
      if (inputKind(input) === null)
        throw new DataError(input, "input", `unsupported input type '${path.extname(input) || "(none)"}' (expected .txt, .md or .jsonl)`);
      add(input);
    }
  }
  return out;
}

export interface ReadDocumentsOptions {
  /** The field of each JSONL object holding the text (default "text"). */
  readonly textField?: string;
  /** Target piece size in UTF-16 units for long text documents (default 1 MiB). */
  readonly pieceChars?: number;
}

// Where a long text may be cut into pieces without changing its tokens under the common pre-tokenizer
// regexes (GPT-2, Llama 3, Qwen): between a newline and an ASCII letter or digit; failing that (one long
// line), before a space that follows a non-space and precedes an ASCII letter (each regex ends a pre-token
// there, and starts the next one with " letter" either way).
const SAFE_CUT = /\n[A-Za-z0-9]/g;
const SPACE_CUT = /\S [A-Za-z]/g;

/** The last cut p in (from, limit] found by `re` (a match at i cuts at i + 1), searching the last 64 Ki first, or -1. */
function lastCut(re: RegExp, text: string, limit: number, from: number): number {
  let best = -1;
  for (const start of limit - from > 1 << 16 ? [limit - (1 << 16), from] : [from]) {
    re.lastIndex = start;
    for (;;) {
      const m = re.exec(text);
      if (m === null || m.index + 1 > limit) break;
      best = m.index + 1;
    }
    if (best >= 0) break;
  }
  return best;
}

/** The last place p <= limit to cut `text` at (see SAFE_CUT, SPACE_CUT), looking at text[from..] only, or -1. */
function lastSafeCut(text: string, limit: number, from = 0): number {
  const cut = lastCut(SAFE_CUT, text, limit, from);
  return cut >= 0 ? cut : lastCut(SPACE_CUT, text, limit, from);
}

/**
 * The index in `b` of the first byte that cannot be part of valid UTF-8 (after skipping up to 3 leading
 * continuation bytes, the tail of a character begun before `b`), or -1 when none is found in `b`.
 */
function invalidUtf8At(b: Uint8Array): number {
  let i = 0;
  while (i < 3 && i < b.length && (b[i]! & 0xc0) === 0x80) i++;
  while (i < b.length) {
    const c = b[i]!;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0) return i;
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80, hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k <= n; k++) {
      if (i + k >= b.length) return -1;
      const x = b[i + k]!;
      if (k === 1 ? x < lo || x > hi : (x & 0xc0) !== 0x80) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** Longest line of a .jsonl file, and longest stretch of a text file with no place to cut it, in UTF-16 units. */
const MAX_LINE_CHARS = 1 << 26;

/**
 * The text of a file in ~1 MiB chunks, checked as it streams: valid UTF-8 (never a silent replacement
 * character), no UTF-16 byte-order mark, no NUL byte (binary, UTF-16 or UTF-32 data). Errors name the file
 * and the byte offset.
 */
async function* utf8Chunks(file: string): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let offset = 0;
  try {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      if (offset === 0 && chunk.length >= 2 && ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff)))
        throw new DataError(file, "input", "starts with a UTF-16 byte-order mark: convert it to UTF-8");
      const nul = chunk.indexOf(0);
      if (nul >= 0) throw new DataError(file, "input", `holds a NUL byte at byte offset ${offset + nul}: binary data (or UTF-16/32), not UTF-8 text`);
      let text: string;
      try {
        text = decoder.decode(chunk, { stream: true });
      } catch {
        const at = invalidUtf8At(chunk);
        throw new DataError(file, "input", `invalid UTF-8 at byte offset ${offset + Math.max(0, at)}`);
      }
      offset += chunk.length;
      yield text;
    }
    let tail: string;
    try {
      tail = decoder.decode();
    } catch {
      throw new DataError(file, "input", `invalid UTF-8: ends inside a character (byte offset ${offset})`);
    }
    if (tail.length > 0) yield tail;
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(file, "input", `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A whole text file, checked as utf8Chunks checks it (valid UTF-8, no UTF-16 mark, no NUL byte). */
export async function readUtf8File(file: string): Promise<string> {
  let text = "";
  for await (const chunk of utf8Chunks(file)) text += chunk;
  return text;
}

async function* readTextFile(file: string, pieceChars: number): AsyncGenerator<TextPiece> {
  let buf = "";
  let searched = 0; // buf[0..searched) holds no place to cut (so an uncuttable text is scanned once, not once per chunk)
  for await (const chunk of utf8Chunks(file)) {
    buf += chunk;
    while (buf.length >= 2 * pieceChars) {
      // The last safe cut in the first 2 x pieceChars, else the last one anywhere (buf[0..searched) has none).
      const window = Math.min(buf.length - 1, 2 * pieceChars);
      let cut = lastSafeCut(buf, window, searched);
      if (cut <= 0) cut = lastSafeCut(buf, buf.length - 1, Math.max(searched, window - 2));
      if (cut <= 0) {
        searched = Math.max(0, buf.length - 3);
        break;
      }
      yield { text: buf.slice(0, cut), end: false, source: file };
      buf = buf.slice(cut);
      searched = 0;
    }
    if (buf.length > MAX_LINE_CHARS)
      throw new DataError(file, "input", `more than ${MAX_LINE_CHARS} characters with nowhere to cut them into pieces (a line break or a space before a letter): split the text`);
  }
  yield { text: buf, end: true, source: file };
}

async function* readJsonlFile(file: string, field: string): AsyncGenerator<TextPiece> {
  let lineNo = 0;
  let rest = "";
  const parse = (raw: string): TextPiece | null => {
    lineNo++;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim().length === 0) return null;
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
    return { text, end: true, source: `${file}:${lineNo}` };
  };
  for await (const chunk of utf8Chunks(file)) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    if (rest.length > MAX_LINE_CHARS) throw new DataError(file, "input", `line ${lineNo + lines.length + 1}: longer than ${MAX_LINE_CHARS} characters`);
    for (const l of lines) {
      const p = parse(l);
      if (p !== null) yield p;
    }
  }
  const p = parse(rest);
  if (p !== null) yield p;
}

/** Streams the documents of `files` (see expandInputs) as pieces, in order. */
export async function* readDocuments(files: readonly string[], options: ReadDocumentsOptions = {}): AsyncGenerator<TextPiece> {
  const field = options.textField ?? "text";
  const pieceChars = options.pieceChars ?? 1 << 20;
  for (const file of files) {
    const kind = inputKind(file);
    if (kind === null) throw new DataError(file, "input", `unsupported input type '${path.extname(file)}'`);
    if (kind === "jsonl") yield* readJsonlFile(file, field);
    else yield* readTextFile(file, pieceChars);
  }
}
