// Ctrl-C and SIGTERM for the long CLI commands: the first one asks the command to stop at its next safe point
// (between training steps, between eval windows) and say what it did so far; a second one exits at once. A
// JavaScript signal listener runs only when the event loop turns, so the command must yield between its units
// of work (the AbortSignal's users do: see @lrc-ts/nn's evaluate).

import os from "node:os";

export interface Interrupt {
  /** Aborted at the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** The exit code for a run that stopped on it: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM). */
  exitCode(): number;
  /** Removes the listeners (the default actions apply again). */
  dispose(): void;
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** Listens for SIGINT and SIGTERM; `message` is logged at the first (the second exits with 128 + its number). */
export function onInterrupt(message: string, log: (line: string) => void = (l) => console.error(l)): Interrupt {
  const controller = new AbortController();
  let code = 0;
  const listener = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(128 + os.constants.signals[sig]);
    code = 128 + os.constants.signals[sig];
    log(`\n${sig === "SIGINT" ? "interrupt" : sig}: ${message} (Ctrl-C again to exit at once)`);
    controller.abort();
  };
  for (const s of SIGNALS) process.on(s, listener);
  return {
    signal: controller.signal,
    exitCode: () => code,
    dispose: () => {
      for (const s of SIGNALS) process.removeListener(s, listener);
    },
  };
}
