// Training checkpoints: `<out>/checkpoints/step-00000120/` holding
//   trainable.safetensors   every trainable tensor (F32, the task's names)
//   optimizer.safetensors   AdamW's first and second moments ("m.<name>", "v.<name>")
//   state.json              step, tokens seen, elapsed time, AdamW step, data-reader cursor, RNG state,
//                           the cached teacher val loss, the configuration with its hash, the sha256
//                           and size of each .safetensors file, and (last) the sha256 of its own compact
//                           JSON without that field (version 2)
// Each is written into a temporary directory next to the target, which is then renamed into place
// (tensor-core's writeDirAtomic), and only then is the `latest` pointer replaced (writeFileAtomic), so a
// crash at any moment leaves the last complete checkpoint intact. Loading validates every state.json field and the files' checksums; it tries
// `latest` first, then the complete step directories from the newest down, and resumes from the first that
// verifies, saying which damaged ones it skipped. Old checkpoints beyond `keep` are removed after a new one
// is complete. Version 1 checkpoints (no checksums) still load, with a note.

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileSystemError, makeDirectory, parseSafetensors, writeDirAtomic, writeFileAtomic, writeSafetensorsFileSync } from "@lrc-ts/tensor-core";
import type { RngState, SafetensorsFile, SafetensorsTensorInput, Tensor } from "@lrc-ts/tensor-core";
import { isReaderState, type ReaderState } from "@lrc-ts/data";
import { CheckpointError } from "@lrc-ts/nn";
import type { TrainerState } from "../trainer.js";

/** A checkpoint as loaded: the trainer's state, the wall time spent so far, and where it was read from. */
export interface TrainerCheckpoint extends TrainerState {
  readonly dir: string;
  readonly elapsedSeconds: number;
}

const STEP_DIR = /^step-(\d{8})$/;
const LATEST = "latest";
const STATE = "state.json";
const TRAINABLE = "trainable.safetensors";
const OPTIMIZER = "optimizer.safetensors";

function f32(a: ArrayLike<number>): Float32Array {
  return a instanceof Float32Array ? a : Float32Array.from(a);
}

// A training checkpoint that cannot be used (unreadable, truncated, a field of the wrong type, a checksum
// mismatch) throws nn's CheckpointError, the one class of that name (re-exported here and by @lrc-ts/lrc).
export { CheckpointError };

const VERSION = 2;
const SHA256 = /^[0-9a-f]{64}$/;

