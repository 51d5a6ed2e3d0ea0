// readRows: JSONL (line numbers, blank lines, bad lines) and parquet (written here with hyparquet-writer,
// snappy-compressed as the Hub's files are; nested structs, BigInt integers, several read chunks).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, describe, expect, it } from "vitest";
import { DataError } from "./errors.js";
import { readRows } from "./rows.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-rows-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function all(file: string) {
  const out = [];
  for await (const r of readRows(file)) out.push(r);
  return out;
}

describe("readRows", () => {
  it("reads JSONL rows with their line numbers, skipping blank lines", async () => {
    const f = path.join(dir, "a.jsonl");
    fs.writeFileSync(f, '{"q": "a", "label": 0}\n\n{"q": "b", "choices": {"text": ["x"]}}\n');
    expect(await all(f)).toEqual([{ line: 1, row: { q: "a", label: 0 } }, { line: 3, row: { q: "b", choices: { text: ["x"] } } }]);
  });

  it("stops at a bad JSONL line with the file and line", async () => {
    const f = path.join(dir, "bad.jsonl");
    fs.writeFileSync(f, '{"q": 1}\n{"q": \n');
    await expect(all(f)).rejects.toThrow(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: line 2: invalid JSON`));
    fs.writeFileSync(f, "[1, 2]\n");
    await expect(all(f)).rejects.toThrow(/line 1: not a JSON object/);
  });

  it("reads parquet rows: nested structs of lists (Arrow's layout, as the Hub's files), BigInt integers as numbers, across chunks", async () => {
    const n = 2500;
    const f = path.join(dir, "t.parquet");
    const list = (name: string) => [
      { name, repetition_type: "OPTIONAL", num_children: 1, converted_type: "LIST" },
      { name: "list", repetition_type: "REPEATED", num_children: 1 },
      { name: "element", repetition_type: "OPTIONAL", type: "BYTE_ARRAY", converted_type: "UTF8" },
    ] as const;
    const buf = parquetWriteBuffer({
      schema: [
        { name: "root", num_children: 3 },
        { name: "question", repetition_type: "OPTIONAL", type: "BYTE_ARRAY", converted_type: "UTF8" },
        { name: "choices", repetition_type: "OPTIONAL", num_children: 2 },
        ...list("text"), ...list("label"),
        { name: "label", repetition_type: "OPTIONAL", type: "INT64" },
      ],
      columnData: [
        { name: "question", data: Array.from({ length: n }, (_, i) => `q${i}`) },
        { name: "choices", data: Array.from({ length: n }, (_, i) => ({ text: ["a", `b${i}`], label: ["A", "B"] })) },
        { name: "label", data: Array.from({ length: n }, (_, i) => BigInt(i % 2)) },
      ],
    });
    fs.writeFileSync(f, new Uint8Array(buf));
    const rows = await all(f);
    expect(rows.length).toBe(n);
    expect(rows[0]).toEqual({ line: 1, row: { question: "q0", choices: { text: ["a", "b0"], label: ["A", "B"] }, label: 0 } });
    expect(rows[2499]).toEqual({ line: 2500, row: { question: "q2499", choices: { text: ["a", "b2499"], label: ["A", "B"] }, label: 1 } });
  });

  it("names the file for a missing file, an unknown type, or a broken parquet file", async () => {
    expect(() => readRows(path.join(dir, "none.jsonl"))).toThrow(/none.jsonl: no such file/);
    const csv = path.join(dir, "x.csv");
    fs.writeFileSync(csv, "a,b\n");
    expect(() => readRows(csv)).toThrow(DataError);
    expect(() => readRows(csv)).toThrow(/x.csv: unsupported table type '.csv'/);
    const broken = path.join(dir, "broken.parquet");
    fs.writeFileSync(broken, "not parquet at all");
    await expect(all(broken)).rejects.toThrow(/broken.parquet: not a readable parquet file/);
  });
});
