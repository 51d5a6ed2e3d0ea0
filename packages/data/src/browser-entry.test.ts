// The platform-neutral parts of the package against their Node counterparts: the pure SHA-256 equals
// node:crypto, the in-memory window reader gives the shard reader's batches over the same tokens, training a
// tokenizer on texts in memory gives the files trainer's tokenizer.json, and utf8Length equals Buffer's.

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { DataError, ShardDirectoryWriter, openShards, evalWindows, trainBpeTokenizer } from "./index.js";
import * as browser from "./browser.js";
import { utf8Length } from "./bpe.js";
import { sha256HexPure } from "./sha256.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-data-browser-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("sha256HexPure", () => {
  it("equals node:crypto on random inputs and on block-boundary lengths", () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000]) {
      const b = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 255);
      expect(sha256HexPure(b)).toBe(createHash("sha256").update(b).digest("hex"));
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => sha256HexPure(b) === createHash("sha256").update(b).digest("hex")));
  });
});

describe("utf8Length", () => {
  it("equals Buffer.byteLength", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (s) => utf8Length(s) === Buffer.byteLength(s, "utf8")));
  });
});

describe("TokenWindowReader", () => {
  const stream = Array.from({ length: 4 * 45 + 3 }, (_, i) => (i * 7919) % 997);
  const dir = path.join(root, "shards");
  const w = new ShardDirectoryWriter({ out: dir, vocabSize: 1000, eosId: 999, tokenizerHash: "c".repeat(64), shardTokens: 50 });
  w.addTokens("train", stream.slice(0, -1));
  w.endDocument("train");
  w.finish();
  const tokens = Int32Array.from([...stream.slice(0, -1), 999]);

  it("gives the shard reader's batches, across epochs, and resumes from its state", () => {
    const shard = openShards(dir, { seqLen: 4, batchSize: 6, seed: 9 });
    const mem = new browser.TokenWindowReader(tokens, { seqLen: 4, batchSize: 6, seed: 9, vocabSize: 1000 });
    expect(mem.numWindows).toBe(shard.numWindows);
    for (let i = 0; i < 20; i++) expect(mem.next()).toEqual(shard.next());
    const again = new browser.TokenWindowReader(tokens, { seqLen: 4, batchSize: 6, seed: 9 });
    again.restore(JSON.parse(JSON.stringify(mem.state())));
    expect(again.state()).toEqual(shard.state());
    for (let i = 0; i < 5; i++) expect(again.next()).toEqual(shard.next());
    shard.close();
    expect([...browser.tokenWindows(tokens, { seqLen: 4, batchSize: 8 })]).toEqual([...evalWindows(dir, { split: "train", seqLen: 4, batchSize: 8 })]);
  });

  it("rejects bad ids, too little data and foreign states", () => {
    expect(() => new browser.TokenWindowReader([1, 2, 3000], { seqLen: 1, batchSize: 1, vocabSize: 1000, source: "corpus.txt" })).toThrow(
      /^corpus\.txt: token 2 is 3000/,
    );
    expect(() => new browser.TokenWindowReader([1, 2, 3], { seqLen: 4, batchSize: 1 })).toThrow(DataError);
    const r = new browser.TokenWindowReader(tokens, { seqLen: 4, batchSize: 6 });
    expect(() => r.restore({ ...r.state(), seqLen: 8 })).toThrow(/seqLen 8, this reader has 4/);
  });

  it("joinDocuments ends every document with the end-of-text id", () => {
    expect([...browser.joinDocuments([[1, 2], [], [3]], 9)]).toEqual([1, 2, 9, 9, 3, 9]);
  });
});

describe("trainBpeTokenizerOnTexts", () => {
  it("writes the same tokenizer.json as the file trainer, and the tokenizer round-trips", async () => {
    const texts = ["The quick brown fox jumps over the lazy dog. ", "The dog sleeps; the fox runs away quickly.", "Über naïve café. 😀"];
    const file = path.join(root, "corpus.txt");
    fs.writeFileSync(file, texts.join(""));
    const fromMem = await browser.trainBpeTokenizerOnTexts([texts.join("")], { vocabSize: 300 });
    const fromFile = await trainBpeTokenizer({ files: [file], vocabSize: 300 });
    expect(fromMem.json).toBe(fromFile.json);
    const tok = browser.tokenizerFromJson(fromMem.json);
    expect(tok.hash).toBe(createHash("sha256").update(fromMem.json).digest("hex"));
    expect(tok.decode(tok.encode(texts[2]!))).toBe(texts[2]);
  });
});
