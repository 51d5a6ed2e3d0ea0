// What the trainer trains, platform-neutral: a task turns a batch into named loss terms and says which
// tensors are trainable, what to evaluate and what to export (as in-memory HF files). Two tasks share the
// one trainer:
//   LrcTask      Low-Rank Clone (CE + KL + α Σ clone terms), trainable = projections + student gains
//   LmTask       a plain CausalLM from scratch: CE, or CE + KL(τ) from a frozen teacher (plain KD)
// Any WindowBatcher of @lrc-ts/data (a TokenWindowReader over tokens in memory, or Node's ShardReader) is the
// batch source as it is; tokenEvalSource makes a token stream in memory the eval source. The same classes serve Node and
// browsers: ./node/sources.ts adds the shard directory's val split as an eval source, and
// ./node/model-files.ts writes the trained model as a directory through `withTrainedModel` (exportTrained).

import { evaluateBatches, serializeCausalLM } from "@lrc-ts/nn";
import type { CausalLM, LanguageModel } from "@lrc-ts/nn";
import { lmHeadLoss, noGrad } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { tokenWindows } from "@lrc-ts/data";
import type { Batch, ReaderState, TokenArray } from "@lrc-ts/data";
import type { LowRankClone } from "./clone.js";
import { batchIds } from "./losses.js";
import { weightTensors } from "./projection.js";

/** Named scalar tensors; `total` is what backward runs from. */
export interface TaskLoss {
  readonly total: Tensor;
  /** ce, kl, clone and each clone term ("layers.{i}.{m}"), as present. */
  readonly parts: Record<string, Tensor>;
}

export interface TrainTask {
  /** Short label for the progress line ("distill", "pretrain"). */
  readonly label: string;
  /** Trainable tensors by name, in a fixed order. */
  params(): Record<string, Tensor>;
  /**
   * Whether the trainable tensor `name` is kept out of weight decay (biases and norm gains, as HF Trainer;
   * embeddings when pretraining). Absent: every tensor decays.
   */
  noDecay?(name: string): boolean;
  /** The loss of one batch, on the tape. */
  loss(batch: Batch): TaskLoss;
  /** The model to evaluate (its current weights). */
  evalModel(): LanguageModel;
  /**
   * Runs `fn` (one evaluation over several batches) on the model to evaluate, its weights built once for the
   * whole evaluation and freed after (LrcTask: the generated student weights). Absent: `fn(evalModel())`.
   */
  withEvalModel?<T>(fn: (model: LanguageModel) => Promise<T>): Promise<T>;
  /** The teacher, evaluated once for reference. */
  teacherEvalModel?(): LanguageModel | null;
  /**
   * Runs `fn` on the trained model as a plain CausalLM with host copies of its weights (LrcTask folds the
   * student, disposed of afterwards): what an export writes, as files in memory or as a directory.
   */
  withTrainedModel<T>(fn: (model: CausalLM) => T | Promise<T>): Promise<T>;
  /** The trained model's HF files in memory (config.json, model.safetensors, the given tokenizer files). */
  exportFiles(opts?: { tokenizerFiles?: ReadonlyMap<string, Uint8Array> }): Promise<Map<string, Uint8Array>>;
  /** What must match on resume (options that change the math). */
  describe(): Record<string, unknown>;
}

/**
 * Where the trainer's batches come from: any WindowBatcher of @lrc-ts/data as it is (a TokenWindowReader over
 * tokens in memory, Node's ShardReader over shards), or your own.
 */
export interface BatchSource {
  next(): Batch;
  state(): ReaderState;
  restore(s: ReaderState): void;
  /** What must be unchanged on resume (it goes into the config hash). */
  describe(): Record<string, unknown>;
}

export interface EvalSource {
  /** Mean NLL of the model on the held-out windows (async: reads go through itemAsync, which webgpu needs). */
  evaluate(model: LanguageModel): Promise<{ loss: number; tokens: number }>;
}

/** Low-Rank Clone as a training task. */
export class LrcTask implements TrainTask {
  readonly label = "distill";
  constructor(readonly clone: LowRankClone) {}

  params(): Record<string, Tensor> {
    return this.clone.params;
  }

  /** The student's RMSNorm gains; every projection (a matrix, the embedding's and LM head's included) decays. */
  noDecay(name: string): boolean {
    return name === "norm" || name.endsWith("_layernorm");
  }

  loss(batch: Batch): TaskLoss {
    const r = this.clone.forward(batch);
    const parts: Record<string, Tensor> = {};
    if (r.ce !== null) parts.ce = r.ce;
    if (r.kl !== null) parts.kl = r.kl;
    if (r.clone !== null) parts.clone = r.clone;
    Object.assign(parts, r.terms);
    return { total: r.total, parts };
  }

  /** The student with its weights generated from the current projections at each weights() call, under noGrad. */
  evalModel(): LanguageModel {
    const clone = this.clone;
    // Materialised per call (batchNll calls weights() inside its own scope, which frees them after the batch).
    return { config: clone.studentConfig, weights: () => noGrad(() => clone.studentWeights()) };
  }

  /**
   * One evaluation with the student's generated weights (W_T P for every layer, the [V, d] embedding and head)
   * built once under noGrad and reused over every batch, then freed (the teacher's tensors and the trainable ones
   * are not). evalModel() built all of them for each batch, so holding them for the whole evaluation raises no
   * peak, whatever the step's recomputeWeights: only a layer-major evaluation (every batch through layer i
   * before layer i + 1 is built) would hold less.
   */
  async withEvalModel<T>(fn: (model: LanguageModel) => Promise<T>): Promise<T> {
    const clone = this.clone;
    const w = noGrad(() => clone.studentWeights());
    try {
      return await fn({ config: clone.studentConfig, weights: () => w });
    } finally {
      clone.projections.disposeGenerated(weightTensors(w));
    }
  }

