// `pnpm bench`: runs the benchmark suites, each implementation and thread count in its own child process
// (src/child.ts), then prints the tables, warns about regressions against the last committed results file,
// and with --json / --readme writes benchmarks/results/<date>-<machine>.json / the README table.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { allCases } from "./src/cases.js";
import type { ChildOutput, ChildPlan } from "./src/child.js";
import { parseArgs, USAGE } from "./src/cli.js";
import type { BenchArgs, GpuModeArg } from "./src/cli.js";
import { machineInfo } from "./src/machine.js";
import type { Group } from "./src/plan.js";
import { needsXvfb, planGroups } from "./src/plan.js";
import { renderReport, replaceReadmeSection } from "./src/report.js";
import { findBaseline, findRegressions, mergeResults, parseResults, REGRESSION_THRESHOLD } from "./src/results.js";
import type { BenchRecord, ExternalRef, ResultsFile, SkipRecord } from "./src/results.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESULTS_DIR = path.join(HERE, "results");
const README = path.join(HERE, "README.md");
const CHILD = path.join(HERE, "src", "child.ts");

/** A child that runs longer than this is killed and its remaining cases reported as skipped. */
const CHILD_TIMEOUT_MS = 30 * 60 * 1000;

/**
 * Kills the running child, and under xvfb-run its whole process group (xvfb-run, Xvfb and node), so
 * that no benchmark keeps running orphaned.
 */
let killCurrent: (() => void) | null = null;
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    killCurrent?.();
    process.exit(130);
  });

/** Whether an executable of this name is on PATH. */
function onPath(name: string): boolean {
  return (process.env["PATH"] ?? "").split(path.delimiter).some((dir) => dir !== "" && existsSync(path.join(dir, name)));
}

function runChild(group: Group, quick: boolean, gpuMode: GpuModeArg, tmp: string, index: number): Promise<ChildOutput> {
  const out = path.join(tmp, `group-${index}.json`);
  const plan: ChildPlan = { group, quick, out, gpuMode };
  const env: NodeJS.ProcessEnv = { ...process.env, LRC_BENCH_PLAN: JSON.stringify(plan), LRC_THREADS: String(group.threads) };
  const node = [...process.execArgv, CHILD];
  // gl needs an X display: without one, the gpu child runs under `xvfb-run -a` (its own process group).
  const xvfb = needsXvfb(group.impl, gpuMode, process.env, onPath("xvfb-run"));
  if (xvfb) env["LRC_BENCH_XVFB"] = "1";
  else delete env["LRC_BENCH_XVFB"];
  return new Promise((resolve) => {
    const child = xvfb
      ? spawn("xvfb-run", ["-a", process.execPath, ...node], { env, stdio: ["ignore", "inherit", "inherit"], detached: true })
      : spawn(process.execPath, node, { env, stdio: ["ignore", "inherit", "inherit"] });
    const kill = (): void => {
      if (xvfb && child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // the group is gone already
        }
      } else child.kill("SIGKILL");
    };
    killCurrent = kill;
    const timer = setTimeout(kill, CHILD_TIMEOUT_MS);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      killCurrent = null;
      const result: ChildOutput = existsSync(out)
        ? (JSON.parse(readFileSync(out, "utf8")) as ChildOutput)
        : { description: "", records: [], skipped: [], maxRssMiB: 0 };
      const done = new Set([...result.records.map((r) => r.case), ...result.skipped.map((s) => s.case)]);
      const why = signal !== null ? `child killed by ${signal}${signal === "SIGKILL" ? " (timeout or out of memory)" : ""}` : `child exited with code ${code}`;
      for (const name of group.cases)
        if (!done.has(name)) result.skipped.push({ suite: group.suite, case: name, impl: group.impl, threads: group.threads, reason: why });
      resolve(result);
    });
  });
}

/** Reads a PyTorch reference result (torch_llama.py or torch_lrc_distill.py --json). */
function readTorchJson(file: string): ExternalRef {
  const o = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  const num = (k: string): number | undefined => (typeof o[k] === "number" ? (o[k] as number) : undefined);
  const threads = num("threads") ?? 1, version = String(o["torch"] ?? "?");
  const rss = num("peak_rss_mb_after_train") ?? num("peak_rss_mb");
  const train = num("train_tok_s_median"), distill = num("tok_s_median");
  const base = { threads, source: path.basename(file), ...(rss !== undefined ? { peakRssMiB: rss } : {}) };
  if (train !== undefined) return { ...base, label: `PyTorch ${version} train step (Llama anchor, AdamW)`, comparesTo: "e2e/pretrain step Llama", tokensPerSec: train };
  if (distill !== undefined) return { ...base, label: `PyTorch ${version} LRC-shaped distill step`, comparesTo: "e2e/distill step", tokensPerSec: distill };
  throw new Error(`${file}: neither "train_tok_s_median" nor "tok_s_median" found (is it a torch_llama.py / torch_lrc_distill.py --json output?)`);
}

