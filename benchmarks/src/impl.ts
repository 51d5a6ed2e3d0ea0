// The contract between the child runner and an implementation (lrc-ts or TF.js): set up once for a thread
// count, then turn each case into a synchronous, self-cleaning function to time.

import type { BenchCase } from "./cases.js";

export interface Prepared {
  /** One call = one unit of the case's work; must free what it allocates. */
  run: () => void;
  /** Frees the inputs prepared for run. */
  dispose?: () => void;
  /** Shown in the table (e.g. "Adam, no weight decay"). */
  note?: string;
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
