// Messages between the page (web/main.ts) and its training worker (web/worker.ts). Files travel as
// [name, bytes] pairs, copied by structured clone.

import type { SessionInfo, SessionOptions, StepReport } from "./session.js";

/**
 * "auto": the native WebGPU backend (WGSL kernels) on a hardware WebGPU adapter, else GPU.js on WebGL2 when it
 * is hardware, else the cpu backend. "native": the native WebGPU backend; "webgpu", "gl", "webasm": GPU.js in
 * that mode; "cpu": the cpu kernels (all forced, software or not).
 */
export type BackendChoice = "auto" | "native" | "webgpu" | "gl" | "webasm" | "cpu";

export type ToWorker =
  | {
      readonly type: "start";
      readonly teacher: ReadonlyArray<readonly [string, Uint8Array]>;
      readonly corpus: string;
      readonly options: SessionOptions;
      readonly backend: BackendChoice;
      readonly prompt: string;
      /** Sample from the student every N steps (and at the end). */
      readonly sampleEvery: number;
      /** Evaluate on the held-out tenth every N steps (and at the end). */
      readonly evalEvery: number;
    }
  | { readonly type: "stop" };

export interface BackendReportMsg {
  /** tensor-core's description of what runs, e.g. "gpu: GPU.js gl (WebGL2Kernel)". */
  readonly description: string;
  /** The registered backend name ("cpu", "gpu", "webgpu"). */
  readonly name: string;
  readonly mode: string | null;
  /** The WebGL2 renderer the worker sees (e.g. "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device ...))"), or null. */
  readonly renderer: string | null;
  /** Why faster choices were not used. */
  readonly notes: readonly string[];
  readonly seconds: number;
}

export type FromWorker =
  | { readonly type: "status"; readonly text: string }
  | { readonly type: "backend"; readonly backend: BackendReportMsg }
  | { readonly type: "ready"; readonly info: SessionInfo; readonly teacherSample: string; readonly seconds: number }
  | { readonly type: "step"; readonly report: StepReport }
  | { readonly type: "eval"; readonly step: number; readonly loss: number; readonly teacherLoss: number | null }
  | { readonly type: "sample"; readonly step: number; readonly text: string }
  | { readonly type: "done"; readonly step: number; readonly stopped: boolean; readonly files: ReadonlyArray<readonly [string, Uint8Array]>; readonly seconds: number }
  | { readonly type: "error"; readonly message: string };

/** The page's state, kept in `window.lrcDemo` for the end-to-end test (web/main.ts writes it, e2e/run.ts reads it). */
export interface DemoState {
  phase: "idle" | "loading" | "running" | "done" | "error";
  backend: BackendReportMsg | null;
  info: SessionInfo | null;
  steps: StepReport[];
  evals: Array<{ step: number; loss: number; teacherLoss: number | null }>;
  samples: Array<{ step: number; text: string }>;
  teacherSample: string | null;
  downloads: string[];
  error: string | null;
  seconds: number | null;
}
