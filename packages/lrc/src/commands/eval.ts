// `lrc eval`: mean next-token loss (nats) and perplexity of an HF model directory on a text file (tokenized
// with the model's own tokenizer.json, no special tokens added) or on a token shard split (the shard
// directory's windows, checked against the model's tokenizer when it has one). Windows hold at most
// max_position_embeddings tokens; by default the window the model was trained with (config.json's lrc_ts field). Progress goes to stderr, the result to stdout.
// The result line also gives the scoring speed (tokens/s, after loading) and the process's peak RSS. Memory is flat
// in the number of tokens: windows are read and scored a batch at a time, the LM head + CE over row chunks.
// Ctrl-C or SIGTERM stops it after the current batch with the result over the windows done so far (exit 130,
// 143 for SIGTERM); a second one exits at once.

import fs from "node:fs";
import path from "node:path";
import { evalWindows, loadTokenizer, readManifest, readUtf8File, verifyTokenizer } from "@lrc-ts/data";
import type { Batch } from "@lrc-ts/data";
import { evaluate, evaluateBatches, loadCausalLM, readConfigFile } from "@lrc-ts/nn";
import type { EvalResult } from "@lrc-ts/nn";
import { UsageError } from "../cli/args.js";
import { backendFlag, defineCommand, keepHalfDType, modelDTypeFlag, poolLimitFlag } from "../cli/command.js";
import { onInterrupt } from "../node/interrupt.js";
import { statusLine } from "../node/status-line.js";
import type { StatusLine } from "../node/status-line.js";
import { trainedSeqLen } from "../training-record.js";

function progress(label: string, status: StatusLine): (done: number, total: number) => void {
  const start = Date.now();
  return (done, total) => {
    const s = (Date.now() - start) / 1000;
    const pct = total > 0 ? ((100 * done) / total).toFixed(0) : "?";
    status.update(`${label} ${done}/${total} tokens (${pct}%)  ${(done / Math.max(s, 1e-3)).toFixed(0)} tok/s`);
  };
}

/** The first `windows` windows of `batches` (the last batch cut to the windows left). */
function* firstWindows(batches: Iterable<Batch>, windows: number): Generator<Batch> {
  let left = windows;
  for (const b of batches) {
    if (left <= 0) return;
    const [B, T] = b.shape;
    if (B <= left) yield b;
    else yield { inputs: b.inputs.subarray(0, left * T), targets: b.targets.subarray(0, left * T), shape: [left, T] };
    left -= B;
  }
}

