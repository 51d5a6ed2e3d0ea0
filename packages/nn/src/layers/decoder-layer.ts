// One pre-norm decoder layer (transformers LlamaDecoderLayer / Qwen2DecoderLayer):
//   x = x + self_attn(input_layernorm(x));  x = x + mlp(post_attention_layernorm(x)).
// The math is `decoderLayerForward` in ../functional.ts.

import type { Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "../config.js";
import type { LayerForwardOptions, LayerForwardResult, LayerWeights } from "../functional.js";
import { decoderLayerForward } from "../functional.js";
import { Module } from "../module.js";
import { Attention } from "./attention.js";
import type { InitOptions } from "./init.js";
import { MLP } from "./mlp.js";
import { RMSNorm } from "./rms-norm.js";
import type { RopeTables } from "./rope.js";

export class DecoderLayer extends Module {
  readonly self_attn: Attention;
  readonly mlp: MLP;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;

  constructor(readonly config: CausalLMConfig, opts: InitOptions = {}) {
    super();
    this.self_attn = this.registerModule("self_attn", new Attention(config, opts));
    this.mlp = this.registerModule("mlp", new MLP(config, opts));
    this.input_layernorm = this.registerModule("input_layernorm", new RMSNorm(config.hidden_size, config.rms_norm_eps, opts));
    this.post_attention_layernorm = this.registerModule(
      "post_attention_layernorm",
      new RMSNorm(config.hidden_size, config.rms_norm_eps, opts),
    );
  }

  weights(): LayerWeights {
    return {
      inputNorm: this.input_layernorm.weight,
      ...this.self_attn.weights(),
      postNorm: this.post_attention_layernorm.weight,
      ...this.mlp.weights(),
    };
  }

  forward(x: Tensor, rot: RopeTables, opts: LayerForwardOptions = {}): LayerForwardResult {
    return decoderLayerForward(x, this.weights(), this.config, rot, opts);
  }
}
