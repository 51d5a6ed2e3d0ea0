// The training progress line on stderr: step, the main losses, tokens/s and ETA, drawn by the one status
// line (./status-line.ts): on a terminal redrawn in place (at most ~8 times a second); otherwise a plain line
// about every 5% of the run (and at least 5 s apart), so logs stay readable.

import { clock } from "../clock.js";
import { statusLine } from "./status-line.js";
import type { StatusLine } from "./status-line.js";

export interface ProgressOptions {
  readonly enabled: boolean;
  readonly total: number;
  readonly label: string;
  /** Where to write (default process.stderr). */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

function num(v: number | undefined): string {
  if (v === undefined) return "-";
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toFixed(4);
}

export class Progress {
  private readonly status: StatusLine | null;
  private readonly tty: boolean;
  private lastStepPrinted = -1;

  constructor(readonly opts: ProgressOptions) {
    const stream = opts.stream ?? process.stderr;
    this.tty = stream.isTTY === true;
    this.status = opts.enabled ? statusLine(stream, 5000) : null;
  }

  /** One line describing the state of the run. */
  line(step: number, losses: Record<string, number>, tokensPerSecond: number, etaSeconds: number): string {
    const { total, label } = this.opts;
    const frac = Math.min(1, step / total);
    const width = 20;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, "-");
    const parts = [`loss ${num(losses.total)}`];
    for (const k of ["ce", "kl", "clone"]) if (losses[k] !== undefined) parts.push(`${k} ${num(losses[k])}`);
    return `${label} [${bar}] ${step}/${total}  ${parts.join("  ")}  ${Math.round(tokensPerSecond)} tok/s  ETA ${clock(etaSeconds)}`;
  }

  update(step: number, losses: Record<string, number>, tokensPerSecond: number, etaSeconds: number): void {
    if (this.status === null) return;
    const last = step >= this.opts.total;
    // Without a terminal: the first and the last step, and about every 5% of the run in between (the status line keeps them 5 s apart).
    if (!this.tty && !(step === 1 || last || step - this.lastStepPrinted >= Math.max(1, Math.floor(this.opts.total / 20)))) return;
    if (this.status.update(this.line(step, losses, tokensPerSecond, etaSeconds), last || step === 1)) this.lastStepPrinted = step;
  }

  /** A message on its own line (the bar is redrawn by the next update). */
  note(msg: string): void {
    this.status?.note(msg);
  }

  done(): void {
    this.status?.done();
  }
}
