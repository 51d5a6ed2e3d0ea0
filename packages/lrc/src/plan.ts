// The plan of a training run that `lrc distill --dry-run` / `lrc pretrain --dry-run` print before any
// training: parameter counts and the memory the step needs, by part. The estimate is a formula over the
// configs and the batch (f32 values, 4 bytes, except the teacher's weights, counted as loaded), plus what the
// process holds beyond the tensors' values: the buffer pool's power-of-two buckets and the runtime; the dry
// run prints the measured peak RSS of two timed steps beside it (within ~15% of the estimate at the Qwen2.5-0.5B
// shape with 4 and 24 layers and at a toy shape: packages/lrc/README.md, "The plan and the memory check").

import type { CausalLMConfig } from "@lrc-ts/nn";
import { parameterCount } from "@lrc-ts/nn";
import { lmHeadChunkRows, poolBucketBytes } from "@lrc-ts/tensor-core";

/** Bytes of one f32 value. */
const F32 = 4;

/**
 * What the fused LM head + losses (tensor-core's `lmHeadLoss`) holds at its peak, in values: per chunk of
 * rows, the student's logits (their gradient is written over them) and with a teacher the teacher's logits (the op's
 * chunk, tensor-core's lmHeadChunkRows: 1,024 rows at the Qwen2.5 vocabulary run as five chunks of 205); plus the
 * gradients it keeps for the backward: dh [N, width], and dW [V, width] when the head weight is trained. LRC
 * runs it on u = h_S P_lmᵀ (width D) against the teacher's frozen head (no dW); pretraining on h (width d) with
 * the trained head. No [N, V] tensor exists.
 */
export function lmHeadValues(rows: number, vocab: number, width: number, withTeacher: boolean, trainedWeight: boolean): number {
  return sum(lmHeadBuffers(rows, vocab, width, withTeacher, trainedWeight));
}

