// The one error type of @lrc-ts/data. Every message starts with the file it is about, so a CLI can print
// it as-is ("<file>: <what is wrong>") and a caller can tell bad data from a bug by `instanceof DataError`.

/** What kind of problem a DataError reports; stable strings that tests and callers can match on. */
export type DataErrorCode =
  | "io"
  | "bad-magic"
  | "bad-version"
  | "bad-dtype"
  | "bad-header"
  | "truncated"
  | "checksum"
  | "token-range"
  | "manifest"
  | "manifest-mismatch"
  | "missing-shard"
  | "tokenizer-mismatch"
  | "tokenizer"
  | "input"
  | "state";

export class DataError extends Error {
  override name = "DataError";
  /** The file (or directory) the problem is in. */
  readonly file: string;
  readonly code: DataErrorCode;

  constructor(file: string, code: DataErrorCode, message: string) {
    super(`${file}: ${message}`);
    this.file = file;
    this.code = code;
  }
}
