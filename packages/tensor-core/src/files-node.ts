// File-system helpers every package shares (Node only): errors that name the file, `mkdir -p`, and the one
// way to write a file or a directory so that a crash never leaves it half-written: into a temporary name
// beside the target, then a rename over it. Used by safetensors, nn's model directories, data's
// tokenizer.json / manifest / shards, and lrc's checkpoints, run files and exports.

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

/**
 * An Error for a failed file-system call on `file`: "<file>: <what>: <CODE: description>" (Node's own messages
 * of write/fsync calls name no path).
 */
export function fileSystemError(file: string, what: string, e: unknown): Error {
  const msg = e instanceof Error ? e.message.replace(/, \w+( '.*')?$/, "") : String(e);
  return new Error(`${file}: ${what}: ${msg}`);
}

/**
 * `mkdir -p` that names the directory in every error and never loops: the missing components are created
 * one by one below the deepest existing ancestor (Node's recursive mkdir can spin forever under /proc).
 */
export function makeDirectory(dir: string): void {
  const missing: string[] = [];
  for (let p = path.resolve(dir); ; ) {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw fileSystemError(p, "cannot create directory", e);
    }
    if (st !== null) {
      if (!st.isDirectory()) throw new Error(p === path.resolve(dir) ? `${dir}: exists and is not a directory` : `${p}: not a directory, so ${dir} cannot be created in it`);
      break;
    }
    missing.push(p);
    const up = path.dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw fileSystemError(d, "cannot create directory", e);
    }
  }
}

export interface AtomicWriteOptions {
  /** fsync the written file and the directory entry before returning (default false). */
  readonly fsync?: boolean;
  /**
   * The error to throw for a failure `e`. Default: Node's system errors (which name no path) become
   * "<target>: cannot write: ..."; other errors (the caller's own, from `write`) pass unchanged.
   */
  readonly error?: (e: unknown) => Error;
}

/**
 * The temporary name beside `target`: `.<name>.tmp-<pid>-<random>`. A dot name, so directory listings that
 * look for data files skip it; data's shard writer recognises and clears stale ones.
 */
export function tempNameFor(target: string): string {
  const abs = path.resolve(target);
  return path.join(path.dirname(abs), `.${path.basename(abs)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
}

function failure(target: string, e: unknown, opts: AtomicWriteOptions): Error {
  if (opts.error !== undefined) return opts.error(e);
  return (e as NodeJS.ErrnoException | null)?.code !== undefined ? fileSystemError(target, "cannot write", e) : (e as Error);
}

function fsyncPath(p: string): void {
  // Best effort for directories: some platforms (Windows) cannot open them; the rename already happened.
  let fd: number | null = null;
  try {
    fd = fs.openSync(p, "r");
    fs.fsyncSync(fd);
  } catch {
    // a failed directory fsync only weakens crash durability
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/**
 * Writes `file` through a temporary name in its directory and a rename. `body` is the contents, or a function
 * that writes the temporary file itself (streamed writes). A failure removes the temporary file and names `file`.
 */
export function writeFileAtomic(file: string, body: string | Uint8Array | ((tmp: string) => void), opts: AtomicWriteOptions = {}): void {
  const tmp = tempNameFor(file);
  try {
    if (typeof body === "function") body(tmp);
    else fs.writeFileSync(tmp, body);
    if (opts.fsync) fsyncFile(tmp);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw failure(file, e, opts);
  }
  if (opts.fsync) fsyncPath(path.dirname(path.resolve(file)));
}

/** writeFileAtomic with an asynchronous `write` of the temporary file. */
export async function writeFileAtomicAsync(file: string, write: (tmp: string) => Promise<void>, opts: AtomicWriteOptions = {}): Promise<void> {
  const tmp = tempNameFor(file);
  try {
    await write(tmp);
    if (opts.fsync) fsyncFile(tmp);
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw failure(file, e, opts);
  }
  if (opts.fsync) fsyncPath(path.dirname(path.resolve(file)));
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A file written over many calls (data's shards): see openFileAtomic. */
export interface AtomicFile {
  /** The open temporary file beside the target. */
  readonly fd: number;
  /** fsyncs and closes the temporary file and renames it over the target (errors name it). */
  commit(): void;
  /** Closes and removes the temporary file. */
  abort(): void;
}

/** Opens a temporary file beside `file` for writes spread over many calls; commit() puts it in place whole. */
export function openFileAtomic(file: string): AtomicFile {
  const tmp = tempNameFor(file);
  let fd: number;
  try {
    fd = fs.openSync(tmp, "wx");
  } catch (e) {
    throw fileSystemError(file, "cannot write", e);
  }
  let open = true;
  const close = () => {
    if (open) fs.closeSync(fd);
    open = false;
  };
  return {
    fd,
    commit() {
      try {
        fs.fsyncSync(fd);
        close();
        fs.renameSync(tmp, file);
      } catch (e) {
        close();
        fs.rmSync(tmp, { force: true });
        throw fileSystemError(file, "cannot write", e);
      }
      fsyncPath(path.dirname(path.resolve(file)));
    },
    abort() {
      close();
      fs.rmSync(tmp, { force: true });
    },
  };
}

/**
 * Writes the directory `dir` whole: `fill` writes into a fresh temporary directory beside it, which is then
 * renamed over `dir` (an existing directory is moved aside first and removed after). The parent is created
 * if missing; a failure removes the temporary directory and names `dir` (see AtomicWriteOptions.error).
 */
export function writeDirAtomic(dir: string, fill: (tmp: string) => void, opts: AtomicWriteOptions = {}): void {
  const tmp = tempDirFor(dir);
  try {
    fill(tmp);
    commitDir(tmp, dir, opts);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw failure(dir, e, opts);
  }
}

/** writeDirAtomic with an asynchronous `fill`. */
export async function writeDirAtomicAsync(dir: string, fill: (tmp: string) => Promise<void>, opts: AtomicWriteOptions = {}): Promise<void> {
  const tmp = tempDirFor(dir);
  try {
    await fill(tmp);
    commitDir(tmp, dir, opts);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw failure(dir, e, opts);
  }
}

function tempDirFor(dir: string): string {
  makeDirectory(path.dirname(path.resolve(dir)));
  const tmp = tempNameFor(dir);
  try {
    fs.mkdirSync(tmp);
  } catch (e) {
    throw fileSystemError(tmp, "cannot create directory", e);
  }
  return tmp;
}

function commitDir(tmp: string, dir: string, opts: AtomicWriteOptions): void {
  const target = path.resolve(dir);
  if (opts.fsync) fsyncPath(tmp);
  if (fs.existsSync(target)) {
    const old = `${tmp}.old`;
    fs.renameSync(target, old);
    fs.renameSync(tmp, target);
    fs.rmSync(old, { recursive: true, force: true });
  } else fs.renameSync(tmp, target);
  if (opts.fsync) fsyncPath(path.dirname(target));
}
