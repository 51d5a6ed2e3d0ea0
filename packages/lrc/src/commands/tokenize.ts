// `lrc tokenize`: text files (.txt/.md documents, .jsonl lines with a text field, .parquet rows with a text
// column, as Hub datasets store them) to a token shard directory
// with a manifest, through @lrc-ts/data. Documents are joined with the tokenizer's end-of-text token and
// assigned to train or val by a seeded per-document choice, or, with --val-files, by file (deterministic:
// the files the patterns name are val, every other file is train). Progress goes to stderr, the summary to
// stdout. Ctrl-C or SIGTERM stops it before the next document piece, with no manifest written (exit 130 / 143).

import fs from "node:fs";
import path from "node:path";
import { expandInputs, loadTokenizer, readDocuments, writeTextPieces, type Manifest, type WriteProgress } from "@lrc-ts/data";
import { makeDirectory } from "@lrc-ts/tensor-core";
import { defineCommand } from "../cli/command.js";
import { onInterrupt } from "../node/interrupt.js";
import { statusLine } from "../node/status-line.js";
import type { StatusLine } from "../node/status-line.js";
import { clock } from "../clock.js";

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** The progress line on stderr (see statusLine: redrawn on a terminal, a plain line every 10 s otherwise). */
function progressBar(totalBytes: number, status: StatusLine): (p: WriteProgress) => void {
  return (p) => {
    const frac = totalBytes > 0 ? Math.min(1, p.bytes / totalBytes) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const mbs = p.elapsedMs > 0 ? p.bytes / 1e6 / (p.elapsedMs / 1000) : 0;
    status.update(
      `tokenize [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ` +
        `${human(p.tokens)} tokens  ${human(p.documents)} docs  ${mbs.toFixed(1)} MB/s  ${clock(p.elapsedMs / 1000)}`,
    );
  };
}

export const tokenizeCommand = defineCommand({
  name: "tokenize",
  summary: "tokenize text files into train/val token shards with a manifest",
  flags: {
    tokenizer: { kind: "string", required: true, help: "tokenizer.json, or a model directory holding one" },
    input: { kind: "list", required: true, help: "input files, directories or globs (.txt/.md = one document, .jsonl = one per line, .parquet = one per row)" },
    out: { kind: "string", required: true, help: "output shard directory" },
    "val-fraction": { kind: "number", help: "fraction of documents sent to the val split by a seeded coin toss per document (default: 0.01; not with --val-files)" },
    "val-files": { kind: "list", help: "files, directories or globs whose documents form the val split (with or without --input naming them too); every other file is train" },
    "shard-tokens": { kind: "int", default: 100_000_000, help: "tokens per shard file" },
    seed: { kind: "int", default: 0, help: "seed of the per-document train/val choice" },
    "text-field": { kind: "string", default: "text", help: "JSONL field or parquet column holding the text" },
    "eos-token": { kind: "string", help: "end-of-text token to join documents with (default: found in the tokenizer)" },
    json: { kind: "boolean", help: "print the summary as JSON" },
  },
  details: [
    "examples:",
    "  lrc tokenize --tokenizer models/Qwen2.5-0.5B --input corpus/ --out data/shards",
    "  lrc tokenize --tokenizer tok.json --input 'books/**/*.txt,web.jsonl' --out shards --val-fraction 0.005",
    "  lrc tokenize --tokenizer tok.json --input corpus/ --val-files 'corpus/2019-*.txt' --out shards",
    "  lrc tokenize --tokenizer models/Qwen2.5-0.5B --input fineweb/data/ --text-field text --out shards   (Hub parquet files)",
  ].join("\n"),
  async run(flags) {
    const valPatterns = flags["val-files"];
    if (valPatterns !== undefined && flags["val-fraction"] !== undefined) throw new Error("give --val-fraction or --val-files, not both");
    const valFraction = flags["val-fraction"] ?? (valPatterns !== undefined ? 0 : 0.01);
    if (!(valFraction >= 0 && valFraction <= 1)) throw new Error(`--val-fraction must be in [0, 1], got ${valFraction}`);
    const shardTokens = flags["shard-tokens"];
    if (shardTokens < 1) throw new Error(`--shard-tokens must be positive, got ${shardTokens}`);
    const eosToken = flags["eos-token"];
    const tokenizer = loadTokenizer(flags.tokenizer, eosToken !== undefined ? { eosToken } : {});
    const inputs = expandInputs(flags.input);
    const valFiles = valPatterns !== undefined ? expandInputs(valPatterns) : [];
    const isVal = new Set(valFiles.map((f) => path.resolve(f)));
    const trainFiles = inputs.filter((f) => !isVal.has(path.resolve(f)));
    const files = [...trainFiles, ...valFiles];
    const docs = (list: string[]) => readDocuments(list, { textField: flags["text-field"] });
    const totalBytes = files.reduce((a, f) => a + fs.statSync(f).size, 0);
    const out = flags.out;
    makeDirectory(out); // before any work, naming the directory if it cannot be made
    const status = statusLine();
    const bar = progressBar(totalBytes, status);
    const start = Date.now();
    let last: WriteProgress | null = null;
    const interrupt = onInterrupt("stopping (no manifest is written)");
    let manifest: Manifest;
    try {
      manifest = await writeTextPieces(
        {
          tokenizer,
          out,
          valFraction,
          shardTokens,
          seed: flags.seed,
          signal: interrupt.signal,
          onProgress: (p) => {
            last = p;
            bar(p);
          },
        },
        valPatterns !== undefined
          ? [
              { pieces: docs(trainFiles), split: "train", describe: trainFiles.join(",") },
              { pieces: docs(valFiles), split: "val", describe: valFiles.join(",") },
            ]
          : [{ pieces: docs(files), split: "auto", describe: (flags.input).join(",") }],
      );
    } catch (e) {
      if (!interrupt.signal.aborted) throw e;
      status.done();
      console.error(`lrc tokenize: interrupted after ${(last as WriteProgress | null)?.documents ?? 0} documents: ${out} has no manifest (incomplete); run it again`);
      return interrupt.exitCode();
    } finally {
      interrupt.dispose();
    }
    status.done();
    const seconds = (Date.now() - start) / 1000;
    const bytes = (last as WriteProgress | null)?.bytes ?? 0;
    const { train, val } = manifest.splits;
    const summary = {
      out,
      files: files.length,
      valFiles: valPatterns !== undefined ? valFiles : null,
      tokenizerHash: manifest.tokenizer.hash,
      eosId: manifest.eosId,
      eosToken: manifest.tokenizer.eosToken,
      vocabSize: manifest.vocabSize,
      dtype: manifest.dtype,
      train,
      val,
      seconds,
      mbPerSecond: seconds > 0 ? bytes / 1e6 / seconds : 0,
      tokensPerSecond: seconds > 0 ? (train.tokens + val.tokens) / seconds : 0,
    };
    if (flags.json) console.log(JSON.stringify(summary));
    else {
      console.log(
        `wrote ${out}: train ${human(train.tokens)} tokens / ${train.documents} docs / ${train.shards} shards, ` +
          `val ${human(val.tokens)} tokens / ${val.documents} docs / ${val.shards} shards ` +
          `(${manifest.dtype}, vocab ${manifest.vocabSize}, eos ${manifest.eosId}) in ${seconds.toFixed(1)} s, ` +
          `${summary.mbPerSecond.toFixed(1)} MB/s`,
      );
      if (valFraction > 0 && val.documents === 0)
        console.error(`lrc tokenize: warning: --val-fraction ${valFraction} sent no document to val (only ${train.documents} documents)`);
    }
    return 0;
  },
});
