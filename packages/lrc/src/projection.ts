// Low-Rank Clone: the frozen teacher, the trainable projections and student RMSNorm gains, and the student
// weights generated from them every step (docs/lrc-method.md §1.2–§1.7).
//
// Every teacher matrix keeps its shape except the residual side, which a D x d projection maps to d:
//   embed_S = E P_emb (V x d)        q/k/v_S = W P (out x d)        o_S = P_oᵀ W_o (d x H·dh)
//   gate/up_S = W P (F x d)          down_S = P_downᵀ W_down (d x F)  lm_S = W_lm P_lm (V x d)
// P_lm is P_emb when the projection is tied (the default for a tied teacher, R's `tie_word_emb_proj=1`).
// Qwen2 q/k/v biases (and a Llama o bias) are copied unchanged. The student gains are fresh vectors of
// size d (init 1). Because the student weights are recomputed from the teacher's on the tape, gradients
// reach each P through the teacher's matrices; the teacher itself never requires grad.
//
// Trainable tensor names (the native checkpoint layout, also the golden fixture's):
//   embed, lm_head (untied only), layers.{i}.{q,k,v,o,gate,up,down}        [D, d]
//   layers.{i}.input_layernorm, layers.{i}.post_attention_layernorm, norm   [d]

import { CausalLM, configToJson, parseConfig } from "@lrc-ts/nn";
import type { CausalLMConfig, CausalLMWeights, ForwardWeights, LayerWeights } from "@lrc-ts/nn";
import { Rng, embedding, evict, full, isHalf, matmul, noGrad, randn, reshape, tensor } from "@lrc-ts/tensor-core";
import type { DType, Tensor } from "@lrc-ts/tensor-core";
import { TRAINING_CONFIG_FIELD } from "./training-record.js";

/** The seven per-layer matrices that get a projection. */
export const MATRICES = ["q", "k", "v", "o", "gate", "up", "down"] as const;
export type MatrixName = (typeof MATRICES)[number];

/** A teacher: an nn CausalLM, or its weights and config. */
export type Teacher = CausalLM | { readonly weights: CausalLMWeights; readonly config: CausalLMConfig };

export interface ProjectionOptions {
  /** Student hidden size d (required). */
  readonly hiddenSize: number;
  /** Seed of the N(0, initStd²) projection init (default 0). */
  readonly seed?: number;
  /** Standard deviation of the projection init (default 0.02, R's `reinit_weight`). */
  readonly initStd?: number;
  /**
   * Use P_emb for the LM head too (R's `tie_word_emb_proj`). Default: the teacher's tie_word_embeddings.
   */
  readonly tieLmHeadProjection?: boolean;
  /**
   * RMSNorm epsilon of the student, used in training and written to the folded config (default: the
   * teacher's rms_norm_eps). R trains with `target_rms_norm_eps` = 1e-5; pass 1e-5 to match it exactly.
   */
  readonly studentEps?: number;
}

/** name -> tensor of every trainable tensor (see the header for the names). */
export type ProjectionParams = Record<string, Tensor>;

/** The teacher's weights and config, whatever form it was given in. */
export function teacherParts(teacher: Teacher): { weights: CausalLMWeights; config: CausalLMConfig } {
  if (teacher instanceof CausalLM) return { weights: teacher.weights(), config: teacher.config };
  return { weights: teacher.weights, config: teacher.config };
}

/** Every tensor of a weights object (the tied head once). */
export function weightTensors(w: CausalLMWeights): Tensor[] {
  const out = new Set<Tensor>([w.embed, w.finalNorm, w.lmHead]);
  for (const l of w.layers)
    for (const t of [l.inputNorm, l.qW, l.qB, l.kW, l.kB, l.vW, l.vB, l.oW, l.oB, l.postNorm, l.gateW, l.upW, l.downW])
      if (t !== undefined) out.add(t);
  return [...out];
}

/** The projection of matrix m of layer i. */
export function projName(i: number, m: MatrixName): string {
  return `layers.${i}.${m}`;
}

/**
 * The config of the folded student (§1.7): the teacher's, with hidden_size d, an explicit head_dim, the
 * student eps and tie_word_embeddings set when the student's head is its embedding.
 */
export function studentConfig(teacher: CausalLMConfig, d: number, tied: boolean, eps: number): CausalLMConfig {
  return parseConfig(
    // The teacher's training record (lrc_ts) describes the teacher, not the student.
    configToJson(teacher, { hidden_size: d, head_dim: teacher.head_dim, tie_word_embeddings: tied, rms_norm_eps: eps, [TRAINING_CONFIG_FIELD]: undefined }),
    "student config",
  );
}

