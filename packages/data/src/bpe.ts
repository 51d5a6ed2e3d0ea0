// A byte-level BPE trainer (GPT-2 style) that writes a standard Hugging Face `tokenizer.json`: ByteLevel
// pre-tokenizer with the GPT-2 split regex, BPE model with its merges, ByteLevel decoder, and an
// `<|endoftext|>` special token. Both `@huggingface/tokenizers` and Python `tokenizers` load the result.
//
// Algorithm (as HF's BpeTrainer): count pre-token (word) frequencies once; then repeat: take the most
// frequent adjacent pair (ties: the smallest (left id, right id)), give it a new id, and rewrite only the
// words that contain it, updating pair counts incrementally. A max-heap with lazy invalidation finds the
// best pair; an index from pair to the words holding it avoids rescanning. Ids: 0..255 are the raw bytes
// (id b = byte b), then one id per new merged token, then the special tokens.
//
// This file works on texts in memory and runs anywhere (a browser too); ./bpe-trainer.ts adds reading
// files, directories and globs, and writing tokenizer.json (Node).

import { BYTE_TO_CHAR, gpt2SplitRegex } from "./byte-level.js";
import { tokenizerFromJson, type TextTokenizer } from "./tokenizer-json.js";

export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ["<|endoftext|>"];

/** Pair key: ids must stay below 2^22. */
const KEY_BASE = 1 << 22;

export interface BpeProgress {
  readonly phase: "count" | "merge";
  /** Count phase: UTF-8 bytes read so far; merge phase: merges done and wanted. */
  readonly bytes?: number;
  readonly merges?: number;
  readonly mergesWanted?: number;
}

export interface TrainBpeOptions {
  /** Input files, directories or globs (.txt, .md, .jsonl, .parquet), as `lrc tokenizer train --input`. */
  readonly files?: readonly string[];
  /** Or texts from memory (each one document). */
  readonly texts?: Iterable<string> | AsyncIterable<string>;
  /** Total vocabulary: 256 bytes + merged tokens + special tokens. */
  readonly vocabSize: number;
  /** Stop merging when the best pair occurs fewer times than this (default 2). */
  readonly minFrequency?: number;
  /** Added after the merged tokens; the first is the end-of-text token (default ["<|endoftext|>"]). */
  readonly specialTokens?: readonly string[];
  /** JSONL text field (default "text"). */
  readonly textField?: string;
  /**
   * Most distinct words kept while counting (default 2,000,000: under 2 GB in all). Past it, the rarest words are
   * dropped (every word seen at most k times so far, k raised from 1 until a quarter of the cap is free), so memory
   * stays bounded on an endless stream of distinct words; below it the counts are exact.
   */
  readonly maxWords?: number;
  readonly onProgress?: (p: BpeProgress) => void;
}

export interface LearnedBpe {
  /** merges[i] = [left id, right id] of the token made by merge i, in merge order. */
  readonly merges: readonly (readonly [number, number])[];
  /** Byte-level spelling of every token id (256 bytes first, then the merged tokens). */
  readonly tokens: readonly string[];
}

export interface TrainedBpeTokenizer extends LearnedBpe {
  /** The tokenizer.json text. */
  readonly json: string;
  readonly vocabSize: number;
  readonly specialTokens: readonly string[];
  readonly stats: {
    readonly bytes: number;
    readonly preTokens: number;
    readonly uniqueWords: number;
    /** Distinct words dropped to stay within `maxWords` (0: the counts are exact). */
    readonly droppedWords: number;
    /** The largest count a dropped word had (words seen this often or less may be missing). */
    readonly dropFloor: number;
    readonly countMs: number;
    readonly mergeMs: number;
  };
  /** The tokenizer.json loaded for encode/decode. */
  load(): TextTokenizer;
}

/**
 * Adds the GPT-2 pre-tokens of `text` to `counts`; returns how many there were. With `bound`, `bound.prune` runs
 * whenever the map passes `bound.maxWords` distinct words (inside one text too: a single huge line stays bounded).
 */
export function countPreTokens(
  text: string,
  counts: Map<string, number>,
  bound?: { readonly maxWords: number; prune(counts: Map<string, number>): void },
): number {
  let n = 0;
  for (const m of text.matchAll(gpt2SplitRegex())) {
    const w = m[0];
    counts.set(w, (counts.get(w) ?? 0) + 1);
    n++;
    if (bound !== undefined && counts.size > bound.maxWords) bound.prune(counts);
  }
  return n;
}

