// @lrc-ts/lrc, platform-neutral entry point: Low-Rank Clone (projections, the named loss, fold, the student
// and the trainable tensors as in-memory files), the tasks, and TrainerCore (one optimizer step at a time,
// evaluation) over tokens in memory, plus the SVG loss plot. Bundlers that set the "browser" condition
// resolve the package here; Node resolves ./index.ts, which adds directories and files (exportStudent,
// the checkpointing Trainer, metrics.jsonl, distill/pretrain, the CLI's pieces). Nothing reachable from here
// imports a Node module.

export { LowRankClone } from "./clone.js";
export type { LowRankCloneOptions, IdBatch } from "./clone.js";
export { Projections, MATRICES, projName, studentConfig, teacherParts, weightTensors, identityValues } from "./projection.js";
export type { MatrixName, ProjectionOptions, ProjectionParams, Teacher } from "./projection.js";
export { lrcLoss, layerCloneTerms, resolveLossOptions } from "./losses.js";
export type { AttnOutForm, LossOptions, LrcLoss, ResolvedLossOptions, TokenBatch } from "./losses.js";
export {
  referenceLayout, toReferenceTensors, loadReferenceTensors, referenceMetadata, readReferenceSettings, inspectReferenceTensors, isReferenceProjectionName,
} from "./reference-layout.js";
export type { ReferenceLayoutShape, ReferenceSettings, ReferenceTensorSource } from "./reference-layout.js";
export { TrainerCore, NonFiniteError, decayGroups, learningRate, warmupStepsFor } from "./trainer-core.js";
export type { DecayGroups, TrainerCoreConfig, StepMetrics, EvalMetrics } from "./trainer-core.js";
export { LrcTask, LmTask, windowSource, tokenEvalSource } from "./task-core.js";
export type { Batch, BatchSource, EvalSource, TaskLoss, TrainTask, LmTaskOptions } from "./task-core.js";
export { lossPlotSvg } from "./plot.js";
export type { Series, PlotOptions } from "./plot.js";
export { TASKS, TaskRowError, taskDoc, hellaswagPreprocess } from "./eval-tasks.js";
export type { TaskAdapter, TaskMetric } from "./eval-tasks.js";