/**
 * The trainable state of a Low-Rank Clone and the student weights it generates. The loss lives in
 * ./losses.ts, the class users hold, LowRankClone, in ./clone.ts.
 */
export class Projections {
  readonly teacher: CausalLMWeights;
  readonly teacherConfig: CausalLMConfig;
  /** Student config (hidden_size d, explicit head_dim, student eps, tie flag of the student). */
  readonly studentConfig: CausalLMConfig;
  readonly hiddenSize: number;
  readonly tieLmHeadProjection: boolean;
  /** Whether the student's LM head is its embedding (teacher tied and projection tied). */
  readonly studentTied: boolean;
  readonly studentEps: number;
  readonly params: ProjectionParams;
  readonly dtype: DType;
  /** How each generated layer matrix of studentWeights was made (for evictLayer). */
  private readonly generators = new WeakMap<Tensor, () => Tensor>();

  constructor(teacher: Teacher, opts: ProjectionOptions) {
    const { weights, config } = teacherParts(teacher);
    const d = opts.hiddenSize;
    if (!Number.isInteger(d) || d < 1) throw new RangeError(`LowRankClone: hiddenSize must be a positive integer, got ${d}`);
    if (d > config.hidden_size)
      throw new RangeError(`LowRankClone: hiddenSize (--hidden-size) ${d} exceeds the teacher's hidden_size ${config.hidden_size}: a low-rank clone has d <= D`);
    for (const t of weightTensors(weights)) {
      t.requiresGrad = false;
      t.grad = null;
    }
    this.teacher = weights;
    this.teacherConfig = config;
    this.hiddenSize = d;
    // The trainable tensors' dtype: the teacher's, float32 for a teacher whose matrices are kept 16-bit.
    this.dtype = isHalf(weights.embed.dtype) ? "float32" : weights.embed.dtype;
    const teacherTied = config.tie_word_embeddings || weights.lmHead === weights.embed;
    this.tieLmHeadProjection = opts.tieLmHeadProjection ?? teacherTied;
    this.studentTied = teacherTied && this.tieLmHeadProjection;
    this.studentEps = opts.studentEps ?? config.rms_norm_eps;
    if (!(this.studentEps > 0)) throw new RangeError(`LowRankClone: studentEps must be > 0, got ${this.studentEps}`);
    this.studentConfig = studentConfig(config, d, this.studentTied, this.studentEps);
    const D = config.hidden_size;
    const rng = new Rng(opts.seed ?? 0);
    const std = opts.initStd ?? 0.02;
    const proj = (): Tensor => randn([D, d], { rng, std, dtype: this.dtype, requiresGrad: true });
    const gain = (): Tensor => full([d], 1, { dtype: this.dtype, requiresGrad: true });
    const p: ProjectionParams = {};
    p.embed = proj();
    for (let i = 0; i < config.num_hidden_layers; i++) for (const m of MATRICES) p[projName(i, m)] = proj();
    if (!this.tieLmHeadProjection) p.lm_head = proj();
    for (let i = 0; i < config.num_hidden_layers; i++) {
      p[`layers.${i}.input_layernorm`] = gain();
      p[`layers.${i}.post_attention_layernorm`] = gain();
    }
    p.norm = gain();
    this.params = p;
  }

  /** Trainable tensor names, in a fixed order (the optimiser's slot order). */
  names(): string[] {
    return Object.keys(this.params);
  }

  /** Total number of trainable values (7·D·d + 2d per layer, + D·d (+ D·d untied) + d). */
  numTrainable(): number {
    return Object.values(this.params).reduce((s, t) => s + t.size, 0);
  }

  /** Copies values into the trainable tensors (names and shapes checked; missing names are an error). */
  load(values: Record<string, Tensor | Float32Array | Float64Array>, source = "projections"): void {
    for (const name of this.names())
      if (!(name in values)) throw new RangeError(`${source}: missing tensor "${name}"`);
    for (const name of Object.keys(values))
      if (!(name in this.params)) throw new RangeError(`${source}: unexpected tensor "${name}" (not a trainable tensor of this clone)`);
    for (const [name, v] of Object.entries(values)) {
      const dst = this.params[name]!;
      const src = ArrayBuffer.isView(v) ? v : (v as Tensor).buf;
      if (!ArrayBuffer.isView(v) && (v as Tensor).shape.join() !== dst.shape.join())
        throw new RangeError(`${source}: tensor "${name}" has shape [${(v as Tensor).shape.join(", ")}], expected [${dst.shape.join(", ")}]`);
      if (src.length !== dst.size) throw new RangeError(`${source}: tensor "${name}" has ${src.length} values, expected ${dst.size}`);
      dst.buf.set(src);
    }
  }

