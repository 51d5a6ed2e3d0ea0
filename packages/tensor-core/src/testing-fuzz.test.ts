// The shared corrupt-bytes arbitrary: what it draws, and that it never touches the valid bytes it starts from.

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { corruptedBytes } from "./testing-fuzz.js";

describe("corruptedBytes", () => {
  const valid = Uint8Array.from({ length: 64 }, (_, i) => 100 + i);
  const samples = fc.sample(corruptedBytes(valid), { numRuns: 500, seed: 7 });

  it("leaves the valid bytes as they were and returns fresh arrays", () => {
    expect(valid).toEqual(Uint8Array.from({ length: 64 }, (_, i) => 100 + i));
    for (const b of samples) expect(b.buffer).not.toBe(valid.buffer);
  });

  it("draws random bytes, whole valid files with bytes overwritten, and cut ones", () => {
    // A mutation is a prefix of `valid` differing in at most 4 bytes; a random draw of 8 bytes or more never is
    // (short draws are left unclassified).
    const diffs = (b: Uint8Array) => b.reduce((n, x, i) => n + (x !== valid[i] ? 1 : 0), 0);
    const long = samples.filter((b) => b.length >= 8);
    const mutations = long.filter((b) => b.length <= valid.length && diffs(b) <= 4);
    expect(mutations.filter((b) => b.length === valid.length && diffs(b) > 0).length).toBeGreaterThan(20);
    expect(mutations.filter((b) => b.length < valid.length).length).toBeGreaterThan(20);
    expect(long.length - mutations.length).toBeGreaterThan(50);
  });

  it("keeps random draws within maxLength", () => {
    for (const b of fc.sample(corruptedBytes(new Uint8Array(0), { maxLength: 5 }), { numRuns: 200, seed: 3 })) expect(b.length).toBeLessThanOrEqual(5);
  });
});
