// LowRankClone, platform-neutral: the public object of the method. It owns the frozen teacher, the
// projections and student gains (./projection.ts), computes the named loss (./losses.ts), folds the student
// into a plain nn CausalLM, and gives the student's HF files and the trainable tensors (our layout and the
// reference implementation's, ./reference-layout.ts) as bytes in memory. The same class serves Node and
// browsers: Node's directory and file writers (exportStudent, saveProjections, ...) are functions over it in
// ./node/clone-files.ts.

import type { Batch } from "@lrc-ts/data";
import { serializeCausalLM } from "@lrc-ts/nn";
import type { CausalLM, CausalLMConfig, CausalLMWeights } from "@lrc-ts/nn";
import { memoryLimit, parseSafetensors, serializeSafetensors } from "@lrc-ts/tensor-core";
import type { SafetensorsFile, SafetensorsFloatDType, SafetensorsTensorInput, Tensor } from "@lrc-ts/tensor-core";
import type { LossOptions, LrcLoss, ResolvedLossOptions } from "./losses.js";
import { gramLayers, lrcLoss, resolveLossOptions } from "./losses.js";
import { chooseRecompute } from "./plan.js";
import type { RecomputeChoice, RunShape } from "./plan.js";
import type { ProjectionOptions, ProjectionParams, Teacher } from "./projection.js";
import { Projections, weightTensors } from "./projection.js";
import { loadReferenceTensors, toReferenceTensors } from "./reference-layout.js";

export interface LowRankCloneOptions extends ProjectionOptions, LossOptions {}

export class LowRankClone {
  readonly projections: Projections;
  readonly loss: ResolvedLossOptions;
  /** recomputePlan's decisions by batch shape ("BxT"). */
  private readonly recomputeChoices = new Map<string, RecomputeChoice>();

  constructor(teacher: Teacher, options: LowRankCloneOptions) {
    this.projections = new Projections(teacher, options);
    this.loss = resolveLossOptions(options, this.projections.teacherConfig.num_hidden_layers);
  }

  get teacherConfig(): CausalLMConfig {
    return this.projections.teacherConfig;
  }
  /** The folded student's config. */
  get studentConfig(): CausalLMConfig {
    return this.projections.studentConfig;
  }
  get teacherWeights(): CausalLMWeights {
    return this.projections.teacher;
  }
  /** The trainable tensors by name (live). */
  get params(): ProjectionParams {
    return this.projections.params;
  }
  /** The trainable tensors in a fixed order. */
  parameters(): Tensor[] {
    return Object.values(this.projections.params);
  }
  numTrainable(): number {
    return this.projections.numTrainable();
  }

  /**
   * Runs teacher (no grad) and student (on the tape) on one batch and returns every loss term. `params`
   * substitutes trainable tensors (finite-difference checks).
   */
  forward(batch: Batch, params?: ProjectionParams): LrcLoss {
    const [B, T] = batch.shape;
    const recomputeWeights = this.recomputePlan(B, T).recompute;
    return lrcLoss(this.projections, batch, { ...this.loss, recomputeWeights }, params ?? this.projections.params);
  }

  /**
   * Whether a step on batches of B x T frees each layer's generated weights after its forward and recomputes
   * them for its backward, and why: loss.recomputeWeights when set, else ("auto") from the step's memory
   * estimate against tensor-core's memoryLimit() (plan.ts chooseRecompute). Decided once per shape.
   */
  recomputePlan(batchSize: number, seqLen: number): RecomputeChoice {
    const key = `${batchSize}x${seqLen}`;
    let c = this.recomputeChoices.get(key);
    if (c === undefined) {
      const shape = { ...this.runShape(), batchSize, seqLen };
      c = chooseRecompute(this.loss.recomputeWeights, shape, this.loss.recomputeWeights === "auto" ? memoryLimit() : null);
      this.recomputeChoices.set(key, c);
    }
    return c;
  }

