// The benchmark catalogue: every case as plain data (shapes, flop counts), shared by the lrc-ts and TF.js
// implementations so both sides run exactly the same work under the same name. Nothing here imports a
// tensor library, so the orchestrator can list and filter cases without loading one.

export type Suite = "kernels" | "gradients" | "e2e";

/** Decoder-only transformer sizes (the anchor Llama and the distillation teacher). */
export interface ModelDims {
  arch: "llama" | "qwen2";
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  /** LM head shares the embedding matrix. */
  tied: boolean;
}

export type CaseSpec =
  /** bf16: that operand is a frozen bfloat16 weight (widened to float32 inside the kernel), the other float32. */
  | { kind: "matmul"; m: number; k: number; n: number; transA: boolean; transB: boolean; bf16?: "a" | "b" }
  | { kind: "attention"; backward: boolean; B: number; H: number; Hkv: number; T: number; dh: number }
  | { kind: "rmsNorm"; backward: boolean; rows: number; dim: number }
  | { kind: "softmaxCE"; rows: number; vocab: number }
  | { kind: "adamw"; params: number }
  /**
   * LRC's reference attention-out clone term, forward and backward w.r.t. c_S [rows, D], through a frozen bfloat16
   * W_o [D, D]: "projected" mse(c_S W_oᵀ + b, c_T W_oᵀ + b) (the form before #16's gform), "gram" quadFormMse with
   * G = W_oᵀ W_o (made once, outside the timing).
   */
  | { kind: "attnOutTerm"; form: "projected" | "gram"; rows: number; D: number }
  | { kind: "decoderLayer"; model: ModelDims; batch: number; seq: number }
  | { kind: "modelGrad"; model: ModelDims; batch: number; seq: number }
  | { kind: "gradCheck"; B: number; T: number; D: number; H: number; Hkv: number }
  | { kind: "pretrain"; model: ModelDims; batch: number; seq: number }
  | { kind: "distill"; teacher: ModelDims; student: ModelDims; batch: number; seq: number }
  /** Multiple-choice log-likelihood scoring (lrc eval-tasks): docs x choices requests, one shared context per doc. */
  | { kind: "mcEval"; model: ModelDims; docs: number; ctxTokens: number; choiceTokens: readonly number[]; shareContext: boolean; batch: number }
  /**
   * f32Teacher: the BF16 teacher widened to float32 on load (the engine before #16's bfloat16 storage; lrc-ts only).
   * recompute: recomputeWeights on (each layer's generated weights recomputed for its backward) instead of the
   * default "auto" (lrc-ts only).
   */
  | { kind: "realShape"; teacher: ModelDims; studentHidden: number; batch: number; seq: number; f32Teacher?: boolean; recompute?: boolean };

export interface BenchCase {
  suite: Suite;
  /** Unique within its suite; the key results are compared by. */
  name: string;
  spec: CaseSpec;
  /** Useful floating-point operations per call (for GFLOP/s), when meaningful. */
  flops?: number;
  /** Tokens processed per call (for tokens/s). */
  tokens?: number;
  /** Documents scored per call (for documents/s). */
  docs?: number;
}

// Llama: untied head, no biases. Qwen2: q/k/v biases and a tied head, as in Qwen2.5-0.5B.
export const ANCHOR_LLAMA: ModelDims = { arch: "llama", vocab: 4096, hidden: 256, layers: 4, heads: 4, kvHeads: 2, ffn: 704, tied: false };
export const ANCHOR_QWEN2: ModelDims = { ...ANCHOR_LLAMA, arch: "qwen2", tied: true };
export const TEACHER_QWEN2: ModelDims = { arch: "qwen2", vocab: 4096, hidden: 512, layers: 4, heads: 8, kvHeads: 4, ffn: 1408, tied: true };
export const STUDENT_QWEN2: ModelDims = { ...ANCHOR_QWEN2 };
/** Qwen2.5-0.5B's shape (/work/shared/configs/qwen2.5-0.5b.json): 494M parameters, head_dim 64. */
export const QWEN25_05B: ModelDims = { arch: "qwen2", vocab: 151_936, hidden: 896, layers: 24, heads: 14, kvHeads: 2, ffn: 4864, tied: true };
/** Qwen2.5-1.5B's shape (/work/shared/configs/qwen2.5-1.5b.json): 1.54B parameters, head_dim 128. */
export const QWEN25_15B: ModelDims = { arch: "qwen2", vocab: 151_936, hidden: 1536, layers: 28, heads: 12, kvHeads: 2, ffn: 8960, tied: true };
/** Case names of the real-shape group start with this; only a --filter naming it runs them (many GB each). */
export const REAL_SHAPE = "real-shape";
export const BATCH = 8;
export const SEQ = 128;

const tr = (t: boolean): string => (t ? "T" : "N");

