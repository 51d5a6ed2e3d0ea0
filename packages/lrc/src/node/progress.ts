// The training progress line on stderr: step, the main losses, tokens/s and ETA. On a terminal it is one
// line redrawn in place (at most ~8 times a second); otherwise a plain line about every 5% of the run
// (and at least 5 s apart), so logs stay readable.

import { clock } from "../clock.js";

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
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly tty: boolean;
  private lastDraw = 0;
  private lastStepPrinted = -1;
  private dirty = false;

  constructor(readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
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
    if (!this.opts.enabled) return;
    const now = Date.now();
    const last = step >= this.opts.total;
    if (this.tty) {
      if (!last && now - this.lastDraw < 120) return;
      this.stream.write(`\r${this.line(step, losses, tokensPerSecond, etaSeconds)}\x1b[K`);
      this.dirty = true;
    } else {
      const every = Math.max(1, Math.floor(this.opts.total / 20));
      const due = step === 1 || last || (step - this.lastStepPrinted >= every && now - this.lastDraw >= 5000);
      if (!due) return;
      this.stream.write(`${this.line(step, losses, tokensPerSecond, etaSeconds)}\n`);
      this.lastStepPrinted = step;
    }
    this.lastDraw = now;
  }

  /** A message on its own line (the bar is redrawn by the next update). */
  note(msg: string): void {
    if (!this.opts.enabled) return;
    if (this.tty && this.dirty) this.stream.write("\r\x1b[K");
    this.stream.write(`${msg}\n`);
    this.dirty = false;
    this.lastDraw = 0;
  }

  done(): void {
    if (this.tty && this.dirty) this.stream.write("\n");
    this.dirty = false;
  }
}