  /** What the memory estimate (plan.ts estimateMemory) needs of this clone's step, but the batch shape. */
  runShape(): Omit<RunShape, "batchSize" | "seqLen"> {
    const teacherBytes = weightTensors(this.projections.teacher).reduce((n, t) => n + t.nbytes, 0);
    return { teacher: this.teacherConfig, teacherBytes, student: this.studentConfig, trainable: this.numTrainable(), generated: true, gramLayers: gramLayers(this.loss).length };
  }

  /** The student's weights generated from the teacher (on the tape when grad mode is on). */
  studentWeights(params?: ProjectionParams): CausalLMWeights {
    return this.projections.studentWeights(params);
  }

  /** The student as a plain CausalLM (hidden_size d, explicit head_dim) with the training graph's logits. */
  fold(): Promise<CausalLM> {
    return this.projections.fold();
  }

  /** Folds the student, runs `fn` on it and disposes of it (the folded weights are fresh tensors). */
  async withStudent<T>(fn: (student: CausalLM) => T | Promise<T>): Promise<T> {
    const model = await this.fold();
    try {
      return await fn(model);
    } finally {
      model.dispose();
    }
  }

  /**
   * Folds the student and returns its HF model files in memory (config.json, model.safetensors, plus the
   * given tokenizer files): what `exportStudent` (./node/clone-files.ts) writes, for a browser download.
   */
  exportStudentFiles(opts: { tokenizerFiles?: ReadonlyMap<string, Uint8Array> } = {}): Promise<Map<string, Uint8Array>> {
    return this.withStudent((model) => serializeCausalLM(model, opts.tokenizerFiles !== undefined ? { tokenizerFiles: opts.tokenizerFiles } : {}));
  }

  /** The trainable tensors (our names, F32) as `saveProjections` writes them, with the file metadata. */
  projectionTensors(): { tensors: Array<readonly [string, SafetensorsTensorInput]>; metadata: Record<string, string> } {
    const tensors = Object.entries(this.params).map(([n, t]) => [n, { shape: [...t.shape], data: Float32Array.from(t.buf) }] as const);
    return { tensors, metadata: { format: "lrc-ts", hidden_size: String(this.projections.hiddenSize) } };
  }

  /** The trainable tensors as safetensors bytes (the file `saveProjections` writes). */
  projectionsFile(): Uint8Array {
    const { tensors, metadata } = this.projectionTensors();
    return serializeSafetensors(tensors, metadata);
  }

  /** Sets the trainable tensors from a parsed safetensors file written by saveProjections (names and shapes checked). */
  loadProjectionsFrom(st: SafetensorsFile, source: string): void {
    const values: Record<string, Float32Array> = {};
    for (const n of st.names()) {
      const want = this.params[n];
      const shape = st.info(n).shape;
      if (want !== undefined && shape.join() !== want.shape.join())
        throw new RangeError(`${source}: tensor "${n}" has shape [${shape.join(", ")}], expected [${want.shape.join(", ")}]`);
      values[n] = st.readFloat32(n);
    }
    this.projections.load(values, source);
  }

  /** Reads trainable tensors from safetensors bytes (see loadProjectionsFrom). */
  loadProjectionsFile(bytes: Uint8Array, source = "<projections>"): void {
    this.loadProjectionsFrom(parseSafetensors(bytes, source), source);
  }

  /** The trainable tensors in the reference implementation's `zoom_*` / `target_*` layout, as safetensors bytes. */
  referenceCheckpointFile(opts: { dtype?: SafetensorsFloatDType } = {}): Uint8Array {
    return serializeSafetensors(toReferenceTensors(this.projections), { format: "pt" }, opts.dtype !== undefined ? { dtype: opts.dtype } : {});
  }

  /** Reads a reference-layout checkpoint from safetensors bytes into the projections. */
  loadReferenceCheckpointFile(bytes: Uint8Array, source = "<reference checkpoint>"): void {
    loadReferenceTensors(this.projections, parseSafetensors(bytes, source), source);
  }
}