/** The validated state.json of a checkpoint (version 1 has no checksums). */
export interface CheckpointState {
  readonly format: "lrc-ts-checkpoint";
  readonly version: 1 | 2;
  readonly step: number;
  readonly tokens: number;
  readonly elapsedSeconds: number;
  readonly optimizerStep: number;
  readonly reader: ReaderState;
  readonly rng: RngState;
  readonly teacherVal: number | null;
  readonly configHash: string;
  readonly config: Record<string, unknown>;
  /** sha256 (hex) and byte size of each weight file, by file name (version 2). */
  readonly files: Readonly<Record<string, { readonly sha256: string; readonly bytes: number }>> | null;
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** The parsed state.json of a checkpoint directory, every field checked; a step directory's name must match its step. */
export function readCheckpointState(dir: string): CheckpointState {
  const stateFile = path.join(dir, STATE);
  function bad(field: string, want: string, got: unknown): never {
    throw new CheckpointError(`${stateFile}: "${field}" must be ${want}, got ${JSON.stringify(got) ?? String(got)}`);
  }
  let s: unknown;
  try {
    s = JSON.parse(fs.readFileSync(stateFile, "utf8"));
  } catch (e) {
    throw new CheckpointError(`${stateFile}: unreadable checkpoint state: ${(e as Error).message}`);
  }
  if (!isObject(s)) throw new CheckpointError(`${stateFile}: not a JSON object`);
  const { format, version, step, tokens, optimizerStep, elapsedSeconds, configHash, config, reader, rng, teacherVal } = s;
  if (format !== "lrc-ts-checkpoint" || (version !== 1 && version !== VERSION))
    throw new CheckpointError(`${stateFile}: not an lrc-ts checkpoint (format/version)`);
  if (!isCount(step)) bad("step", "a non-negative integer", step);
  if (!isCount(tokens)) bad("tokens", "a non-negative integer", tokens);
  if (!isCount(optimizerStep)) bad("optimizerStep", "a non-negative integer", optimizerStep);
  const named = STEP_DIR.exec(path.basename(dir));
  if (named !== null && Number(named[1]) !== step) bad("step", `${Number(named[1])} (the directory's step)`, step);
  if (typeof elapsedSeconds !== "number" || !(elapsedSeconds >= 0) || !Number.isFinite(elapsedSeconds)) bad("elapsedSeconds", "a non-negative number", elapsedSeconds);
  if (typeof configHash !== "string" || configHash === "") bad("configHash", "a string", configHash);
  if (!isObject(config)) bad("config", "an object", config);
  if (!isReaderState(reader)) bad("reader", "a data reader state { version: 1, split, seed, epoch, position, seqLen, batchSize, numWindows }", reader);
  if (!isObject(rng)) bad("rng", "an object", rng);
  if (teacherVal !== null && teacherVal !== undefined && (typeof teacherVal !== "number" || !Number.isFinite(teacherVal)))
    bad("teacherVal", "a finite number or null", teacherVal);
  const { s: words, spare } = rng;
  if (!isWords(words) || (spare !== null && typeof spare !== "number")) bad("rng", "{ s: 4 unsigned 32-bit integers, spare: a number or null }", rng);
  let files: CheckpointState["files"] = null;
  if (version === VERSION) {
    if (!isObject(s.files)) bad("files", "an object of checksums", s.files);
    const checked: Record<string, { sha256: string; bytes: number }> = {};
    for (const name of [TRAINABLE, OPTIMIZER]) {
      const e = s.files[name];
      if (!isObject(e) || typeof e.sha256 !== "string" || !SHA256.test(e.sha256) || !isCount(e.bytes))
        bad(`files.${name}`, "{ sha256: 64 hex digits, bytes: an integer }", e);
      checked[name] = { sha256: e.sha256, bytes: e.bytes };
    }
    files = checked;
    const { stateSha256, ...rest } = s;
    if (typeof stateSha256 !== "string" || !SHA256.test(stateSha256)) bad("stateSha256", "64 hex digits", stateSha256);
    const got = createHash("sha256").update(JSON.stringify(rest)).digest("hex");
    if (got !== stateSha256) throw new CheckpointError(`${stateFile}: its content hashes to ${got}, not the "stateSha256" it records: the file was changed or is corrupt`);
  }
  return { format, version, step, tokens, elapsedSeconds, optimizerStep, reader, rng: { s: words, spare }, teacherVal: teacherVal ?? null, configHash, config, files };
}

/** The four state words of an Rng: unsigned 32-bit integers. */
function isWords(x: unknown): x is RngState["s"] {
  return Array.isArray(x) && x.length === 4 && x.every((w) => isCount(w) && w <= 0xffffffff);
}

/** Reads one weight file of a checkpoint, checked against the size and sha256 that state.json records. */
function readVerified(dir: string, name: string, state: CheckpointState): SafetensorsFile {
  const file = path.join(dir, name);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const want = state.files?.[name];
  if (want !== undefined) {
    if (bytes.length !== want.bytes)
      throw new CheckpointError(`${file}: ${bytes.length} bytes, but ${path.join(dir, STATE)} records ${want.bytes} (truncated or replaced)`);
    const got = createHash("sha256").update(bytes).digest("hex");
    if (got !== want.sha256) throw new CheckpointError(`${file}: sha256 ${got} differs from ${want.sha256} recorded in ${path.join(dir, STATE)}: the file is corrupt`);
  }
  try {
    return parseSafetensors(bytes, file);
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
}

/** Size and sha256 of a file just written. */
function fileDigest(file: string): { sha256: string; bytes: number } {
  const b = fs.readFileSync(file);
  return { sha256: createHash("sha256").update(b).digest("hex"), bytes: b.length };
}

/** The trainable tensors of a checkpoint directory (our names, F32), checked against the checksum in its state.json. */
export function readCheckpointTrainable(dir: string, state: CheckpointState = readCheckpointState(dir)): SafetensorsFile {
  return readVerified(dir, TRAINABLE, state);
}

export class CheckpointStore {
  constructor(readonly dir: string, readonly keep = 2) {}

  /** Complete checkpoint directories (with state.json), oldest first. */
  list(): Array<{ name: string; step: number }> {
    if (!fs.existsSync(this.dir)) return [];
    return fs
      .readdirSync(this.dir)
      .map((name) => ({ name, m: STEP_DIR.exec(name) }))
      .filter((e) => e.m !== null && fs.existsSync(path.join(this.dir, e.name, STATE)))
      .map((e) => ({ name: e.name, step: Number(e.m![1]) }))
      .sort((a, b) => a.step - b.step);
  }

  hasAny(): boolean {
    return this.list().length > 0;
  }

  /** The directory `latest` points to, else the highest complete one, else null. */
  latestDir(): string | null {
    const p = path.join(this.dir, LATEST);
    if (fs.existsSync(p)) {
      const name = fs.readFileSync(p, "utf8").trim();
      if (STEP_DIR.test(name) && fs.existsSync(path.join(this.dir, name, STATE))) return path.join(this.dir, name);
    }
    const all = this.list();
    return all.length === 0 ? null : path.join(this.dir, all[all.length - 1]!.name);
  }

  async save(ck: Omit<TrainerCheckpoint, "dir">, names: readonly string[], params: readonly Tensor[]): Promise<string> {
    makeDirectory(this.dir);
    const name = `step-${String(ck.step).padStart(8, "0")}`;
    const final = path.join(this.dir, name);
    writeDirAtomic(
      final,
      (tmp) => {
        const trainable: Array<[string, SafetensorsTensorInput]> = names.map((n, i) => [n, { shape: [...params[i]!.shape], data: f32(params[i]!.buf) }]);
        writeSafetensorsFileSync(path.join(tmp, TRAINABLE), trainable, { format: "lrc-ts-trainable", step: String(ck.step) });
        const opt: Array<[string, SafetensorsTensorInput]> = [];
        names.forEach((n, i) => {
          const shape = [...params[i]!.shape];
          opt.push([`m.${n}`, { shape, data: f32(ck.optimizer.m[i]!) }], [`v.${n}`, { shape, data: f32(ck.optimizer.v[i]!) }]);
        });
        writeSafetensorsFileSync(path.join(tmp, OPTIMIZER), opt, { format: "lrc-ts-adamw", step: String(ck.optimizer.step) });
        const files = { [TRAINABLE]: fileDigest(path.join(tmp, TRAINABLE)), [OPTIMIZER]: fileDigest(path.join(tmp, OPTIMIZER)) };
        const state = {
          format: "lrc-ts-checkpoint", version: VERSION, step: ck.step, tokens: ck.tokens, elapsedSeconds: ck.elapsedSeconds,
          optimizerStep: ck.optimizer.step, reader: ck.reader, rng: ck.rng, teacherVal: ck.teacherVal, configHash: ck.configHash,
          config: ck.config, files,
        };
        // state.json checks itself: the sha256 of its own compact JSON (without this field) comes last.
        const stateSha256 = createHash("sha256").update(JSON.stringify(state)).digest("hex");
        // fsync'd before the directory is renamed into place; a failure is named by the error below.
        writeFileAtomic(path.join(tmp, STATE), `${JSON.stringify({ ...state, stateSha256 }, null, 1)}\n`, { fsync: true, error: (e) => e as Error });
      },
      { error: (e) => ((e as NodeJS.ErrnoException).code !== undefined ? fileSystemError(final, "cannot write the checkpoint", e) : (e as Error)) },
    );
    // Only a complete checkpoint is pointed at.
    writeFileAtomic(path.join(this.dir, LATEST), `${name}\n`);
    for (const old of this.list().slice(0, Math.max(0, this.list().length - this.keep)))
      if (old.name !== name) fs.rmSync(path.join(this.dir, old.name), { recursive: true, force: true });
    return final;
  }

  /**
   * Loads the newest checkpoint that verifies into `params` (in place) and returns its state; null when there
   * is none. `latest` is tried first, then every complete step directory from the newest down; each damaged
   * one skipped is reported through `log`. Throws the newest one's error when none verifies.
   */
  async loadLatest(names: readonly string[], params: readonly Tensor[], log: (line: string) => void = () => {}): Promise<TrainerCheckpoint | null> {
    const first = this.latestDir();
    if (first === null) return null;
    const candidates = [first, ...this.list().reverse().map((e) => path.join(this.dir, e.name)).filter((d) => d !== first)];
    const errors: string[] = [];
    for (const dir of candidates) {
      try {
        const ck = loadCheckpoint(dir, names, params);
        if (errors.length > 0) log(`resuming from ${dir}, the newest complete, verified checkpoint (skipped: ${errors.join("; ")})`);
        if (ck.files === null) log(`note: ${dir} is a version 1 checkpoint without checksums; its weights are not verified`);
        return ck;
      } catch (e) {
        if (!(e instanceof CheckpointError)) throw e;
        errors.push(e.message);
      }
    }
    throw new CheckpointError(`${this.dir}: no checkpoint verifies: ${errors.join("; ")}`);
  }
}

/** Reads one checkpoint directory (state.json validated, weight files checked against their checksums) into `params`. */
function loadCheckpoint(dir: string, names: readonly string[], params: readonly Tensor[]): TrainerCheckpoint & { files: CheckpointState["files"] } {
  const s = readCheckpointState(dir);
  const tr = readVerified(dir, TRAINABLE, s);
  const op = readVerified(dir, OPTIMIZER, s);
  const extra = tr.names().filter((n) => !names.includes(n));
  if (extra.length > 0) throw new Error(`${path.join(dir, TRAINABLE)}: unexpected tensor "${extra[0]}" (a checkpoint of another model?)`);
  // Every tensor is checked before any parameter is overwritten (a failed candidate leaves them as they were).
  names.forEach((n, i) => {
    const p = params[i]!;
    for (const [file, key] of [[tr, n], [op, `m.${n}`], [op, `v.${n}`]] as const) {
      if (!file.has(key)) throw new CheckpointError(`${file.source}: missing tensor "${key}"`);
      const { shape, dtype } = file.info(key);
      if (dtype !== "F32") throw new CheckpointError(`${file.source}: tensor "${key}" has dtype ${dtype}, expected F32`);
      if (shape.join() !== p.shape.join())
        throw new Error(`${file.source}: tensor "${key}" has shape [${shape.join(", ")}], expected [${p.shape.join(", ")}]`);
    }
  });
  const m: Float32Array[] = [], v: Float32Array[] = [];
  names.forEach((n, i) => {
    params[i]!.buf.set(tr.readFloat32(n));
    m.push(op.readFloat32(`m.${n}`));
    v.push(op.readFloat32(`v.${n}`));
  });
  return {
    dir, step: s.step, tokens: s.tokens, elapsedSeconds: s.elapsedSeconds, configHash: s.configHash, config: s.config,
    optimizer: { step: s.optimizerStep, m, v }, reader: s.reader, rng: s.rng, teacherVal: s.teacherVal, files: s.files,
  };
}
