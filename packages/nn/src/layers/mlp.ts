// SwiGLU MLP (transformers LlamaMLP / Qwen2MLP): down_proj(silu(gate_proj(x)) * up_proj(x)), no biases.

import type { Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "../config.js";
import { mlpForward } from "../functional.js";
import type { LayerWeights } from "../functional.js";
import { Module } from "../module.js";
import type { InitOptions } from "./init.js";
import { Linear } from "./linear.js";

export class MLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;

  constructor(config: Pick<CausalLMConfig, "hidden_size" | "intermediate_size">, opts: InitOptions = {}) {
    super();
    const D = config.hidden_size, F = config.intermediate_size;
    this.gate_proj = this.registerModule("gate_proj", new Linear(D, F, opts));
    this.up_proj = this.registerModule("up_proj", new Linear(D, F, opts));
    this.down_proj = this.registerModule("down_proj", new Linear(F, D, opts));
  }

  weights(): Pick<LayerWeights, "gateW" | "upW" | "downW"> {
    return { gateW: this.gate_proj.weight, upW: this.up_proj.weight, downW: this.down_proj.weight };
  }

  forward(x: Tensor): Tensor {
    return mlpForward(x, this.weights()).out;
  }
}
