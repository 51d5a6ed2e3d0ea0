// Time for people, platform-neutral: a duration as mm:ss or h:mm:ss (the progress lines' ETA and elapsed
// time) and the ETA of a run.

export function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

/**
 * The remaining time of a run, from the steps after this process's first: the first pays for warm-up (kernel
 * compilation, buffer pools, caches) and made the first estimate several times too long.
 */
export class EtaClock {
  private tFirst = NaN;

  constructor(private readonly startStep: number) {}

  /** Call after each step; seconds left until `total` (NaN, shown as --:--, until two steps have run). */
  after(step: number, total: number, nowMs = Date.now()): number {
    if (step === this.startStep + 1) this.tFirst = nowMs;
    const timed = step - this.startStep - 1;
    return timed > 0 ? ((nowMs - this.tFirst) / 1000 / timed) * (total - step) : NaN;
  }
}
