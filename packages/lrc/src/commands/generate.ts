// `lrc generate`: continue a prompt with an HF model directory, streaming the decoded text to stdout as
// each token is chosen (KV-cache decoding; greedy with --temperature 0, else temperature / top-k / top-p
// sampling from --seed). Generation stops at an end-of-sequence token (config.json and
// generation_config.json eos_token_id, and the tokenizer's end-of-text), at --max-tokens, or at
// max_position_embeddings; Ctrl-C or SIGTERM stops it before the next token, with the text so far (exit 130 / 143).

import fs from "node:fs";
import path from "node:path";
import { loadTokenizer } from "@lrc-ts/data";
import type { TextTokenizer } from "@lrc-ts/data";
import { configStopTokens, generate, loadCausalLM, readConfigFile } from "@lrc-ts/nn";
import { UsageError } from "../cli/args.js";
import { backendFlag, defineCommand, keepHalfDType, modelDTypeFlag } from "../cli/command.js";
import { onInterrupt } from "../node/interrupt.js";

function readJson(file: string): Record<string, unknown> | null {
  if (!fs.existsSync(file)) return null;
  try {
    const v = JSON.parse(fs.readFileSync(file, "utf8")) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch (e) {
    throw new Error(`${file}: invalid JSON: ${(e as Error).message}`);
  }
}

function ids(v: unknown): number[] {
  if (typeof v === "number") return [v];
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];
}

/**
 * The BOS id HF's tokenizer would prepend (add_special_tokens=True): the first special token of a
 * TemplateProcessing post-processor (Llama 3), or bos_token with add_bos_token (Llama 2, TinyLlama).
 */
function bosId(dir: string, tok: TextTokenizer): number | null {
  const tj = readJson(path.join(dir, "tokenizer.json"));
  const pp = tj?.post_processor as { type?: string; single?: Array<Record<string, { id?: string }>> } | null | undefined;
  const first = pp?.type === "TemplateProcessing" ? pp.single?.[0]?.SpecialToken?.id : undefined;
  if (first !== undefined) return tok.tokenToId(first) ?? null;
  const tc = readJson(path.join(dir, "tokenizer_config.json"));
  const bos = tc?.bos_token;
  const content = typeof bos === "string" ? bos : (bos as { content?: unknown } | undefined)?.content;
  if (tc?.add_bos_token === true && typeof content === "string") return tok.tokenToId(content) ?? null;
  return null;
}

/** Decodes the growing token list and writes only the new, complete text (holding back split UTF-8). */
function streamer(tok: TextTokenizer, write: (s: string) => void): { push(id: number): void; flush(): void } {
  const all: number[] = [];
  let shown = 0;
  return {
    push(id) {
      all.push(id);
      const text = tok.decode(all);
      if (text.endsWith("\uFFFD")) return;
      if (text.length > shown) write(text.slice(shown));
      shown = text.length;
    },
    flush() {
      const text = tok.decode(all);
      if (text.length > shown) write(text.slice(shown));
      shown = text.length;
    },
  };
}

export const generateCommand = defineCommand({
  name: "generate",
  summary: "continue a prompt with a model, streaming text (KV cache; greedy or sampled)",
  flags: {
    model: { kind: "string", required: true, help: "HF model directory (config.json, model.safetensors, tokenizer.json)" },
    prompt: { kind: "string", required: true, help: "text to continue" },
    "max-tokens": { kind: "int", default: 128, help: "new tokens at most" },
    temperature: { kind: "number", default: 0.8, help: "softmax temperature; 0 = greedy" },
    "top-k": { kind: "int", default: 50, help: "sample among the k most likely tokens (0 = all)" },
    "top-p": { kind: "number", default: 0.95, help: "sample among the most likely tokens holding this probability mass (1 = all)" },
    seed: { kind: "int", default: 0, help: "sampling seed" },
    backend: backendFlag,
    "model-dtype": modelDTypeFlag,
    json: { kind: "boolean", help: "print one JSON object {text, tokens, stopReason} instead of streaming" },
  },
  details: [
    "examples:",
    '  lrc generate --model models/Qwen2.5-0.5B-Instruct --prompt "The capital of France is" --temperature 0',
    '  lrc generate --model out/student --prompt "Once upon a time" --max-tokens 200 --seed 7',
  ].join("\n"),
  async run(flags) {
    const dir = flags.model;
    const maxTokens = flags["max-tokens"];
    const temperature = flags.temperature;
    const topK = flags["top-k"];
    const topP = flags["top-p"];
    if (maxTokens < 0) throw new UsageError(`--max-tokens must be >= 0, got ${maxTokens}`);
    if (temperature < 0) throw new UsageError(`--temperature must be >= 0, got ${temperature}`);
    if (topK < 0) throw new UsageError(`--top-k must be >= 0, got ${topK}`);
    if (!(topP > 0 && topP <= 1)) throw new UsageError(`--top-p must be in (0, 1], got ${topP}`);

    // Cheap checks first (directory, config.json, tokenizer), then the weights.
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: no such model directory`);
    readConfigFile(path.join(dir, "config.json"));
    const tok = loadTokenizer(dir);
    const model = await loadCausalLM(dir, { keepDType: keepHalfDType(flags["model-dtype"]) });
    const cfg = model.config;
    const bos = bosId(dir, tok);
    const prompt = [...(bos !== null ? [bos] : []), ...tok.encode(flags.prompt)];
    if (prompt.length === 0) throw new UsageError("--prompt is empty (no tokens)");
    const bad = prompt.find((t) => t >= cfg.vocab_size);
    if (bad !== undefined)
      throw new Error(`${tok.path ?? dir}: produces token id ${bad}, outside vocab_size ${cfg.vocab_size} of ${path.join(dir, "config.json")}`);
    if (prompt.length > cfg.max_position_embeddings)
      throw new Error(`--prompt has ${prompt.length} tokens, more than max_position_embeddings ${cfg.max_position_embeddings} of ${path.join(dir, "config.json")}`);
    const gen = readJson(path.join(dir, "generation_config.json"));
    const stopTokens = [...new Set([...configStopTokens(cfg), ...ids(gen?.eos_token_id), tok.eosId])];

    const json = flags.json === true;
    const out = streamer(tok, (s) => void process.stdout.write(s));
    const interrupt = onInterrupt("stopping generation");
    const res = await generate(model, prompt, {
      maxNewTokens: maxTokens,
      temperature,
      topK,
      topP,
      seed: flags.seed,
      stopTokens,
      ...(json ? {} : { onToken: (id: number) => void out.push(id) }),
      signal: interrupt.signal,
    }).finally(() => interrupt.dispose());
    if (json) {
      console.log(JSON.stringify({ text: tok.decode(res.tokens), tokens: res.tokens, promptTokens: prompt.length, stopReason: res.stopReason }));
    } else {
      out.flush();
      process.stdout.write("\n");
    }
    return res.stopReason === "aborted" ? interrupt.exitCode() : 0;
  },
});
