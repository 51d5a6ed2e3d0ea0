// Child-process entry: runs one group (suite x implementation x threads) described by the LRC_BENCH_PLAN
// environment variable, prints a line per case, and writes its records to the file the plan names.
// Run by run.ts; not meant to be started by hand.

import { writeFileSync } from "node:fs";
import { allCases } from "./cases.js";
import { measure, measureOptions } from "./harness.js";
import type { Implementation } from "./impl.js";
import { SkipCase } from "./impl.js";
import type { GpuModeArg, WebGpuFeaturesArg } from "./cli.js";
import type { Group } from "./plan.js";
import type { BenchRecord, SkipRecord } from "./results.js";

export interface ChildPlan {
  group: Group;
  quick: boolean;
  out: string;
  /** GPU.js mode for lrc-ts-gpu. */
  gpuMode: GpuModeArg;
  /** Optional WebGPU features for lrc-ts-webgpu (absent: on). */
  webgpuFeatures?: WebGpuFeaturesArg;
}

export interface ChildOutput {
  description: string;
  records: BenchRecord[];
  skipped: SkipRecord[];
  maxRssMiB: number;
}

const fmtMs = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3));

async function loadImplementation(group: Group, gpuMode: GpuModeArg, webgpuFeatures: WebGpuFeaturesArg): Promise<Implementation> {
  if (group.impl === "lrc-ts") return (await import("./lrcts/index.js")).lrcTs;
  if (group.impl === "lrc-ts-gpu") return (await import("./lrcts-gpu/index.js")).lrcTsGpu(gpuMode);
  if (group.impl === "lrc-ts-webgpu") return (await import("./lrcts-webgpu/index.js")).lrcTsWebGpu(webgpuFeatures);
  return (await import("./tfjs/index.js")).tfjsImplementation(group.impl === "tfjs-wasm" ? "wasm" : "cpu");
}

async function main(): Promise<void> {
  const raw = process.env["LRC_BENCH_PLAN"];
  if (raw === undefined) throw new Error("child.ts: LRC_BENCH_PLAN is not set (this file is started by benchmarks/run.ts)");
  const plan = JSON.parse(raw) as ChildPlan;
  const { group } = plan;
  const byName = new Map(allCases().filter((c) => c.suite === group.suite).map((c) => [c.name, c] as const));
  const out: ChildOutput = { description: "", records: [], skipped: [], maxRssMiB: 0 };
  const save = (): void => {
    out.maxRssMiB = process.resourceUsage().maxRSS / 1024;
    writeFileSync(plan.out, JSON.stringify(out));
  };
  const skip = (name: string, reason: string): void => {
    out.skipped.push({ suite: group.suite, case: name, impl: group.impl, threads: group.threads, reason });
    console.log(`  skip  ${name}: ${reason}`);
  };

  let impl: Implementation;
  try {
    impl = await loadImplementation(group, plan.gpuMode, plan.webgpuFeatures ?? "on");
    out.description = await impl.init(group.threads);
  } catch (e) {
    for (const name of group.cases) skip(name, `${group.impl} unavailable: ${(e as Error).message}`);
    save();
    return;
  }
  console.log(`# ${group.suite} ${group.impl}@${group.threads}t: ${out.description}`);
  const opts = measureOptions(plan.quick, group.suite);
  for (const name of group.cases) {
    const c = byName.get(name);
    if (c === undefined) throw new Error(`child.ts: unknown case "${name}" in suite ${group.suite}`);
    let prepared;
    try {
      prepared = await impl.prepare(c);
    } catch (e) {
      skip(name, e instanceof SkipCase ? e.message : `setup failed: ${(e as Error).message}`);
      continue;
    }
    try {
      const m = await measure(prepared.run, opts);
      const rec: BenchRecord = { suite: group.suite, case: name, impl: group.impl, threads: group.threads, ...m };
      if (c.flops !== undefined) rec.gflops = c.flops / (m.medianMs * 1e6);
      if (c.tokens !== undefined) rec.tokensPerSec = c.tokens / (m.medianMs / 1000);
      if (c.docs !== undefined) rec.docsPerSec = c.docs / (m.medianMs / 1000);
      if (group.suite === "e2e") rec.peakRssMiB = process.resourceUsage().maxRSS / 1024;
      if (prepared.note !== undefined) rec.note = prepared.note;
      const tr = prepared.transfers;
      if (tr !== undefined) {
        const up = await measure(tr.upload, opts), down = await measure(tr.download, opts);
        rec.gpu = {
          mode: tr.mode, uploadMs: up.medianMs, downloadMs: down.medianMs, uploadBytes: tr.uploadBytes, downloadBytes: tr.downloadBytes,
          device: tr.device, software: tr.software,
        };
      }
      out.records.push(rec);
      const extra = [
        rec.gflops !== undefined ? `${rec.gflops.toFixed(1)} GFLOP/s` : "",
        rec.tokensPerSec !== undefined ? `${rec.tokensPerSec.toFixed(0)} tok/s` : "",
        rec.docsPerSec !== undefined ? `${rec.docsPerSec.toFixed(1)} docs/s` : "",
        rec.peakRssMiB !== undefined ? `peak RSS ${rec.peakRssMiB.toFixed(0)} MiB` : "",
        rec.gpu !== undefined ? `compute; upload ${fmtMs(rec.gpu.uploadMs)} ms, download ${fmtMs(rec.gpu.downloadMs)} ms` : "",
      ].filter((s) => s !== "").join(", ");
      console.log(`  ${fmtMs(m.medianMs).padStart(8)} ms  ${name}${extra === "" ? "" : `  (${extra})`}  [n=${m.samples}, ±${m.rmePct.toFixed(1)}%]`);
    } catch (e) {
      skip(name, `failed: ${(e as Error).message}`);
    } finally {
      prepared.dispose?.();
    }
    save();
  }
  save();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
