// An optional op-level profiler: wall time per op, forward and backward, with no hook in the engine.
//
// Forward: `wrap(ns)` returns a copy of an op namespace (e.g. `import * as ops`) whose functions are timed; only
// the outermost wrapped call is timed, so nested calls are not counted twice. Backward: `instrumentTape(root)`
// walks the tape below `root` and replaces every node's VJP with a timed one keyed by the node's op name (the
// tape's own names: "matmul", "rmsNorm", ...). VJPs never nest, so backward times are exclusive; what backprop
// spends outside VJPs (summing fan-out cotangents, the walk itself) is the step total minus their sum. Call
// `instrumentTape` inside the function handed to `valueAndGrad`, on the value it returns.

import type { Node, Vjp } from "./autodiff/tape.js";
import { Tensor } from "./tensor.js";

/** Accumulated time of one op. */
export interface OpStat {
  calls: number;
  ms: number;
}

export class OpProfiler {
  /** Forward time per wrapped function name. */
  readonly forward = new Map<string, OpStat>();
  /** Backward (VJP) time per tape op name. */
  readonly backward = new Map<string, OpStat>();
  private depth = 0;
  private readonly instrumented = new WeakSet<Node>();

  /** A copy of `ns` in which every function is timed under its property name. */
  wrap<T extends object>(ns: T): T {
    const out: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(ns)) {
      if (typeof v !== "function" || /^[A-Z]/.test(name)) {
        out[name] = v;
        continue;
      }
      const fn = v as (...args: unknown[]) => unknown;
      out[name] = (...args: unknown[]): unknown => {
        if (this.depth > 0) return fn(...args);
        this.depth++;
        const t0 = performance.now();
        try {
          return fn(...args);
        } finally {
          this.add(this.forward, name, performance.now() - t0);
          this.depth--;
        }
      };
    }
    return out as T;
  }

  /** Times `fn` as forward op `name` (for work done outside a wrapped namespace). */
  time<R>(name: string, fn: () => R): R {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.add(this.forward, name, performance.now() - t0);
    }
  }

  /** Wraps the VJP of every tape node below root (each node once) with a timer keyed by its op name. */
  instrumentTape(root: Tensor): void {
    const stack: Tensor[] = [root];
    const seen = new Set<Tensor>();
    while (stack.length > 0) {
      const t = stack.pop()!;
      if (seen.has(t)) continue;
      seen.add(t);
      const node = t.node;
      if (node === null) continue;
      if (!this.instrumented.has(node)) {
        const inner: Vjp = node.vjp;
        const op = node.op;
        const timed: Vjp = (dy, into) => {
          const t0 = performance.now();
          try {
            return inner(dy, into);
          } finally {
            this.add(this.backward, op, performance.now() - t0);
          }
        };
        const replaced: Node = { op, inputs: node.inputs, vjp: timed };
        this.instrumented.add(replaced);
        t.node = replaced;
      }
      for (const x of node.inputs) if (x.requiresGrad) stack.push(x);
    }
  }

  private add(table: Map<string, OpStat>, name: string, ms: number): void {
    const s = table.get(name);
    if (s === undefined) table.set(name, { calls: 1, ms });
    else {
      s.calls++;
      s.ms += ms;
    }
  }

  /** Forgets all timings. */
  reset(): void {
    this.forward.clear();
    this.backward.clear();
  }

  /** Total milliseconds of a table. */
  static total(table: Map<string, OpStat>): number {
    let s = 0;
    for (const v of table.values()) s += v.ms;
    return s;
  }

  /**
   * A text table of both directions, slowest first, each time divided by `steps` (per-step milliseconds), with
   * calls per step and the share of `stepMs` when given.
   */
  report(steps = 1, stepMs?: number): string {
    const lines: string[] = [];
    const pct = (ms: number): string => (stepMs === undefined ? "" : `${((100 * ms) / stepMs).toFixed(1).padStart(5)}%`);
    for (const [title, table] of [["forward", this.forward], ["backward (VJPs)", this.backward]] as const) {
      const total = OpProfiler.total(table) / steps;
      lines.push(`${title}: ${total.toFixed(1)} ms/step ${pct(total)}`);
      const rows = [...table.entries()].sort((a, b) => b[1].ms - a[1].ms);
      for (const [name, s] of rows) {
        const ms = s.ms / steps;
        lines.push(`  ${name.padEnd(18)} ${ms.toFixed(2).padStart(9)} ms ${pct(ms)}  ${String(s.calls / steps).padStart(5)} calls`);
      }
    }
    return lines.join("\n");
  }
}
