// Training checkpoints: `<out>/checkpoints/step-00000120/` holding
//   trainable.safetensors   every trainable tensor (F32, the task's names)
//   optimizer.safetensors   AdamW's first and second moments ("m.<name>", "v.<name>")
//   state.json              step, tokens seen, elapsed time, AdamW step, data-reader cursor, RNG state,
//                           the cached teacher val loss, and the configuration with its hash
// Each is written into a temporary directory next to the target, which is then renamed into place, and
// only then is the `latest` pointer replaced (write + rename), so a crash at any moment leaves the last
// complete checkpoint intact. Loading follows `latest`, or the highest complete step directory if the
// pointer is missing or stale. Old checkpoints beyond `keep` are removed after a new one is complete.

import fs from "node:fs";
import path from "node:path";
import { readSafetensorsFileSync, writeSafetensorsFileSync } from "@lrc-ts/tensor-core";
import type { AdamWState, RngState, SafetensorsTensorInput, Tensor } from "@lrc-ts/tensor-core";
import type { ReaderState } from "@lrc-ts/data";

export interface TrainerCheckpoint {
  readonly dir: string;
  readonly step: number;
  readonly tokens: number;
  readonly elapsedSeconds: number;
  readonly configHash: string;
  readonly config: Record<string, unknown>;
  readonly optimizer: AdamWState;
  readonly reader: ReaderState;
  readonly rng: RngState;
  readonly teacherVal: number | null;
}

const STEP_DIR = /^step-(\d{8})$/;
const LATEST = "latest";
const STATE = "state.json";
const TRAINABLE = "trainable.safetensors";
const OPTIMIZER = "optimizer.safetensors";

function f32(a: ArrayLike<number>): Float32Array {
  return a instanceof Float32Array ? a : Float32Array.from(a);
}

/** The parsed state.json of a checkpoint directory (format and version checked). */
export function readCheckpointState(dir: string): Record<string, unknown> {
  const stateFile = path.join(dir, STATE);
  let s: Record<string, unknown>;
  try {
    s = JSON.parse(fs.readFileSync(stateFile, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${stateFile}: unreadable checkpoint state: ${(e as Error).message}`);
  }
  if (s.format !== "lrc-ts-checkpoint" || s.version !== 1) throw new Error(`${stateFile}: not an lrc-ts checkpoint (format/version)`);
  return s;
}

/** The trainable tensors of a checkpoint directory (our names, F32). */
export function checkpointTrainableFile(dir: string): string {
  return path.join(dir, TRAINABLE);
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
    fs.mkdirSync(this.dir, { recursive: true });
    const name = `step-${String(ck.step).padStart(8, "0")}`;
    const final = path.join(this.dir, name);
    const tmp = path.join(this.dir, `.${name}.tmp-${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
    try {
      const trainable: Array<[string, SafetensorsTensorInput]> = names.map((n, i) => [n, { shape: [...params[i]!.shape], data: f32(params[i]!.buf) }]);
      writeSafetensorsFileSync(path.join(tmp, TRAINABLE), trainable, { format: "lrc-ts-trainable", step: String(ck.step) });
      const opt: Array<[string, SafetensorsTensorInput]> = [];
      names.forEach((n, i) => {
        const shape = [...params[i]!.shape];
        opt.push([`m.${n}`, { shape, data: f32(ck.optimizer.m[i]!) }], [`v.${n}`, { shape, data: f32(ck.optimizer.v[i]!) }]);
      });
      writeSafetensorsFileSync(path.join(tmp, OPTIMIZER), opt, { format: "lrc-ts-adamw", step: String(ck.optimizer.step) });
      const state = {
        format: "lrc-ts-checkpoint", version: 1, step: ck.step, tokens: ck.tokens, elapsedSeconds: ck.elapsedSeconds,
        optimizerStep: ck.optimizer.step, reader: ck.reader, rng: ck.rng, teacherVal: ck.teacherVal, configHash: ck.configHash,
        config: ck.config,
      };
      const fd = fs.openSync(path.join(tmp, STATE), "w");
      fs.writeSync(fd, `${JSON.stringify(state, null, 1)}\n`);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      if (fs.existsSync(final)) {
        const old = `${tmp}.old`;
        fs.renameSync(final, old);
        fs.renameSync(tmp, final);
        fs.rmSync(old, { recursive: true, force: true });
      } else fs.renameSync(tmp, final);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    const ptrTmp = path.join(this.dir, `.${LATEST}.tmp-${process.pid}`);
    fs.writeFileSync(ptrTmp, `${name}\n`);
    fs.renameSync(ptrTmp, path.join(this.dir, LATEST));
    for (const old of this.list().slice(0, Math.max(0, this.list().length - this.keep)))
      if (old.name !== name) fs.rmSync(path.join(this.dir, old.name), { recursive: true, force: true });
    return final;
  }

  /** Loads the latest checkpoint into `params` (in place) and returns its state; null when there is none. */
  async loadLatest(names: readonly string[], params: readonly Tensor[]): Promise<TrainerCheckpoint | null> {
    const dir = this.latestDir();
    if (dir === null) return null;
    const s = readCheckpointState(dir);
    const tr = readSafetensorsFileSync(path.join(dir, TRAINABLE));
    const op = readSafetensorsFileSync(path.join(dir, OPTIMIZER));
    const extra = tr.names().filter((n) => !names.includes(n));
    if (extra.length > 0) throw new Error(`${path.join(dir, TRAINABLE)}: unexpected tensor "${extra[0]}" (a checkpoint of another model?)`);
    const m: Float32Array[] = [], v: Float32Array[] = [];
    names.forEach((n, i) => {
      const p = params[i]!;
      for (const [file, key] of [[tr, n], [op, `m.${n}`], [op, `v.${n}`]] as const) {
        if (!file.has(key)) throw new Error(`${file.source}: missing tensor "${key}"`);
        const shape = file.info(key).shape;
        if (shape.join() !== p.shape.join())
          throw new Error(`${file.source}: tensor "${key}" has shape [${shape.join(", ")}], expected [${p.shape.join(", ")}]`);
      }
      p.buf.set(tr.readFloat32(n));
      m.push(op.readFloat32(`m.${n}`));
      v.push(op.readFloat32(`v.${n}`));
    });
    return {
      dir,
      step: s.step as number,
      tokens: s.tokens as number,
      elapsedSeconds: s.elapsedSeconds as number,
      configHash: s.configHash as string,
      config: s.config as Record<string, unknown>,
      optimizer: { step: s.optimizerStep as number, m, v },
      reader: s.reader as ReaderState,
      rng: s.rng as RngState,
      teacherVal: (s.teacherVal as number | null) ?? null,
    };
  }
}
