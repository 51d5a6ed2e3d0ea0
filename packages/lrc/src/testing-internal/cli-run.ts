// Helpers for in-process CLI tests: run `main` with console and stdout captured, and a tiny tokenizer.json
// that fits the nn fixture model qwen2-tied-f32 (vocab 96).

import { vi } from "vitest";
import { main } from "../cli.js";

/** A byte-level BPE tokenizer.json with exactly 96 ids: <|endoftext|>, 71 byte symbols, 24 two-letter merges. */
export function tinyTokenizerJson(): string {
  const symbols = [
    ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "\u0120", "\u010a", ".", ",", "!", "?", "'", "-", ":",
  ];
  const pairs = ["th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng"];
  const vocab: Record<string, number> = { "<|endoftext|>": 0 };
  for (const s of [...symbols, ...pairs]) vocab[s] = Object.keys(vocab).length;
  const bl = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return JSON.stringify({
    version: "1.0", truncation: null, padding: null,
    added_tokens: [{ id: 0, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null, pre_tokenizer: bl, post_processor: bl, decoder: bl,
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: pairs.map((p) => `${p[0]} ${p[1]}`),
    },
  });
}

/**
 * Runs `main(argv)` with console and stdout captured. `backend` is the "lrc backend: ..." line a model command
 * prints first (null when none was printed); `err` is the rest of stderr.
 */
export async function run(argv: string[]): Promise<{ code: number; out: string; err: string; stream: string; backend: string | null }> {
  const out: string[] = [], err: string[] = [], stream: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
  vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
  vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => (stream.push(String(s)), true));
  const code = await main(argv);
  vi.restoreAllMocks();
  return { code, out: out.join("\n"), stream: stream.join(""), ...splitBackendLine(err) };
}

/** Console error lines apart from the "lrc backend: ..." line that the CLI prints before a model command runs. */
export function splitBackendLine(lines: readonly string[]): { backend: string | null; err: string } {
  const backend = lines.find((l) => l.startsWith("lrc backend: ")) ?? null;
  return { backend, err: lines.filter((l) => l !== backend).join("\n") };
}