function matmulCase(m: number, k: number, n: number, transA = false, transB = false, bf16?: "a" | "b"): BenchCase {
  return {
    suite: "kernels",
    name: `matmul ${m}x${k}x${n} ${tr(transA)}${tr(transB)}${bf16 === undefined ? "" : ` bf16 ${bf16.toUpperCase()}`}`,
    spec: { kind: "matmul", m, k, n, transA, transB, ...(bf16 === undefined ? {} : { bf16 }) },
    flops: 2 * m * n * k,
  };
}

/** Causal attention flops: QK^T and PV over the lower triangle (2 matmuls of B*H*T*T/2*dh MACs each). */
export function attentionFlops(B: number, H: number, T: number, dh: number, backward: boolean): number {
  const oneMatmul = B * H * ((T * (T + 1)) / 2) * dh * 2;
  // Backward recomputes S and computes dV, dP, dQ, dK: 5 more matmul-sized products.
  return oneMatmul * (backward ? 7 : 2);
}

/** Matmul flops of one decoder layer's forward pass on `rows` tokens (attention included). */
export function layerForwardFlops(d: ModelDims, batch: number, seq: number): number {
  const rows = batch * seq, dh = d.hidden / d.heads;
  const proj = 2 * rows * d.hidden * (d.hidden + 2 * d.kvHeads * dh) + 2 * rows * d.hidden * d.hidden;
  const mlp = 3 * 2 * rows * d.hidden * d.ffn;
  return proj + mlp + attentionFlops(batch, d.heads, seq, dh, false);
}

/** Matmul flops of a whole forward pass (layers plus the LM head). */
export function modelForwardFlops(d: ModelDims, batch: number, seq: number): number {
  return d.layers * layerForwardFlops(d, batch, seq) + 2 * batch * seq * d.hidden * d.vocab;
}

const dimsLabel = (d: ModelDims): string =>
  `${d.arch === "llama" ? "Llama" : "Qwen2"} D${d.hidden} L${d.layers} H${d.heads}/${d.kvHeads} F${d.ffn} V${d.vocab}`;

