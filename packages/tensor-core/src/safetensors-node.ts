/**
 * safetensors files on disk (Node only: node:fs). Reading loads the file into one Buffer, sized from
 * fstat and filled in chunks (so files over readFile's 2 GiB limit work), and parses views over it.
 * Writing streams the header and then each tensor's encoded bytes to a temporary file in the target's
 * directory, fsyncs it and renames it over the target, so a crash never leaves a half-written file.
 */

import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import {
  SafetensorsError,
  parseSafetensors,
  planSafetensors,
  type SafetensorsFile,
  type SafetensorsTensorMap,
  type SerializeOptions,
} from "./safetensors.js";

/** Largest single read; keeps each read call well under the platform's per-call limit. */
const CHUNK = 1 << 30;

function ioError(file: string, what: string, e: unknown): SafetensorsError {
  const msg = e instanceof Error ? e.message : String(e);
  return new SafetensorsError(`${file}: ${what}: ${msg}`);
}

/** Read and validate a safetensors file (synchronous). */
export function readSafetensorsFileSync(file: string): SafetensorsFile {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    throw ioError(file, "cannot open", e);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const buf = allocFor(file, size);
    let pos = 0;
    while (pos < size) {
      const n = fs.readSync(fd, buf, pos, Math.min(CHUNK, size - pos), pos);
      if (n === 0) throw new SafetensorsError(`${file}: file shrank while reading (${pos} of ${size} bytes)`);
      pos += n;
    }
    return parseSafetensors(buf, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** Read and validate a safetensors file. */
export async function readSafetensorsFile(file: string): Promise<SafetensorsFile> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, "r");
  } catch (e) {
    throw ioError(file, "cannot open", e);
  }
  try {
    const size = (await fh.stat()).size;
    const buf = allocFor(file, size);
    let pos = 0;
    while (pos < size) {
      const { bytesRead } = await fh.read(buf, pos, Math.min(CHUNK, size - pos), pos);
      if (bytesRead === 0) throw new SafetensorsError(`${file}: file shrank while reading (${pos} of ${size} bytes)`);
      pos += bytesRead;
    }
    return parseSafetensors(buf, file);
  } finally {
    await fh.close();
  }
}

function allocFor(file: string, size: number): Buffer {
  try {
    return Buffer.allocUnsafeSlow(size);
  } catch (e) {
    throw ioError(file, `cannot allocate ${size} bytes to read it`, e);
  }
}

function tempNameFor(file: string): string {
  const dir = path.dirname(path.resolve(file));
  return path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

function fsyncDirSync(dir: string): void {
  // Best effort: some platforms (Windows) cannot open directories.
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // The rename itself already happened; a failed directory fsync only weakens crash durability.
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/**
 * Write tensors to `file` atomically (temp file in the same directory, fsync, rename). See
 * `serializeSafetensors` for layout and dtypes (synchronous).
 */
export function writeSafetensorsFileSync(
  file: string,
  tensors: SafetensorsTensorMap,
  metadata?: Readonly<Record<string, string>>,
  options: SerializeOptions = {},
): void {
  const plan = planSafetensors(tensors, metadata, options);
  const tmp = tempNameFor(file);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, "wx");
    writeAllSync(fd, plan.head);
    for (let i = 0; i < plan.tensors.length; i++) writeAllSync(fd, plan.encode(i));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e instanceof SafetensorsError ? e : ioError(file, "cannot write", e);
  }
  fsyncDirSync(path.dirname(path.resolve(file)));
}

function writeAllSync(fd: number, bytes: Uint8Array): void {
  let pos = 0;
  while (pos < bytes.length) {
    const n = fs.writeSync(fd, bytes, pos, Math.min(CHUNK, bytes.length - pos));
    if (n === 0) throw new Error("the file takes no more bytes");
    pos += n;
  }
}

/** Write tensors to `file` atomically (temp file in the same directory, fsync, rename). */
export async function writeSafetensorsFile(
  file: string,
  tensors: SafetensorsTensorMap,
  metadata?: Readonly<Record<string, string>>,
  options: SerializeOptions = {},
): Promise<void> {
  const plan = planSafetensors(tensors, metadata, options);
  const tmp = tempNameFor(file);
  let fh: fsp.FileHandle | null = null;
  try {
    fh = await fsp.open(tmp, "wx");
    await writeAll(fh, plan.head);
    for (let i = 0; i < plan.tensors.length; i++) await writeAll(fh, plan.encode(i));
    await fh.sync();
    await fh.close();
    fh = null;
    await fsp.rename(tmp, file);
  } catch (e) {
    if (fh !== null) await fh.close();
    await fsp.rm(tmp, { force: true });
    throw e instanceof SafetensorsError ? e : ioError(file, "cannot write", e);
  }
  fsyncDirSync(path.dirname(path.resolve(file)));
}

async function writeAll(fh: fsp.FileHandle, bytes: Uint8Array): Promise<void> {
  let pos = 0;
  while (pos < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, pos, Math.min(CHUNK, bytes.length - pos));
    if (bytesWritten === 0) throw new Error("the file takes no more bytes");
    pos += bytesWritten;
  }
}

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
