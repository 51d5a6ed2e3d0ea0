// Shard writer -> reader round trip (fast-check, both dtypes, across shard boundaries) and corruption:
// every kind of damage is a specific DataError naming the file, never a crash or a wrong batch.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  DataError,
  HEADER_BYTES,
  ShardDirectoryWriter,
  evalWindows,
  openShards,
  readManifest,
  readSplitTokens,
  type Split,
} from "./index.js";
import { fnv1a32 } from "./checksum.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-data-shards-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let dirCounter = 0;
const freshDir = () => path.join(root, `d${dirCounter++}`);

interface Corpus {
  vocabSize: number;
  eosId: number;
  shardTokens: number;
  docs: { split: Split; ids: number[] }[];
}

function write(dir: string, c: Corpus) {
  const w = new ShardDirectoryWriter({
    out: dir,
    vocabSize: c.vocabSize,
    eosId: c.eosId,
    tokenizerHash: "f".repeat(64),
    shardTokens: c.shardTokens,
  });
  for (const d of c.docs) w.addDocument(d.split, d.ids);
  return w.finish();
}

function expectedStream(c: Corpus, split: Split): number[] {
  return c.docs.filter((d) => d.split === split).flatMap((d) => [...d.ids, c.eosId]);
}

const corpusArb = fc
  .record({ vocabSize: fc.oneof(fc.integer({ min: 2, max: 65536 }), fc.integer({ min: 65537, max: 200000 })), shardTokens: fc.integer({ min: 1, max: 40 }) })
  .chain(({ vocabSize, shardTokens }) =>
    fc.record({
      vocabSize: fc.constant(vocabSize),
      shardTokens: fc.constant(shardTokens),
      eosId: fc.integer({ min: 0, max: vocabSize - 1 }),
      docs: fc.array(
        fc.record({ split: fc.constantFrom<Split>("train", "val"), ids: fc.array(fc.integer({ min: 0, max: vocabSize - 1 }), { maxLength: 30 }) }),
        { maxLength: 12 },
      ),
    }),
  );

describe("shard round trip", () => {
  it("gives back exactly the documents joined by eos, for both dtypes and any shard size", () => {
    fc.assert(
      fc.property(corpusArb, (c) => {
        const dir = freshDir();
        const m = write(dir, c);
        expect(m.dtype).toBe(c.vocabSize <= 65536 ? "uint16" : "uint32");
        for (const split of ["train", "val"] as const) {
          const want = expectedStream(c, split);
          expect(Array.from(readSplitTokens(dir, split))).toEqual(want);
          expect(m.splits[split].tokens).toBe(want.length);
          expect(m.splits[split].shards).toBe(Math.ceil(want.length / c.shardTokens));
          // Windows in order tile the stream: window i = tokens [i*T, i*T+T].
          const T = 3;
          const rows: number[][] = [];
          for (const b of evalWindows(dir, { split, seqLen: T, batchSize: 2 }))
            for (let r = 0; r < b.shape[0]; r++) {
              const inp = Array.from(b.inputs.subarray(r * T, r * T + T));
              const tgt = Array.from(b.targets.subarray(r * T, r * T + T));
              expect(tgt.slice(0, T - 1)).toEqual(inp.slice(1));
              rows.push([...inp, tgt[T - 1]!]);
            }
          expect(rows.length).toBe(want.length > T ? Math.floor((want.length - 1) / T) : 0);
          rows.forEach((row, i) => expect(row).toEqual(want.slice(i * T, i * T + T + 1)));
        }
        fs.rmSync(dir, { recursive: true });
      }),
      { numRuns: 60, seed: 1234 },
    );
  });

  it("batches from the shuffled reader are windows of the stream, across shard boundaries", () => {
    const dir = freshDir();
    const c: Corpus = { vocabSize: 70000, eosId: 69999, shardTokens: 7, docs: [] };
    for (let d = 0; d < 20; d++) c.docs.push({ split: "train", ids: Array.from({ length: d % 9 }, (_, i) => (d * 131 + i * 7919) % 69999) });
    write(dir, c);
    const stream = expectedStream(c, "train");
    const r = openShards(dir, { seqLen: 5, batchSize: 3, seed: 9 });
    for (const b of r)
      for (let row = 0; row < 3; row++) {
        const inp = Array.from(b.inputs.subarray(row * 5, row * 5 + 5));
        const start = stream.findIndex((_, i) => i % 5 === 0 && stream.slice(i, i + 5).every((x, j) => x === inp[j]) && stream[i + 5] === b.targets[row * 5 + 4]);
        expect(start).toBeGreaterThanOrEqual(0);
      }
    r.close();
  });
});

