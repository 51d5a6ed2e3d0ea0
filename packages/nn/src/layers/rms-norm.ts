// RMSNorm as transformers' LlamaRMSNorm / Qwen2RMSNorm: x * rsqrt(mean(x^2, -1) + eps) * weight, the weight
// applied after normalisation (tensor-core's fused rmsNorm).

import { rmsNorm } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { Module } from "../module.js";
import type { InitOptions } from "./init.js";
import { initConst } from "./init.js";

export class RMSNorm extends Module {
  readonly weight: Tensor;

  constructor(readonly dim: number, public eps = 1e-6, opts: InitOptions = {}) {
    super();
    this.weight = this.registerParameter("weight", initConst([dim], 1, opts));
  }

  forward(x: Tensor, eps = this.eps): Tensor {
    return rmsNorm(x, this.weight, eps);
  }
}
