/**
 * What the calling thread and the pool's workers agree on (worker-pool.ts, worker-main.ts). The control block
 * is a SharedArrayBuffer: Int32 [0] the next work item to claim, [1] workers done, [2] a failure flag, [3] the
 * task generation (a worker sleeps on it), then MESSAGE_CHARS UTF-16 units of the first failure's text.
 */

import type { VectorLayout } from "./rows-runtime.js";

/** Task kinds a worker understands. */
export type TaskKind = "gemm" | "attnFwd" | "attnBwd" | "rows";

/** UTF-16 units of a worker failure's message in the control block. */
export const MESSAGE_CHARS = 2000;
/** Atomics.load polls a worker makes after a task before it sleeps in Atomics.wait (roughly 50-100 us). */
export const SPIN_LOADS = 20000;
/** What a worker stores as the next item after a failure, so every thread stops claiming. */
export const CLAIM_STOP = 0x3fffffff;

/** The worker's `workerData`. */
export interface WorkerData {
  wasm: Uint8Array | null;
  attnWasm: Uint8Array | null;
  vecWasm: Uint8Array | null;
  vecLayout: VectorLayout;
  ctrl: SharedArrayBuffer;
  port: { close(): void };
}
