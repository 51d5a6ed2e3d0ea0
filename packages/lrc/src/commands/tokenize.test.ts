// `lrc tokenizer train` and `lrc tokenize` end to end on temp files, in-process through `main`: the output is a
// manifest + shards the reader accepts; bad input exits 1 with a one-line message naming the file.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadTokenizer, openShards, readManifest, readSplitTokens } from "@lrc-ts/data";
import { main } from "../cli.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-cli-tokenize-"));
const corpus = path.join(root, "corpus");
const tokJson = path.join(root, "tok", "tokenizer.json");
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
  vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
  const code = await main(argv);
  vi.restoreAllMocks();
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const texts = Array.from({ length: 12 }, (_, i) => `Story ${i}. Once upon a time the ${i % 2 ? "cat" : "dog"} went to town ${i} times.\n`);

beforeAll(async () => {
  fs.mkdirSync(path.join(corpus, "sub"), { recursive: true });
  texts.slice(0, 4).forEach((t, i) => fs.writeFileSync(path.join(corpus, `a${i}.txt`), t));
  fs.writeFileSync(path.join(corpus, "sub", "b.jsonl"), texts.slice(4).map((t) => JSON.stringify({ text: t, id: 1 })).join("\n") + "\n");
  fs.writeFileSync(path.join(corpus, "ignored.csv"), "x,y\n");
  const r = await run(["tokenizer", "train", "--input", corpus, "--vocab-size", "300", "--out", tokJson, "--min-frequency", "1"]);
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
});

describe("lrc tokenizer train", () => {
  it("writes a loadable tokenizer.json", () => {
    const t = loadTokenizer(tokJson);
    expect(t.vocabSize).toBe(300);
    expect(t.decode(t.encode(texts[3]!))).toBe(texts[3]);
  });
});

