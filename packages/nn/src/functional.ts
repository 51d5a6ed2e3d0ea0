// The functional core of the decoder: every piece of the forward pass as a plain function of its input and
// a plain object of weight tensors. The Module classes (./layers, ./models) own Parameters and call these;
// LRC calls them directly with weights it computes every step (teacher W times a trainable projection), so
// gradients flow through the weights as through any other tensor.
//
// The math is transformers' LlamaForCausalLM / Qwen2ForCausalLM (modeling_llama.py, modeling_qwen2.py):
//   a = RMSNorm(x; g_in);  q,k,v = a Wq^T (+bq), a Wk^T (+bk), a Wv^T (+bv)      (B, T, H*dh) / (B, T, Hkv*dh)
//   q, k -> (B, H, T, dh) with rotate-half RoPE at absolute positions offset..offset+T-1
//   c = softmax(q k^T / sqrt(dh) + causal mask) v, kv head h // (H / Hkv) per query head h
//   x = x + c Wo^T (+bo);  f = RMSNorm(x; g_post);  x = x + (silu(f Wg^T) * f Wu^T) Wd^T
//   logits = RMSNorm(x; g_final) W_lm^T   (W_lm = the embedding when tied)
// With a KV cache, the keys/values of earlier positions (after RoPE) are prepended and queries attend with
// the causal offset; the result equals the full forward's last rows.

import {
  add, causalAttention, concat, embedding, isGradEnabled, matmul, permute, reshape, rmsNorm, ropeHeads, scope, slice, swigluLinear,
} from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import type { CausalLMConfig } from "./config.js";
import type { RopeTables } from "./layers/rope.js";
import { rotaryEmbedding } from "./layers/rope.js";

/** One decoder layer's weights, HF layout (Linear weights are [out, in]). */
export interface LayerWeights {
  /** input_layernorm.weight [D] */
  readonly inputNorm: Tensor;
  /** q_proj [H*dh, D], optional bias [H*dh] */
  readonly qW: Tensor;
  readonly qB?: Tensor;
  readonly kW: Tensor;
  readonly kB?: Tensor;
  readonly vW: Tensor;
  readonly vB?: Tensor;
  /** o_proj [D, H*dh], bias only for Llama with attention_bias */
  readonly oW: Tensor;
  readonly oB?: Tensor;
  /** post_attention_layernorm.weight [D] */
  readonly postNorm: Tensor;
  /** gate_proj / up_proj [F, D], down_proj [D, F] */
  readonly gateW: Tensor;
  readonly upW: Tensor;
  readonly downW: Tensor;
}

/** A whole model's weights. `lmHead` may be the `embed` tensor itself (tied). */
export interface CausalLMWeights {
  /** embed_tokens [V, D] */
  readonly embed: Tensor;
  readonly layers: readonly LayerWeights[];
  /** model.norm.weight [D] */
  readonly finalNorm: Tensor;
  /** lm_head.weight [V, D] */
  readonly lmHead: Tensor;
}

/**
 * Per-layer activations, what the LRC clone loss compares. All stay on the tape. Shapes for B sequences of
 * T tokens.
 */
export interface LayerCapture {
  /** RMSNorm(x; input_layernorm) fed to q/k/v (B, T, D) */
  readonly attnInput: Tensor;
  /** q/k/v projections before RoPE, biases included: (B, T, H*dh), (B, T, Hkv*dh), (B, T, Hkv*dh) */
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  /** attention context before o_proj (B, T, H*dh) */
  readonly attnContext: Tensor;
  /** o_proj output (B, T, D) */
  readonly attnOut: Tensor;
  /** RMSNorm(x; post_attention_layernorm) fed to gate/up (B, T, D) */
  readonly mlpInput: Tensor;
  /** gate_proj / up_proj outputs before the activation (B, T, F) */
  readonly gate: Tensor;
  readonly up: Tensor;
  /** down_proj output (B, T, D) */
  readonly mlpOut: Tensor;
  /** the layer's output, the residual stream after both blocks (B, T, D) */
  readonly hidden: Tensor;
}

/** The name of one LayerCapture field. */
export type CaptureField = keyof LayerCapture;

/** Keys and values of one layer after RoPE: (B, Hkv, S, dh). */
export interface LayerKV {
  readonly k: Tensor;
  readonly v: Tensor;
}

/** The KV cache of a whole model: one entry per layer, all holding the same number of positions. */
export interface KVCache {
  readonly layers: readonly LayerKV[];
  /** Positions cached (S). */
  readonly length: number;
}

export interface LayerForwardOptions {
  /** RMSNorm epsilon (default: the config's rms_norm_eps); LRC students may use another. */
  readonly eps?: number;
  /** Return the layer's activations (see LayerCapture). Off: nothing extra is kept. */
  readonly capture?: boolean;
  /** Cached keys/values of earlier positions for this layer. */
  readonly past?: LayerKV;
}

