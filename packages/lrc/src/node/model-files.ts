// Model files in Node: a task's trained model and LowRankClone's student as HF model directories, the clone's
// trainable tensors in our layout and in the reference implementation's. Functions over the platform-neutral
// classes (../task.ts, ../clone.ts), whose in-memory forms (exportFiles, exportStudentFiles, projectionsFile,
// referenceCheckpointFile) a browser uses instead.

import { saveCausalLM } from "@lrc-ts/nn";
import type { SaveOptions } from "@lrc-ts/nn";
import { readSafetensorsFile, writeSafetensorsFile } from "@lrc-ts/tensor-core";
import type { SafetensorsFloatDType } from "@lrc-ts/tensor-core";
import type { LowRankClone } from "../clone.js";
import type { TrainTask } from "../task.js";
import { loadReferenceTensors, toReferenceTensors } from "../reference-layout.js";

/** Writes a task's trained model as an HF model directory (tokenizer files copied from opts.tokenizerFrom, config.json overrides, ...). */
export async function exportTrained(task: TrainTask, dir: string, opts: SaveOptions = {}): Promise<void> {
  await task.withTrainedModel((model) => saveCausalLM(model, dir, opts));
}

/** Folds the student and writes it as an HF model directory (config.json, model.safetensors, tokenizer files; see saveCausalLM's options). */
export async function exportStudent(clone: LowRankClone, dir: string, opts: SaveOptions = {}): Promise<void> {
  await clone.withStudent((model) => saveCausalLM(model, dir, opts));
}

/** Writes the trainable tensors (our names, F32) as safetensors: the bytes of clone.projectionsFile(). */
export async function saveProjections(clone: LowRankClone, file: string): Promise<void> {
  await Promise.all(clone.parameters().map((t) => t.toHostAsync()));
  const { tensors, metadata } = clone.projectionTensors();
  await writeSafetensorsFile(file, tensors, metadata);
}

/** Reads trainable tensors written by saveProjections (names and shapes checked). */
export async function loadProjections(clone: LowRankClone, file: string): Promise<void> {
  clone.loadProjectionsFrom(await readSafetensorsFile(file), file);
}

/** Writes the trainable tensors in the reference implementation's `zoom_*` / `target_*` layout (what its trainer saves). */
export async function saveReferenceCheckpoint(clone: LowRankClone, file: string, opts: { dtype?: SafetensorsFloatDType } = {}): Promise<void> {
  await writeSafetensorsFile(file, toReferenceTensors(clone.projections), { format: "pt" }, opts.dtype !== undefined ? { dtype: opts.dtype } : {});
}

/** Reads a reference-layout checkpoint (e.g. one saved by the PyTorch trainer) into the clone's trainable tensors (see loadReferenceTensors). */
export async function loadReferenceCheckpoint(clone: LowRankClone, file: string): Promise<void> {
  loadReferenceTensors(clone.projections, await readSafetensorsFile(file), file);
}