  /**
   * The student's weights from the teacher's and `params` (default: the live trainable tensors), on the
   * tape when grad mode is on.
   */
  studentWeights(params: ProjectionParams = this.params): CausalLMWeights {
    const T = this.teacher;
    const embed = matmul(T.embed, this.param(params, "embed")); // (V, d)
    const lmHead = this.studentTied ? embed : matmul(T.lmHead, this.headProjection(params)); // (V, d)
    return { embed, ...this.studentStack(params), lmHead };
  }

  /** The trainable tensor `n` of `params`. */
  private param(params: ProjectionParams, n: string): Tensor {
    const t = params[n];
    if (t === undefined) throw new RangeError(`LowRankClone: no trainable tensor "${n}"`);
    return t;
  }

  /**
   * The LM head's projection P_lm [D, d]: P_emb when tied (tieLmHeadProjection), else the `lm_head` tensor. The
   * student's head is always headBase() P_lm.
   */
  headProjection(params: ProjectionParams = this.params): Tensor {
    return this.param(params, this.tieLmHeadProjection ? "embed" : "lm_head");
  }

  /** The teacher matrix [V, D] the student's LM head is generated from: the embedding when the student is tied, else the teacher's lm_head. */
  headBase(): Tensor {
    return this.studentTied ? this.teacher.embed : this.teacher.lmHead;
  }

  /**
   * The student's input embeddings of int32 ids [B, T] without its [V, d] table: the teacher's rows of the batch
   * projected, E[ids] P_emb [B, T, d] (= (E P_emb)[ids]; dP_emb = E[ids]ᵀ dx over the batch's rows).
   */
  studentEmbeds(ids: Tensor, params: ProjectionParams = this.params): Tensor {
    const [B, T] = ids.shape as [number, number];
    const D = this.teacherConfig.hidden_size;
    return reshape(matmul(reshape(embedding(this.teacher.embed, ids), [B * T, D]), this.param(params, "embed")), [B, T, this.hiddenSize]);
  }

  /**
   * The student's LM-head input without its [V, d] head: u = h P_lmᵀ [..., D] for final hidden states h [..., d],
   * whose logits against headBase() are the student's, u W_baseᵀ = h (W_base P_lm)ᵀ.
   */
  headInput(hidden: Tensor, params: ProjectionParams = this.params): Tensor {
    const lead = hidden.shape.slice(0, -1);
    const u = matmul(reshape(hidden, [-1, this.hiddenSize]), this.headProjection(params), { transB: true });
    return reshape(u, [...lead, this.teacherConfig.hidden_size]);
  }

  /**
   * The student's decoder stack (layers and final norm) without the [V, d] embedding and head, which training
   * never forms: its input is studentEmbeds(ids) and its logits are headInput(h) headBase()ᵀ.
   */
  studentStack(params: ProjectionParams = this.params): ForwardWeights {
    const T = this.teacher;
    const P = (n: string): Tensor => this.param(params, n);
    /** A layer's generated weight, remembering how it was made (evictLayer). */
    const gen = (make: () => Tensor): Tensor => {
      const w = make();
      this.generators.set(w, make);
      return w;
    };
    const layers: LayerWeights[] = T.layers.map((l, i) => {
      const w: { -readonly [K in keyof LayerWeights]: LayerWeights[K] } = {
        inputNorm: P(`layers.${i}.input_layernorm`),
        postNorm: P(`layers.${i}.post_attention_layernorm`),
        qW: gen(() => matmul(l.qW, P(projName(i, "q")))), // (H·dh, d)
        kW: gen(() => matmul(l.kW, P(projName(i, "k")))), // (Hkv·dh, d)
        vW: gen(() => matmul(l.vW, P(projName(i, "v")))), // (Hkv·dh, d)
        oW: gen(() => matmul(P(projName(i, "o")), l.oW, { transA: true })), // (d, H·dh)
        gateW: gen(() => matmul(l.gateW, P(projName(i, "gate")))), // (F, d)
        upW: gen(() => matmul(l.upW, P(projName(i, "up")))), // (F, d)
        downW: gen(() => matmul(P(projName(i, "down")), l.downW, { transA: true })), // (d, F)
      };
      if (l.qB !== undefined) w.qB = l.qB;
      if (l.kB !== undefined) w.kB = l.kB;
      if (l.vB !== undefined) w.vB = l.vB;
      if (l.oB !== undefined) {
        // A Llama o_proj bias lives in D; the student's is P_oᵀ b_o (what the folded o_proj must add).
        w.oB = matmul(l.oB, P(projName(i, "o"))); // (d)
      }
      return w;
    });
    return { layers, finalNorm: P("norm") };
  }

