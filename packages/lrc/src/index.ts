// @lrc-ts/lrc: Low-Rank Clone (projections, student-weight generation, the named loss, fold + export, the
// reference implementation's checkpoint layout), the one Trainer behind distill / pretrain / plain KD, and
// the library entry points the `lrc` CLI calls.
// Node entry point: the platform-neutral API (./browser.ts) with the Node classes (LowRankClone, LrcTask,
// LmTask with directory export; the checkpointing Trainer) and everything that touches files.

export * from "./browser.js";
export { LowRankClone, saveReferenceCheckpoint, loadReferenceCheckpoint } from "./lrc.js";
export type { LowRankCloneOptions, IdBatch } from "./lrc.js";
export { Trainer } from "./trainer.js";
export type { TrainerConfig, TrainResult } from "./trainer.js";
export { LrcTask, LmTask, readerSource, valSource } from "./task.js";
export type { TrainTask } from "./task.js";
export { CheckpointError, CheckpointStore, readCheckpointState } from "./checkpoint.js";
export type { CheckpointState } from "./checkpoint.js";
export { exportReference, importReference, openReferenceCheckpoint, REFERENCE_PROJECTIONS_FILE, HANDOFF_NOTE_FILE, REFERENCE_DEFAULT_EPS } from "./handoff.js";
export type { ExportReferenceOptions, ExportReferenceResult, ImportReferenceOptions, ImportReferenceResult, ReferenceCheckpoint } from "./handoff.js";
export type { TrainerCheckpoint } from "./checkpoint.js";
export { MetricsLog, readMetrics } from "./metrics.js";
export type { MetricsRow, TrainRow, EvalRow } from "./metrics.js";
export { Progress } from "./progress.js";
export { distill, pretrain } from "./run.js";
export type { DistillOptions, PretrainOptions, RunResult, TrainRunOptions } from "./run.js";
export { loadTasks, scoreTasks, taskFilesInDir, parseTaskArgs, readTaskDocs, prefixToken, paperAverage, formatTable } from "./commands/eval-tasks.js";
export type { TaskFile, TaskScore, LoadedTask, ScoreTasksOptions } from "./commands/eval-tasks.js";