describe("lrc tokenize", () => {
  it("turns .txt and .jsonl files into shards the reader accepts", async () => {
    const out = path.join(root, "shards");
    const r = await run(["tokenize", "--tokenizer", tokJson, "--input", `${corpus}/*.txt,${corpus}/**/*.jsonl`, "--out", out, "--val-fraction", "0.25", "--shard-tokens", "40", "--json"]);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out);
    expect(summary.train.documents + summary.val.documents).toBe(12);
    const m = readManifest(out);
    expect(m.shards.length).toBeGreaterThan(2);
    const t = loadTokenizer(tokJson);
    const all = [...t.decode(readSplitTokens(out, "train")).split("<|endoftext|>"), ...t.decode(readSplitTokens(out, "val")).split("<|endoftext|>")];
    expect(all.filter((s) => s.length > 0).sort()).toEqual([...texts].sort());
    const reader = openShards(out, { seqLen: 8, batchSize: 2, expectTokenizerHash: t.hash });
    expect(reader.next().shape).toEqual([2, 8]);
    reader.close();
  });

  const bad: [string, (dir: string) => string[], RegExp][] = [
    ["a missing input file", (d) => [path.join(d, "missing.txt")], /missing\.txt: no such file or directory/],
    ["a jsonl line without the text field", (d) => (fs.writeFileSync(path.join(d, "x.jsonl"), '{"text":"ok"}\n{"body":"no"}\n'), [path.join(d, "x.jsonl")]), /x\.jsonl: line 2: no "text" field/],
    ["bad JSON", (d) => (fs.writeFileSync(path.join(d, "y.jsonl"), '{"text":"ok"}\n\n{"text": "a",\n'), [path.join(d, "y.jsonl")]), /y\.jsonl: line 3: invalid JSON/],
    ["an unsupported file type", (d) => (fs.writeFileSync(path.join(d, "z.csv"), "a"), [path.join(d, "z.csv")]), /z\.csv: unsupported input type '\.csv'/],
    // Text that would be tokenized wrongly: refused by file and place, never through replacement characters.
    ["invalid UTF-8", (d) => (fs.writeFileSync(path.join(d, "u.txt"), Buffer.from([0x61, 0x62, 0xc3, 0x28, 0x63])), [path.join(d, "u.txt")]), /u\.txt: invalid UTF-8 at byte offset 2$/],
    ["a surrogate encoded in UTF-8", (d) => (fs.writeFileSync(path.join(d, "s.txt"), Buffer.from([0x61, 0xed, 0xa0, 0x80])), [path.join(d, "s.txt")]), /s\.txt: invalid UTF-8 at byte offset 1$/],
    ["a file cut inside a character", (d) => (fs.writeFileSync(path.join(d, "c.txt"), Buffer.from([0x61, 0xe2, 0x82])), [path.join(d, "c.txt")]), /c\.txt: invalid UTF-8: ends inside a character \(byte offset 3\)/],
    ["UTF-16 with a byte-order mark", (d) => (fs.writeFileSync(path.join(d, "w.txt"), Buffer.from("\ufeffhello", "utf16le")), [path.join(d, "w.txt")]), /w\.txt: starts with a UTF-16 byte-order mark: convert it to UTF-8/],
    ["UTF-16 without a byte-order mark", (d) => (fs.writeFileSync(path.join(d, "v.txt"), Buffer.from("hello", "utf16le")), [path.join(d, "v.txt")]), /v\.txt: holds a NUL byte at byte offset 1: binary data/],
    ["binary data", (d) => (fs.writeFileSync(path.join(d, "b.md"), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x00])), [path.join(d, "b.md")]), /b\.md: holds a NUL byte at byte offset 5/],
    ["invalid UTF-8 in a jsonl line", (d) => (fs.writeFileSync(path.join(d, "j.jsonl"), Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"'), Buffer.from([0xff]), Buffer.from('"}\n')])), [path.join(d, "j.jsonl")]), /j\.jsonl: invalid UTF-8 at byte offset 23$/],
    ["the end-of-text token as literal text", (d) => (fs.writeFileSync(path.join(d, "e.txt"), "one story<|endoftext|>another"), [path.join(d, "e.txt")]), /e\.txt: the text holds the end-of-text token "<\|endoftext\|>" literally \(at character 9 of the document\); it would become a document boundary/],
    ["the end-of-text token in a jsonl line", (d) => (fs.writeFileSync(path.join(d, "f.jsonl"), '{"text":"a"}\n{"text":"b <|endoftext|>"}\n'), [path.join(d, "f.jsonl")]), /f\.jsonl:2: the text holds the end-of-text token/],
    ["an empty corpus", (d) => (fs.writeFileSync(path.join(d, "empty.txt"), ""), fs.writeFileSync(path.join(d, "blank.jsonl"), "\n\n"), [path.join(d, "empty.txt"), path.join(d, "blank.jsonl")]), /empty\.txt,.*blank\.jsonl: no text to tokenize: every document is empty \(nothing written\)/],
  ];
  it.each(bad)("exits 1 with a one-line message for %s", async (_name, make, pattern) => {
    const dir = fs.mkdtempSync(path.join(root, "bad-"));
    const out = path.join(dir, "out");
    const r = await run(["tokenize", "--tokenizer", tokJson, "--input", make(dir).join(","), "--out", out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(pattern);
    expect(r.err.split("\n")).toHaveLength(1);
    expect(fs.existsSync(path.join(out, "manifest.json"))).toBe(false);
  });

  it("a full disk while writing shards names the shard directory and leaves no manifest", async () => {
    const out = path.join(root, "full-disk");
    vi.spyOn(fs, "writeSync").mockImplementation(() => {
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", syscall: "write" });
    });
    const r = await run(["tokenize", "--tokenizer", tokJson, "--input", corpus, "--out", out]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`lrc tokenize: ${out}: cannot write shards: ENOSPC: no space left on device`);
    expect(fs.existsSync(path.join(out, "manifest.json"))).toBe(false);
  });

  it.runIf(fs.existsSync("/proc/self"))("an --out the file system refuses (under /proc) fails at once, naming it", async () => {
    const r = await run(["tokenize", "--tokenizer", tokJson, "--input", corpus, "--out", "/proc/lrc-test-out"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe("lrc tokenize: /proc/lrc-test-out: cannot create directory: ENOENT: no such file or directory");
  });

  it("exits 1 naming a missing tokenizer", async () => {
    const r = await run(["tokenize", "--tokenizer", path.join(root, "none.json"), "--input", corpus, "--out", path.join(root, "o")]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^lrc tokenize: .*none\.json: no such tokenizer/);
  });
});

describe("lrc tokenize --val-files", () => {
  it("splits by file, deterministically: the named files are val, every other input file is train", async () => {
    const t = loadTokenizer(tokJson);
    const split = async (out: string, extra: string[]) => {
      const r = await run(["tokenize", "--tokenizer", tokJson, "--input", corpus, "--out", out, "--json", ...extra]);
      expect(r.code, r.err).toBe(0);
      const docs = (s: "train" | "val") => t.decode(readSplitTokens(out, s)).split("<|endoftext|>").filter((x) => x.length > 0);
      return { summary: JSON.parse(r.out), train: docs("train"), val: docs("val") };
    };
    const a = await split(path.join(root, "by-file"), ["--val-files", `${corpus}/a2.txt,${corpus}/a1.txt,${corpus}/a3.txt`]);
    expect(a.val).toEqual([texts[2], texts[1], texts[3]]);
    expect(a.train.sort()).toEqual([texts[0]!, ...texts.slice(4)].sort());
    expect(a.summary.valFiles).toHaveLength(3);
    // A val file outside --input joins val; a glob works; a second run gives the same shards byte for byte.
    const extra = path.join(root, "held-out.txt");
    fs.writeFileSync(extra, "A held-out story.\n");
    const b1 = await split(path.join(root, "by-file-b1"), ["--val-files", `${corpus}/a?.txt,${extra}`]);
    await split(path.join(root, "by-file-b2"), ["--val-files", `${corpus}/a?.txt,${extra}`]);
    expect(b1.val).toEqual([...texts.slice(0, 4), "A held-out story.\n"]);
    expect(b1.train.sort()).toEqual(texts.slice(4).sort());
    const bytes = (d: string, s: "train" | "val") => Buffer.from(readSplitTokens(d, s).buffer);
    for (const s of ["train", "val"] as const) expect(bytes(path.join(root, "by-file-b1"), s).equals(bytes(path.join(root, "by-file-b2"), s))).toBe(true);
  });

  it("refuses --val-fraction with --val-files, and a pattern that names no file", async () => {
    const both = await run(["tokenize", "--tokenizer", tokJson, "--input", corpus, "--out", path.join(root, "x"), "--val-files", `${corpus}/a1.txt`, "--val-fraction", "0.1"]);
    expect(both.code).toBe(1);
    expect(both.err).toMatch(/give --val-fraction or --val-files, not both/);
    const none = await run(["tokenize", "--tokenizer", tokJson, "--input", corpus, "--out", path.join(root, "y"), "--val-files", `${corpus}/zz*.txt`]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/zz\*\.txt.*matches no/);
  });
});
