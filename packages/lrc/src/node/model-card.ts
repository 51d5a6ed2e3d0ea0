// The files that make an exported model directory load in transformers as its teacher's does, beside
// config.json and model.safetensors: a model card README.md (teacher, method, tokens, final losses, the lrc-ts
// version), and, when the tokenizer source has none, a generation_config.json (bos/eos ids from config.json, as
// transformers derives one) and a tokenizer_config.json (PreTrainedTokenizerFast with the special tokens of
// tokenizer.json). A teacher's own tokenizer_config.json (with its chat template) is copied unchanged by
// saveCausalLM, and its chat_template.jinja here.

import fs from "node:fs";
import path from "node:path";
import type { CausalLMConfig } from "@lrc-ts/nn";

export interface ModelCardInfo {
  /** The exported model's config. */
  readonly config: CausalLMConfig;
  readonly parameters: number;
  /** e.g. "Low-Rank Clone (LRC) of `models/teacher` ..." */
  readonly method: string;
  readonly teacher: string | null;
  readonly steps: number;
  readonly tokens: number;
  readonly seqLen: number;
  readonly dtype: string;
  readonly final: Record<string, number>;
  readonly val: { readonly loss: number; readonly perplexity: number; readonly teacherLoss: number | null } | null;
  readonly version: string;
}

function f4(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}

/** The model card README.md (YAML front matter for the Hub, then a short description). */
export function modelCard(i: ModelCardInfo): string {
  const c = i.config;
  const losses = ["total", "ce", "kl", "clone"].filter((k) => i.final[k] !== undefined).map((k) => `${k} ${f4(i.final[k]!)}`).join(", ");
  const rows: Array<[string, string]> = [
    ["architecture", `${c.model_type}: hidden ${c.hidden_size}, ${c.num_hidden_layers} layers, ${c.num_attention_heads}/${c.num_key_value_heads} heads of ${c.head_dim}, FFN ${c.intermediate_size}, vocab ${c.vocab_size}`],
    ["parameters", i.parameters.toLocaleString("en-US")],
    ["method", i.method],
    ...(i.teacher !== null ? [["teacher", `\`${i.teacher}\``] as [string, string]] : []),
    ["training", `${i.steps.toLocaleString("en-US")} steps, ${i.tokens.toLocaleString("en-US")} tokens, windows of ${i.seqLen} tokens`],
    ["final train losses", losses || "-"],
    ["val loss", i.val === null ? "-" : `${f4(i.val.loss)} (perplexity ${i.val.perplexity.toFixed(2)})${i.val.teacherLoss !== null ? `, teacher ${f4(i.val.teacherLoss)}` : ""}`],
    ["weights", i.dtype],
    ["trained with", `lrc-ts ${i.version}`],
  ];
  return [
    "---",
    "library_name: transformers",
    "tags:",
    "  - lrc-ts",
    ...(i.teacher !== null ? ["  - low-rank-clone"] : []),
    "---",
    "",
    `# ${c.model_type} (hidden ${c.hidden_size}) trained with lrc-ts`,
    "",
    "| | |",
    "|---|---|",
    ...rows.map(([k, v]) => `| ${k} | ${v.replace(/\|/g, "\\|")} |`),
    "",
    "```python",
    "from transformers import AutoModelForCausalLM, AutoTokenizer",
    'model = AutoModelForCausalLM.from_pretrained("path/to/this/directory")',
    'tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")',
    "```",
    "",
  ].join("\n");
}

/** generation_config.json as transformers derives it from config.json (bos/eos ids). */
export function generationConfig(config: CausalLMConfig): string {
  const out: Record<string, unknown> = { _from_model_config: true };
  for (const k of ["bos_token_id", "eos_token_id", "pad_token_id"]) if (config.extra[k] !== undefined && config.extra[k] !== null) out[k] = config.extra[k];
  return `${JSON.stringify(out, null, 2)}\n`;
}

interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special?: boolean;
}

/**
 * A tokenizer_config.json for a bare tokenizer.json: PreTrainedTokenizerFast with its special tokens, the eos
 * token (config.json's eos_token_id, else the only special token), model_max_length = max_position_embeddings.
 */
export function tokenizerConfig(config: CausalLMConfig, tokenizerJson: string, source: string): string {
  let added: AddedToken[];
  try {
    added = ((JSON.parse(tokenizerJson) as { added_tokens?: AddedToken[] }).added_tokens ?? []).filter((t) => t.special === true);
  } catch (e) {
    throw new Error(`${source}: invalid JSON: ${(e as Error).message}`);
  }
  const eosId = config.extra.eos_token_id;
  const eos = added.find((t) => t.id === (Array.isArray(eosId) ? eosId[0] : eosId)) ?? (added.length === 1 ? added[0] : undefined);
  const bosId = config.extra.bos_token_id;
  const bos = added.find((t) => t.id === bosId);
  const decoder: Record<string, unknown> = {};
  for (const t of added) decoder[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  const out = {
    tokenizer_class: "PreTrainedTokenizerFast",
    added_tokens_decoder: decoder,
    bos_token: bos?.content ?? null,
    eos_token: eos?.content ?? null,
    pad_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: config.max_position_embeddings,
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}

/**
 * The config files of an export whose tokenizer files come from `tokenizerFrom`, where that directory has none:
 * generation_config.json, and tokenizer_config.json beside a tokenizer.json; its chat_template.jinja when present.
 */
export function exportConfigFiles(config: CausalLMConfig, tokenizerFrom: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const has = (f: string) => tokenizerFrom !== undefined && fs.existsSync(path.join(tokenizerFrom, f));
  if (!has("generation_config.json")) out["generation_config.json"] = generationConfig(config);
  if (has("tokenizer.json") && !has("tokenizer_config.json")) {
    const file = path.join(tokenizerFrom!, "tokenizer.json");
    out["tokenizer_config.json"] = tokenizerConfig(config, fs.readFileSync(file, "utf8"), file);
  }
  if (has("chat_template.jinja")) out["chat_template.jinja"] = fs.readFileSync(path.join(tokenizerFrom!, "chat_template.jinja"), "utf8");
  return out;
}
