// Result records, the results file format (benchmarks/results/<date>-<machine>.json), and the regression
// check against the last committed results file. The check only ever warns.

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import type { Suite } from "./cases.js";
import type { MachineInfo } from "./machine.js";

export type Impl = "lrc-ts" | "lrc-ts-gpu" | "tfjs-cpu" | "tfjs-wasm";

/**
 * A device implementation's transfers, timed apart from the compute in `medianMs` (medians of their own
 * tinybench runs), and what the device was.
 */
export interface GpuTiming {
  /** The GPU.js mode that ran ("gl", "webasm"). */
  mode: string;
  /** Host -> device copy of the case's inputs, in ms. */
  uploadMs: number;
  /** Device -> host copy of the case's results, in ms. */
  downloadMs: number;
  uploadBytes: number;
  downloadBytes: number;
  /** The device as the run saw it (renderer, driver), e.g. "ANGLE on Mesa swrast_dri.so (llvmpipe)". */
  device: string;
  /** The kernels ran on the CPU (webasm, or a software rasteriser): GPU speed is not what was measured. */
  software: boolean;
}

export interface BenchRecord {
  suite: Suite;
  case: string;
  impl: Impl;
  threads: number;
  medianMs: number;
  meanMs: number;
  minMs: number;
  rmePct: number;
  samples: number;
  gflops?: number;
  tokensPerSec?: number;
  /** Documents scored per second (eval-tasks cases). */
  docsPerSec?: number;
  /** Peak resident set size of the process that ran this case alone (e2e cases), in MiB. */
  peakRssMiB?: number;
  note?: string;
  /** lrc-ts-gpu only: medianMs is the compute; the transfers and the device are here. */
  gpu?: GpuTiming;
}

export interface SkipRecord {
  suite: Suite;
  case: string;
  impl: Impl;
  threads: number;
  reason: string;
}

export interface ResultsFile {
  schema: 1;
  date: string;
  machine: MachineInfo;
  command: string;
  quick: boolean;
  records: BenchRecord[];
  skipped: SkipRecord[];
  notes: string[];
  /** External reference numbers measured on the same machine (e.g. PyTorch), not by this harness. */
  external: ExternalRef[];
}

export interface ExternalRef {
  label: string;
  /** Which of our cases it corresponds to (suite/case name prefix), for the table. */
  comparesTo: string;
  threads: number;
  tokensPerSec: number;
  peakRssMiB?: number;
  source: string;
}

export const recordKey = (r: { suite: string; case: string; impl: string; threads: number }): string =>
  `${r.suite} | ${r.case} | ${r.impl}@${r.threads}t`;

/** A drop of more than this fraction in throughput (1/time) is reported. */
export const REGRESSION_THRESHOLD = 0.2;

export interface Regression {
  key: string;
  baseMs: number;
  newMs: number;
  /** Throughput drop as a fraction: 1 - baseMs / newMs. */
  drop: number;
}

/**
 * Cases whose throughput fell by more than `threshold` against the baseline (matched by suite, case,
 * implementation and threads; cases missing on either side, and gpu cases run in another GPU.js mode or
 * on another device, are ignored).
 */
export function findRegressions(base: readonly BenchRecord[], current: readonly BenchRecord[], threshold = REGRESSION_THRESHOLD): Regression[] {
  const baseByKey = new Map(base.map((r) => [recordKey(r), r] as const));
  const out: Regression[] = [];
  for (const r of current) {
    const b = baseByKey.get(recordKey(r));
    if (b === undefined || !(b.medianMs > 0) || !(r.medianMs > 0)) continue;
    if (b.gpu?.mode !== r.gpu?.mode || b.gpu?.device !== r.gpu?.device) continue;
    const drop = 1 - b.medianMs / r.medianMs;
    if (drop > threshold) out.push({ key: recordKey(r), baseMs: b.medianMs, newMs: r.medianMs, drop });
  }
  return out.sort((a, b) => b.drop - a.drop);
}

/**
 * `next` laid over `prev` (same machine, same day): records and skips of the cases `next` ran replace
 * those in `prev`; everything else in `prev` is kept. The command and date are `next`'s; notes are joined.
 */
export function mergeResults(prev: ResultsFile, next: ResultsFile): ResultsFile {
  const ran = new Set([...next.records, ...next.skipped].map(recordKey));
  const keepOld = <T extends { suite: string; case: string; impl: string; threads: number }>(xs: readonly T[]): T[] => xs.filter((x) => !ran.has(recordKey(x)));
  const external = next.external.length > 0 ? next.external : prev.external;
  return {
    ...next,
    command: `${prev.command}; then ${next.command}`,
    quick: prev.quick || next.quick,
    records: [...keepOld(prev.records), ...next.records],
    skipped: [...keepOld(prev.skipped), ...next.skipped],
    notes: [...new Set([...prev.notes, ...next.notes])],
    external,
  };
}

/** Parses a results file, naming the file and field on failure. */
export function parseResults(text: string, file: string): ResultsFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const o = v as Partial<ResultsFile>;
  if (o === null || typeof o !== "object" || o.schema !== 1) throw new Error(`${file}: field "schema" must be 1`);
  if (!Array.isArray(o.records)) throw new Error(`${file}: field "records" must be an array`);
  for (const [i, r] of o.records.entries()) {
    if (typeof r?.case !== "string" || typeof r.medianMs !== "number" || typeof r.threads !== "number")
      throw new Error(`${file}: records[${i}] needs string "case", number "medianMs" and number "threads"`);
    const g = r.gpu;
    if (g !== undefined && (typeof g?.mode !== "string" || typeof g.uploadMs !== "number" || typeof g.downloadMs !== "number" || typeof g.software !== "boolean"))
      throw new Error(`${file}: records[${i}].gpu needs string "mode", numbers "uploadMs" and "downloadMs" and boolean "software"`);
  }
  if (typeof o.machine?.id !== "string") throw new Error(`${file}: field "machine.id" must be a string`);
  return o as ResultsFile;
}

/** Result files in dir that git tracks (committed or staged), newest name first; [] outside a git checkout. */
function trackedResultFiles(dir: string): string[] {
  try {
    const out = execFileSync("git", ["ls-files", "--", "."], { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return out.split("\n").filter((f) => f.endsWith(".json")).map((f) => path.join(dir, f)).sort().reverse();
  } catch {
    return [];
  }
}

/**
 * The baseline for a regression check: the newest committed results file for the same machine, else the
 * newest committed one at all (flagged as another machine), never the file being written now.
 */
export function findBaseline(dir: string, machineId: string, exclude: string | null): { file: string; results: ResultsFile; sameMachine: boolean } | null {
  if (!existsSync(dir)) return null;
  const tracked = trackedResultFiles(dir).filter((f) => exclude === null || path.resolve(f) !== path.resolve(exclude));
  const known = new Set(readdirSync(dir).map((f) => path.join(dir, f)));
  const parsed: Array<{ file: string; results: ResultsFile }> = [];
  for (const file of tracked) {
    if (!known.has(file)) continue;
    try {
      parsed.push({ file, results: parseResults(readFileSync(file, "utf8"), file) });
    } catch (e) {
      console.warn(`regression check: skipping ${file}: ${(e as Error).message}`);
    }
  }
  const same = parsed.find((p) => p.results.machine.id === machineId);
  if (same !== undefined) return { ...same, sameMachine: true };
  const any = parsed[0];
  return any === undefined ? null : { ...any, sameMachine: false };
}
