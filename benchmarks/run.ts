// `pnpm bench`: runs the benchmark suites, each implementation and thread count in its own child process
// (src/child.ts), then prints the tables, warns about regressions against the last committed results file,
// and with --json / --readme writes benchmarks/results/<date>-<machine>.json / the README table.

import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { allCases } from "./src/cases.js";
import type { ChildOutput, ChildPlan } from "./src/child.js";
import { DEFAULT_MAX_RSS_GB, parseArgs, USAGE } from "./src/cli.js";
import type { BenchArgs } from "./src/cli.js";
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
/** PyTorch's reference LRC step (run for the real-shape cases when torch imports). */
const TORCH_LRC = process.env["LRC_TORCH_REFERENCE"] ?? path.resolve(HERE, "..", "..", "shared", "reference", "torch_lrc_distill.py");
const PYTHON = process.env["LRC_BENCH_PYTHON"] ?? "/usr/bin/python3";

/** Resident set size of a live process in bytes (Linux /proc), or null. */
function rssOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/**
 * Kills the child when its RSS passes `capBytes` (polled every second), so a case that outgrows the machine
 * is reported instead of taking the machine's other processes down with the OOM killer. Returns a stop
 * function and whether it fired.
 */
function rssCap(pid: number | undefined, capBytes: number, kill: () => void): { stop: () => void; fired: () => boolean } {
  let fired = false;
  const timer = setInterval(() => {
    const rss = pid === undefined ? null : rssOf(pid);
    if (rss !== null && rss > capBytes) {
      fired = true;
      kill();
    }
  }, 1000);
  return { stop: () => clearInterval(timer), fired: () => fired };
}

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

function runChild(group: Group, args: BenchArgs, tmp: string, index: number, maxRssBytes: number): Promise<ChildOutput> {
  const { quick, gpuMode, webgpuFeatures } = args;
  const out = path.join(tmp, `group-${index}.json`);
  const plan: ChildPlan = { group, quick, out, gpuMode, webgpuFeatures };
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
    const cap = rssCap(child.pid, maxRssBytes, kill);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      cap.stop();
      killCurrent = null;
      const result: ChildOutput = existsSync(out)
        ? (JSON.parse(readFileSync(out, "utf8")) as ChildOutput)
        : { description: "", records: [], skipped: [], maxRssMiB: 0 };
      const done = new Set([...result.records.map((r) => r.case), ...result.skipped.map((s) => s.case)]);
      const why = cap.fired()
        ? `killed when its RSS passed the ${fmtGiB(maxRssBytes)} cap (--max-rss-gb)`
        : signal !== null ? `child killed by ${signal}${signal === "SIGKILL" ? " (timeout or out of memory)" : ""}` : `child exited with code ${code}`;
      for (const name of group.cases)
        if (!done.has(name)) result.skipped.push({ suite: group.suite, case: name, impl: group.impl, threads: group.threads, reason: why });
      resolve(result);
    });
  });
}

const fmtGiB = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

