// The contract between the child runner and an implementation (lrc-ts, lrc-ts-gpu or TF.js): set up once
// for a thread count, then turn each case into a self-cleaning function to time (synchronous, or returning a
// promise where the device completes work asynchronously: WebGPU), and, for a device implementation, its
// host <-> device transfers to time apart.

import type { BenchCase } from "./cases.js";

export interface Prepared {
  /** One call = one unit of the case's work (done when it returns, or when its promise resolves); must free what it allocates. */
  run: () => void | Promise<void>;
  /** Frees the inputs prepared for run. */
  dispose?: () => void;
  /** Shown in the table (e.g. "Adam, no weight decay"). */
  note?: string;
  /** Device implementations: `run` is the compute alone (inputs already on the device, results not read). */
  transfers?: Transfers;
}

/** A device implementation's transfers of one case, each timed by its own tinybench run. */
export interface Transfers {
  /** Copies the case's inputs host -> device and waits until the copies are done; frees them again. */
  upload: () => Promise<void>;
  /** Copies the results of one `run` (computed once, kept until dispose) device -> host. */
  download: () => Promise<void>;
  uploadBytes: number;
  downloadBytes: number;
  /** The GPU.js mode, the device as seen by the run, and whether it is software (see results.ts GpuTiming). */
  mode: string;
  device: string;
  software: boolean;
}

export interface Implementation {
  /** Sets the backend up; returns a one-line description of what actually runs (threads, SIMD). */
  init(threads: number): Promise<string>;
  prepare(c: BenchCase): Promise<Prepared>;
}

/** Thrown by prepare when a case cannot run here (missing package, unsupported op); the reason is printed. */
export class SkipCase extends Error {
  override name = "SkipCase";
}