export const evalCommand = defineCommand({
  name: "eval",
  summary: "mean next-token loss and perplexity of a model on a text file or a shard split",
  flags: {
    model: { kind: "string", required: true, help: "HF model directory (config.json, model.safetensors, tokenizer.json)" },
    text: { kind: "string", help: "UTF-8 text file to score, tokenized with the model's tokenizer.json" },
    data: { kind: "string", help: "token shard directory (from lrc tokenize) to score instead of --text" },
    split: { kind: "string", default: "val", choices: ["train", "val"], help: "shard split with --data: train or val" },
    window: { kind: "int", help: "tokens per window (default: the window the model was trained with when its config.json records it, else max_position_embeddings, the maximum)" },
    "batch-size": { kind: "int", default: 1, help: "windows per forward pass" },
    tokens: { kind: "int", help: "score at most N tokens, the first ones (with --data: the first floor(N / window) windows of the split; default: all)" },
    backend: backendFlag,
    "model-dtype": modelDTypeFlag,
    "pool-limit": poolLimitFlag,
    json: { kind: "boolean", help: "print one JSON object {loss, perplexity, tokens, window, seconds, tokens_per_s, peak_rss_bytes}" },
  },
  details: [
    "examples:",
    "  lrc eval --model models/Qwen2.5-0.5B --text wiki.txt",
    "  lrc eval --model out/student --data data/shards --split val --window 512 --json",
    "  lrc eval --model models/Qwen2.5-0.5B --data data/shards --window 256 --batch-size 4 --tokens 100000",
    "",
    "Memory is flat in the number of tokens (a batch of windows at a time, the LM head over row chunks) and",
    "grows with --window x --batch-size: a Qwen2.5 model's default window is 32,768 tokens, so pass --window.",
    "--tokens N scores only the first N tokens (whole windows with --data).",
    "",
    "A BF16 / F16 checkpoint's weight matrices stay 16-bit (half the memory; the loss is the float32 load's bit for",
    "bit) on the cpu and webgpu backends; --model-dtype float32 widens them on load.",
    "",
    "Ctrl-C (or SIGTERM) stops after the current batch and prints the result over the windows scored so far,",
    "marked interrupted (exit 130; 143 for SIGTERM); a second Ctrl-C exits at once.",
  ].join("\n"),
  async run(flags) {
    const dir = flags.model;
    const text = flags.text;
    const data = flags.data;
    if ((text === undefined) === (data === undefined)) throw new UsageError("give exactly one of --text <file> or --data <shard dir>");
    const split = flags.split;
    const batchSize = flags["batch-size"];
    if (batchSize < 1) throw new UsageError(`--batch-size must be positive, got ${batchSize}`);
    const window = flags.window;
    if (window !== undefined && window < 1) throw new UsageError(`--window must be positive, got ${window}`);
    const maxTokens = flags.tokens;
    if (maxTokens !== undefined && maxTokens < 1) throw new UsageError(`--tokens must be positive, got ${maxTokens}`);

    // Cheap checks first (directory, config.json, tokenizer), then the weights.
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: no such model directory`);
    readConfigFile(path.join(dir, "config.json"));
    const tokenizer = text !== undefined ? loadTokenizer(dir) : null;
    let body = "";
    if (text !== undefined) body = await readUtf8File(text);
    const model = await loadCausalLM(dir, { keepDType: keepHalfDType(flags["model-dtype"]) });
    const cfg = model.config;
    const maxPos = cfg.max_position_embeddings;
    if (window !== undefined && window > maxPos)
      throw new Error(`--window ${window} exceeds max_position_embeddings ${maxPos} of ${path.join(dir, "config.json")}`);
    // The trained window when lrc recorded it (a model scored past the window it was trained on looks far worse).
    const trained = trainedSeqLen(cfg);
    let usedWindow = 0, windowSource = "";
    const announce = (w: number, why: string) => void ([usedWindow, windowSource] = [w, why]);
    const defaultWindow = trained !== undefined && trained <= maxPos ? trained : undefined;
    const status = statusLine();
    const bar = progress("eval", status);
    const interrupt = onInterrupt("stopping after this batch of windows");
    const signal = interrupt.signal;
    const t0 = performance.now(); // scoring only: the model is loaded
    let result: EvalResult, total: number;
    try {
      if (tokenizer !== null && text !== undefined) {
        const encoded = tokenizer.encode(body);
        // N predictions need N + 1 tokens.
        const ids = maxTokens !== undefined ? encoded.slice(0, maxTokens + 1) : encoded;
        if (ids.length < 2) throw new Error(`${text}: has ${ids.length} token${ids.length === 1 ? "" : "s"}; at least 2 are needed to score next-token predictions`);
        const maxId = ids.reduce((m, x) => Math.max(m, x), 0);
        if (maxId >= cfg.vocab_size)
          throw new Error(`${tokenizer.path ?? dir}: produces token id ${maxId}, outside vocab_size ${cfg.vocab_size} of ${path.join(dir, "config.json")}`);
        const w = window ?? defaultWindow ?? maxPos;
        announce(w, window !== undefined ? "--window" : defaultWindow !== undefined ? "the trained window" : "max_position_embeddings");
        total = ids.length - 1;
        result = await evaluate(model, ids, { window: w, batchSize, onProgress: bar, signal });
      } else {
        const manifest = readManifest(data!);
        if (manifest.vocabSize > cfg.vocab_size)
          throw new Error(`${path.join(data!, "manifest.json")}: vocabSize ${manifest.vocabSize} exceeds vocab_size ${cfg.vocab_size} of ${path.join(dir, "config.json")}`);
        if (fs.existsSync(path.join(dir, "tokenizer.json"))) verifyTokenizer(data!, dir);
        const n = manifest.splits[split].tokens;
        if (n < 2) throw new Error(`${path.join(data!, "manifest.json")}: split '${split}' has ${n} tokens; at least 2 are needed`);
        const seqLen = window ?? defaultWindow ?? Math.min(maxPos, n - 1);
        announce(seqLen, window !== undefined ? "--window" : defaultWindow !== undefined ? "the trained window" : seqLen < maxPos ? "the split's length" : "max_position_embeddings");
        if (n - 1 < seqLen)
          throw new Error(`${path.join(data!, "manifest.json")}: split '${split}' has ${n} tokens, too few for one window of ${seqLen}; pass a smaller --window`);
        let windows = Math.floor((n - 1) / seqLen);
        if (maxTokens !== undefined) {
          if (maxTokens < seqLen) throw new UsageError(`--tokens ${maxTokens} is less than one window of ${seqLen} tokens; pass more --tokens or a smaller --window`);
          windows = Math.min(windows, Math.floor(maxTokens / seqLen));
        }
        const all = (total = windows * seqLen);
        const batches = evalWindows(data!, { split, seqLen, batchSize, maxBatches: Math.ceil(windows / batchSize) });
        result = await evaluateBatches(model, firstWindows(batches, windows), {
          onProgress: (d) => bar(d, all),
          signal,
        });
      }
    } finally {
      interrupt.dispose();
    }
    status.done();
    const interrupted = signal.aborted && result.tokens < total;
    const seconds = (performance.now() - t0) / 1000;
    const tokensPerSecond = result.tokens / Math.max(seconds, 1e-9);
    const peakRss = process.resourceUsage().maxRSS * 1024;
    if (interrupted && result.tokens === 0) {
      console.error(`eval: interrupted before the first window was scored`);
      return interrupt.exitCode();
    }
    if (!Number.isFinite(result.loss)) throw new Error(`${dir}: the model's mean loss is ${result.loss}: its weights overflow on this data (no result)`);
    if (flags.json)
      console.log(JSON.stringify({
        loss: result.loss, perplexity: result.perplexity, tokens: result.tokens, window: usedWindow, seconds, tokens_per_s: tokensPerSecond, peak_rss_bytes: peakRss,
        ...(interrupted ? { interrupted: true, tokens_total: total } : {}),
      }));
    else
      console.log(
        `${interrupted ? `interrupted after ${result.tokens} of ${total} tokens: ` : ""}` +
        `loss ${result.loss.toFixed(4)}  perplexity ${result.perplexity.toFixed(3)}  tokens ${result.tokens}  window ${usedWindow} (${windowSource})  ` +
          `(${seconds.toFixed(1)} s, ${tokensPerSecond.toFixed(0)} tokens/s, peak RSS ${(peakRss / 2 ** 30).toFixed(2)} GiB)`,
      );
    return interrupted ? interrupt.exitCode() : 0;
  },
});
