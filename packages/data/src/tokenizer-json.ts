// Text tokenizers for the data pipeline, from tokenizer.json text or bytes in memory (no file system, so it
// runs in a browser too): any Hugging Face `tokenizer.json` (Qwen2/2.5/3, Llama 3, SmolLM, GPT-2, and the ones
// `trainBpeTokenizer` writes) loaded through `@huggingface/tokenizers`, wrapped in the small `TextTokenizer`
// interface the shard writer needs: encode, decode, vocab size, the end-of-text id documents are joined
// with, and the sha256 of the tokenizer.json bytes that shard manifests record. Loading from a file or a
// model directory is ./tokenizer.ts (Node).

import { Tokenizer } from "@huggingface/tokenizers";
import { DataError } from "./errors.js";
import { BYTE_TO_CHAR } from "./byte-level.js";
import { sha256Hex } from "./sha256.js";

export { sha256Hex } from "./sha256.js";

export interface TextTokenizer {
  /** Token ids of `text`, with no BOS/EOS or other special tokens added. */
  encode(text: string): number[];
  /** The text of `ids` (special tokens included, no clean-up of spaces). */
  decode(ids: ArrayLike<number>): string;
  /** One more than the largest token id (added tokens included). */
  readonly vocabSize: number;
  /** The end-of-text id documents are joined with in shards. */
  readonly eosId: number;
  readonly eosToken: string;
  /** sha256 (lowercase hex) of the tokenizer.json bytes. */
  readonly hash: string;
  /** The tokenizer.json this was loaded from, or null when built from memory. */
  readonly path: string | null;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

export interface LoadTokenizerOptions {
  /** Use this token as end-of-text instead of the automatic choice. */
  readonly eosToken?: string;
}

/**
 * Names tried, in order, for the end-of-text token. These are the document separators the base models were
 * pretrained with (Qwen and GPT-2 `<|endoftext|>`, Llama 3 `<|end_of_text|>`, Llama 2/Mistral `</s>`,
 * Gemma `<eos>`), preferred over a chat model's `eos_token` (e.g. Qwen-Instruct's `<|im_end|>`), which ends a
 * chat turn rather than a document.
 */
export const WELL_KNOWN_EOS_TOKENS: readonly string[] = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"];

export interface TokenizerFromJsonOptions extends LoadTokenizerOptions {
  /** The parsed tokenizer_config.json, if any. */
  readonly config?: Record<string, unknown>;
  /** Where the JSON came from, for error messages and `TextTokenizer.path`. */
  readonly path?: string;
}

/** Builds a TextTokenizer from tokenizer.json text or bytes already in memory. */
export function tokenizerFromJson(json: string | Uint8Array, options: TokenizerFromJsonOptions = {}): TextTokenizer {
  const where = options.path ?? "<tokenizer.json>";
  const bytes = typeof json === "string" ? new TextEncoder().encode(json) : json;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(typeof json === "string" ? json : new TextDecoder().decode(json)) as Record<string, unknown>;
  } catch (e) {
    throw new DataError(where, "tokenizer", `invalid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || typeof parsed.model !== "object" || parsed.model === null)
    throw new DataError(where, "tokenizer", "not a tokenizer.json (no \"model\" object)");
  const missingBytes = new Set(checkTokenizerJson(parsed, where));
  const config = options.config ?? {};
  let hf: Tokenizer;
  try {
    hf = new Tokenizer(parsed, config);
  } catch (e) {
    throw new DataError(where, "tokenizer", `cannot build tokenizer: ${(e as Error).message}`);
  }
  let maxId = -1;
  for (const id of hf.get_vocab(true).values()) if (id > maxId) maxId = id;
  if (maxId < 0) throw new DataError(where, "tokenizer", "empty vocabulary");
  const eosToken = chooseEosToken(hf, config, options.eosToken, where);
  const eosId = hf.token_to_id(eosToken)!;
  const cleanUp = config.clean_up_tokenization_spaces === true;
  const hash = sha256Hex(bytes);
  const slow = (text: string) => hf.encode(text, { add_special_tokens: false }).ids;
  const fast = byteLevelFastPath(hf, parsed, config);
  const utf8 = new TextEncoder();
  const encode = (text: string): number[] => {
    if (missingBytes.size > 0)
      for (const b of utf8.encode(text))
        if (missingBytes.has(b))
          throw new DataError(where, "tokenizer", `"model.vocab" has no symbol for byte 0x${b.toString(16).padStart(2, "0")} (${JSON.stringify(BYTE_TO_CHAR[b])}) and no unk_token: the text would lose it`);
    const ids = fast?.(text) ?? slow(text);
    for (let i = 0; i < ids.length; i++)
      if (ids[i] === undefined)
        throw new DataError(where, "tokenizer", "the vocabulary has no token for a piece of the text and no unk_token: it would be dropped");
    return ids;
  };
  return {
    vocabSize: maxId + 1,
    eosId,
    eosToken,
    hash,
    path: options.path ?? null,
    encode: (text) => (text.length === 0 ? [] : encode(text)),
    decode: (ids) =>
      ids.length === 0 ? "" : hf.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: cleanUp }),
    tokenToId: (token) => hf.token_to_id(token),
    idToToken: (id) => hf.id_to_token(id),
  };
}

const MAX_ID = 2 ** 31 - 1;
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/**
 * Checks the parts of a tokenizer.json that @huggingface/tokenizers would take on trust, so a defective file
 * is refused by name instead of corrupting data: ids are integers in [0, 2^31), no two tokens share one, and
 * the largest is not far beyond the number of tokens (a lying id would make loading walk every id up to it);
 * every BPE merge is two vocabulary tokens whose join is one too (as the Rust `tokenizers` requires). Returns
 * the bytes a byte-level BPE without an unk_token has no symbol for (text holding one is refused at encode,
 * as the library would drop it silently).
 */
function checkTokenizerJson(json: Record<string, unknown>, where: string): number[] {
  const missingBytes: number[] = [];
  const fail = (msg: string): never => {
    throw new DataError(where, "tokenizer", msg);
  };
  const model = json.model as Record<string, unknown>;
  if (typeof model.type !== "string") fail(`"model.type" must be a string, got ${JSON.stringify(model.type)}`);
  const owner = new Map<number, string>();
  const claim = (id: unknown, token: string, field: string) => {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_ID) fail(`${field}: id ${JSON.stringify(id)} of ${JSON.stringify(token)} is not an integer in [0, 2^31)`);
    const prev = owner.get(id as number);
    if (prev !== undefined && prev !== token) fail(`${field}: ${JSON.stringify(token)} and ${JSON.stringify(prev)} share id ${id}`);
    owner.set(id as number, token);
  };
  const vocab = isObj(model.vocab) ? model.vocab : null;
  if (model.vocab !== undefined && vocab === null && !Array.isArray(model.vocab)) fail(`"model.vocab" must be an object or an array`);
  if (vocab !== null) for (const [token, id] of Object.entries(vocab)) claim(id, token, `"model.vocab"`);
  if (json.added_tokens !== undefined && json.added_tokens !== null) {
    if (!Array.isArray(json.added_tokens)) fail(`"added_tokens" must be an array`);
    (json.added_tokens as unknown[]).forEach((t, i) => {
      if (!isObj(t) || typeof t.content !== "string" || t.content === "") fail(`"added_tokens[${i}]" must be an object with a non-empty "content"`);
      claim((t as Record<string, unknown>).id, (t as { content: string }).content, `"added_tokens[${i}]"`);
    });
  }
  let maxId = -1;
  for (const id of owner.keys()) if (id > maxId) maxId = id;
  if (maxId >= 2 * owner.size + 1024) fail(`id ${maxId} is far beyond the ${owner.size} tokens of the vocabulary (a corrupt id)`);
  if (model.type !== "BPE" || vocab === null) return missingBytes;
  const has = (t: string) => Object.hasOwn(vocab, t);
  if (model.merges !== undefined) {
    if (!Array.isArray(model.merges)) fail(`"model.merges" must be an array`);
    const prefix = typeof model.continuing_subword_prefix === "string" ? model.continuing_subword_prefix : "";
    (model.merges as unknown[]).forEach((m, i) => {
      const pair = typeof m === "string" ? m.split(" ") : m;
      if (!Array.isArray(pair) || pair.length !== 2 || pair.some((p) => typeof p !== "string" || p === ""))
        fail(`"model.merges[${i}]" must be "a b" or ["a", "b"], got ${JSON.stringify(m)}`);
      const [a, b] = pair as [string, string];
      const joined = a + (b.startsWith(prefix) ? b.slice(prefix.length) : b);
      for (const t of [a, b, joined]) if (!has(t)) fail(`"model.merges[${i}]" ${JSON.stringify(m)}: token ${JSON.stringify(t)} is not in "model.vocab"`);
    });
  }
  const byteLevel = (x: unknown): boolean =>
    isObj(x) && (x.type === "ByteLevel" || (Array.isArray(x.pretokenizers) && x.pretokenizers.some(byteLevel)) || (Array.isArray(x.decoders) && x.decoders.some(byteLevel)));
  const unk = typeof model.unk_token === "string" && has(model.unk_token);
  if (!unk && model.byte_fallback !== true && (byteLevel(json.pre_tokenizer) || byteLevel(json.decoder)))
    for (let b = 0; b < 256; b++) if (!has(BYTE_TO_CHAR[b]!)) missingBytes.push(b);
  return missingBytes;
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string")
    return (v as { content: string }).content;
  return undefined;
}

function chooseEosToken(hf: Tokenizer, config: Record<string, unknown>, explicit: string | undefined, where: string): string {
  if (explicit !== undefined) {
    if (hf.token_to_id(explicit) === undefined)
      throw new DataError(where, "tokenizer", `end-of-text token ${JSON.stringify(explicit)} is not in the vocabulary`);
    return explicit;
  }
  for (const name of WELL_KNOWN_EOS_TOKENS) if (hf.token_to_id(name) !== undefined) return name;
  const fromConfig = tokenContent(config.eos_token);
  if (fromConfig !== undefined && hf.token_to_id(fromConfig) !== undefined) return fromConfig;
  throw new DataError(
    where,
    "tokenizer",
    `no end-of-text token found (tried ${WELL_KNOWN_EOS_TOKENS.join(", ")} and tokenizer_config.json eos_token); pass one explicitly`,
  );
}

/** The parts of @huggingface/tokenizers' Tokenizer the fast path reads (public in JS, not in its types). */
interface HfInternals {
  pre_tokenizer: { pattern?: RegExp; tokenizers?: { pre_tokenize_text(text: string): string[] }[] } | null;
  model: { encode(tokens: string[]): string[]; tokens_to_ids: Map<string, number>; unk_token_id?: number };
  added_tokens_map: Map<string, { id: number }>;
}

const FAST_CACHE_LIMIT = 1 << 19;

/**
 * A faster, exact encoder for byte-level BPE tokenizers (GPT-2 style `ByteLevel` with its regex, or
 * Qwen/Llama 3 style `Split` regex + `ByteLevel`; no normalizer or NFC): the same pre-token split, then a
 * cache from each pre-token to its ids, so BPE runs once per distinct word. It returns null (use the full
 * pipeline) for a text that contains an added token's content, and is not built for other layouts.
 * The test suite checks it against the full pipeline.
 */
function byteLevelFastPath(hf: Tokenizer, json: Record<string, unknown>, config: Record<string, unknown>): ((text: string) => number[] | null) | null {
  const h = hf as unknown as HfInternals;
  const pre = json.pre_tokenizer as Record<string, unknown> | null;
  const model = json.model as Record<string, unknown>;
  const norm = json.normalizer as Record<string, unknown> | null;
  if (model.type !== "BPE" || model.byte_fallback === true || model.end_of_word_suffix || model.continuing_subword_prefix) return null;
  if (config.remove_space === true || config.do_lowercase_and_remove_accent === true) return null;
  if (norm !== null && norm !== undefined && norm.type !== "NFC") return null;
  const nfc = norm?.type === "NFC";
  const byteLevelPlain = (x: unknown) => {
    const o = x as Record<string, unknown> | null;
    return o !== null && typeof o === "object" && o.type === "ByteLevel" && o.add_prefix_space !== true;
  };
  let split: (text: string) => string[];
  if (pre === null || pre === undefined) return null;
  if (byteLevelPlain(pre) && pre.use_regex !== false && h.pre_tokenizer?.pattern instanceof RegExp) {
    const re = h.pre_tokenizer.pattern;
    split = (text) => text.match(re) ?? [];
  } else if (
    pre.type === "Sequence" &&
    Array.isArray(pre.pretokenizers) &&
    pre.pretokenizers.length === 2 &&
    (pre.pretokenizers[0] as Record<string, unknown>).type === "Split" &&
    byteLevelPlain(pre.pretokenizers[1]) &&
    (pre.pretokenizers[1] as Record<string, unknown>).use_regex === false &&
    h.pre_tokenizer?.tokenizers?.length === 2
  ) {
    const splitter = h.pre_tokenizer.tokenizers[0]!;
    split = (text) => splitter.pre_tokenize_text(text);
  } else return null;
  const added = [...hf.get_added_tokens_decoder().values()].map((t) => t.content).filter((c) => c.length > 0);
  const enc = new TextEncoder();
  let cache = new Map<string, number[]>();
  const ranks = new Map<string, number>();
  (model.merges as unknown[]).forEach((m, i) => {
    const [a, b] = Array.isArray(m) ? (m as string[]) : (m as string).split(" ", 2);
    const k = `${a}\u0000${b}`;
    if (!ranks.has(k)) ranks.set(k, i);
  });
  const vocab = h.model.tokens_to_ids;
  const ignoreMerges = model.ignore_merges === true;
  const idOf = (t: string) => h.added_tokens_map.get(t)?.id ?? vocab.get(t) ?? h.model.unk_token_id!;
  // BPE on one pre-token: merge the lowest-ranked adjacent pair (leftmost on ties) until none is left.
  const encodePiece = (piece: string): number[] => {
    const bytes = enc.encode(piece);
    const syms: string[] = new Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) syms[i] = BYTE_TO_CHAR[bytes[i]!]!;
    if (ignoreMerges) {
      const whole = syms.join("");
      if (vocab.has(whole)) return [idOf(whole)];
    }
    for (;;) {
      let best = Infinity;
      let at = -1;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = ranks.get(`${syms[i]}\u0000${syms[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          at = i;
        }
      }
      if (at < 0) break;
      syms.splice(at, 2, syms[at]! + syms[at + 1]!);
    }
    return syms.map(idOf);
  };
  return (raw) => {
    for (const a of added) if (raw.includes(a)) return null;
    const text = nfc ? raw.normalize("NFC") : raw;
    if (nfc && text !== raw) for (const a of added) if (text.includes(a)) return null;
    const out: number[] = [];
    for (const piece of split(text)) {
      let ids = cache.get(piece);
      if (ids === undefined) {
        ids = encodePiece(piece);
        if (cache.size >= FAST_CACHE_LIMIT) cache = new Map();
        cache.set(piece, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
    return out;
  };
}