export interface LayerForwardResult {
  /** The layer output (B, T, D). */
  readonly hidden: Tensor;
  /** Keys/values including `past` (B, Hkv, S, dh), for the next step's cache. */
  readonly kv: LayerKV;
  readonly capture: LayerCapture | null;
}

/** x [..., in] @ w[out, in]^T (+ b) -> [..., out], as torch.nn.functional.linear. */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const inF = x.shape[x.rank - 1]!;
  const lead = x.shape.slice(0, -1);
  const outF = w.shape[0]!;
  const rows = lead.reduce((p, d) => p * d, 1);
  const x2 = x.rank === 2 ? x : reshape(x, [rows, inF]); // (N, in)
  let y = matmul(x2, w, { transB: true }); // (N, out)
  if (b !== undefined) y = add(y, b);
  return x.rank === 2 ? y : reshape(y, [...lead, outF]);
}

/**
 * SwiGLU MLP: down(silu(gate(x)) * up(x)). Returns the gate/up pre-activations as well. The SwiGLU product (F values
 * a token, the largest activation of a layer with gate and up) is never kept: tensor-core's swigluLinear frees it
 * once down_proj has read it, and its VJP recomputes it from gate and up (kept for the gradient) in the same pass
 * that computes their gradients.
 */
export function mlpForward(x: Tensor, w: Pick<LayerWeights, "gateW" | "upW" | "downW">): { out: Tensor; gate: Tensor; up: Tensor } {
  const D = x.shape[x.rank - 1]!, lead = x.shape.slice(0, -1);
  const x2 = x.rank === 2 ? x : reshape(x, [lead.reduce((p, d) => p * d, 1), D]); // (N, D)
  const gate = linear(x2, w.gateW); // (N, F)
  const up = linear(x2, w.upW); // (N, F)
  const out = swigluLinear(gate, up, w.downW); // (N, D)
  if (x.rank === 2) return { out, gate, up };
  const F = gate.shape[1]!;
  return { out: reshape(out, [...lead, out.shape[1]!]), gate: reshape(gate, [...lead, F]), up: reshape(up, [...lead, F]) };
}

type AttnCfg = Pick<CausalLMConfig, "num_attention_heads" | "num_key_value_heads" | "head_dim">;

/** (B, T, n*dh) -> (B, n, T, dh) */
function splitHeads(x: Tensor, n: number, dh: number): Tensor {
  const [B, T] = x.shape as [number, number];
  return permute(reshape(x, [B, T, n, dh]), [0, 2, 1, 3]);
}

/**
 * GQA causal self-attention on normalised input a (B, T, D). Returns the o_proj output, the context before
 * o_proj, q/k/v before RoPE and the keys/values for the cache.
 */
export function attentionForward(
  a: Tensor,
  w: Pick<LayerWeights, "qW" | "qB" | "kW" | "kB" | "vW" | "vB" | "oW" | "oB">,
  cfg: AttnCfg,
  rot: RopeTables,
  past?: LayerKV,
): { out: Tensor; context: Tensor; q: Tensor; k: Tensor; v: Tensor; kv: LayerKV } {
  const [B, T] = a.shape as [number, number];
  const H = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads, dh = cfg.head_dim;
  const q = linear(a, w.qW, w.qB); // (B, T, H*dh)
  const k = linear(a, w.kW, w.kB); // (B, T, Hkv*dh)
  const v = linear(a, w.vW, w.vB); // (B, T, Hkv*dh)
  // RoPE with the head split in one pass (tensor-core's ropeHeads: no head-split copy of q / k is made)
  const qh = ropeHeads(q, H, rot.cos, rot.sin); // (B, H, T, dh)
  const kNew = ropeHeads(k, Hkv, rot.cos, rot.sin); // (B, Hkv, T, dh)
  const vNew = splitHeads(v, Hkv, dh); // (B, Hkv, T, dh)
  const kAll = past === undefined ? kNew : concat([past.k, kNew], 2); // (B, Hkv, S, dh)
  const vAll = past === undefined ? vNew : concat([past.v, vNew], 2);
  const offset = past === undefined ? 0 : past.k.shape[2]!;
  const ctx = causalAttention(qh, kAll, vAll, { scale: 1 / Math.sqrt(dh), offset }); // (B, H, T, dh)
  const context = reshape(permute(ctx, [0, 2, 1, 3]), [B, T, H * dh]); // (B, T, H*dh)
  const out = linear(context, w.oW, w.oB); // (B, T, D)
  return { out, context, q, k, v, kv: { k: kAll, v: vAll } };
}

