// The LRC loss (docs/lrc-method.md §2), every term named so the log can show each:
//
//   L = w_ce · CE(z_S, y) + w_kl · KL_τ(p_T ‖ p_S) + α · Σ_i Σ_m MSE_{i,m}
//
// - CE: student next-token cross-entropy, mean over the counted positions (torch `cross_entropy`).
// - KL: forward KL(p_T ‖ p_S) with p = softmax(z / τ) on both sides over the full vocabulary and every
//   position, summed over positions and vocabulary and divided by the number of sequences B (torch
//   `F.kl_div(..., log_target=True, reduction="batchmean")` on [B, T, V]); no τ² factor. Default τ = 40.
// - Clone terms per layer i (torch `nn.MSELoss()`: mean over all elements; a plain sum over layers):
//     q, k, v     MSE(h_S, h_T) of the projections before RoPE (biases included)      (B, T, H·dh | Hkv·dh)
//     gate, up    MSE(h_S, h_T) before SiLU                                           (B, T, F)
//     o  paper:     MSE(o_S, o_T P_o)            in R^d   (P §3.2)
//        reference: MSE(c_S W_oᵀ, c_T W_oᵀ)      in R^D through the teacher's W_o, before P_o (R `attn-out-sim-loss`),
//                   evaluated as the quadratic form Σ_rows Δ G Δᵀ / (N·D), Δ = c_S − c_T, G = W_oᵀ W_o (made once per
//                   teacher, attnOutGram; tensor-core's quadFormMse): the same value up to float32 sum order
//     down        MSE(y_S, y_T P_down)  in R^d, gradient through both sides (no stop-gradient)
// The teacher forward runs with grad mode off; its activations are constants.
// CE and KL run in one `lmHeadLoss` from both models' final hidden states: the [B, T, V] logits are computed a
// chunk of rows at a time and never exist whole (at V = 151,936 one such tensor is 622 MB at batch 4 x 256).
// The student's head W_base P_lm and embedding E P_emb ([V, d] each) are never formed in training: see lrcLoss.

import type { Batch } from "@lrc-ts/data";
import { causalLMForward, linear } from "@lrc-ts/nn";
import type { CaptureField, CausalLMWeights, LayerCapture } from "@lrc-ts/nn";
import { add, gramMatrix, keep, lmHeadLoss, matmul, mse, mul, noGrad, quadFormMse, reshape, tensor } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import type { RecomputeSetting } from "./plan.js";
import type { MatrixName, ProjectionParams, Projections } from "./projection.js";
import { MATRICES, projName } from "./projection.js";

export type AttnOutForm = "paper" | "reference";

export interface LossOptions {
  /** Weight α of the clone loss (default 0.5, P Tab.10 for LRC-1.7B/4B). 0 disables it. */
  readonly alpha?: number;
  /** KL temperature τ (default 40). */
  readonly temperature?: number;
  /** Attention-out clone term (default "reference", the form that trained the released checkpoints). */
  readonly attnOut?: AttnOutForm;
  /** Clone terms to use (default all seven). */
  readonly cloneTerms?: readonly MatrixName[];
  /** Layers whose clone terms are used (default all). */
  readonly cloneLayers?: readonly number[];
  /** Layers whose clone terms are dropped (R's `ban_layers`). */
  readonly banLayers?: readonly number[];
  /** Weight of the KL term (default 1; 0 skips it). */
  readonly klWeight?: number;
  /** Weight of the CE term (default 1; 0 skips it). */
  readonly ceWeight?: number;
  /**
   * With α = 0, still compute the clone terms, under noGrad, so they can be logged (default true); they never
   * enter the total. With α > 0 they are part of the loss and always computed.
   */
  readonly logCloneTerms?: boolean;
  /**
   * true: free each layer's generated student matrices (W_teacher P) after the layer's forward and recompute them
   * in the backward pass, where its matmuls need them: the same values, so the same gradients; a step then holds
   * one layer's generated weights instead of all of them (about 30 MB a layer at the Qwen2.5-0.5B shape, d = 448)
   * for one more gemm per matrix (about 11% more flops). false: keep them from the forward to the backward.
   * "auto" (the default): keep them when the step's memory estimate with them kept fits the machine
   * (LowRankClone.recomputePlan, plan.ts chooseRecompute), else recompute.
   */
  readonly recomputeWeights?: RecomputeSetting;
}

