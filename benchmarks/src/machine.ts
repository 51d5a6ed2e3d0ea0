// A hostname-independent description of the machine a run happened on (cpu model and core count), used in
// result file names and to pick a comparable baseline.

import { readFileSync } from "node:fs";
import * as os from "node:os";

export interface MachineInfo {
  /** File-name-safe id, e.g. "amd-epyc-2c". */
  id: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
}

/** Lower-case, alphanumerics and single dashes only. */
export function sanitize(s: string): string {
  return s.toLowerCase().replace(/\((r|tm)\)/g, "").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
}

function cpuModel(): string {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    if (m?.[1] !== undefined) return m[1].trim();
  } catch {
    // not Linux: fall back to what Node reports
  }
  return os.cpus()[0]?.model.trim() ?? "unknown cpu";
}

export function machineInfo(): MachineInfo {
  const cpu = cpuModel();
  const cores = os.availableParallelism();
  return {
    id: `${sanitize(cpu)}-${cores}c`,
    cpu,
    cores,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()}-${os.arch()}`,
  };
}

export function describeMachine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.platform}`;
}