/** One pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(.)). */
export function decoderLayerForward(
  x: Tensor,
  w: LayerWeights,
  cfg: AttnCfg & Pick<CausalLMConfig, "rms_norm_eps">,
  rot: RopeTables,
  opts: LayerForwardOptions = {},
): LayerForwardResult {
  const eps = opts.eps ?? cfg.rms_norm_eps;
  const a = rmsNorm(x, w.inputNorm, eps); // (B, T, D)
  const attn = attentionForward(a, w, cfg, rot, opts.past);
  const h = add(x, attn.out); // (B, T, D)
  const f = rmsNorm(h, w.postNorm, eps);
  const mlp = mlpForward(f, w);
  const out = add(h, mlp.out); // (B, T, D)
  const capture: LayerCapture | null = opts.capture
    ? {
        attnInput: a, q: attn.q, k: attn.k, v: attn.v, attnContext: attn.context, attnOut: attn.out,
        mlpInput: f, gate: mlp.gate, up: mlp.up, mlpOut: mlp.out, hidden: out,
      }
    : null;
  return { hidden: out, kv: attn.kv, capture };
}

export interface CausalLMForwardOptions {
  /** RMSNorm epsilon for every norm (default: the config's rms_norm_eps). */
  readonly eps?: number;
  /**
   * Return per-layer activations (LayerCapture): `true` for every field, or a list of the fields wanted. With
   * grad mode off, only what is returned outlives its layer: the other activations, the layer outputs between
   * layers and (without a cache) the keys and values are freed at once, so a frozen teacher holds just the
   * fields asked for.
   */
  readonly capture?: boolean | readonly CaptureField[];
  /** Cached keys/values of the previous positions (decoding); positions continue from cache.length. */
  readonly cache?: KVCache | null;
  /** Also return the updated KV cache (default: true when `cache` is given). */
  readonly returnCache?: boolean;
  /**
   * Which logits to compute: every position (default), only the last one ([B, 1, V], for generation), or
   * none (use `hidden`, e.g. to compute the LM head in chunks).
   */
  readonly logits?: "all" | "last" | "none";
  /** Use these input embeddings (B, T, D) instead of looking `ids` up in `embed` (HF inputs_embeds). */
  readonly inputsEmbeds?: Tensor;
  /** Called after each decoder layer's forward with its index (LRC evicts the layer's generated weights there). */
  readonly afterLayer?: (layer: number) => void;
}

export interface CausalLMForwardResult<F extends CaptureField = CaptureField> {
  /** (B, T, V), (B, 1, V) with logits: "last", or null with logits: "none" */
  readonly logits: Tensor | null;
  /** Final-norm output (B, T, D). */
  readonly hidden: Tensor;
  /** One per layer, holding the fields asked for by `capture` (all of them for `true`). */
  readonly captures: Array<Pick<LayerCapture, F>> | null;
  readonly cache: KVCache | null;
}

const CAPTURE_FIELDS: readonly CaptureField[] = ["attnInput", "q", "k", "v", "attnContext", "attnOut", "mlpInput", "gate", "up", "mlpOut", "hidden"];

function pick<F extends CaptureField>(c: LayerCapture, fields: readonly F[]): Pick<LayerCapture, F> {
  const out: Partial<LayerCapture> = {};
  for (const f of fields) (out as Record<CaptureField, Tensor>)[f] = c[f];
  return out as Pick<LayerCapture, F>;
}

/**
 * The weights `causalLMForward` reads: a whole model's, or (LRC's student in training) the decoder stack alone,
 * without `embed` when the input embeddings are given and without `lmHead` when no logits are asked for.
 */
export type ForwardWeights = Omit<CausalLMWeights, "embed" | "lmHead"> & Partial<Pick<CausalLMWeights, "embed" | "lmHead">>;

