// The one status line on stderr, for training runs (./progress.ts) and the commands that are not (eval,
// tokenize, tokenizer train, eval-tasks): on a terminal it is redrawn in place (at most ~8 times a second);
// otherwise (a log file, CI, a pipe) a plain line is printed for the first update, then at most every
// `intervalMs` (or when forced), and the last state once at the end. Notes go on lines of their own.

type Stream = NodeJS.WritableStream & { isTTY?: boolean };

export interface StatusLine {
  /** Shows `line` (see above); `force` writes it now. Returns whether it was written (else it is pending). */
  update(line: string, force?: boolean): boolean;
  /** A message on a line of its own (a terminal's status line is cleared first and redrawn by the next update). */
  note(msg: string): void;
  /** Ends the line (terminal) or prints the last state if it was not printed (otherwise). */
  done(): void;
}

export function statusLine(stream: Stream = process.stderr, intervalMs = 10_000): StatusLine {
  const tty = stream.isTTY === true;
  let lastWrite = -Infinity, pending: string | null = null, drawn = false;
  const write = (line: string) => stream.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
  return {
    update(line, force = false) {
      const now = Date.now();
      if (!force && now - lastWrite < (tty ? 120 : intervalMs)) {
        pending = line;
        return false;
      }
      write(line);
      lastWrite = now;
      pending = null;
      drawn = tty;
      return true;
    },
    note(msg) {
      if (drawn) stream.write("\r\x1b[K");
      stream.write(`${msg}\n`);
      drawn = false;
      lastWrite = -Infinity;
    },
    done() {
      if (pending !== null) write(pending);
      if (tty && (drawn || pending !== null)) stream.write("\n");
      pending = null;
      drawn = false;
    },
  };
}