/** Records sorted as the catalogue lists the cases (a merge appends the re-run ones at the end). */
function inCatalogueOrder(res: ResultsFile): ResultsFile {
  const order = new Map(allCases().map((c, i) => [`${c.suite}/${c.name}`, i] as const));
  const idx = (r: BenchRecord): number => order.get(`${r.suite}/${r.case}`) ?? order.size;
  return { ...res, records: [...res.records].sort((a, b) => idx(a) - idx(b) || a.impl.localeCompare(b.impl) || a.threads - b.threads) };
}

function commandLine(args: BenchArgs): string {
  const parts = ["pnpm bench"];
  if (args.quick) parts.push("--quick");
  if (args.threads !== null) parts.push(`--threads ${args.threads.join(",")}`);
  if (args.gpuMode !== "auto") parts.push(`--gpu-mode ${args.gpuMode}`);
  for (const f of args.filters) parts.push(`--filter ${JSON.stringify(f)}`);
  if (args.json) parts.push("--json");
  if (args.readme) parts.push("--readme");
  for (const t of args.torchJson) parts.push(`--torch-json ${path.basename(t)}`);
  return parts.join(" ");
}

async function main(): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const machine = machineInfo();
  const threads = args.threads ?? [...new Set([1, Math.min(machine.cores, 8)])];
  const groups = planGroups(allCases(), threads, args.filters);
  if (groups.length === 0) {
    console.error(`pnpm bench: no case matches ${args.filters.map((f) => `"${f}"`).join(" or ")}; cases are:`);
    for (const c of allCases()) console.error(`  ${c.suite}/${c.name}`);
    return 1;
  }
  const external = args.torchJson.map(readTorchJson);
  console.log(`lrc-ts benchmarks on ${machine.cpu} (${machine.cores} cores); ${groups.length} child processes; threads ${threads.join(",")}`);

  // Other work on the machine skews every number; the load average before and after says how much.
  const load = (): string => os.loadavg().map((x) => x.toFixed(2)).join(" ");
  const loadBefore = load();
  const tmp = mkdtempSync(path.join(os.tmpdir(), "lrc-bench-"));
  const records: BenchRecord[] = [], skipped: SkipRecord[] = [], notes: string[] = [];
  try {
    for (const [i, g] of groups.entries()) {
      const res = await runChild(g, args.quick, args.gpuMode, tmp, i);
      records.push(...res.records);
      skipped.push(...res.skipped);
      const note = `${g.impl}@${g.threads}t: ${res.description}`;
      if (res.description !== "" && !notes.includes(note)) notes.push(note);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  notes.push(`load average (1/5/15 min) before the run: ${loadBefore}; after: ${load()}`);
  const date = new Date().toISOString().slice(0, 10);
  const outFile = path.join(RESULTS_DIR, `${date}-${machine.id}.json`);
  const results: ResultsFile = { schema: 1, date, machine, command: commandLine(args), quick: args.quick, records, skipped, notes, external };
  const report = renderReport(results);
  console.log(`\n${report}\n`);

  const baseline = findBaseline(RESULTS_DIR, machine.id, outFile);
  if (baseline === null) console.log("Regression check: no committed results file to compare with.");
  else {
    const regs = findRegressions(baseline.results.records, records);
    const where = `${path.relative(process.cwd(), baseline.file)}${baseline.sameMachine ? "" : ` (another machine: ${baseline.results.machine.id})`}`;
    if (regs.length === 0) console.log(`Regression check against ${where}: no case slower by more than ${REGRESSION_THRESHOLD * 100}%.`);
    else {
      console.warn(`WARNING: ${regs.length} case(s) lost more than ${REGRESSION_THRESHOLD * 100}% throughput against ${where}:`);
      for (const r of regs) console.warn(`  ${r.key}: ${r.baseMs.toFixed(2)} ms -> ${r.newMs.toFixed(2)} ms (-${(r.drop * 100).toFixed(0)}% throughput)`);
    }
  }

  // A filtered run updates today's file for this machine in place: its cases replace the same cases there.
  const merged = args.json && existsSync(outFile) ? inCatalogueOrder(mergeResults(parseResults(readFileSync(outFile, "utf8"), outFile), results)) : results;
  if (args.json) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(outFile, `${JSON.stringify(merged, null, 1)}\n`);
    console.log(`Wrote ${path.relative(process.cwd(), outFile)}${merged === results ? "" : " (merged into the earlier run of today)"}`);
  }
  if (args.readme) {
    writeFileSync(README, replaceReadmeSection(readFileSync(README, "utf8"), renderReport(merged)));
    console.log(`Updated ${path.relative(process.cwd(), README)}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
