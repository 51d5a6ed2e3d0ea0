// Table rows from a JSONL file (one JSON object a line, as `datasets`' to_json writes) or a parquet file (as
// the Hugging Face Hub stores dataset splits; read with hyparquet, snappy included, nested lists and structs
// as arrays and objects). Each row comes with its number: the 1-based line of a JSONL file (blank lines
// skipped but counted), the 1-based row of a parquet file. Parquet integers that arrive as BigInt are turned
// into numbers. Rows are read in chunks, so a big file is never held whole.

import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { DataError } from "./errors.js";

export interface TableRow {
  /** 1-based line (JSONL) or row (parquet) number. */
  readonly line: number;
  readonly row: Record<string, unknown>;
}

/** Rows read per parquet chunk. */
const PARQUET_CHUNK = 1024;

function plain(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !(v instanceof Date))
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

async function* jsonlRows(file: string): AsyncGenerator<TableRow> {
  const lines = readline.createInterface({ input: fs.createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() === "") continue;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (e) {
      throw new DataError(file, "input", `line ${line}: invalid JSON (${(e as Error).message})`);
    }
    if (row === null || typeof row !== "object" || Array.isArray(row)) throw new DataError(file, "input", `line ${line}: not a JSON object`);
    yield { line, row: row as Record<string, unknown> };
  }
}

async function* parquetRows(file: string): AsyncGenerator<TableRow> {
  let n: number;
  let buf: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    buf = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buf);
    n = Number(metadata.num_rows);
  } catch (e) {
    throw new DataError(file, "input", `not a readable parquet file (${(e as Error).message})`);
  }
  for (let start = 0; start < n; start += PARQUET_CHUNK) {
    const rows = await parquetReadObjects({ file: buf, metadata, rowStart: start, rowEnd: Math.min(n, start + PARQUET_CHUNK) });
    for (let i = 0; i < rows.length; i++) yield { line: start + i + 1, row: plain(rows[i]) as Record<string, unknown> };
  }
}

/** The rows of a .jsonl / .ndjson / .json (JSON lines, as datasets' to_json writes) or .parquet file, in order. */
export function readRows(file: string): AsyncGenerator<TableRow> {
  if (!fs.existsSync(file)) throw new DataError(file, "io", "no such file");
  const ext = path.extname(file).toLowerCase();
  if (ext === ".parquet") return parquetRows(file);
  if (ext === ".jsonl" || ext === ".ndjson" || ext === ".json") return jsonlRows(file);
  throw new DataError(file, "input", `unsupported table type '${ext}' (use .jsonl or .parquet)`);
}