export function allCases(): BenchCase[] {
  const cases: BenchCase[] = [];
  // Square matmuls; all four transpose combinations at 1024 (the backward pass needs A^T B and A B^T).
  for (const s of [256, 512]) cases.push(matmulCase(s, s, s));
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) cases.push(matmulCase(1024, 1024, 1024, ta, tb));
  // A frozen bfloat16 teacher weight W: x·Wᵀ (its linear layers) and Wᵀ·dY (the LRC backward's dP).
  cases.push(matmulCase(1024, 1024, 1024, false, true, "b"), matmulCase(1024, 1024, 1024, true, false, "a"));
  // The gemms of an LRC step at Qwen2.5-0.5B's shape (batch 4 x 256, d = 448) with a bfloat16 operand (so
  // lrc-ts only): the teacher's gate/up x·Wᵀ, the student's W_t·P and its dP = W_tᵀ·dY, and the fused LM head's
  // teacher logits of a 256-row chunk and its dz·W over the whole vocabulary.
  cases.push(
    matmulCase(1024, 896, 4864, false, true, "b"), matmulCase(4864, 896, 448, false, false, "a"),
    matmulCase(896, 4864, 448, true, false, "a"), matmulCase(256, 896, 151936, false, true, "b"),
    matmulCase(256, 151936, 896, false, false, "b"),
  );
  // LLM projection shapes: [B*T, D] x [D, F].
  for (const [d, f] of [[256, 704], [512, 1408], [1024, 2816]] as const) cases.push(matmulCase(BATCH * SEQ, d, f));
  // the benchmark Llama's attention, and that of an LRC step at Qwen2.5-0.5B's shape (batch 4 x 256, 14 / 2 heads)
  for (const att of [{ B: 8, H: 4, Hkv: 2, T: 128, dh: 64 }, { B: 4, H: 14, Hkv: 2, T: 256, dh: 64 }])
    for (const backward of [false, true])
      cases.push({
        suite: "kernels",
        name: `attention ${backward ? "fwd+bwd" : "fwd"} B${att.B} H${att.H}/${att.Hkv} T${att.T} dh${att.dh}`,
        spec: { kind: "attention", backward, ...att },
        flops: attentionFlops(att.B, att.H, att.T, att.dh, backward),
      });
  for (const backward of [false, true])
    cases.push({ suite: "kernels", name: `rmsNorm ${backward ? "fwd+bwd" : "fwd"} 1024x1024`, spec: { kind: "rmsNorm", backward, rows: 1024, dim: 1024 } });
  for (const [rows, vocab] of [[1024, 4096], [64, 151936]] as const)
    cases.push({ suite: "kernels", name: `softmax-CE fwd+bwd ${rows}x${vocab}`, spec: { kind: "softmaxCE", rows, vocab } });
  for (const params of [1_000_000, 5_000_000])
    cases.push({ suite: "kernels", name: `AdamW ${params / 1e6}M params`, spec: { kind: "adamw", params } });
  // The reference attention-out clone term of one layer at Qwen2.5-0.5B's shape (batch 4 x 256, D = H·dh = 896).
  for (const form of ["projected", "gram"] as const)
    cases.push({ suite: "kernels", name: `attn-out clone term fwd+bwd ${form} 1024x896`, spec: { kind: "attnOutTerm", form, rows: 1024, D: 896 } });

  const tokens = BATCH * SEQ;
  cases.push({
    suite: "gradients",
    name: `decoder layer fwd+bwd D${ANCHOR_LLAMA.hidden} H${ANCHOR_LLAMA.heads}/${ANCHOR_LLAMA.kvHeads} F${ANCHOR_LLAMA.ffn} ${BATCH}x${SEQ}`,
    spec: { kind: "decoderLayer", model: ANCHOR_LLAMA, batch: BATCH, seq: SEQ },
    flops: 3 * layerForwardFlops(ANCHOR_LLAMA, BATCH, SEQ),
    tokens,
  });
  cases.push({
    suite: "gradients",
    name: `model fwd+CE+bwd ${dimsLabel(ANCHOR_LLAMA)} ${BATCH}x${SEQ}`,
    spec: { kind: "modelGrad", model: ANCHOR_LLAMA, batch: BATCH, seq: SEQ },
    flops: 3 * modelForwardFlops(ANCHOR_LLAMA, BATCH, SEQ),
    tokens,
  });
  cases.push({
    suite: "gradients",
    name: "checkGrad attention block float64 B2 T8 D16 H4/2",
    spec: { kind: "gradCheck", B: 2, T: 8, D: 16, H: 4, Hkv: 2 },
  });

  for (const model of [ANCHOR_LLAMA, ANCHOR_QWEN2])
    cases.push({
      suite: "e2e",
      name: `pretrain step ${dimsLabel(model)} ${BATCH}x${SEQ}`,
      spec: { kind: "pretrain", model, batch: BATCH, seq: SEQ },
      flops: 3 * modelForwardFlops(model, BATCH, SEQ),
      tokens,
    });
  cases.push({
    suite: "e2e",
    name: `distill step teacher D${TEACHER_QWEN2.hidden} H${TEACHER_QWEN2.heads}/${TEACHER_QWEN2.kvHeads} F${TEACHER_QWEN2.ffn} -> student D${STUDENT_QWEN2.hidden} ${BATCH}x${SEQ}`,
    spec: { kind: "distill", teacher: TEACHER_QWEN2, student: STUDENT_QWEN2, batch: BATCH, seq: SEQ },
    tokens,
  });
  // Real-shape LRC steps (issue 16), into d = D/2: the Qwen2.5-0.5B teacher, its first 4 layers and all 24, at
  // batch 4 x 256, the 24-layer one also with the teacher widened to float32 (the memory the bfloat16 teacher
  // saves) and with recomputeWeights on (what "auto" keeping the generated weights saves in time); the whole
  // Qwen2.5-1.5B teacher at batch 2 x 256.
  const realShapes = [
    { label: "Qwen2.5-0.5B", teacher: { ...QWEN25_05B, layers: 4 }, batch: 4, f32Teacher: false, recompute: false },
    { label: "Qwen2.5-0.5B", teacher: QWEN25_05B, batch: 4, f32Teacher: false, recompute: false },
    { label: "Qwen2.5-0.5B", teacher: QWEN25_05B, batch: 4, f32Teacher: false, recompute: true },
    { label: "Qwen2.5-0.5B", teacher: QWEN25_05B, batch: 4, f32Teacher: true, recompute: false },
    { label: "Qwen2.5-1.5B", teacher: QWEN25_15B, batch: 2, f32Teacher: false, recompute: false },
  ];
  for (const { label, teacher, batch, f32Teacher, recompute } of realShapes)
    cases.push({
      suite: "e2e",
      name: `${REAL_SHAPE} distill step ${label} L${teacher.layers} -> d${teacher.hidden / 2} ${batch}x256${f32Teacher ? " f32 teacher" : ""}${recompute ? " recompute on" : ""}`,
      spec: { kind: "realShape", teacher, studentHidden: teacher.hidden / 2, batch, seq: 256, ...(f32Teacher ? { f32Teacher } : {}), ...(recompute ? { recompute } : {}) },
      tokens: batch * 256,
    });
  // ARC-Easy-shaped zero-shot scoring: 4 choices of 3-6 tokens after a ~30-token context, on the teacher above.
  const arc = { docs: 8, ctxTokens: 30, choiceTokens: [3, 5, 4, 6], batch: 4 };
  for (const shareContext of [true, false])
    cases.push({
      suite: "e2e",
      name: `eval-tasks ARC-E-shaped ${arc.docs} docs x ${arc.choiceTokens.length} choices ctx${arc.ctxTokens} ${dimsLabel(TEACHER_QWEN2)} ${shareContext ? "shared-context cache" : "no cache"}`,
      spec: { kind: "mcEval", model: TEACHER_QWEN2, shareContext, ...arc },
      docs: arc.docs,
    });
  return cases;
}
