// The checkpoint-name mapping: HF parameter names <-> the functional core's weight objects. A name map, not
// a translation table: `model.layers.{i}.self_attn.q_proj.weight` is `layers[i].qW`, and so on.

import type { Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "./config.js";
import { oBias, qkvBias } from "./config.js";
import type { CausalLMWeights, LayerWeights } from "./functional.js";
import { StateDictError } from "./module.js";

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** The HF name of each LayerWeights field, relative to `model.layers.{i}.`. */
export const LAYER_WEIGHT_NAMES: Readonly<Record<keyof LayerWeights, string>> = {
  inputNorm: "input_layernorm.weight",
  qW: "self_attn.q_proj.weight",
  qB: "self_attn.q_proj.bias",
  kW: "self_attn.k_proj.weight",
  kB: "self_attn.k_proj.bias",
  vW: "self_attn.v_proj.weight",
  vB: "self_attn.v_proj.bias",
  oW: "self_attn.o_proj.weight",
  oB: "self_attn.o_proj.bias",
  postNorm: "post_attention_layernorm.weight",
  gateW: "mlp.gate_proj.weight",
  upW: "mlp.up_proj.weight",
  downW: "mlp.down_proj.weight",
};

/** The LayerWeights fields a config has (biases only where the architecture has them). */
export function layerWeightKeys(cfg: CausalLMConfig): Array<keyof LayerWeights> {
  const keys: Array<keyof LayerWeights> = ["inputNorm", "qW", "kW", "vW", "oW", "postNorm", "gateW", "upW", "downW"];
  if (qkvBias(cfg)) keys.push("qB", "kB", "vB");
  if (oBias(cfg)) keys.push("oB");
  return keys;
}

/**
 * Weight objects from HF-named tensors (a state dict or a loaded checkpoint). Every expected name must be
 * present; `lm_head.weight` falls back to the embedding when the config is tied.
 */
export function weightsFromStateDict(sd: Readonly<Record<string, Tensor>>, cfg: CausalLMConfig, source = "state dict"): CausalLMWeights {
  const get = (name: string): Tensor => {
    const t = sd[name];
    if (t === undefined) throw new StateDictError(`${source}: missing tensor "${name}"`);
    return t;
  };
  const layers: LayerWeights[] = [];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const l: Partial<Writable<LayerWeights>> = {};
    for (const k of layerWeightKeys(cfg)) l[k] = get(`model.layers.${i}.${LAYER_WEIGHT_NAMES[k]}`);
    layers.push(l as LayerWeights);
  }
  const embed = get("model.embed_tokens.weight");
  return {
    embed,
    layers,
    finalNorm: get("model.norm.weight"),
    lmHead: cfg.tie_word_embeddings ? (sd["lm_head.weight"] ?? embed) : get("lm_head.weight"),
  };
}

/** HF-named tensors from weight objects (the inverse; `lm_head.weight` omitted when tied). */
export function stateDictFromWeights(w: CausalLMWeights, cfg: CausalLMConfig): Record<string, Tensor> {
  const out: Record<string, Tensor> = { "model.embed_tokens.weight": w.embed };
  w.layers.forEach((l, i) => {
    for (const k of layerWeightKeys(cfg)) {
      const t = l[k];
      if (t === undefined) throw new StateDictError(`stateDictFromWeights: layers[${i}].${k} is missing (${cfg.model_type} has it)`);
      out[`model.layers.${i}.${LAYER_WEIGHT_NAMES[k]}`] = t;
    }
  });
  out["model.norm.weight"] = w.finalNorm;
  if (!cfg.tie_word_embeddings) out["lm_head.weight"] = w.lmHead;
  return out;
}

/** One parameter of a CausalLM: its HF name, shape and HF `_init_weights` rule. */
export interface ParameterSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** "normal": N(0, initializer_range²) (Linear and Embedding weights); "ones": RMSNorm gains; "zeros": biases. */
  readonly init: "normal" | "ones" | "zeros";
}

