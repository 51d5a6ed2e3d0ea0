// Stopping a long loop (evaluation, generation, scoring) from outside through an AbortSignal. On the cpu
// backend a loop's awaits resolve at once, so the event loop never turns inside it and a listener that would
// abort (a process signal's, a UI event's) could not run: with a signal, each check waits for a timer first.

/** Lets the event loop turn, then says whether `signal` is aborted; false at once without a signal. */
export async function abortedAfterYield(signal: AbortSignal | undefined): Promise<boolean> {
  if (signal === undefined) return false;
  await new Promise<void>((r) => setTimeout(r, 0));
  return signal.aborted;
}