  /**
   * Frees layer i's generated matrices of `w` (from studentWeights) until the backward pass needs them again:
   * tensor-core's `evict`, which recomputes each from its teacher matrix and projection (the same gemm, so the
   * same values) while its matmul's VJP runs, then frees it again. The step then holds one layer's generated
   * weights at a time instead of all of them; the price is one more gemm per matrix in the backward.
   */
  evictLayer(w: ForwardWeights, i: number): void {
    const l = w.layers[i]!;
    for (const t of [l.qW, l.kW, l.vW, l.oW, l.gateW, l.upW, l.downW]) {
      const make = this.generators.get(t);
      if (make !== undefined && !t.disposed) evict(t, make);
    }
  }

  /** Frees those of `tensors` (from studentWeights) that were generated: not the trainable tensors or the teacher's. */
  disposeGenerated(tensors: Iterable<Tensor>): void {
    const own = new Set<Tensor>([...Object.values(this.params), ...weightTensors(this.teacher)]);
    for (const t of tensors) if (!own.has(t)) t.dispose();
  }

  /**
   * Materialises the student (§1.7) as a plain nn CausalLM whose logits equal the training graph's:
   * hidden_size d, explicit head_dim, the student eps, tied when the student head is its embedding.
   */
  async fold(): Promise<CausalLM> {
    const model = new CausalLM(this.studentConfig, { dtype: this.dtype, init: "zeros" });
    // The student's weights, computed on the active backend; their values are read (asynchronously: the
    // gpu backend's webgpu mode reads no other way) and copied into the plain model.
    const pairs: Array<[Tensor, Tensor]> = [];
    const w = noGrad(() => this.studentWeights());
    const dst = model.weights();
    pairs.push([dst.embed, w.embed], [dst.finalNorm, w.finalNorm]);
    if (!this.studentTied) pairs.push([dst.lmHead, w.lmHead]);
    w.layers.forEach((l, i) => {
      const o = dst.layers[i]!;
      for (const k of ["inputNorm", "postNorm", "qW", "qB", "kW", "kB", "vW", "vB", "oW", "oB", "gateW", "upW", "downW"] as const) {
        const from = l[k], to = o[k];
        if ((from === undefined) !== (to === undefined))
          throw new Error(`fold: layer ${i} ${k} is ${from === undefined ? "absent" : "present"} in the student but not in the folded model`);
        if (from !== undefined && to !== undefined) pairs.push([to, from]);
      }
    });
    await Promise.all(pairs.map(([, from]) => from.toHostAsync()));
    for (const [to, from] of pairs) to.buf.set(from.buf);
    // The generated weights go back to the buffer pool now, not when the garbage collector finds them (the
    // folded model beside them at the end of a run: 392 MB more at the Qwen2.5-0.5B shape's 4 layers, d = 448).
    // Those that are the trainable or teacher tensors themselves (the student's gains) stay.
    this.disposeGenerated(pairs.map(([, from]) => from));
    model.freeze();
    return model;
  }
}

/** An identity-like projection set for tests and sanity checks: P = I (d = D), gains = the teacher's. */
export function identityValues(p: Projections): Record<string, Tensor> {
  const D = p.teacherConfig.hidden_size;
  if (p.hiddenSize !== D) throw new RangeError(`identityValues: needs d = D (${D}), got d = ${p.hiddenSize}`);
  const eye = new Float64Array(D * D);
  for (let i = 0; i < D; i++) eye[i * D + i] = 1;
  const out: Record<string, Tensor> = {};
  for (const name of p.names()) {
    if (p.params[name]!.rank === 2) out[name] = tensor(eye, [D, D], { dtype: p.dtype });
  }
  p.teacher.layers.forEach((l, i) => {
    out[`layers.${i}.input_layernorm`] = l.inputNorm;
    out[`layers.${i}.post_attention_layernorm`] = l.postNorm;
  });
  out.norm = p.teacher.finalNorm;
  return out;
}
