// Tiny configurations shared by this package's tests (not part of the build).

import type { CausalLMConfig } from "../config.js";
import { makeConfig } from "../config.js";

/** A 2-layer Qwen2 (q/k/v biases, GQA 4/2, tied head). */
export function tinyQwen(over: Partial<Omit<CausalLMConfig, "model_type" | "extra">> = {}): CausalLMConfig {
  return makeConfig({
    model_type: "qwen2", vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true,
    extra: { eos_token_id: 2, bos_token_id: 1 },
    ...over,
  });
}

/** A 2-layer Llama with attention biases, an explicit head_dim != hidden/heads, llama3 rope scaling, untied. */
export function tinyLlama(over: Partial<Omit<CausalLMConfig, "model_type" | "extra">> = {}): CausalLMConfig {
  return makeConfig({
    model_type: "llama", vocab_size: 48, hidden_size: 12, intermediate_size: 20, num_hidden_layers: 2,
    num_attention_heads: 3, num_key_value_heads: 1, head_dim: 6, max_position_embeddings: 64,
    attention_bias: true, tie_word_embeddings: false, rms_norm_eps: 1e-5,
    rope_scaling: { rope_type: "llama3", factor: 4, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
    ...over,
  });
}
