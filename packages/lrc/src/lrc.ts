// LowRankClone for Node: the platform-neutral class of ./clone.ts plus the methods that write and read
// directories and files (the student as an HF model directory, the trainable tensors in our layout and in
// the reference implementation's). In a browser, use the in-memory forms (exportStudentFiles, ...).

import { saveCausalLM } from "@lrc-ts/nn";
import type { SaveOptions } from "@lrc-ts/nn";
import { readSafetensorsFile, writeSafetensorsFile } from "@lrc-ts/tensor-core";
import type { SafetensorsFloatDType } from "@lrc-ts/tensor-core";
import { LowRankClone as LowRankCloneBase } from "./clone.js";
import type { Projections } from "./projection.js";
import { loadReferenceTensors, toReferenceTensors } from "./reference-layout.js";

export type { IdBatch, LowRankCloneOptions } from "./clone.js";

/** Writes the trainable tensors as a reference-layout safetensors file (what R's trainer saves). */
export async function saveReferenceCheckpoint(p: Projections, file: string, opts: { dtype?: SafetensorsFloatDType } = {}): Promise<void> {
  await writeSafetensorsFile(file, toReferenceTensors(p), { format: "pt" }, opts.dtype !== undefined ? { dtype: opts.dtype } : {});
}

/** Loads a reference-layout safetensors file into the clone's trainable tensors (see loadReferenceTensors). */
export async function loadReferenceCheckpoint(p: Projections, file: string): Promise<void> {
  loadReferenceTensors(p, await readSafetensorsFile(file), file);
}

export class LowRankClone extends LowRankCloneBase {
  /** Folds and writes an HF model directory (config.json, model.safetensors, tokenizer files; see saveCausalLM's options). */
  async exportStudent(dir: string, opts: SaveOptions = {}): Promise<void> {
    const model = await this.fold();
    try {
      await saveCausalLM(model, dir, opts);
    } finally {
      model.dispose();
    }
  }

  /** Writes the trainable tensors (our names) as safetensors. */
  async saveProjections(file: string): Promise<void> {
    await Promise.all(Object.values(this.params).map((t) => t.toHostAsync()));
    const { tensors, metadata } = this.projectionTensors();
    await writeSafetensorsFile(file, tensors, metadata);
  }

  /** Reads trainable tensors written by saveProjections (names and shapes checked). */
  async loadProjections(file: string): Promise<void> {
    this.loadProjectionsFrom(await readSafetensorsFile(file), file);
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