/** Whether `python` imports torch (the PyTorch column runs only then). */
function torchVersion(): string | null {
  try {
    return execFileSync(PYTHON, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

/**
 * The PyTorch side of a real-shape case: /work/shared/reference/torch_lrc_distill.py at the same sizes, in its
 * own process (under the same RSS cap), one untimed warm-up step and two timed ones; its JSON becomes a record.
 */
function runTorchChild(group: Group, tmp: string, index: number, maxRssBytes: number): Promise<ChildOutput> {
  const result: ChildOutput = { description: "", records: [], skipped: [], maxRssMiB: 0 };
  const skipAll = (reason: string): ChildOutput => {
    for (const name of group.cases) result.skipped.push({ suite: group.suite, case: name, impl: group.impl, threads: group.threads, reason });
    return result;
  };
  const version = torchVersion();
  if (version === null) return Promise.resolve(skipAll(`PyTorch not installed (${PYTHON} cannot import torch)`));
  if (!existsSync(TORCH_LRC)) return Promise.resolve(skipAll(`${TORCH_LRC} not found (set LRC_TORCH_REFERENCE)`));
  const byName = new Map(allCases().map((c) => [c.name, c] as const));
  return group.cases.reduce(async (prev, name, k) => {
    await prev;
    const spec = byName.get(name)!.spec;
    if (spec.kind !== "realShape") return skipAll(`pytorch runs only the real-shape cases`);
    const t = spec.teacher, out = path.join(tmp, `torch-${index}-${k}.json`);
    const args = [
      TORCH_LRC, "--vocab", t.vocab, "--layers", t.layers, "--teacher-hidden", t.hidden, "--teacher-heads", t.heads, "--teacher-kv", t.kvHeads,
      "--teacher-ffn", t.ffn, "--head-dim", t.hidden / t.heads, "--student-hidden", spec.studentHidden, ...(t.tied ? ["--tie"] : []),
      "--batch", spec.batch, "--seq", spec.seq, "--threads", group.threads, "--warmup", 1, "--steps", 2, "--json", out,
    ].map(String);
    // torch uses OpenBLAS: its core-type overrides of this VM pick a slower kernel (see README, PyTorch reference).
    const env = { ...process.env };
    delete env["OPENBLAS_CORETYPE"];
    delete env["OPENBLAS_L2_SIZE"];
    const child = spawn(PYTHON, args, { env, stdio: ["ignore", "inherit", "inherit"] });
    const kill = (): void => void child.kill("SIGKILL");
    killCurrent = kill;
    const timer = setTimeout(kill, CHILD_TIMEOUT_MS);
    const cap = rssCap(child.pid, maxRssBytes, kill);
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    clearTimeout(timer);
    cap.stop();
    killCurrent = null;
    if (cap.fired() || code !== 0 || !existsSync(out)) {
      const reason = cap.fired() ? `killed when its RSS passed the ${fmtGiB(maxRssBytes)} cap (--max-rss-gb)` : `torch_lrc_distill.py exited with code ${code}`;
      result.skipped.push({ suite: group.suite, case: name, impl: group.impl, threads: group.threads, reason });
      return result;
    }
    const o = JSON.parse(readFileSync(out, "utf8")) as { total_step_ms: { median: number; mean?: number; min: number }; tok_s_median: number; peak_rss_mb: number };
    const tot = o.total_step_ms;
    result.description = `torch ${version}, ${path.basename(TORCH_LRC)} (fp32 teacher, KL + clone loss, AdamW)`;
    result.records.push({
      suite: group.suite, case: name, impl: "pytorch", threads: group.threads, medianMs: tot.median, meanMs: tot.mean ?? tot.median, minMs: tot.min,
      rmePct: 0, samples: 2, tokensPerSec: o.tok_s_median, peakRssMiB: o.peak_rss_mb,
      note: "torch_lrc_distill.py: fp32 teacher built in memory, KL + clone loss (no CE), AdamW; 1 warm-up + 2 timed steps",
    });
    console.log(`  ${(tot.median / 1000).toFixed(1)} s  ${name} pytorch@${group.threads}t  (${o.tok_s_median.toFixed(1)} tok/s, peak RSS ${o.peak_rss_mb.toFixed(0)} MiB)`);
    return result;
  }, Promise.resolve(result));
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
  if (args.webgpuFeatures !== "on") parts.push(`--webgpu-features ${args.webgpuFeatures}`);
  for (const f of args.filters) parts.push(`--filter ${JSON.stringify(f)}`);
  if (args.json) parts.push("--json");
  if (args.readme) parts.push("--readme");
  for (const t of args.torchJson) parts.push(`--torch-json ${path.basename(t)}`);
  if (args.maxRssGb !== DEFAULT_MAX_RSS_GB) parts.push(`--max-rss-gb ${args.maxRssGb}`);
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
      const maxRss = args.maxRssGb * 2 ** 30;
      const res = g.impl === "pytorch" ? await runTorchChild(g, tmp, i, maxRss) : await runChild(g, args, tmp, i, maxRss);
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
