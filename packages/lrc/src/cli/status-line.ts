// One progress line on stderr for the commands that are not training runs (eval, tokenize, tokenizer train):
// on a terminal it is redrawn in place (at most ~8 times a second); otherwise (a log file, CI, a pipe) a plain
// line is printed for the first update, then at most every `intervalMs`, and the last state once at the end.

export interface StatusLine {
  update(line: string): void;
  /** Ends the line (terminal) or prints the last state if it was not printed (otherwise). */
  done(): void;
}

export function statusLine(stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr, intervalMs = 10_000): StatusLine {
  const tty = stream.isTTY === true;
  let lastWrite = -Infinity, pending: string | null = null, drawn = false;
  return {
    update(line) {
      const now = Date.now();
      if (now - lastWrite < (tty ? 120 : intervalMs)) {
        pending = line;
        return;
      }
      stream.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
      lastWrite = now;
      pending = null;
      drawn = true;
    },
    done() {
      if (pending !== null) stream.write(tty ? `\r${pending}\x1b[K` : `${pending}\n`);
      if (tty && (drawn || pending !== null)) stream.write("\n");
      pending = null;
      drawn = false;
    },
  };
}
