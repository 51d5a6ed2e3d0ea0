// `lrc tokenizer train`: a byte-level BPE tokenizer (GPT-2 regex, <|endoftext|>) trained on text files and
// written as a standard Hugging Face tokenizer.json, through @lrc-ts/data.

import { trainBpeTokenizer, writeTokenizerJson } from "@lrc-ts/data";
import path from "node:path";
import { makeDirectory } from "@lrc-ts/tensor-core";
import { defineCommand } from "../cli/command.js";
import { statusLine } from "../node/status-line.js";

export const tokenizerTrainCommand = defineCommand({
  name: "tokenizer train",
  summary: "train a byte-level BPE tokenizer and write tokenizer.json",
  flags: {
    input: { kind: "list", required: true, help: "input files, directories or globs (.txt/.md/.jsonl/.parquet)" },
    "vocab-size": { kind: "int", required: true, help: "vocabulary size: 256 bytes + merges + <|endoftext|>" },
    out: { kind: "string", required: true, help: "tokenizer.json to write" },
    "min-frequency": { kind: "int", default: 2, help: "stop merging when the best pair is rarer than this" },
    "text-field": { kind: "string", default: "text", help: "JSONL field or parquet column holding the text" },
    "max-words": { kind: "int", default: 2_000_000, help: "most distinct words counted in memory; past it the rarest are dropped" },
    json: { kind: "boolean", help: "print the summary as JSON" },
  },
  details: "example:\n  lrc tokenizer train --input corpus/ --vocab-size 8192 --out tokenizer.json",
  async run(flags) {
    const vocabSize = flags["vocab-size"];
    if (vocabSize < 257) throw new Error(`--vocab-size must be at least 257 (256 bytes + <|endoftext|>), got ${vocabSize}`);
    const status = statusLine();
    const out = flags.out;
    makeDirectory(path.dirname(out)); // before training, naming the directory if it cannot be made
    const trained = await trainBpeTokenizer({
      files: flags.input,
      vocabSize,
      minFrequency: flags["min-frequency"],
      textField: flags["text-field"],
      maxWords: flags["max-words"],
      onProgress: (p) => {
        const what = p.phase === "count" ? `counting words: ${((p.bytes ?? 0) / 1e6).toFixed(1)} MB` : `merges ${p.merges}/${p.mergesWanted}`;
        status.update(`tokenizer train: ${what}`);
      },
    });
    status.done();
    writeTokenizerJson(out, trained.json);
    const s = trained.stats;
    const summary = {
      out,
      vocabSize: trained.vocabSize,
      merges: trained.merges.length,
      bytes: s.bytes,
      uniqueWords: s.uniqueWords,
      droppedWords: s.droppedWords,
      seconds: (s.countMs + s.mergeMs) / 1000,
    };
    if (flags.json) console.log(JSON.stringify(summary));
    else {
      console.log(
        `wrote ${out}: vocab ${trained.vocabSize} (${trained.merges.length} merges) from ${(s.bytes / 1e6).toFixed(1)} MB, ` +
          `${s.uniqueWords} distinct words, in ${summary.seconds.toFixed(1)} s`,
      );
      if (s.droppedWords > 0)
        console.error(
          `lrc tokenizer train: note: ${s.droppedWords} rare distinct words (seen <= ${s.dropFloor} times when dropped) were not counted, ` +
            `to stay within --max-words ${flags["max-words"]}`,
        );
      if (trained.vocabSize < vocabSize)
        console.error(`lrc tokenizer train: warning: stopped at vocab ${trained.vocabSize} < ${vocabSize}: no pair occurs --min-frequency times`);
    }
    return 0;
  },
});
