// Embedding: a [num_embeddings, dim] table looked up with int32 ids (gather; scatter-add gradient).

import { embedding } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { Module } from "../module.js";
import type { InitOptions } from "./init.js";
import { initNormal } from "./init.js";

export class Embedding extends Module {
  /** Not readonly: a checkpoint loader may swap in the checkpoint's tensor (Module.swapParameter). */
  weight: Tensor;

  constructor(readonly numEmbeddings: number, readonly dim: number, opts: InitOptions = {}) {
    super();
    this.weight = this.registerParameter("weight", initNormal([numEmbeddings, dim], opts));
  }

  /** ids int32 [...] -> [..., dim] */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
