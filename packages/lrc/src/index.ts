// @lrc-ts/lrc: Low-Rank Clone (projections, student-weight generation, the named loss, fold + export, the
// reference implementation's checkpoint layout), the one Trainer behind distill / pretrain / plain KD, and
// the library entry points the `lrc` CLI calls.
// Node entry point: the platform-neutral API (./browser.ts: the same classes, LowRankClone, LrcTask, LmTask,
// Trainer) plus the Node file I/O of ./node/ as functions over them (model directories, the training loop with
// checkpoints, distill / pretrain) and the eval-tasks command's library functions.

export * from "./browser.js";
export { exportStudent, exportTrained, saveProjections, loadProjections, saveReferenceCheckpoint, loadReferenceCheckpoint } from "./node/model-files.js";
export { runTraining } from "./node/train-loop.js";
export type { RunTrainingOptions, TrainResult } from "./node/train-loop.js";
export { valSource } from "./node/sources.js";
export { CheckpointError, CheckpointStore, readCheckpointState } from "./node/checkpoint.js";
export type { CheckpointState, TrainerCheckpoint } from "./node/checkpoint.js";
export { exportReference, importReference, openReferenceCheckpoint, REFERENCE_PROJECTIONS_FILE, HANDOFF_NOTE_FILE, REFERENCE_DEFAULT_EPS } from "./node/handoff.js";
export type { ExportReferenceOptions, ExportReferenceResult, ImportReferenceOptions, ImportReferenceResult, ReferenceCheckpoint } from "./node/handoff.js";
export { MetricsLog, readMetrics } from "./node/metrics.js";
export type { MetricsRow, TrainRow, EvalRow } from "./node/metrics.js";
export { lrcVersion } from "./node/version.js";
export { Progress } from "./node/progress.js";
export { distill, pretrain, distillDryRun, pretrainDryRun, exportRun, DRY_RUN_STEPS } from "./node/run.js";
export type { DistillOptions, DryRunResult, ExportRunOptions, ExportRunResult, PretrainOptions, RunResult, TrainRunOptions } from "./node/run.js";
export { loadTasks, scoreTasks, taskFilesInDir, parseTaskArgs, readTaskDocs, prefixToken, paperAverage, formatTable } from "./commands/eval-tasks.js";
export type { TaskFile, TaskScore, LoadedTask, ScoreTasksOptions } from "./commands/eval-tasks.js";