/** A batch's inputs or targets as an int32 (B, T) tensor. */
export function batchIds(batch: Batch, which: "inputs" | "targets"): Tensor {
  return tensor(batch[which], [...batch.shape], { dtype: "int32" });
}

/** The loss and its parts. Use `total` for backward: `ce` and `kl` are the values of its LM-head terms (on the cpu backend not on the tape). */
export interface LrcLoss {
  readonly total: Tensor;
  readonly ce: Tensor | null;
  readonly kl: Tensor | null;
  /** Σ of the clone terms, before α. */
  readonly clone: Tensor | null;
  /** "layers.{i}.{q,k,v,o,gate,up,down}" -> MSE. */
  readonly terms: Record<string, Tensor>;
  /** The student's and the teacher's full (B, T, V) logits, computed on request (the loss never materialises them). */
  readonly logits: () => { readonly student: Tensor; readonly teacher: Tensor };
}

/** Resolved loss options. */
export interface ResolvedLossOptions {
  readonly alpha: number;
  readonly temperature: number;
  readonly attnOut: AttnOutForm;
  readonly cloneTerms: readonly MatrixName[];
  readonly cloneLayers: readonly number[];
  readonly klWeight: number;
  readonly ceWeight: number;
  readonly logCloneTerms: boolean;
  readonly recomputeWeights: RecomputeSetting;
}

export function resolveLossOptions(o: LossOptions, numLayers: number): ResolvedLossOptions {
  const terms = o.cloneTerms ?? MATRICES;
  for (const t of terms)
    if (!(MATRICES as readonly string[]).includes(t)) throw new RangeError(`cloneTerms: unknown term "${t}" (known: ${MATRICES.join(", ")})`);
  const layers = o.cloneLayers ?? Array.from({ length: numLayers }, (_, i) => i);
  for (const [field, list] of [["cloneLayers (--clone-layers)", layers], ["banLayers (--ban-layers)", o.banLayers ?? []]] as const)
    for (const i of list)
      if (!Number.isInteger(i) || i < 0 || i >= numLayers) throw new RangeError(`${field}: layer ${i} does not exist (the teacher has ${numLayers} layers)`);
  const banned = new Set(o.banLayers ?? []);
  const attnOut = o.attnOut ?? "reference";
  if (attnOut !== "paper" && attnOut !== "reference") throw new RangeError(`attnOut must be "paper" or "reference", got ${JSON.stringify(attnOut)}`);
  const r: ResolvedLossOptions = {
    alpha: o.alpha ?? 0.5,
    temperature: o.temperature ?? 40,
    attnOut,
    cloneTerms: [...new Set(terms)],
    cloneLayers: [...new Set(layers)].filter((i) => !banned.has(i)).sort((a, b) => a - b),
    klWeight: o.klWeight ?? 1,
    ceWeight: o.ceWeight ?? 1,
    logCloneTerms: o.logCloneTerms ?? true,
    recomputeWeights: o.recomputeWeights ?? "auto",
  };
  if (r.recomputeWeights !== true && r.recomputeWeights !== false && r.recomputeWeights !== "auto")
    throw new RangeError(`recomputeWeights (--recompute-weights) must be true, false or "auto", got ${JSON.stringify(r.recomputeWeights)}`);
  for (const [k, v] of [["alpha", r.alpha], ["klWeight", r.klWeight], ["ceWeight", r.ceWeight]] as const)
    if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`${k} must be a finite number >= 0, got ${v}`);
  if (!(r.temperature > 0) || !Number.isFinite(r.temperature)) throw new RangeError(`temperature must be > 0, got ${r.temperature}`);
  return r;
}

/** x (B, T, D) @ P (D, d) -> (B, T, d). */
function project(x: Tensor, p: Tensor): Tensor {
  const [B, T, D] = x.shape as [number, number, number];
  return reshape(matmul(reshape(x, [B * T, D]), p), [B, T, p.shape[1]!]);
}

