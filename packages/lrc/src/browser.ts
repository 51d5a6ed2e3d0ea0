// @lrc-ts/lrc, platform-neutral entry point: Low-Rank Clone (projections, the named loss, fold, the student
// and the trainable tensors as in-memory files), the tasks, and the Trainer (one optimizer step at a time,
// evaluation) over tokens in memory, plus the SVG loss plot. Bundlers that set the "browser" condition
// resolve the package here; Node resolves ./index.ts, which exports these same classes and adds the
// functions of ./node/ (model directories, runTraining with checkpoints and metrics.jsonl, distill/pretrain).
// Nothing reachable from here imports a Node module (boundary.test.ts checks).

export { LowRankClone } from "./clone.js";
export type { LowRankCloneOptions } from "./clone.js";
export { Projections, MATRICES, projName, studentConfig, teacherParts, weightTensors, identityValues } from "./projection.js";
export type { MatrixName, ProjectionOptions, ProjectionParams, Teacher } from "./projection.js";
export { teacherInit, initClone, initLine, startLosses, INIT_METHODS } from "./init.js";
export type { CloneInitReport, InitMethod, StartLosses, TeacherInitInfo, TeacherInitOptions } from "./init.js";
export { symmetricEigen } from "./eigen.js";
export type { SymmetricEigen } from "./eigen.js";
export { lrcLoss, layerCloneTerms, resolveLossOptions } from "./losses.js";
export type { AttnOutForm, LossOptions, LrcLoss, ResolvedLossOptions } from "./losses.js";
export type { RecomputeChoice, RecomputeSetting } from "./plan.js";
export {
  referenceLayout, toReferenceTensors, loadReferenceTensors, referenceMetadata, readReferenceSettings, inspectReferenceTensors, isReferenceProjectionName,
} from "./reference-layout.js";
export type { ReferenceLayoutShape, ReferenceSettings, ReferenceTensorSource } from "./reference-layout.js";
export { Trainer, NonFiniteError, decayGroups, learningRate, warmupStepsFor } from "./trainer.js";
export type { DecayGroups, TrainerConfig, TrainerState, StepMetrics, EvalMetrics } from "./trainer.js";
export { LrcTask, LmTask, tokenEvalSource } from "./task.js";
export type { BatchSource, EvalSource, TaskLoss, TrainTask, LmTaskOptions } from "./task.js";
export { lossPlotSvg } from "./plot.js";
export { EtaClock, clock } from "./clock.js";
export type { Series, PlotOptions } from "./plot.js";
export { TASKS, TaskRowError, taskDoc, hellaswagPreprocess } from "./eval-tasks.js";
export type { TaskAdapter, TaskMetric } from "./eval-tasks.js";
