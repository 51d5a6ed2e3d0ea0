// Rotary position embedding tables, computed exactly as transformers does in float32
// (`_compute_default_rope_parameters`, `_compute_llama3_parameters` and `LlamaRotaryEmbedding.forward`):
//   inv_freq[i] = 1 / theta^(2i / dh)                       (i < dh/2, float32 at every step)
//   llama3: low frequencies divided by `factor`, high ones kept, the band between smoothly interpolated
//   freqs[t, i] = t * inv_freq[i];  cos/sin = cos/sin(concat(freqs, freqs))   -> [T, dh], rotate-half layout
// Each step is rounded to float32 (Math.fround) so the tables match PyTorch's bit for bit up to the last
// ulp of cos/sin. The tables grow on demand and are cached per (theta, dh, scaling); the rotation itself is
// tensor-core's fused `rope` op.

import { Tensor, tensor } from "@lrc-ts/tensor-core";
import type { DType } from "@lrc-ts/tensor-core";
import type { CausalLMConfig, RopeScaling } from "../config.js";

const f32 = Math.fround;

/** inv_freq of length dh / 2, float32 values, as transformers computes it. */
export function ropeInverseFrequencies(theta: number, headDim: number, scaling: RopeScaling | null): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const expo = f32(f32(2 * i) / headDim);
    inv[i] = f32(1 / f32(Math.pow(theta, expo)));
  }
  if (scaling === null) return inv;
  // transformers `_compute_llama3_parameters`, elementwise in float32.
  const factor = f32(scaling.factor);
  const low = f32(scaling.low_freq_factor);
  const old = scaling.original_max_position_embeddings;
  const lowFreqWavelen = f32(old / scaling.low_freq_factor);
  const highFreqWavelen = f32(old / scaling.high_freq_factor);
  const span = f32(scaling.high_freq_factor - scaling.low_freq_factor);
  const twoPi = f32(2 * Math.PI);
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = f32(twoPi / f);
    // wavelen < high_freq_wavelen: keep; wavelen > low_freq_wavelen: divide by factor
    let g = wavelen > lowFreqWavelen ? f32(f / factor) : f;
    const medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    if (medium) {
      // smooth = (old / wavelen - low) / (high - low); (1 - smooth) * g / factor + smooth * g
      const smooth = f32(f32(f32(f32(old) / wavelen) - low) / span);
      g = f32(f32(f32(f32(1 - smooth) * g) / factor) + f32(smooth * g));
    }
    inv[i] = g;
  }
  return inv;
}

/** cos/sin tables for positions [offset, offset + T): each [T, dh]. */
export interface RopeTables {
  readonly cos: Tensor;
  readonly sin: Tensor;
}

/** Lazily grown cos/sin tables for one (theta, head_dim, rope_scaling). */
export class RotaryEmbedding {
  readonly headDim: number;
  readonly invFreq: Float32Array;
  private cos = new Float32Array(0);
  private sin = new Float32Array(0);
  private length = 0;

  constructor(theta: number, headDim: number, scaling: RopeScaling | null) {
    if (headDim % 2 !== 0) throw new RangeError(`RotaryEmbedding: head_dim ${headDim} must be even`);
    this.headDim = headDim;
    this.invFreq = ropeInverseFrequencies(theta, headDim, scaling);
  }

  private grow(n: number): void {
    if (n <= this.length) return;
    const len = Math.max(n, Math.min(2 * this.length, n + 4096));
    const dh = this.headDim, half = dh / 2;
    const cos = new Float32Array(len * dh), sin = new Float32Array(len * dh);
    cos.set(this.cos);
    sin.set(this.sin);
    for (let t = this.length; t < len; t++) {
      const pos = f32(t);
      for (let i = 0; i < half; i++) {
        const fr = f32(this.invFreq[i]! * pos);
        const c = Math.cos(fr), s = Math.sin(fr);
        cos[t * dh + i] = c;
        cos[t * dh + half + i] = c;
        sin[t * dh + i] = s;
        sin[t * dh + half + i] = s;
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.length = len;
  }

  /** Fresh [T, dh] cos/sin tensors for positions offset .. offset + T - 1. */
  tables(offset: number, T: number, dtype: DType = "float32"): RopeTables {
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(T) || T < 0)
      throw new RangeError(`RotaryEmbedding.tables: bad range offset ${offset}, T ${T}`);
    this.grow(offset + T);
    const dh = this.headDim;
    const a = offset * dh, b = (offset + T) * dh;
    return {
      cos: tensor(this.cos.subarray(a, b), [T, dh], { dtype }),
      sin: tensor(this.sin.subarray(a, b), [T, dh], { dtype }),
    };
  }
}

const cache = new Map<string, RotaryEmbedding>();

/** The shared RotaryEmbedding for a config (cached by theta, head_dim and rope_scaling). */
export function rotaryEmbedding(cfg: Pick<CausalLMConfig, "rope_theta" | "head_dim" | "rope_scaling">): RotaryEmbedding {
  const key = JSON.stringify([cfg.rope_theta, cfg.head_dim, cfg.rope_scaling]);
  let r = cache.get(key);
  if (r === undefined) {
    r = new RotaryEmbedding(cfg.rope_theta, cfg.head_dim, cfg.rope_scaling);
    cache.set(key, r);
  }
  return r;
}
