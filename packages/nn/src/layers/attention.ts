// GQA causal self-attention (transformers LlamaAttention / Qwen2Attention): q/k/v/o projections with the
// architecture's biases; the math is `attentionForward` in ../functional.ts.

import type { Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "../config.js";
import { oBias, qkvBias } from "../config.js";
import type { LayerKV, LayerWeights } from "../functional.js";
import { attentionForward } from "../functional.js";
import { Module } from "../module.js";
import type { InitOptions } from "./init.js";
import { Linear } from "./linear.js";
import type { RopeTables } from "./rope.js";

export type AttentionWeights = Pick<LayerWeights, "qW" | "qB" | "kW" | "kB" | "vW" | "vB" | "oW" | "oB">;

export class Attention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;

  constructor(readonly config: CausalLMConfig, opts: InitOptions = {}) {
    super();
    const D = config.hidden_size, dh = config.head_dim;
    const qkv = { ...opts, bias: qkvBias(config) };
    this.q_proj = this.registerModule("q_proj", new Linear(D, config.num_attention_heads * dh, qkv));
    this.k_proj = this.registerModule("k_proj", new Linear(D, config.num_key_value_heads * dh, qkv));
    this.v_proj = this.registerModule("v_proj", new Linear(D, config.num_key_value_heads * dh, qkv));
    this.o_proj = this.registerModule("o_proj", new Linear(config.num_attention_heads * dh, D, { ...opts, bias: oBias(config) }));
  }

  weights(): AttentionWeights {
    const w: { -readonly [K in keyof AttentionWeights]: AttentionWeights[K] } = {
      qW: this.q_proj.weight, kW: this.k_proj.weight, vW: this.v_proj.weight, oW: this.o_proj.weight,
    };
    if (this.q_proj.bias !== null) w.qB = this.q_proj.bias;
    if (this.k_proj.bias !== null) w.kB = this.k_proj.bias;
    if (this.v_proj.bias !== null) w.vB = this.v_proj.bias;
    if (this.o_proj.bias !== null) w.oB = this.o_proj.bias;
    return w;
  }

  /** a: normalised input (B, T, D) -> (B, T, D) */
  forward(a: Tensor, rot: RopeTables, past?: LayerKV): Tensor {
    return attentionForward(a, this.weights(), this.config, rot, past).out;
  }
}
