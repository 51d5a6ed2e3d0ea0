// Model configuration: a Hugging Face `config.json` for `Qwen2ForCausalLM` or `LlamaForCausalLM`, validated
// and resolved to the values the forward pass uses (HF defaults filled in, derived fields computed), so the
// rest of the package never reads a raw JSON field. Fields that would change the math and are not
// implemented (sliding-window attention, MLP biases, rope scalings other than llama3, activations other
// than silu) are errors naming the file and the field, never silently ignored.
//
// Architecture deltas (transformers modeling_llama.py / modeling_qwen2.py):
//   Llama: q/k/v/o biases all follow `attention_bias` (default false); `mlp_bias` (must be false here).
//   Qwen2: q/k/v always have a bias, o_proj never; `use_sliding_window` (must be false here).
// Everything else (RMSNorm, rotate-half RoPE, GQA, SwiGLU, tied/untied head, explicit `head_dim`) is shared.

export type Architecture = "qwen2" | "llama";

/** `rope_scaling` of type "llama3" (transformers `_compute_llama3_parameters`). */
export interface Llama3RopeScaling {
  readonly rope_type: "llama3";
  readonly factor: number;
  readonly low_freq_factor: number;
  readonly high_freq_factor: number;
  readonly original_max_position_embeddings: number;
}

export type RopeScaling = Llama3RopeScaling;

/** A resolved model configuration. Field names are the HF `config.json` names. */
export interface CausalLMConfig {
  readonly model_type: Architecture;
  readonly vocab_size: number;
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly num_key_value_heads: number;
  /** Per-head width; may differ from hidden_size / num_attention_heads (LRC students). */
  readonly head_dim: number;
  readonly max_position_embeddings: number;
  readonly rms_norm_eps: number;
  readonly rope_theta: number;
  readonly rope_scaling: RopeScaling | null;
  readonly tie_word_embeddings: boolean;
  /** Llama: bias on q/k/v/o. Qwen2: always false here (its q/k/v biases are implied by the architecture). */
  readonly attention_bias: boolean;
  /**
   * Other fields of the source config.json that do not change the math (bos/eos ids, torch_dtype,
   * initializer_range, ...), written back unchanged by `configToJson`.
   */
  readonly extra: Readonly<Record<string, unknown>>;
}

/** A problem with a config.json; the message starts with the file and names the field. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const ARCH_CLASS: Record<Architecture, string> = { qwen2: "Qwen2ForCausalLM", llama: "LlamaForCausalLM" };

/** HF defaults per architecture for the optional fields (transformers Qwen2Config / LlamaConfig). */
const DEFAULTS: Record<Architecture, { max_position_embeddings: number; rms_norm_eps: number; rope_theta: number }> = {
  qwen2: { max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 10000 },
  llama: { max_position_embeddings: 2048, rms_norm_eps: 1e-6, rope_theta: 10000 },
};

/** Fields consumed by the resolver; everything else goes to `extra`. */
const CONSUMED = new Set([
  "architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
  "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps",
  "rope_theta", "rope_scaling", "rope_parameters", "tie_word_embeddings", "attention_bias", "mlp_bias",
  "hidden_act", "use_sliding_window", "sliding_window", "max_window_layers", "layer_types",
]);

/** Whether q/k/v projections carry a bias. */
export function qkvBias(cfg: CausalLMConfig): boolean {
  return cfg.model_type === "qwen2" || cfg.attention_bias;
}

/** Whether o_proj carries a bias. */
export function oBias(cfg: CausalLMConfig): boolean {
  return cfg.model_type === "llama" && cfg.attention_bias;
}