  teacherEvalModel(): LanguageModel {
    const w = this.clone.teacherWeights;
    return { config: this.clone.teacherConfig, weights: () => w };
  }

  withTrainedModel<T>(fn: (model: CausalLM) => T | Promise<T>): Promise<T> {
    return this.clone.withStudent(fn);
  }

  exportFiles(opts: { tokenizerFiles?: ReadonlyMap<string, Uint8Array> } = {}): Promise<Map<string, Uint8Array>> {
    return this.clone.exportStudentFiles(opts);
  }

  describe(): Record<string, unknown> {
    const p = this.clone.projections;
    return {
      kind: "lrc", hiddenSize: p.hiddenSize, studentEps: p.studentEps, tieLmHeadProjection: p.tieLmHeadProjection,
      loss: { ...this.clone.loss, logCloneTerms: undefined, recomputeWeights: undefined }, teacher: { ...p.teacherConfig, extra: undefined },
    };
  }
}

export interface LmTaskOptions {
  /** A frozen teacher for plain KD (CE + klWeight · KL_τ). */
  readonly teacher?: CausalLM | null;
  /** KL temperature (default 1 for plain KD). */
  readonly temperature?: number;
  /** Weight of the KL term (default 1). */
  readonly klWeight?: number;
  /** Weight of the CE term (default 1). */
  readonly ceWeight?: number;
}

/** A plain CausalLM trained with CE (pretraining, the from-scratch baseline) or CE + KL (plain KD). */
export class LmTask implements TrainTask {
  readonly label: string;
  readonly teacher: CausalLM | null;
  readonly temperature: number;
  readonly klWeight: number;
  readonly ceWeight: number;

  constructor(readonly model: CausalLM, opts: LmTaskOptions = {}) {
    this.teacher = opts.teacher ?? null;
    this.temperature = opts.temperature ?? 1;
    this.klWeight = opts.klWeight ?? 1;
    this.ceWeight = opts.ceWeight ?? 1;
    this.label = this.teacher === null ? "pretrain" : "kd";
    if (this.teacher !== null) {
      this.teacher.freeze();
      if (this.teacher.config.vocab_size !== model.config.vocab_size)
        throw new RangeError(`KD: teacher vocab_size ${this.teacher.config.vocab_size} differs from the student's ${model.config.vocab_size}`);
    }
    model.unfreeze();
  }

  params(): Record<string, Tensor> {
    return Object.fromEntries(this.model.namedParameters());
  }

  /**
   * Biases, RMSNorm gains (HF Trainer's exclusions) and the token embedding (a lookup table, as GPT-style
   * recipes exclude it; a tied LM head is the same tensor). An untied lm_head decays, as in HF Trainer.
   */
  noDecay(name: string): boolean {
    return name.endsWith(".bias") || /norm\.weight$/.test(name) || name === "model.embed_tokens.weight";
  }

  loss(batch: Batch): TaskLoss {
    const inputs = batchIds(batch, "inputs");
    const ce = this.ceWeight > 0, kd = this.teacher !== null && this.klWeight > 0;
    if (!ce && !kd) throw new RangeError("LmTask: both the CE and the KL weight are 0 (nothing to train on)");
    // The LM head runs fused with its losses (lmHeadLoss): no [B, T, V] logits tensor.
    const hidden = this.model.forward(inputs, { logits: "none" }).hidden;
    const teacher = this.teacher;
    const head = lmHeadLoss(hidden, this.model.weights().lmHead, {
      ...(ce ? { targets: batchIds(batch, "targets"), ceWeight: this.ceWeight } : {}),
      ...(kd ? { teacher: { hidden: noGrad(() => teacher!.forward(inputs, { logits: "none" }).hidden), weight: teacher!.weights().lmHead, temperature: this.temperature }, klWeight: this.klWeight } : {}),
    });
    const parts: Record<string, Tensor> = {};
    if (head.ce !== null) parts.ce = head.ce;
    if (head.kl !== null) parts.kl = head.kl;
    return { total: head.total, parts };
  }

  evalModel(): LanguageModel {
    return this.model;
  }

  teacherEvalModel(): LanguageModel | null {
    return this.teacher;
  }

  /** Reads the model's weights into host copies first (the gpu backend's webgpu mode reads only asynchronously). */
  async withTrainedModel<T>(fn: (model: CausalLM) => T | Promise<T>): Promise<T> {
    await Promise.all(this.model.parameters().map((p) => p.toHostAsync()));
    return fn(this.model);
  }

  exportFiles(opts: { tokenizerFiles?: ReadonlyMap<string, Uint8Array> } = {}): Promise<Map<string, Uint8Array>> {
    return this.withTrainedModel((model) => serializeCausalLM(model, opts.tokenizerFiles !== undefined ? { tokenizerFiles: opts.tokenizerFiles } : {}));
  }

  describe(): Record<string, unknown> {
    return {
      kind: this.label, config: { ...this.model.config, extra: undefined }, temperature: this.temperature, klWeight: this.klWeight,
      ceWeight: this.ceWeight, teacher: this.teacher === null ? null : { ...this.teacher.config, extra: undefined },
    };
  }
}

/** The first `maxBatches` batches of windows of a token stream in memory (in order) as the eval source. */
export function tokenEvalSource(tokens: TokenArray, opts: { seqLen: number; batchSize: number; maxBatches: number }): EvalSource {
  return {
    evaluate: (model) => evaluateBatches(model, tokenWindows(tokens, opts)),
  };
}
