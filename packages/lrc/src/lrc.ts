// LowRankClone: the public object of the method. It owns the frozen teacher, the projections and student
// gains (./projection.ts), computes the named loss (./losses.ts), folds the student into a plain nn
// CausalLM and exports it as an HF directory, and reads/writes the trainable tensors in both our layout
// and the reference implementation's (./reference-layout.ts).

import { saveCausalLM } from "@lrc-ts/nn";
import type { CausalLM, CausalLMConfig, CausalLMWeights } from "@lrc-ts/nn";
import { readSafetensorsFile, tensor, writeSafetensorsFile } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import type { LossOptions, LrcLoss, ResolvedLossOptions } from "./losses.js";
import { lrcLoss, resolveLossOptions } from "./losses.js";
import type { ProjectionOptions, ProjectionParams, Teacher } from "./projection.js";
import { Projections } from "./projection.js";
import { loadReferenceCheckpoint, saveReferenceCheckpoint } from "./reference-layout.js";

export interface LowRankCloneOptions extends ProjectionOptions, LossOptions {}

/** A batch as the data reader gives it: row-major int32 [B, T] ids and next-token targets. */
export interface IdBatch {
  readonly inputs: Int32Array | Tensor;
  readonly targets: Int32Array | Tensor;
  /** [B, T]; required with Int32Array inputs. */
  readonly shape?: readonly [number, number];
}

function asIds(x: Int32Array | Tensor, shape: readonly [number, number] | undefined, what: string): Tensor {
  if (!(x instanceof Int32Array)) return x;
  if (shape === undefined) throw new TypeError(`LowRankClone: ${what} is an Int32Array, so the batch needs a shape [B, T]`);
  return tensor(x, [...shape], { dtype: "int32" });
}

export class LowRankClone {
  readonly projections: Projections;
  readonly loss: ResolvedLossOptions;

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
  forward(batch: IdBatch, params?: ProjectionParams): LrcLoss {
    const inputs = asIds(batch.inputs, batch.shape, "inputs");
    const targets = asIds(batch.targets, batch.shape, "targets");
    return lrcLoss(this.projections, { inputs, targets }, this.loss, params ?? this.projections.params);
  }

  /** The student's weights generated from the teacher (on the tape when grad mode is on). */
  studentWeights(params?: ProjectionParams): CausalLMWeights {
    return this.projections.studentWeights(params);
  }

  /** The student as a plain CausalLM (hidden_size d, explicit head_dim) with the training graph's logits. */
  fold(): CausalLM {
    return this.projections.fold();
  }

  /** Folds and writes an HF model directory (config.json, model.safetensors, tokenizer files). */
  async exportStudent(dir: string, opts: { tokenizerFrom?: string } = {}): Promise<void> {
    const model = this.fold();
    try {
      await saveCausalLM(model, dir, opts.tokenizerFrom !== undefined ? { tokenizerFrom: opts.tokenizerFrom } : {});
    } finally {
      model.dispose();
    }
  }

  /** Writes the trainable tensors (our names) as safetensors. */
  async saveProjections(file: string): Promise<void> {
    const entries = Object.entries(this.params).map(([n, t]) => [n, { shape: [...t.shape], data: Float32Array.from(t.buf) }] as const);
    await writeSafetensorsFile(file, entries, { format: "lrc-ts", hidden_size: String(this.projections.hiddenSize) });
  }

  /** Reads trainable tensors written by saveProjections (names and shapes checked). */
  async loadProjections(file: string): Promise<void> {
    const st = await readSafetensorsFile(file);
    const values: Record<string, Float32Array> = {};
    for (const n of st.names()) {
      const want = this.params[n];
      const shape = st.info(n).shape;
      if (want !== undefined && shape.join() !== want.shape.join())
        throw new RangeError(`${file}: tensor "${n}" has shape [${shape.join(", ")}], expected [${want.shape.join(", ")}]`);
      values[n] = st.readFloat32(n);
    }
    this.projections.load(values, file);
  }

  /** Writes the trainable tensors in the reference implementation's `zoom_*` / `target_*` layout. */
  async saveReferenceCheckpoint(file: string, opts: { dtype?: "F32" | "BF16" | "F16" } = {}): Promise<void> {
    await saveReferenceCheckpoint(this.projections, file, opts);
  }

  /** Reads a reference-layout checkpoint (e.g. one saved by the PyTorch trainer) into the projections. */
  async loadReferenceCheckpoint(file: string): Promise<void> {
    await loadReferenceCheckpoint(this.projections, file);
  }
}
