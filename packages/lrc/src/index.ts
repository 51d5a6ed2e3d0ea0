// @lrc-ts/lrc: Low-Rank Clone (projections, student-weight generation, the named loss, fold + export, the
// reference implementation's checkpoint layout), the one Trainer behind distill / pretrain / plain KD, and
// the library entry points the `lrc` CLI calls.

export { LowRankClone } from "./lrc.js";
export type { LowRankCloneOptions, IdBatch } from "./lrc.js";
export { Projections, MATRICES, projName, studentConfig, teacherParts, weightTensors, identityValues } from "./projection.js";
export type { MatrixName, ProjectionOptions, ProjectionParams, Teacher } from "./projection.js";
export { lrcLoss, layerCloneTerms, resolveLossOptions } from "./losses.js";
export type { AttnOutForm, LossOptions, LrcLoss, ResolvedLossOptions, TokenBatch } from "./losses.js";
export { referenceLayout, toReferenceTensors, saveReferenceCheckpoint, loadReferenceCheckpoint } from "./reference-layout.js";
export { Trainer, NonFiniteError, learningRate, warmupStepsFor } from "./trainer.js";
export type { TrainerConfig, StepMetrics, EvalMetrics, TrainResult } from "./trainer.js";
export { LrcTask, LmTask, readerSource, valSource } from "./task.js";
export type { Batch, BatchSource, EvalSource, TaskLoss, TrainTask, LmTaskOptions } from "./task.js";
export { CheckpointStore } from "./checkpoint.js";
export type { TrainerCheckpoint } from "./checkpoint.js";
export { MetricsLog, readMetrics } from "./metrics.js";
export type { MetricsRow, TrainRow, EvalRow } from "./metrics.js";
export { lossPlotSvg } from "./plot.js";
export type { Series, PlotOptions } from "./plot.js";
export { Progress } from "./progress.js";
export { distill, pretrain } from "./run.js";
export type { DistillOptions, PretrainOptions, RunResult, TrainRunOptions } from "./run.js";