/**
 * The parameters of `new CausalLM(cfg)` without allocating them, in `namedParameters()` order (which is also
 * the order its constructor draws the random weights in); a tied model has no `lm_head.weight`.
 */
export function parameterSpecs(cfg: CausalLMConfig): ParameterSpec[] {
  const D = cfg.hidden_size, F = cfg.intermediate_size, dh = cfg.head_dim;
  const q = cfg.num_attention_heads * dh, kv = cfg.num_key_value_heads * dh;
  const out: ParameterSpec[] = [{ name: "model.embed_tokens.weight", shape: [cfg.vocab_size, D], init: "normal" }];
  const linear = (p: string, outF: number, inF: number, bias: boolean) => {
    out.push({ name: `${p}.weight`, shape: [outF, inF], init: "normal" });
    if (bias) out.push({ name: `${p}.bias`, shape: [outF], init: "zeros" });
  };
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    linear(`${p}.self_attn.q_proj`, q, D, qkvBias(cfg));
    linear(`${p}.self_attn.k_proj`, kv, D, qkvBias(cfg));
    linear(`${p}.self_attn.v_proj`, kv, D, qkvBias(cfg));
    linear(`${p}.self_attn.o_proj`, D, q, oBias(cfg));
    linear(`${p}.mlp.gate_proj`, F, D, false);
    linear(`${p}.mlp.up_proj`, F, D, false);
    linear(`${p}.mlp.down_proj`, D, F, false);
    out.push({ name: `${p}.input_layernorm.weight`, shape: [D], init: "ones" });
    out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [D], init: "ones" });
  }
  out.push({ name: "model.norm.weight", shape: [D], init: "ones" });
  if (!cfg.tie_word_embeddings) linear("lm_head", cfg.vocab_size, D, false);
  return out;
}

/** The shape of each LayerWeights field of a config (fields it lacks included; see layerWeightKeys). */
function layerShapes(cfg: CausalLMConfig): Record<keyof LayerWeights, readonly number[]> {
  const D = cfg.hidden_size, F = cfg.intermediate_size, q = cfg.num_attention_heads * cfg.head_dim, kv = cfg.num_key_value_heads * cfg.head_dim;
  return {
    inputNorm: [D], qW: [q, D], qB: [q], kW: [kv, D], kB: [kv], vW: [kv, D], vB: [kv], oW: [D, q], oB: [D], postNorm: [D],
    gateW: [F, D], upW: [F, D], downW: [D, F],
  };
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * The HF name and shape of every parameter a config describes (`lm_head.weight` only when untied), from the
 * config alone: what a checkpoint is checked against before anything is allocated.
 */
export function parameterShapes(cfg: CausalLMConfig): Map<string, readonly number[]> {
  const layer = layerShapes(cfg);
  const out = new Map<string, readonly number[]>([["model.embed_tokens.weight", [cfg.vocab_size, cfg.hidden_size]]]);
  for (let i = 0; i < cfg.num_hidden_layers; i++) for (const k of layerWeightKeys(cfg)) out.set(`model.layers.${i}.${LAYER_WEIGHT_NAMES[k]}`, layer[k]);
  out.set("model.norm.weight", [cfg.hidden_size]);
  if (!cfg.tie_word_embeddings) out.set("lm_head.weight", [cfg.vocab_size, cfg.hidden_size]);
  return out;
}

/** The number of parameter values a config describes, in closed form (no loop over layers, nothing allocated): for memory estimates. */
export function parameterCount(cfg: CausalLMConfig): number {
  const layer = layerShapes(cfg);
  const perLayer = layerWeightKeys(cfg).reduce((n, k) => n + numel(layer[k]), 0);
  return cfg.vocab_size * cfg.hidden_size * (cfg.tie_word_embeddings ? 1 : 2) + cfg.hidden_size + cfg.num_hidden_layers * perLayer;
}