/** The HF class name (`architectures[0]`). */
export function architectureClass(cfg: CausalLMConfig): string {
  return ARCH_CLASS[cfg.model_type];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Validates and resolves a parsed config.json object. `source` (usually the file path) starts every error
 * message.
 */
export function parseConfig(json: unknown, source = "config.json"): CausalLMConfig {
  const fail = (field: string, msg: string): never => {
    throw new ConfigError(`${source}: ${field}: ${msg}`);
  };
  if (!isObject(json)) return fail("(root)", `expected a JSON object, got ${JSON.stringify(json)?.slice(0, 40)}`);
  const j = json;

  // Architecture: `architectures` wins, `model_type` must agree.
  let arch: Architecture | null = null;
  if (j.architectures !== undefined) {
    if (!Array.isArray(j.architectures) || j.architectures.length === 0 || typeof j.architectures[0] !== "string")
      fail("architectures", `expected a non-empty array of class names, got ${JSON.stringify(j.architectures)}`);
    const cls = (j.architectures as string[])[0]!;
    if (cls === ARCH_CLASS.qwen2) arch = "qwen2";
    else if (cls === ARCH_CLASS.llama) arch = "llama";
    else fail("architectures", `unsupported architecture "${cls}" (supported: Qwen2ForCausalLM, LlamaForCausalLM)`);
  }
  if (j.model_type !== undefined) {
    const mt = j.model_type;
    if (mt !== "qwen2" && mt !== "llama")
      fail("model_type", `unsupported model_type ${JSON.stringify(mt)} (supported: "qwen2", "llama")`);
    if (arch !== null && mt !== arch) fail("model_type", `"${String(mt)}" does not match architectures[0] "${ARCH_CLASS[arch]}"`);
    arch = mt as Architecture;
  }
  if (arch === null) return fail("architectures", "missing (neither architectures nor model_type is set)");
  const a: Architecture = arch;

  const posInt = (field: string, fallback?: number): number => {
    const v = j[field] ?? fallback;
    if (v === undefined) return fail(field, "required field is missing");
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) return fail(field, `expected a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const posNum = (field: string, v: unknown): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) return fail(field, `expected a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (field: string, fallback: boolean): boolean => {
    const v = j[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") return fail(field, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  };

  const hidden = posInt("hidden_size");
  const heads = posInt("num_attention_heads");
  const kvHeads = posInt("num_key_value_heads", heads);
  if (heads % kvHeads !== 0) fail("num_key_value_heads", `${kvHeads} does not divide num_attention_heads ${heads}`);
  if ((j.head_dim === undefined || j.head_dim === null) && hidden % heads !== 0)
    fail("head_dim", `missing, and hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`);
  const headDim = j.head_dim === undefined || j.head_dim === null ? hidden / heads : posInt("head_dim");
  if (headDim % 2 !== 0) fail("head_dim", `${headDim} must be even for rotary embeddings`);

  const act = j.hidden_act ?? "silu";
  if (act !== "silu") fail("hidden_act", `unsupported activation ${JSON.stringify(act)} (only "silu")`);
  if (bool("mlp_bias", false)) fail("mlp_bias", "true is not supported (MLP projections without bias only)");
  if (bool("use_sliding_window", false)) fail("use_sliding_window", "sliding-window attention is not supported");
  if (Array.isArray(j.layer_types) && j.layer_types.some((t) => t !== "full_attention"))
    fail("layer_types", `only "full_attention" layers are supported, got ${JSON.stringify(j.layer_types)}`);
  if (a === "llama" && j.sliding_window !== undefined && j.sliding_window !== null)
    fail("sliding_window", "sliding-window attention is not supported");
  if (a === "qwen2" && j.attention_bias !== undefined && j.attention_bias !== null && typeof j.attention_bias !== "boolean")
    fail("attention_bias", `expected true or false, got ${JSON.stringify(j.attention_bias)}`);

  // RoPE: transformers <= 4.x writes rope_theta + rope_scaling; 5.x writes rope_parameters.
  let ropeTheta: unknown = j.rope_theta;
  let scalingRaw: unknown = j.rope_scaling;
  let scalingField = "rope_scaling";
  if (j.rope_parameters !== undefined && j.rope_parameters !== null) {
    if (!isObject(j.rope_parameters)) fail("rope_parameters", `expected an object, got ${JSON.stringify(j.rope_parameters)}`);
    const rp = j.rope_parameters as Record<string, unknown>;
    if (rp.rope_theta !== undefined) ropeTheta = rp.rope_theta;
    scalingRaw = rp;
    scalingField = "rope_parameters";
  }
  const theta = ropeTheta === undefined || ropeTheta === null ? DEFAULTS[a].rope_theta : posNum("rope_theta", ropeTheta);
  const scaling = parseRopeScaling(scalingRaw, scalingField, fail);

  const eps = j.rms_norm_eps === undefined || j.rms_norm_eps === null ? DEFAULTS[a].rms_norm_eps : posNum("rms_norm_eps", j.rms_norm_eps);

  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(j)) if (!CONSUMED.has(k)) extra[k] = v;

  return {
    model_type: a,
    vocab_size: posInt("vocab_size"),
    hidden_size: hidden,
    intermediate_size: posInt("intermediate_size"),
    num_hidden_layers: posInt("num_hidden_layers"),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    max_position_embeddings: posInt("max_position_embeddings", DEFAULTS[a].max_position_embeddings),
    rms_norm_eps: eps,
    rope_theta: theta,
    rope_scaling: scaling,
    tie_word_embeddings: bool("tie_word_embeddings", false),
    attention_bias: a === "llama" ? bool("attention_bias", false) : false,
    extra,
  };
}

function parseRopeScaling(raw: unknown, field: string, fail: (field: string, msg: string) => never): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) return fail(field, `expected null or an object, got ${JSON.stringify(raw)}`);
  const type = raw.rope_type ?? raw.type ?? "default";
  if (type === "default") return null;
  if (type !== "llama3")
    return fail(`${field}.rope_type`, `unsupported rope scaling ${JSON.stringify(type)} (supported: null, "default", "llama3")`);
  const num = (k: string): number => {
    const v = raw[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) return fail(`${field}.${k}`, `expected a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const s: Llama3RopeScaling = {
    rope_type: "llama3",
    factor: num("factor"),
    low_freq_factor: num("low_freq_factor"),
    high_freq_factor: num("high_freq_factor"),
    original_max_position_embeddings: num("original_max_position_embeddings"),
  };
  if (s.high_freq_factor <= s.low_freq_factor)
    fail(`${field}.high_freq_factor`, `${s.high_freq_factor} must exceed low_freq_factor ${s.low_freq_factor}`);
  return s;
}

/**
 * Builds a config from the required sizes plus optional overrides (HF defaults otherwise). Handy for tests
 * and for students: `makeConfig({ model_type: "qwen2", vocab_size: 64, hidden_size: 32, ... })`.
 */
export function makeConfig(
  fields: Pick<CausalLMConfig, "model_type" | "vocab_size" | "hidden_size" | "intermediate_size" | "num_hidden_layers" | "num_attention_heads"> &
    Partial<Omit<CausalLMConfig, "model_type" | "extra">> & { extra?: Record<string, unknown> },
): CausalLMConfig {
  const { extra, ...rest } = fields;
  const json: Record<string, unknown> = { ...(extra ?? {}), ...rest, architectures: [ARCH_CLASS[fields.model_type]] };
  return parseConfig(json, "makeConfig");
}

/** The config.json object for a config (HF field names; `extra` fields kept; torch_dtype set to float32). */
export function configToJson(cfg: CausalLMConfig, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: [ARCH_CLASS[cfg.model_type]],
    model_type: cfg.model_type,
    ...cfg.extra,
    vocab_size: cfg.vocab_size,
    hidden_size: cfg.hidden_size,
    intermediate_size: cfg.intermediate_size,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    num_key_value_heads: cfg.num_key_value_heads,
    head_dim: cfg.head_dim,
    max_position_embeddings: cfg.max_position_embeddings,
    rms_norm_eps: cfg.rms_norm_eps,
    rope_theta: cfg.rope_theta,
    rope_scaling: cfg.rope_scaling,
    tie_word_embeddings: cfg.tie_word_embeddings,
    hidden_act: "silu",
  };
  if (cfg.model_type === "llama") {
    out.attention_bias = cfg.attention_bias;
    out.mlp_bias = false;
  } else {
    out.use_sliding_window = false;
  }
  if ("dtype" in cfg.extra) out.dtype = "float32";
  else out.torch_dtype = "float32";
  return { ...out, ...overrides };
}
