// Tests of the corpus loader: text normalisation, reading the dataset files, and the by-address split
// (no address, and no address text, in both train and validation).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { corpusHash, loadAddresses, normalizeText, readAddressFile, splitByAddress, subsetAddresses, type Address } from "./corpus.js";

describe("normalizeText", () => {
  it("turns CRLF and lone CR into LF", () => {
    expect(normalizeText("a\r\nb\rc\nd")).toBe("a\nb\nc\nd");
  });

  it("strips C0/C1 controls but keeps newlines and tabs", () => {
    expect(normalizeText("a\u0000b\u0002c\u001bd\u007fe\u0085f\u009fg\th\ni")).toBe("abcdefg\th\ni");
  });

  it("collapses runs of blank lines, including whitespace-only ones, and trims the ends", () => {
    expect(normalizeText("\n\n one  \n\n\n \t\n\ntwo\n\nthree\n\n\n")).toBe(" one\n\ntwo\n\nthree");
  });

  it("keeps printable non-ASCII text", () => {
    expect(normalizeText("30\u00b0 \u2014 \u201cquoted\u201d caf\u00e9")).toBe("30\u00b0 \u2014 \u201cquoted\u201d caf\u00e9");
  });

  it("is idempotent and leaves no controls or blank-line runs (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (s) => {
        const n = normalizeText(s);
        expect(normalizeText(n)).toBe(n);
        expect(n).not.toMatch(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/);
        expect(n).not.toMatch(/\n[ \t]*\n[ \t]*\n/);
      }),
    );
  });
});

describe("readAddressFile / loadAddresses", () => {
  it("reads a dataset file and names the file and field when one is bad", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sotu-"));
    try {
      fs.writeFileSync(path.join(dir, "1801_a_b.json"), JSON.stringify({ year: 1801, name: "A B", text: "Hello\r\n\r\n\r\nworld\u0002" }));
      fs.writeFileSync(path.join(dir, "1802_c_d.json"), JSON.stringify({ year: 1802, name: "C D", text: "Second." }));
      fs.writeFileSync(path.join(dir, "1802_c_d.txt"), "ignored");
      const all = loadAddresses(dir);
      expect(all).toEqual([
        { id: "1801_a_b", year: 1801, president: "A B", text: "Hello\n\nworld" },
        { id: "1802_c_d", year: 1802, president: "C D", text: "Second." },
      ]);
      fs.writeFileSync(path.join(dir, "1803_e_f.json"), JSON.stringify({ year: "x", name: "E", text: "t" }));
      expect(() => loadAddresses(dir)).toThrow(/1803_e_f\.json: field "year"/);
      expect(() => readAddressFile(path.join(dir, "missing.json"))).toThrow(/missing\.json/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("loads the installed dataset: every address 1790-2021, normalised", () => {
    const all = loadAddresses();
    expect(all.length).toBeGreaterThan(200);
    expect(all[0]!.year).toBe(1790);
    expect(all.at(-1)!.year).toBe(2021);
    expect(new Set(all.map((a) => a.id)).size).toBe(all.length);
    for (const a of all) {
      expect(a.text.length).toBeGreaterThan(100);
      expect(a.text).not.toMatch(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/);
    }
  });
});

const addr = (i: number, text = `text ${i}`): Address => ({ id: `${1790 + i}_p${i}`, year: 1790 + i, president: `P${i}`, text });

describe("splitByAddress", () => {
  it("sends every 10th address to validation", () => {
    const list = Array.from({ length: 25 }, (_, i) => addr(i));
    const { train, val } = splitByAddress(list);
    expect(val.map((a) => a.id)).toEqual([list[9]!.id, list[19]!.id]);
    expect(train.length).toBe(23);
  });

  it("partitions the addresses with no leakage (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 2, max: 12 }), (n, every) => {
        const list = Array.from({ length: n }, (_, i) => addr(i));
        const { train, val } = splitByAddress(list, every);
        const t = new Set(train.map((a) => a.id));
        expect(val.some((a) => t.has(a.id))).toBe(false);
        expect(train.length + val.length).toBe(n);
        expect([...train, ...val].map((a) => a.id).sort()).toEqual(list.map((a) => a.id).sort());
        expect(val.length).toBe(Math.floor(n / every));
      }),
    );
  });

  it("on the real corpus: no validation text appears in train", () => {
    const { train, val } = splitByAddress(loadAddresses());
    expect(val.length).toBeGreaterThan(20);
    const trainTexts = new Set(train.map((a) => a.text));
    for (const a of val) expect(trainTexts.has(a.text)).toBe(false);
  });

  it("rejects duplicate ids and a bad valEvery", () => {
    expect(() => splitByAddress([addr(1), addr(1)])).toThrow(/appears twice/);
    expect(() => splitByAddress([addr(1)], 1)).toThrow(/valEvery/);
  });
});

describe("subsetAddresses / corpusHash", () => {
  it("spreads a subset over the whole list, ends included", () => {
    const list = Array.from({ length: 100 }, (_, i) => addr(i));
    const sub = subsetAddresses(list, 5);
    expect(sub.map((a) => a.year - 1790)).toEqual([0, 25, 50, 74, 99]);
    expect(subsetAddresses(list, 500)).toHaveLength(100);
  });

  it("changes when any text or the split changes", () => {
    const list = Array.from({ length: 20 }, (_, i) => addr(i));
    const h = corpusHash(splitByAddress(list));
    expect(corpusHash(splitByAddress(list))).toBe(h);
    expect(corpusHash(splitByAddress(list, 5))).not.toBe(h);
    const edited = list.map((a, i) => (i === 3 ? { ...a, text: a.text + "!" } : a));
    expect(corpusHash(splitByAddress(edited))).not.toBe(h);
  });
});