describe("corruption is a specific DataError", () => {
  const base: Corpus = {
    vocabSize: 1000,
    eosId: 999,
    shardTokens: 50,
    docs: Array.from({ length: 12 }, (_, d) => ({ split: "train" as Split, ids: Array.from({ length: 10 + d }, (_, i) => (d * 37 + i * 11) % 999) })),
  };
  const fresh = () => {
    const dir = freshDir();
    write(dir, base);
    return dir;
  };
  const open = (dir: string) => openShards(dir, { seqLen: 8, batchSize: 2 }).close();
  function expectDataError(fn: () => unknown, code: string, file: string) {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataError);
    const de = err as DataError;
    expect(de.code).toBe(code);
    expect(de.message.startsWith(file)).toBe(true);
    return de;
  }
  const shard0 = (dir: string) => path.join(dir, "train-000000.bin");
  const patch = (file: string, at: number, f: (b: number) => number) => {
    const buf = fs.readFileSync(file);
    buf[at] = f(buf[at]!);
    fs.writeFileSync(file, buf);
  };
  const rewriteHeader = (file: string, edit: (dv: DataView) => void) => {
    const buf = fs.readFileSync(file);
    const dv = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
    edit(dv);
    dv.setUint32(252, fnv1a32(new Uint8Array(buf.buffer, buf.byteOffset, 252)), true);
    fs.writeFileSync(file, buf);
  };

  it("opens an intact directory", () => {
    expect(() => open(fresh())).not.toThrow();
  });

  it("any flipped byte in a shard is caught on open", () => {
    const dir = fresh();
    const file = shard0(dir);
    const size = fs.statSync(file).size;
    const pristine = fs.readFileSync(file);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
        patch(file, at, (b) => b ^ x);
        try {
          expect(() => open(dir)).toThrow(DataError);
        } finally {
          fs.writeFileSync(file, pristine);
        }
      }),
      { numRuns: 150, seed: 7 },
    );
  });

  it("a flipped payload byte is a checksum error", () => {
    const dir = fresh();
    patch(shard0(dir), HEADER_BYTES + 17, (b) => b ^ 0x40);
    expectDataError(() => open(dir), "checksum", shard0(dir));
  });

  it("truncation", () => {
    const dir = fresh();
    fs.truncateSync(shard0(dir), fs.statSync(shard0(dir)).size - 3);
    expectDataError(() => open(dir), "truncated", shard0(dir));
    fs.truncateSync(shard0(dir), 100);
    expectDataError(() => open(dir), "truncated", shard0(dir));
  });

  it("wrong magic, version, dtype, corrupt header", () => {
    let dir = fresh();
    patch(shard0(dir), 0, () => "X".charCodeAt(0));
    expectDataError(() => open(dir), "bad-magic", shard0(dir));
    dir = fresh();
    rewriteHeader(shard0(dir), (dv) => dv.setUint32(8, 2, true));
    expect(expectDataError(() => open(dir), "bad-version", shard0(dir)).message).toContain("version 2");
    dir = fresh();
    rewriteHeader(shard0(dir), (dv) => dv.setUint32(12, 3, true));
    expectDataError(() => open(dir), "bad-dtype", shard0(dir));
    dir = fresh();
    rewriteHeader(shard0(dir), (dv) => dv.setUint32(12, 4, true));
    expectDataError(() => open(dir), "manifest-mismatch", shard0(dir));
    dir = fresh();
    patch(shard0(dir), 100, (b) => b ^ 1);
    expectDataError(() => open(dir), "bad-header", shard0(dir));
  });

  it("a token id >= vocab size (consistent checksums) is a token-range error", () => {
    const dir = fresh();
    const file = shard0(dir);
    const buf = fs.readFileSync(file);
    buf.writeUInt16LE(1500, HEADER_BYTES + 2 * 5);
    const sum = fnv1a32(buf.subarray(HEADER_BYTES));
    const dv = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
    dv.setUint32(32, sum, true);
    dv.setUint32(252, fnv1a32(buf.subarray(0, 252)), true);
    fs.writeFileSync(file, buf);
    const mf = path.join(dir, "manifest.json");
    const m = JSON.parse(fs.readFileSync(mf, "utf8"));
    m.shards[0].checksum = "0x" + sum.toString(16).padStart(8, "0");
    fs.writeFileSync(mf, JSON.stringify(m));
    expect(expectDataError(() => open(dir), "token-range", file).message).toContain("1500");
    // Without the verification pass, the bad id is still caught when its window is read.
    const r = openShards(dir, { seqLen: 8, batchSize: 1, verify: false });
    expect(() => {
      for (let i = 0; i < r.batchesPerEpoch; i++) r.next();
    }).toThrow(/token id 1500/);
    r.close();
  });

  it("a missing shard, a changed manifest, a missing manifest", () => {
    let dir = fresh();
    fs.rmSync(path.join(dir, "train-000001.bin"));
    expectDataError(() => open(dir), "missing-shard", path.join(dir, "train-000001.bin"));

    const editManifest = (d: string, f: (m: Record<string, any>) => void) => {
      const mf = path.join(d, "manifest.json");
      const m = JSON.parse(fs.readFileSync(mf, "utf8"));
      f(m);
      fs.writeFileSync(mf, JSON.stringify(m));
    };
    dir = fresh();
    editManifest(dir, (m) => {
      m.shards[0].tokens += 1;
      m.splits.train.tokens += 1;
    });
    expectDataError(() => open(dir), "manifest-mismatch", shard0(dir));
    dir = fresh();
    editManifest(dir, (m) => (m.vocabSize = 2000));
    expectDataError(() => open(dir), "manifest-mismatch", shard0(dir));
    dir = fresh();
    editManifest(dir, (m) => (m.shards[1].bytes += 2));
    expectDataError(() => open(dir), "manifest-mismatch", path.join(dir, "train-000001.bin"));
    dir = fresh();
    editManifest(dir, (m) => (m.splits.train.tokens += 5));
    expectDataError(() => open(dir), "manifest", path.join(dir, "manifest.json"));
    dir = fresh();
    fs.writeFileSync(path.join(dir, "manifest.json"), "{ not json");
    expectDataError(() => open(dir), "manifest", path.join(dir, "manifest.json"));
    dir = fresh();
    fs.rmSync(path.join(dir, "manifest.json"));
    expectDataError(() => open(dir), "manifest", path.join(dir, "manifest.json"));
  });

  it("a tokenizer hash other than the expected one", () => {
    const dir = fresh();
    expectDataError(() => openShards(dir, { seqLen: 8, batchSize: 2, expectTokenizerHash: "0".repeat(64) }), "tokenizer-mismatch", path.join(dir, "manifest.json"));
    expect(readManifest(dir).tokenizer.hash).toBe("f".repeat(64));
  });

  it("an aborted writer leaves no manifest, and restarting clears old shards", () => {
    const dir = fresh();
    const w = new ShardDirectoryWriter({ out: dir, vocabSize: 10, eosId: 9, tokenizerHash: "a".repeat(64), shardTokens: 4 });
    expect(fs.existsSync(path.join(dir, "manifest.json"))).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([]);
    w.addDocument("train", [1, 2, 3, 4, 5]);
    expect(() => w.addDocument("train", [10])).toThrow(DataError);
    w.abort();
    expect(fs.readdirSync(dir).filter((f) => f.includes("tmp"))).toEqual([]);
    expect(() => open(dir)).toThrow(/manifest\.json: missing/);
  });
});