/** The buffers of lmHeadValues, in values: one logits chunk buffer ([zS; zT]), dh, and dW when the head is trained. */
export function lmHeadBuffers(rows: number, vocab: number, width: number, withTeacher: boolean, trainedWeight: boolean): number[] {
  const chunkRows = Math.min(rows, lmHeadChunkRows(rows, vocab));
  return [(withTeacher ? 2 : 1) * chunkRows * vocab, rows * width, ...(trainedWeight ? [vocab * width] : [])];
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/**
 * Values per token and layer a decoder layer keeps for its backward pass: the residual input and the two
 * normed inputs (3·D), q/k/v as projected and as attention reads them, rotated (2·(H + 2·Hkv)·dh; no head-split
 * copy of q / k is made, tensor-core's ropeHeads), the attention context (H·dh) and its
 * projection (D), gate and up (2·F; their SwiGLU product is never kept, see nn's mlpForward) and the
 * MLP output (D).
 */
export function layerActivationValues(cfg: CausalLMConfig): number {
  return sum(layerActivationWidths(cfg));
}

/** The tensors of layerActivationValues, one width (values per token) each, in that order. */
export function layerActivationWidths(cfg: CausalLMConfig): number[] {
  const D = cfg.hidden_size, F = cfg.intermediate_size, q = cfg.num_attention_heads * cfg.head_dim, kv = cfg.num_key_value_heads * cfg.head_dim;
  return [D, D, D, q, kv, kv, q, kv, kv, q, D, F, F, D];
}

/** Values of one decoder layer's seven weight matrices (q, k, v, o, gate, up, down; no biases or norms). */
export function layerMatrixValues(cfg: CausalLMConfig): number {
  const D = cfg.hidden_size, qo = cfg.num_attention_heads * cfg.head_dim, kv = cfg.num_key_value_heads * cfg.head_dim;
  return 2 * qo * D + 2 * kv * D + 3 * cfg.intermediate_size * D;
}

/**
 * Values per token and layer LRC keeps of the teacher (run without a tape): the activations the clone loss
 * compares against, q, k, v, the attention context (H·dh: the reference attention-out term compares contexts through
 * W_oᵀ W_o), gate, up and the MLP output (nothing else; see cloneCaptureFields).
 */
export function teacherCaptureValues(cfg: CausalLMConfig): number {
  return sum(teacherCaptureWidths(cfg));
}

/** The tensors of teacherCaptureValues, one width (values per token) each: q, k, v, the context, gate, up, the MLP output. */
export function teacherCaptureWidths(cfg: CausalLMConfig): number[] {
  const q = cfg.num_attention_heads * cfg.head_dim, kv = cfg.num_key_value_heads * cfg.head_dim, F = cfg.intermediate_size;
  return [q, kv, kv, q, F, F, cfg.hidden_size];
}

/** Bytes a float32 buffer of `values` takes in tensor-core's buffer pool beyond its values (its power-of-two bucket). */
export function poolRoundingBytes(values: number): number {
  return poolBucketBytes(values * F32) - values * F32;
}

/**
 * What the process holds beyond the step's tensors: Node and the loaded modules (~95 MiB before a model loads),
 * the worker thread and each thread's WebAssembly heaps (the gemm's packed panels, the row kernels' buffers; ~40
 * MiB at 2 threads), and pooled scratch outside the estimate's tensors. Measured, not derived: the peak RSS of
 * `lrc distill --dry-run` at 2 threads less every other part of this estimate came to 213 and 205 MiB at the
 * Qwen2.5-0.5B shape with 4 and 24 layers and 164 MiB at a toy teacher with the Qwen vocabulary (smaller gemms,
 * smaller WebAssembly heaps; packages/lrc/README.md, "The plan and the memory check"): it does not grow with the
 * model or the batch.
 */
export const RUNTIME_BYTES = 208 * 2 ** 20;

/**
 * The reference attention-out term's extra values (lrc's losses.ts, tensor-core's quadFormMse) for `layers` layers:
 * per layer the Gram matrix W_oᵀ W_o [H·dh, H·dh] of the teacher, kept for the run (`gram`), and per token
 * F = (c_S − c_T) W_oᵀ W_o [H·dh], kept from the loss's forward for its backward (`perToken`).
 */
export function attnOutGramValues(cfg: CausalLMConfig, layers: number): { gram: number; perToken: number } {
  const qo = cfg.num_attention_heads * cfg.head_dim;
  return { gram: layers * qo * qo, perToken: layers * qo };
}

export interface RunShape {
  /** The frozen teacher (LRC, or plain KD), or null. */
  readonly teacher: CausalLMConfig | null;
  /** Bytes of the teacher's weights as loaded (its dtype in memory). */
  readonly teacherBytes: number;
  /** The student: for LRC the generated (folded) student, for pretraining the model itself. */
  readonly student: CausalLMConfig;
  /** Values the optimizer trains. */
  readonly trainable: number;
  /** True for LRC: the student's weights are generated from the trainable projections every step. */
  readonly generated: boolean;
  /**
   * LRC: whether each layer's generated matrices are freed after its forward and recomputed for its backward
   * (default true), or kept from the forward to the backward.
   */
  readonly recomputeWeights?: boolean;
  readonly batchSize: number;
  readonly seqLen: number;
  /** Micro-batches per optimizer step (default 1: the micro-batch's gradients are the step's accumulators). */
  readonly gradAccum?: number;
  /**
   * LRC: layers whose reference attention-out term keeps W_oᵀ W_o (attnOutGramValues; default every teacher layer,
   * the default loss; 0 with attnOut "paper" or without the o term).
   */
  readonly gramLayers?: number;
}

/** Estimated bytes by part of one training step. */
export interface MemoryEstimate {
  readonly teacherWeights: number;
  /**
   * LRC: the generated student weights (W_T P) held at once: the norms and the layer matrices, all of them with
   * recomputeWeights off, one layer's with it on (each layer's are freed after its forward and recomputed for its
   * backward); the [V, d] embedding and head are never formed in training; pretraining: the model (also the
   * trainable values).
   */
  readonly studentWeights: number;
  /** LRC's projections and student norms (0 for pretraining: they are the student weights). */
  readonly trainable: number;
  /** The step's gradients, plus the trainer's accumulators when gradAccum > 1. */
  readonly gradients: number;
  /** AdamW's two moments. */
  readonly optimizer: number;
  /** What the layers keep for the backward pass (and LRC's captured teacher activations and the o term's F). */
  readonly activations: number;
  /** The fused LM head + CE/KL: logit chunks and the head's gradients (see lmHeadValues). */
  readonly logits: number;
  /** LRC: the teacher's W_oᵀ W_o of the reference attention-out term, kept for the run (attnOutGramValues). */
  readonly teacherGram: number;
  /**
   * The buffer pool's power-of-two buckets (tensor-core's poolBucketBytes) around the per-token buffers (the
   * activations, LRC's teacher captures and F, the logit chunk and dh): what their buckets hold beyond their values.
   * A bucket's tail becomes resident once a larger buffer of the same bucket has been written into it, as the
   * pool reuses buffers across a step; the measured peak RSS grows with the layers by about this much.
   */
  readonly poolRounding: number;
  /** The process itself: Node, the modules, the worker threads and their WebAssembly heaps (RUNTIME_BYTES, measured). */
  readonly runtime: number;
  readonly total: number;
}

/** The memory estimate of a step of this shape (see the functions above for each term). */
export function estimateMemory(s: RunShape): MemoryEstimate {
  const N = s.batchSize * s.seqLen;
  const studentParams = parameterCount(s.student);
  const headAndEmbedding = (s.student.tie_word_embeddings ? 1 : 2) * s.student.vocab_size * s.student.hidden_size;
  // LRC's teacher: the captures a layer keeps, and per layer with the reference o term the F [N, H·dh] of quadFormMse.
  const t = s.teacher !== null && s.generated ? s.teacher : null;
  const gramLayers = t !== null ? (s.gramLayers ?? t.num_hidden_layers) : 0;
  const gram = t !== null ? attnOutGramValues(t, gramLayers) : { gram: 0, perToken: 0 };
  const captured = t !== null ? t.num_hidden_layers * teacherCaptureValues(t) + gram.perToken : 0;
  const head = t !== null
    ? lmHeadBuffers(N, s.student.vocab_size, t.hidden_size, true, false)
    : lmHeadBuffers(N, s.student.vocab_size, s.student.hidden_size, s.teacher !== null, true);
  // The per-token buffers at their pool buckets: each layer's activations and captures, F, the logit chunk and dh.
  const rounding = (widths: readonly number[]) => sum(widths.map((w) => poolRoundingBytes(N * w)));
  const parts = {
    teacherWeights: s.teacher !== null ? s.teacherBytes : 0,
    studentWeights: (s.generated
      ? studentParams - (s.recomputeWeights !== false ? s.student.num_hidden_layers - 1 : 0) * layerMatrixValues(s.student) - headAndEmbedding
      : studentParams) * F32,
    trainable: s.generated ? s.trainable * F32 : 0,
    gradients: ((s.gradAccum ?? 1) > 1 ? 2 : 1) * s.trainable * F32,
    optimizer: 2 * s.trainable * F32,
    activations: N * (layerActivationValues(s.student) * s.student.num_hidden_layers + captured) * F32,
    logits: sum(head) * F32,
    teacherGram: gram.gram * F32,
    poolRounding: s.student.num_hidden_layers * rounding(layerActivationWidths(s.student)) +
      (t !== null ? t.num_hidden_layers * rounding(teacherCaptureWidths(t)) + gramLayers * rounding([t.num_attention_heads * t.head_dim]) : 0) +
      sum(head.slice(0, 2).map(poolRoundingBytes)),
    runtime: RUNTIME_BYTES,
  };
  return { ...parts, total: sum(Object.values(parts)) };
}

/** How LRC's generated layer weights are handled: "auto" decides from the memory estimate (chooseRecompute). */
export type RecomputeSetting = boolean | "auto";

/** A recomputeWeights decision and why it was taken, for the start-up line and the dry run. */
export interface RecomputeChoice {
  readonly recompute: boolean;
  readonly reason: string;
}

/**
 * Headroom over the estimate, for the "auto" recompute decision (the generated weights are kept when the step's
 * estimate with them kept, times this, fits in the memory limit) and for memoryVerdict's warning. The estimate
 * has matched the measured peak RSS within ~15% (packages/lrc/README.md); the rest leaves room for what else runs
 * on the machine (a step that takes more than half of it can be stopped by the OOM killer beside another job).
 */
export const MEMORY_HEADROOM = 2;

/**
 * recomputeWeights for an LRC step of shape `s`: a boolean setting as it is; "auto" keeps the generated
 * weights (one gemm fewer per matrix and layer in the backward) when MEMORY_HEADROOM x the estimate with
 * them kept fits in `limit` (tensor-core's memoryLimit(): the cgroup's limit, else the machine's memory),
 * and recomputes them otherwise or where the memory size is unknown (a browser).
 */
export function chooseRecompute(setting: RecomputeSetting, s: RunShape, limit: { readonly bytes: number; readonly source: string } | null): RecomputeChoice {
  if (setting !== "auto") return { recompute: setting, reason: `recomputeWeights ${setting ? "on" : "off"} as set` };
  if (limit === null) return { recompute: true, reason: "auto: the memory size is unknown here" };
  const G = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const kept = estimateMemory({ ...s, recomputeWeights: false }).total;
  const fits = MEMORY_HEADROOM * kept <= limit.bytes;
  return {
    recompute: !fits,
    reason: `auto: the step's estimate with them kept is ${G(kept)}; ${MEMORY_HEADROOM} x that (${G(MEMORY_HEADROOM * kept)}) ${fits ? "fits in" : "exceeds"} ${G(limit.bytes)}, ${limit.source}`,
  };
}

/**
 * Whether a step of estimate `m` fits in `limit` (tensor-core's memoryLimit()), for the checks before a run or a
 * dry run: "refuse" when the estimate alone exceeds the limit (the step cannot fit: the kernel's OOM killer would
 * stop it mid-step), "warn" when MEMORY_HEADROOM x it does (the estimate's error, ~15%, and other processes
 * could make it not fit), else "fits"; with the message.
 * `flags` names what set the shape ("--batch-size 4 x --seq-len 256").
 */
export function memoryVerdict(m: MemoryEstimate, limit: { readonly bytes: number; readonly source: string } | null, flags: string, recomputing: boolean | null): { verdict: "fits" | "warn" | "refuse"; message: string } {
  if (limit === null) return { verdict: "fits", message: "" };
  const G = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const largest = (Object.entries(m) as Array<[keyof MemoryEstimate, number]>).filter(([k]) => k !== "total").sort((a, b) => b[1] - a[1])[0]!;
  const advice = `lower --batch-size (raise --grad-accum to keep the tokens per step) or --seq-len${recomputing === false ? ", or pass --recompute-weights on" : ""}`;
  if (m.total > limit.bytes)
    return {
      verdict: "refuse",
      message: `${flags}: a step needs about ${G(m.total)} by the memory estimate (the largest part: ${largest[0]} ${G(largest[1])}), more than ${G(limit.bytes)}, ${limit.source}; ${advice}`,
    };
  if (MEMORY_HEADROOM * m.total > limit.bytes)
    return {
      verdict: "warn",
      message: `warning: ${flags}: a step needs about ${G(m.total)} by the memory estimate (measured peaks have been within ~15% of it), and ${MEMORY_HEADROOM} x that (${G(MEMORY_HEADROOM * m.total)}) exceeds ${G(limit.bytes)}, ${limit.source}; it may not fit beside other processes: ${advice}`,
    };
  return { verdict: "fits", message: "" };
}
