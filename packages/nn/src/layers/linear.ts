// Linear: y = x W^T + b with W [out, in] (the torch / HF layout), over any leading dimensions.

import type { Tensor } from "@lrc-ts/tensor-core";
import { linear } from "../functional.js";
import { Module } from "../module.js";
import type { InitOptions } from "./init.js";
import { initConst, initNormal } from "./init.js";

export interface LinearOptions extends InitOptions {
  /** Add a bias vector (default false). */
  readonly bias?: boolean;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  readonly bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = this.registerParameter("weight", initNormal([outFeatures, inFeatures], opts));
    this.bias = opts.bias ? this.registerParameter("bias", initConst([outFeatures], 0, opts)) : null;
  }

  /** Makes this layer use `w` as its weight (tying an LM head to the embedding). */
  tieWeight(w: Tensor): void {
    if (w.shape[0] !== this.outFeatures || w.shape[1] !== this.inFeatures)
      throw new RangeError(`Linear.tieWeight: [${w.shape.join(", ")}] does not match [${this.outFeatures}, ${this.inFeatures}]`);
    this.weight = w;
    this.replaceParameter("weight", w);
  }

  forward(x: Tensor): Tensor {
    return this.bias === null ? linear(x, this.weight) : linear(x, this.weight, this.bias);
  }
}
