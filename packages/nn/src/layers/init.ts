// Parameter initialisation shared by the layers: transformers' `_init_weights` for Llama/Qwen2
// (Linear and Embedding weights ~ N(0, initializer_range^2), biases 0, RMSNorm gains 1).

import { Rng, full, randn } from "@lrc-ts/tensor-core";
import type { DType, HalfDType, Tensor } from "@lrc-ts/tensor-core";

export interface InitOptions {
  /** Parameter dtype (default float32; float64 for gradient checks). */
  readonly dtype?: DType;
  /** Random source for weights (default: a fixed seed 0). */
  readonly rng?: Rng;
  /** Standard deviation of the random weights (default 0.02, HF initializer_range). */
  readonly std?: number;
  /** "zeros" skips the random draw (weights about to be loaded from a checkpoint). Default "normal". */
  readonly init?: "normal" | "zeros";
  /** Dtype of the weight matrices (initNormal), as frozen zeros to be loaded (CausalLMOptions.matrixDType). */
  readonly matrixDType?: HalfDType;
}

/** A weight matrix: N(0, std²), or zeros with init "zeros" (frozen bfloat16 / float16 zeros with matrixDType). */
export function initNormal(shape: readonly number[], o: InitOptions): Tensor {
  if (o.matrixDType !== undefined) return full(shape, 0, { dtype: o.matrixDType });
  if (o.init === "zeros") return initConst(shape, 0, o);
  return randn(shape, { rng: o.rng ?? new Rng(0), std: o.std ?? 0.02, dtype: o.dtype ?? "float32", requiresGrad: true });
}

export function initConst(shape: readonly number[], value: number, o: InitOptions): Tensor {
  return full(shape, value, { dtype: o.dtype ?? "float32", requiresGrad: true });
}
