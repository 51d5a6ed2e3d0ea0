// The batch reader's order contract: a pure function of (seed, epoch), every window at most once per epoch
// (exactly once when the batch size divides the window count), and state()/restore() resuming exactly.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataError, ShardDirectoryWriter, epochPermutation, isReaderState, openShards, type Batch, type ReaderState, type ShardReader } from "./index.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-data-reader-"));
const dir = path.join(root, "shards");
const T = 4;
// The stream is 0, 1, 2, ... so a window is identified by its first token / T.
const TOKENS = 4 * 60 + 1;

beforeAll(() => {
  const w = new ShardDirectoryWriter({ out: dir, vocabSize: 5000, eosId: 4999, tokenizerHash: "b".repeat(64), shardTokens: 37 });
  w.addTokens("train", Array.from({ length: TOKENS - 1 }, (_, i) => i));
  w.endDocument("train");
  w.finish();
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const windowOf = (b: Batch, row: number) => b.inputs[row * T]! / T;
const rowsOf = (b: Batch) => Array.from({ length: b.shape[0] }, (_, r) => windowOf(b, r));
/** The next batch of `r` with where the reader stands after it (epoch, position), as one comparable string. */
const nextKey = (r: ShardReader) => {
  const b = r.next();
  return `${r.epoch}:${r.state().position}:${Array.from(b.inputs).join(",")}|${Array.from(b.targets).join(",")}`;
};

describe("ShardReader", () => {
  it("reports its geometry", () => {
    const r = openShards(dir, { seqLen: T, batchSize: 7, seed: 1 });
    expect(r.tokens).toBe(TOKENS);
    expect(r.numWindows).toBe(60);
    expect(r.batchesPerEpoch).toBe(8);
    expect(r.vocabSize).toBe(5000);
    expect(r.eosId).toBe(4999);
    expect(r.manifest.splits.train.shards).toBe(Math.ceil(TOKENS / 37));
    r.close();
  });

  it("targets are inputs shifted by one", () => {
    const r = openShards(dir, { seqLen: T, batchSize: 5, seed: 3 });
    const b = r.next();
    expect(b.shape).toEqual([5, T]);
    for (let i = 0; i < 5 * T; i++) expect(b.targets[i]).toBe(b.inputs[i]! + 1);
    r.close();
  });

  it("same seed, same batches; different seed, different order", () => {
    const take = (seed: number, n: number) => {
      const r = openShards(dir, { seqLen: T, batchSize: 6, seed });
      const out = Array.from({ length: n }, () => nextKey(r));
      r.close();
      return out;
    };
    expect(take(11, 25)).toEqual(take(11, 25));
    expect(take(11, 10)).not.toEqual(take(12, 10));
  });

  it("visits every window exactly once per epoch and reshuffles each epoch", () => {
    const r = openShards(dir, { seqLen: T, batchSize: 6, seed: 5 });
    const orders: number[][] = [];
    for (let e = 0; e < 3; e++) {
      const seen: number[] = [];
      for (let s = 0; s < r.batchesPerEpoch; s++) {
        const b = r.next();
        expect(r.epoch).toBe(e);
        expect(r.state().position).toBe((s + 1) * 6);
        seen.push(...rowsOf(b));
      }
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i));
      orders.push(seen);
    }
    expect(orders[0]).not.toEqual(orders[1]);
    r.close();
  });

  it("drops the last partial batch, never repeating a window within an epoch", () => {
    const r = openShards(dir, { seqLen: T, batchSize: 7, seed: 5 });
    const seen = [...r].flatMap(rowsOf);
    expect(seen.length).toBe(56);
    expect(new Set(seen).size).toBe(56);
    expect(r.epoch).toBe(0);
    r.next();
    expect(r.epoch).toBe(1);
    r.close();
  });

  it("order is a pure function of (seed, epoch): starting at epoch 2 equals reaching it", () => {
    const a = openShards(dir, { seqLen: T, batchSize: 6, seed: 8 });
    for (let i = 0; i < 2 * a.batchesPerEpoch; i++) a.next();
    const b = openShards(dir, { seqLen: T, batchSize: 6, seed: 8, epoch: 2 });
    for (let i = 0; i < 12; i++) expect(nextKey(a)).toBe(nextKey(b));
    a.close();
    b.close();
  });

  it("restore() into a fresh reader replays the identical remainder (any stop point, JSON round trip)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 9 }), fc.nat(), (stop, B, seed) => {
        const full = openShards(dir, { seqLen: T, batchSize: B, seed });
        const all = Array.from({ length: stop + 15 }, () => nextKey(full));
        full.close();
        const first = openShards(dir, { seqLen: T, batchSize: B, seed });
        for (let i = 0; i < stop; i++) first.next();
        const state = JSON.parse(JSON.stringify(first.state())) as ReaderState;
        first.close();
        const resumed = openShards(dir, { seqLen: T, batchSize: B, seed: seed + 1 });
        resumed.restore(state);
        expect(Array.from({ length: 15 }, () => nextKey(resumed))).toEqual(all.slice(stop));
        resumed.close();
      }),
      { numRuns: 40, seed: 99 },
    );
  });

  it("restore() refuses a state from another shape", () => {
    const a = openShards(dir, { seqLen: T, batchSize: 6 });
    const s = a.state();
    const b = openShards(dir, { seqLen: T, batchSize: 5 });
    expect(() => b.restore(s)).toThrow(DataError);
    expect(() => b.restore({ ...s, batchSize: 5, position: 3 })).toThrow(/position/);
    expect(() => b.restore({ ...s, batchSize: 5, epoch: -1 })).toThrow(/not a reader state \(version 1, a split and six non-negative integers\): \{.*"epoch":-1/);
    expect(() => b.restore({ ...s, batchSize: 5, seed: 2 ** 32 })).toThrow(/bad seed 4294967296/);
    a.close();
    b.close();
  });

  it("isReaderState accepts a state() and its JSON round trip, and nothing of another shape", () => {
    const a = openShards(dir, { seqLen: T, batchSize: 6 });
    const s = a.state();
    a.close();
    expect(isReaderState(s)).toBe(true);
    expect(isReaderState(JSON.parse(JSON.stringify(s)))).toBe(true);
    for (const bad of [null, [], "x", { ...s, version: 2 }, { ...s, split: "test" }, { ...s, seed: "1" }, { ...s, position: -6 }, { ...s, epoch: 0.5 }, { ...s, numWindows: undefined }])
      expect(isReaderState(bad)).toBe(false);
  });

  it("fails clearly when the split is smaller than one batch", () => {
    expect(() => openShards(dir, { seqLen: T, batchSize: 61 })).toThrow(/fewer than one batch/);
    expect(() => openShards(dir, { split: "val", seqLen: T, batchSize: 1 })).toThrow(/val split has 0 tokens/);
  });
});

describe("epochPermutation", () => {
  it("is a permutation, deterministic in (n, seed, epoch)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.nat(), fc.nat({ max: 50 }), (n, seed, epoch) => {
        const p = epochPermutation(n, seed, epoch);
        expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
        expect(epochPermutation(n, seed, epoch)).toEqual(p);
      }),
      { numRuns: 100, seed: 3 },
    );
  });
});