/** Checks every weight's shape against the config, naming the offending weight. */
export function checkWeights(w: ForwardWeights, cfg: CausalLMConfig): void {
  const D = cfg.hidden_size;
  const { vocab_size: V, intermediate_size: F, num_attention_heads: H, num_key_value_heads: Hkv, head_dim: dh } = cfg;
  const expect = (name: string, t: Tensor | undefined, shape: readonly number[]) => {
    if (t === undefined) return;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new RangeError(`causalLMForward: weight ${name} has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
  };
  expect("embed", w.embed, [V, cfg.hidden_size]);
  expect("lmHead", w.lmHead, [V, D]);
  expect("finalNorm", w.finalNorm, [D]);
  if (w.layers.length !== cfg.num_hidden_layers)
    throw new RangeError(`causalLMForward: ${w.layers.length} layer weights for num_hidden_layers ${cfg.num_hidden_layers}`);
  w.layers.forEach((l, i) => {
    const p = `layers[${i}]`;
    expect(`${p}.inputNorm`, l.inputNorm, [D]);
    expect(`${p}.postNorm`, l.postNorm, [D]);
    expect(`${p}.qW`, l.qW, [H * dh, D]);
    expect(`${p}.qB`, l.qB, [H * dh]);
    expect(`${p}.kW`, l.kW, [Hkv * dh, D]);
    expect(`${p}.kB`, l.kB, [Hkv * dh]);
    expect(`${p}.vW`, l.vW, [Hkv * dh, D]);
    expect(`${p}.vB`, l.vB, [Hkv * dh]);
    expect(`${p}.oW`, l.oW, [D, H * dh]);
    expect(`${p}.oB`, l.oB, [D]);
    expect(`${p}.gateW`, l.gateW, [F, D]);
    expect(`${p}.upW`, l.upW, [F, D]);
    expect(`${p}.downW`, l.downW, [D, F]);
  });
}

/**
 * The whole model: ids int32 (B, T) -> logits. Positions start at `cache.length` (0 without a cache).
 * Weight shapes are checked against the config first.
 */
export function causalLMForward<F extends CaptureField = CaptureField>(
  w: ForwardWeights,
  cfg: CausalLMConfig,
  ids: Tensor | null,
  opts: CausalLMForwardOptions & { readonly capture?: boolean | readonly F[] } = {},
): CausalLMForwardResult<F> {
  checkWeights(w, cfg);
  const which = opts.logits ?? "all";
  if (which !== "none" && w.lmHead === undefined) throw new TypeError(`causalLMForward: logits "${which}" need an lmHead weight`);
  let x: Tensor;
  const tape = isGradEnabled();
  if (opts.inputsEmbeds !== undefined) x = opts.inputsEmbeds;
  else {
    if (ids === null) throw new TypeError("causalLMForward: ids are required unless inputsEmbeds is given");
    if (ids.dtype !== "int32" || ids.rank !== 2) throw new TypeError(`causalLMForward: ids must be int32 [B, T], got ${ids.dtype}[${ids.shape.join(", ")}]`);
    if (w.embed === undefined) throw new TypeError("causalLMForward: no embed weight (give inputsEmbeds)");
    x = embedding(w.embed, ids); // (B, T, D)
  }
  const T = x.shape[1]!;
  const cache = opts.cache ?? null;
  if (cache !== null && cache.layers.length !== w.layers.length)
    throw new RangeError(`causalLMForward: the KV cache has ${cache.layers.length} layers, the model ${w.layers.length}`);
  const offset = cache?.length ?? 0;
  const rot = rotaryEmbedding(cfg).tables(offset, T, x.dtype);
  const wantCache = opts.returnCache ?? cache !== null;
  const fields: readonly F[] | null = opts.capture === true ? (CAPTURE_FIELDS as readonly F[]) : opts.capture ? opts.capture : null;
  const captures: Array<Pick<LayerCapture, F>> | null = fields !== null ? [] : null;
  const kvs: LayerKV[] = [];
  const layerOpts = { eps: opts.eps ?? cfg.rms_norm_eps, capture: fields !== null };
  // Without a tape, the embedding output and each layer's output are freed once the next step has read them,
  // unless they are returned (captured `hidden`) or the caller's (`inputsEmbeds`).
  const keepHidden = fields?.includes("hidden" as F) ?? false;
  let xCaptured = false;
  const dropConsumed = (): void => {
    if (!tape && !xCaptured && x !== opts.inputsEmbeds) x.dispose();
  };
  for (let i = 0; i < w.layers.length; i++) {
    const past = cache?.layers[i];
    const layer = () => {
      const r = decoderLayerForward(x, w.layers[i]!, cfg, rot, past === undefined ? layerOpts : { ...layerOpts, past });
      const capture = fields === null ? null : pick(r.capture!, fields);
      return { hidden: r.hidden, kv: wantCache ? r.kv : null, capture };
    };
    // Without a tape nothing but what is returned outlives the layer: its temporaries are freed at once (a frozen
    // teacher's forward then holds one layer's activations plus the captured fields, until the step's scope ends).
    const r = tape ? layer() : scope(layer);
    opts.afterLayer?.(i);
    dropConsumed();
    x = r.hidden;
    xCaptured = keepHidden;
    if (captures !== null) captures.push(r.capture!);
    if (r.kv !== null) kvs.push(r.kv);
  }
  const hidden = rmsNorm(x, w.finalNorm, layerOpts.eps); // (B, T, D)
  dropConsumed();
  let logits: Tensor | null = null;
  if (which === "all") logits = linear(hidden, w.lmHead!);
  else if (which === "last") logits = linear(slice(hidden, [0, T - 1], [hidden.shape[0]!, T]), w.lmHead!); // (B, 1, V)
  return { logits, hidden, captures, cache: wantCache ? { layers: kvs, length: offset + T } : null };
}