/**
 * The capture fields the asked-for clone terms read, on the student's side and the teacher's: what the two
 * forwards return (the frozen teacher keeps nothing else of a layer).
 */
export function cloneCaptureFields(opts: Pick<ResolvedLossOptions, "attnOut" | "cloneTerms">): { student: CaptureField[]; teacher: CaptureField[] } {
  const student = new Set<CaptureField>(), teacher = new Set<CaptureField>();
  for (const m of opts.cloneTerms) {
    const [s, t]: [CaptureField, CaptureField] =
      m === "o" ? (opts.attnOut === "paper" ? ["attnOut", "attnOut"] : ["attnContext", "attnContext"]) : m === "down" ? ["mlpOut", "mlpOut"] : [m, m];
    student.add(s);
    teacher.add(t);
  }
  return { student: [...student], teacher: [...teacher] };
}

/** G = W_oᵀ W_o of each frozen teacher W_o, made on first use and kept as long as the weight. */
const grams = new WeakMap<Tensor, Tensor>();

/**
 * The Gram matrix W_oᵀ W_o [H·dh, H·dh] of a teacher's o_proj weight W_o [D, H·dh] for the reference attention-out
 * term: float32 (a bfloat16 / float16 W_o widened exactly inside the gemm, accumulated in float32, as the projection
 * c W_oᵀ it replaces is), made once per weight (at the Qwen2.5-0.5B shape 3.2 MB a layer, 77 MB for 24; plan.ts
 * counts it) and kept while the teacher is.
 */
export function attnOutGram(oW: Tensor): Tensor {
  let g = grams.get(oW);
  if (g === undefined) grams.set(oW, (g = keep(gramMatrix(oW)))); // kept: made inside a step's scope, used by every step
  return g;
}

/** The seven clone terms of one layer (those asked for; the captures hold at least cloneCaptureFields). */
export function layerCloneTerms(
  i: number,
  s: LayerCapture,
  t: LayerCapture,
  params: ProjectionParams,
  teacher: CausalLMWeights,
  opts: Pick<ResolvedLossOptions, "attnOut" | "cloneTerms">,
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const m of opts.cloneTerms) {
    let v: Tensor;
    switch (m) {
      case "q": v = mse(s.q, t.q); break;
      case "k": v = mse(s.k, t.k); break;
      case "v": v = mse(s.v, t.v); break;
      case "gate": v = mse(s.gate, t.gate); break;
      case "up": v = mse(s.up, t.up); break;
      case "o":
        if (opts.attnOut === "paper") v = mse(s.attnOut, project(t.attnOut, params[projName(i, "o")]!));
        else {
          // mse(c_S W_oᵀ + b_o, c_T W_oᵀ + b_o): the bias cancels, and through the frozen W_o it is the quadratic
          // form of Δ = c_S − c_T with G = W_oᵀ W_o (attnOutGram): no [N, D] projection, no gemm in the backward.
          const oW = teacher.layers[i]!.oW;
          v = quadFormMse(s.attnContext, t.attnContext, attnOutGram(oW), oW.shape[0]!);
        }
        break;
      case "down": v = mse(s.mlpOut, project(t.mlpOut, params[projName(i, "down")]!)); break;
    }
    out[projName(i, m)] = v;
  }
  return out;
}

type CloneTermsOptions = Pick<ResolvedLossOptions, "alpha" | "logCloneTerms" | "attnOut" | "cloneTerms" | "cloneLayers">;

/** Whether lrcLoss computes clone terms at all: α > 0 or logCloneTerms, with some terms and some layers. */
export function cloneTermsComputed(opts: Omit<CloneTermsOptions, "attnOut">): boolean {
  return (opts.alpha > 0 || opts.logCloneTerms) && opts.cloneTerms.length > 0 && opts.cloneLayers.length > 0;
}

/**
 * The layers whose reference attention-out term lrcLoss evaluates through G = W_oᵀ W_o (attnOutGram, made on first
 * use and kept with the teacher), none unless the clone terms are computed, the o term asked for, in the reference
 * form. Package-internal: LowRankClone.runShape counts them for the memory estimate (plan.ts gramLayers) from this
 * same predicate.
 */
