// Timing: one tinybench Bench per case, sized from a first (cold) call so that a 0.1 ms kernel gets
// thousands of samples and a 30 s TF.js step gets one, within a per-case time budget.

import { Bench } from "tinybench";
import type { Suite } from "./cases.js";

export interface Measurement {
  medianMs: number;
  meanMs: number;
  minMs: number;
  /** Relative margin of error of the mean (95%), in percent. */
  rmePct: number;
  samples: number;
}

export interface MeasureOptions {
  /** Time budget for the measured phase, in ms (tinybench `time`). */
  timeMs: number;
  /** Minimum measured iterations, lowered for slow calls so that their samples fit in maxTotalMs. */
  minIterations: number;
  /** Cap on the time the minimum iterations may take (never fewer than one sample). */
  maxTotalMs: number;
}

/**
 * Quick mode shortens the budget; the full run uses one second per case. End-to-end steps (the headline
 * tokens/s) get at least 5 samples when they fit in 40 s.
 */
export function measureOptions(quick: boolean, suite: Suite): MeasureOptions {
  if (quick) return { timeMs: 250, minIterations: 2, maxTotalMs: 5000 };
  return suite === "e2e" ? { timeMs: 1000, minIterations: 5, maxTotalMs: 40_000 } : { timeMs: 1000, minIterations: 3, maxTotalMs: 6000 };
}

/**
 * Times fn (self-contained: it must release what it allocates; synchronous, or returning a promise that
 * resolves when its work is done) with tinybench. The first call is untimed and doubles as JIT warm-up and
 * cost estimate; tinybench's own warm-up is skipped for calls slower than 300 ms. A function that returned a
 * promise on that call is timed by tinybench's async runner (each call awaited), any other by its sync one.
 */
export async function measure(fn: () => void | Promise<void>, opts: MeasureOptions): Promise<Measurement> {
  const t0 = performance.now();
  const first = fn();
  const isAsync = first instanceof Promise;
  if (isAsync) await first;
  const firstMs = performance.now() - t0;
  const slow = firstMs > 300;
  // Multi-second calls (TF.js training steps) get fewer samples so a full run stays within tens of minutes.
  const iterations = Math.max(1, Math.min(opts.minIterations, Math.floor(opts.maxTotalMs / Math.max(firstMs, 1e-3))));
  const bench = new Bench({
    time: opts.timeMs,
    iterations,
    warmup: !slow,
    warmupIterations: firstMs > 20 ? 1 : 5,
    warmupTime: Math.min(200, opts.timeMs / 4),
    throws: true,
  });
  bench.add("case", fn);
  const [task] = isAsync ? await bench.run() : bench.runSync();
  const result = task?.result;
  if (result === undefined || (result.state !== "completed" && result.state !== "aborted-with-statistics"))
    throw new Error(`harness: tinybench did not complete (state ${result?.state ?? "none"})`);
  const lat = result.latency;
  return { medianMs: lat.p50, meanMs: lat.mean, minMs: lat.min, rmePct: lat.rme, samples: lat.samplesCount };
}