/** A max-heap of (count, key) ordered by count desc, then key asc, with lazy deletion by the caller. */
class PairHeap {
  private c: number[] = [];
  private k: number[] = [];
  get size(): number {
    return this.c.length;
  }
  private above(i: number, j: number): boolean {
    return this.c[i]! > this.c[j]! || (this.c[i] === this.c[j] && this.k[i]! < this.k[j]!);
  }
  private swap(i: number, j: number): void {
    const c = this.c[i]!;
    this.c[i] = this.c[j]!;
    this.c[j] = c;
    const k = this.k[i]!;
    this.k[i] = this.k[j]!;
    this.k[j] = k;
  }
  push(count: number, key: number): void {
    this.c.push(count);
    this.k.push(key);
    let i = this.c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  topCount(): number {
    return this.c[0]!;
  }
  topKey(): number {
    return this.k[0]!;
  }
  pop(): void {
    const last = this.c.length - 1;
    this.swap(0, last);
    this.c.pop();
    this.k.pop();
    const n = this.c.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n && this.above(l, best)) best = l;
      if (r < n && this.above(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
  }
}

/**
 * Learns merges from word counts until the vocabulary (256 bytes + merged tokens) has `targetTokens` tokens
 * or no pair occurs `minFrequency` times. Like HF, a merge whose spelling already exists reuses that id.
 */
export function learnBpe(
  counts: ReadonlyMap<string, number>,
  targetTokens: number,
  minFrequency = 2,
  onMerge?: (done: number) => void,
): LearnedBpe {
  const tokens: string[] = BYTE_TO_CHAR.slice();
  const idOf = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const merges: [number, number][] = [];
  if (targetTokens >= KEY_BASE) throw new RangeError(`vocabulary of ${targetTokens} tokens is too large (max ${KEY_BASE - 1})`);

  const enc = new TextEncoder();
  const words: Int32Array[] = [];
  const lens: number[] = [];
  const freqs: number[] = [];
  for (const [w, f] of counts) {
    const bytes = enc.encode(w);
    if (bytes.length < 2) continue;
    words.push(Int32Array.from(bytes));
    lens.push(bytes.length);
    freqs.push(f);
  }
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  for (let w = 0; w < words.length; w++) {
    const seq = words[w]!;
    const f = freqs[w]!;
    for (let i = 0; i + 1 < lens[w]!; i++) {
      const key = seq[i]! * KEY_BASE + seq[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      const list = where.get(key);
      if (list === undefined) where.set(key, [w]);
      else if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);
  const stamp = new Int32Array(words.length).fill(-1);
  const delta = new Map<number, number>();

  while (tokens.length < targetTokens) {
    while (heap.size > 0 && pairCount.get(heap.topKey()) !== heap.topCount()) heap.pop();
    if (heap.size === 0 || heap.topCount() < Math.max(1, minFrequency)) break;
    const key = heap.topKey();
    heap.pop();
    const a = Math.floor(key / KEY_BASE);
    const b = key - a * KEY_BASE;
    const spelling = tokens[a]! + tokens[b]!;
    let c = idOf.get(spelling);
    if (c === undefined) {
      c = tokens.length;
      tokens.push(spelling);
      idOf.set(spelling, c);
    }
    const m = merges.length;
    merges.push([a, b]);
    const list = where.get(key) ?? [];
    where.delete(key);
    delta.clear();
    for (const w of list) {
      if (stamp[w] === m) continue;
      stamp[w] = m;
      const seq = words[w]!;
      const n = lens[w]!;
      let has = false;
      for (let i = 0; i + 1 < n; i++)
        if (seq[i] === a && seq[i + 1] === b) {
          has = true;
          break;
        }
      if (!has) continue;
      const f = freqs[w]!;
      for (let i = 0; i + 1 < n; i++) {
        const k = seq[i]! * KEY_BASE + seq[i + 1]!;
        delta.set(k, (delta.get(k) ?? 0) - f);
      }
      let out = 0;
      for (let i = 0; i < n; ) {
        if (i + 1 < n && seq[i] === a && seq[i + 1] === b) {
          seq[out++] = c;
          i += 2;
        } else seq[out++] = seq[i++]!;
      }
      lens[w] = out;
      for (let i = 0; i + 1 < out; i++) {
        const l = seq[i]!;
        const r = seq[i + 1]!;
        const k = l * KEY_BASE + r;
        delta.set(k, (delta.get(k) ?? 0) + f);
        if (l === c || r === c) {
          const wl = where.get(k);
          if (wl === undefined) where.set(k, [w]);
          else if (wl[wl.length - 1] !== w) wl.push(w);
        }
      }
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const now = (pairCount.get(k) ?? 0) + d;
      if (now > 0) {
        pairCount.set(k, now);
        heap.push(now, k);
      } else {
        pairCount.delete(k);
        where.delete(k);
      }
    }
    onMerge?.(merges.length);
  }
  return { merges, tokens };
}

/** Renders the HF tokenizer.json for learned merges plus special tokens (ids after the merged tokens). */
export function bpeTokenizerJson(learned: LearnedBpe, specialTokens: readonly string[]): string {
  const { tokens, merges } = learned;
  const vocabLines = tokens.map((t, i) => `      ${JSON.stringify(t)}: ${i}`);
  const added = specialTokens.map((content, i) => ({
    id: tokens.length + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  specialTokens.forEach((t, i) => vocabLines.push(`      ${JSON.stringify(t)}: ${tokens.length + i}`));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const head = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
  };
  const headText = JSON.stringify(head, null, 2);
  const model = [
    `  "model": {`,
    `    "type": "BPE",`,
    `    "dropout": null,`,
    `    "unk_token": null,`,
    `    "continuing_subword_prefix": null,`,
    `    "end_of_word_suffix": null,`,
    `    "fuse_unk": false,`,
    `    "byte_fallback": false,`,
    `    "ignore_merges": false,`,
    `    "vocab": {`,
    vocabLines.join(",\n"),
    `    },`,
    `    "merges": [`,
    merges.map(([a, b]) => `      ${JSON.stringify(`${tokens[a]} ${tokens[b]}`)}`).join(",\n"),
    `    ]`,
    `  }`,
  ].join("\n");
  return `${headText.slice(0, -2)},\n${model}\n}\n`;
}

/** Checks the vocabulary size and special tokens; returns the special tokens and the merged-vocab target. */
export function bpeTarget(options: Pick<TrainBpeOptions, "vocabSize" | "specialTokens">): { specials: readonly string[]; target: number } {
  const specials = options.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  if (specials.length === 0) throw new RangeError("at least one special token (the end-of-text token) is needed");
  if (new Set(specials).size !== specials.length) throw new RangeError("special tokens must be distinct");
  const target = options.vocabSize - specials.length;
  if (!Number.isSafeInteger(options.vocabSize) || target < 256)
    throw new RangeError(`vocab size ${options.vocabSize} must be an integer >= ${256 + specials.length} (256 bytes + special tokens)`);
  return { specials, target };
}

/** UTF-8 byte length of a string (lone surrogates count 3 bytes, as the encoder writes U+FFFD). */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

export const DEFAULT_MAX_WORDS = 2_000_000;

/**
 * Drops the words counted at most k times, raising k from 1 until at most `keep` words remain; returns k (0 when
 * nothing was dropped). Each pass deletes in place, so memory never grows past the map's current size.
 */
export function pruneRareWords(counts: Map<string, number>, keep: number): number {
  let k = 0;
  while (counts.size > keep) {
    k++;
    for (const [w, c] of counts) if (c <= k) counts.delete(w);
  }
  return k;
}

/** Trains a byte-level BPE tokenizer on texts in memory (each one document). */
export async function trainBpeTokenizerOnTexts(
  texts: Iterable<string> | AsyncIterable<string>,
  options: Omit<TrainBpeOptions, "files" | "texts" | "textField">,
): Promise<TrainedBpeTokenizer> {
  const { specials, target } = bpeTarget(options);
  const t0 = Date.now();
  const counts = new Map<string, number>();
  const maxWords = options.maxWords ?? DEFAULT_MAX_WORDS;
  if (!Number.isSafeInteger(maxWords) || maxWords < 4) throw new RangeError(`maxWords must be an integer >= 4, got ${maxWords}`);
  let droppedWords = 0;
  let dropFloor = 0;
  const bound = {
    maxWords,
    prune(c: Map<string, number>) {
      const before = c.size;
      dropFloor = Math.max(dropFloor, pruneRareWords(c, Math.floor((maxWords * 3) / 4)));
      droppedWords += before - c.size;
    },
  };
  let bytes = 0;
  let preTokens = 0;
  let lastReport = 0;
  for await (const text of texts as AsyncIterable<string>) {
    bytes += utf8Length(text);
    // Special tokens are never part of a pre-token at encode time, so they are cut out of training text too.
    let parts: string[] = [text];
    for (const s of specials) parts = parts.flatMap((p) => (p.includes(s) ? p.split(s) : [p]));
    for (const p of parts) preTokens += countPreTokens(p, counts, bound);
    if (options.onProgress !== undefined && Date.now() - lastReport > 250) {
      lastReport = Date.now();
      options.onProgress({ phase: "count", bytes });
    }
  }
  const t1 = Date.now();
  const wanted = target - 256;
  const learned = learnBpe(counts, target, options.minFrequency ?? 2, (done) => {
    if (options.onProgress !== undefined && (done % 256 === 0 || done === wanted))
      options.onProgress({ phase: "merge", merges: done, mergesWanted: wanted });
  });
  const t2 = Date.now();
  const spellings = new Set(learned.tokens);
  for (const s of specials)
    if (spellings.has(s)) throw new RangeError(`special token ${JSON.stringify(s)} collides with a learned token of the same spelling`);
  const json = bpeTokenizerJson(learned, specials);
  return {
    ...learned,
    json,
    vocabSize: learned.tokens.length + specials.length,
    specialTokens: specials,
    stats: { bytes, preTokens, uniqueWords: counts.size, droppedWords, dropFloor, countMs: t1 - t0, mergeMs: t2 - t1 },
    load: () => tokenizerFromJson(json, { eosToken: specials[0]! }),
  };
}