export function gramLayers(opts: CloneTermsOptions): readonly number[] {
  return cloneTermsComputed(opts) && opts.attnOut === "reference" && opts.cloneTerms.includes("o") ? opts.cloneLayers : [];
}

/** Sums tensors (null for none). */
function sumAll(ts: readonly Tensor[]): Tensor | null {
  let acc: Tensor | null = null;
  for (const t of ts) acc = acc === null ? t : add(acc, t);
  return acc;
}

/**
 * The full LRC loss for one batch with the given trainable tensors (default: the live ones). The teacher
 * forward runs under noGrad; the student forward records the tape. With α = 0 and logCloneTerms the clone
 * terms are computed under noGrad (logged, not in the total). recomputeWeights is decided here (LowRankClone
 * resolves "auto" for the batch's shape).
 */
export function lrcLoss(p: Projections, batch: Batch, opts: ResolvedLossOptions & { readonly recomputeWeights: boolean }, params: ProjectionParams = p.params): LrcLoss {
  const inputs = batchIds(batch, "inputs"), targets = batchIds(batch, "targets");
  const trained = opts.alpha > 0;
  const needCaptures = cloneTermsComputed(opts);
  const fields = cloneCaptureFields(opts);
  const teacher = noGrad(() => causalLMForward(p.teacher, p.teacherConfig, inputs, { capture: needCaptures && fields.teacher, logits: "none" }));
  // The student's [V, d] embedding and head are never formed: its input embeddings are the batch's teacher rows
  // projected, E[ids] P_emb (= (E P_emb)[ids], so dP_emb = E[ids]ᵀ dx), and its logits below are
  // (h P_lmᵀ) W_baseᵀ (= h (W_base P_lm)ᵀ). Same math; float32 sums in another order.
  const sw = p.studentStack(params);
  const student = causalLMForward(sw, p.studentConfig, null, {
    inputsEmbeds: p.studentEmbeds(inputs, params),
    capture: needCaptures && fields.student, eps: p.studentEps, logits: "none",
    ...(opts.recomputeWeights ? { afterLayer: (i: number) => p.evictLayer(sw, i) } : {}),
  });
  const terms: Record<string, Tensor> = {};
  const cloneTerms = () => {
    for (const i of opts.cloneLayers) Object.assign(terms, layerCloneTerms(i, student.captures![i]!, teacher.captures![i]!, params, p.teacher, opts));
    return sumAll(Object.values(terms));
  };
  const clone = !needCaptures ? null : trained ? cloneTerms() : noGrad(cloneTerms);
  // The reference o term's backward reads its F alone: the teacher's attention contexts are freed now, not at the end
  // of the step (N·H·dh floats a layer: 88 MB at the Qwen2.5-0.5B shape's 24 layers, batch 4 x 256).
  if (gramLayers(opts).length > 0) for (const c of teacher.captures!) c.attnContext.dispose();
  // u = h_S P_lmᵀ [B, T, D]: the student's head is W_base P_lm, so its logits are u W_baseᵀ. With a tied student
  // W_base is the teacher's head itself, and the fused op computes both sides' logits from one pass over it.
  const base = p.headBase();
  const u = () => p.headInput(student.hidden, params);
  const head = opts.ceWeight > 0 || opts.klWeight > 0
    ? lmHeadLoss(u(), base, {
      ...(opts.ceWeight > 0 ? { targets, ceWeight: opts.ceWeight } : {}),
      ...(opts.klWeight > 0 ? { teacher: { hidden: teacher.hidden, weight: p.teacher.lmHead, temperature: opts.temperature }, klWeight: opts.klWeight } : {}),
    })
    : null;
  const parts: Tensor[] = [];
  if (head !== null) parts.push(head.total);
  if (clone !== null && trained) parts.push(mul(clone, opts.alpha));
  const total = sumAll(parts) ?? tensor(0, [], { dtype: student.hidden.dtype });
  const logits = () => noGrad(() => ({ student: linear(u(), base), teacher: linear(teacher.hidden, p.teacher.lmHead) }));
  const ce = head?.ce ?? null, kl = head?.kl ?? null;
  return { total, ce, kl, clone, terms, logits };
}
