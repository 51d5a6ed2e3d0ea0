// CausalLM: `LlamaForCausalLM` and `Qwen2ForCausalLM` as one Module tree whose parameter names are the HF
// checkpoint names:
//   model.embed_tokens.weight, model.layers.{i}.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj,
//   input_layernorm, post_attention_layernorm}, model.norm.weight, lm_head.weight (absent when tied).
// The two architectures differ only in their biases (see ../config.ts); the forward pass is
// `causalLMForward` in ../functional.ts over `weights()`.

import { Rng, tensor } from "@lrc-ts/tensor-core";
import type { DType, HalfDType, Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "../config.js";
import type { CausalLMForwardOptions, CausalLMForwardResult, CausalLMWeights } from "../functional.js";
import { causalLMForward } from "../functional.js";
import { DecoderLayer } from "../layers/decoder-layer.js";
import { Embedding } from "../layers/embedding.js";
import type { InitOptions } from "../layers/init.js";
import { Linear } from "../layers/linear.js";
import { RMSNorm } from "../layers/rms-norm.js";
import { Module } from "../module.js";
import type { LoadStateDictOptions, StateDict } from "../module.js";

export interface CausalLMOptions {
  /** Parameter dtype (default float32; float64 for gradient checks). */
  readonly dtype?: DType;
  /** Seed of the random initialisation (default 0). */
  readonly seed?: number;
  /** Standard deviation of random weights (default: the config's initializer_range, else 0.02). */
  readonly std?: number;
  /** "zeros" skips the random draw (weights about to be loaded). Default "normal". */
  readonly init?: "normal" | "zeros";
  /**
   * "bfloat16" / "float16": the weight matrices (embedding, projections, LM head) are frozen 16-bit storage of zeros, to
   * be filled from a BF16 checkpoint (`loadCausalLM`'s keepDType); norm gains and biases stay `dtype`. Needs
   * init "zeros" and dtype float32.
   */
  readonly matrixDType?: HalfDType;
}

/** A list of child modules named "0", "1", ... (torch.nn.ModuleList). */
export class ModuleList<M extends Module> extends Module {
  readonly items: readonly M[];
  constructor(items: readonly M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.registerModule(String(i), m));
  }
}

/** The decoder stack (HF `model`): embeddings, layers, final norm. */
export class DecoderModel extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: RMSNorm;

  constructor(config: CausalLMConfig, opts: InitOptions) {
    super();
    this.embed_tokens = this.registerModule("embed_tokens", new Embedding(config.vocab_size, config.hidden_size, opts));
    const layers = Array.from({ length: config.num_hidden_layers }, () => new DecoderLayer(config, opts));
    this.layers = this.registerModule("layers", new ModuleList(layers));
    this.norm = this.registerModule("norm", new RMSNorm(config.hidden_size, config.rms_norm_eps, opts));
  }
}

/** Token ids as an int32 [B, T] tensor: a flat list is one sequence. */
export function idsTensor(ids: Tensor | readonly number[] | readonly (readonly number[])[] | Int32Array): Tensor {
  if (!(ids instanceof Int32Array) && !Array.isArray(ids)) return ids as Tensor;
  if (ids instanceof Int32Array) return tensor(ids, [1, ids.length], { dtype: "int32" });
  const rows = ids as readonly (number | readonly number[])[];
  if (rows.length > 0 && Array.isArray(rows[0])) {
    const r2 = rows as readonly (readonly number[])[];
    const T = r2[0]!.length;
    if (r2.some((r) => r.length !== T)) throw new RangeError("idsTensor: rows of different lengths");
    return tensor(r2.flat(), [r2.length, T], { dtype: "int32" });
  }
  return tensor(rows as readonly number[], [1, rows.length], { dtype: "int32" });
}

export class CausalLM extends Module {
  readonly config: CausalLMConfig;
  readonly model: DecoderModel;
  readonly lm_head: Linear;
  readonly dtype: DType;

  constructor(config: CausalLMConfig, opts: CausalLMOptions = {}) {
    super();
    this.config = config;
    this.dtype = opts.dtype ?? "float32";
    const range = config.extra.initializer_range;
    const init: InitOptions = {
      dtype: this.dtype,
      rng: new Rng(opts.seed ?? 0),
      std: opts.std ?? (typeof range === "number" && range > 0 ? range : 0.02),
      init: opts.init ?? "normal",
      ...(opts.matrixDType !== undefined ? { matrixDType: opts.matrixDType } : {}),
    };
    if (opts.matrixDType !== undefined && (init.init !== "zeros" || this.dtype !== "float32"))
      throw new RangeError(`CausalLM: matrixDType ${opts.matrixDType} needs init "zeros" and dtype float32 (weights loaded from a checkpoint)`);
    this.model = this.registerModule("model", new DecoderModel(config, init));
    this.lm_head = this.registerModule("lm_head", new Linear(config.hidden_size, config.vocab_size, init));
    if (config.tie_word_embeddings) {
      this.lm_head.weight.dispose();
      this.lm_head.tieWeight(this.model.embed_tokens.weight);
    }
  }

  /** As Module.loadStateDict; a tied model also accepts (and ignores) an `lm_head.weight` entry, as HF state dicts have one. */
  override loadStateDict(sd: StateDict | ReadonlyMap<string, Tensor>, opts: LoadStateDictOptions = {}): void {
    const optional = this.config.tie_word_embeddings ? [...(opts.optional ?? []), "lm_head.weight"] : opts.optional;
    super.loadStateDict(sd, optional === undefined ? opts : { ...opts, optional });
  }

  /** The live parameters as the functional core's weight object (lmHead === embed when tied). */
  weights(): CausalLMWeights {
    return {
      embed: this.model.embed_tokens.weight,
      layers: this.model.layers.items.map((l) => l.weights()),
      finalNorm: this.model.norm.weight,
      lmHead: this.lm_head.weight,
    };
  }

  /** ids (B, T) -> logits (B, T, V), plus hidden states, captures and the KV cache as asked. */
  forward(ids: Tensor | readonly number[] | readonly (readonly number[])[] | Int32Array, opts: CausalLMForwardOptions = {}): CausalLMForwardResult {
    return causalLMForward(this.weights(), this.config, idsTensor(ids), opts);
  }

  /** Just the logits (B, T, V). */
  logits(ids: Tensor | readonly number[] | readonly (readonly number[])[] | Int32Array): Tensor {
    return this.forward(ids).logits!;
  }
}
