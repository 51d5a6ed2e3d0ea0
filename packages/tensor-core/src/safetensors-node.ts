/**
 * safetensors files on disk (Node only: node:fs). Reading loads the file into one Buffer, sized from
 * fstat and filled in chunks (so files over readFile's 2 GiB limit work), and parses views over it.
 * Writing streams the header and then each tensor's encoded bytes to a temporary file in the target's
 * directory, fsyncs it and renames it over the target (./files-node.ts), so a crash never leaves a half-written file.
 */

import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import {
  SafetensorsError,
  parseSafetensors,
  planSafetensors,
  type SafetensorsFile,
  type SafetensorsTensorMap,
  type SerializeOptions,
} from "./safetensors.js";
import { writeFileAtomic, writeFileAtomicAsync } from "./files-node.js";

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
  writeFileAtomic(
    file,
    (tmp) => {
      const fd = fs.openSync(tmp, "wx");
      try {
        writeAllSync(fd, plan.head);
        for (let i = 0; i < plan.tensors.length; i++) writeAllSync(fd, plan.encode(i));
      } finally {
        fs.closeSync(fd);
      }
    },
    { fsync: true, error: (e) => (e instanceof SafetensorsError ? e : ioError(file, "cannot write", e)) },
  );
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
  await writeFileAtomicAsync(
    file,
    async (tmp) => {
      const fh = await fsp.open(tmp, "wx");
      try {
        await writeAll(fh, plan.head);
        for (let i = 0; i < plan.tensors.length; i++) await writeAll(fh, plan.encode(i));
      } finally {
        await fh.close();
      }
    },
    { fsync: true, error: (e) => (e instanceof SafetensorsError ? e : ioError(file, "cannot write", e)) },
  );
}

async function writeAll(fh: fsp.FileHandle, bytes: Uint8Array): Promise<void> {
  let pos = 0;
  while (pos < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, pos, Math.min(CHUNK, bytes.length - pos));
    if (bytesWritten === 0) throw new Error("the file takes no more bytes");
    pos += bytesWritten;
  }
}
