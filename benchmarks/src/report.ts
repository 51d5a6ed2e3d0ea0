// Markdown tables of a run (printed to the console and written into benchmarks/README.md): one table per
// suite, a column per implementation and thread count, and ratio columns (TF.js time / lrc-ts time, so
// above 1x means lrc-ts is faster); the gpu backend's column is its compute time, and its upload, compute
// and download times have a table of their own, which says on what device they ran and, unless that was a
// real GPU, that GPU speed is unmeasured.

import type { Suite } from "./cases.js";
import { describeMachine } from "./machine.js";
import type { BenchRecord, Impl, ResultsFile } from "./results.js";

export const README_START = "<!-- bench-results:start -->";
export const README_END = "<!-- bench-results:end -->";

const IMPL_ORDER: Record<Impl, number> = { "lrc-ts": 0, "lrc-ts-gpu": 1, "lrc-ts-webgpu": 2, "tfjs-wasm": 3, "tfjs-cpu": 4, pytorch: 5 };

function fmtNum(x: number, digits: number): string {
  return x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtMs(ms: number): string {
  if (ms >= 1000) return `${fmtNum(ms / 1000, 2)} s`;
  if (ms >= 100) return `${fmtNum(ms, 0)} ms`;
  if (ms >= 10) return `${fmtNum(ms, 1)} ms`;
  return `${fmtNum(ms, 2)} ms`;
}

function cell(r: BenchRecord | undefined, suite: Suite): string {
  if (r === undefined) return "–";
  const rss = r.peakRssMiB !== undefined ? ` · ${fmtNum(r.peakRssMiB, 0)} MiB` : "";
  if (suite === "e2e" && r.tokensPerSec !== undefined) return `${fmtNum(r.tokensPerSec, 0)} tok/s${rss}`;
  if (suite === "e2e" && r.docsPerSec !== undefined) return `${fmtNum(r.docsPerSec, 1)} docs/s${rss}`;
  return `${fmtMs(r.medianMs)}${r.gflops !== undefined ? ` · ${fmtNum(r.gflops, 1)} GF/s` : ""}`;
}

const ratio = (other: BenchRecord | undefined, ours: BenchRecord | undefined): string =>
  other === undefined || ours === undefined ? "–" : `${fmtNum(other.medianMs / ours.medianMs, 2)}×`;

interface Column {
  impl: Impl;
  threads: number;
}

export function suiteTable(records: readonly BenchRecord[], suite: Suite): string {
  const rs = records.filter((r) => r.suite === suite);
  if (rs.length === 0) return "";
  const cases = [...new Set(rs.map((r) => r.case))];
  const colKeys = new Map<string, Column>();
  for (const r of rs) colKeys.set(`${r.impl}@${r.threads}`, { impl: r.impl, threads: r.threads });
  const cols = [...colKeys.values()].sort((a, b) => IMPL_ORDER[a.impl] - IMPL_ORDER[b.impl] || a.threads - b.threads);
  const get = (c: string, impl: Impl, t: number): BenchRecord | undefined => rs.find((r) => r.case === c && r.impl === impl && r.threads === t);
  const lrcThreads = cols.filter((c) => c.impl === "lrc-ts").map((c) => c.threads);
  const ratioCols: Array<{ title: string; other: Column; ours: Column }> = [];
  for (const t of lrcThreads) {
    if (cols.some((c) => c.impl === "tfjs-wasm" && c.threads === t))
      ratioCols.push({ title: `vs tfjs-wasm ${t}t`, other: { impl: "tfjs-wasm", threads: t }, ours: { impl: "lrc-ts", threads: t } });
  }
  if (lrcThreads.includes(1) && cols.some((c) => c.impl === "tfjs-cpu"))
    ratioCols.push({ title: "vs tfjs-cpu 1t", other: { impl: "tfjs-cpu", threads: 1 }, ours: { impl: "lrc-ts", threads: 1 } });
  for (const t of lrcThreads)
    if (cols.some((c) => c.impl === "pytorch" && c.threads === t))
      ratioCols.push({ title: `vs pytorch ${t}t`, other: { impl: "pytorch", threads: t }, ours: { impl: "lrc-ts", threads: t } });
  const title = (c: Column): string => {
    if (c.impl === "lrc-ts-webgpu") return suite === "kernels" ? `${c.impl} (compute)` : `${c.impl} (lavapipe or GPU: see notes)`;
    if (c.impl !== "lrc-ts-gpu") return `${c.impl} ${c.threads}t`;
    const modes = [...new Set(rs.filter((r) => r.impl === c.impl && r.gpu !== undefined).map((r) => r.gpu!.mode))];
    return `${c.impl}${modes.length > 0 ? ` ${modes.join("/")}` : ""} (compute)`;
  };
  const header = ["case", ...cols.map(title), ...ratioCols.map((c) => c.title)];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i === 0 ? " --- " : " ---: ")).join("|")}|`];
  for (const c of cases) {
    const row = [c, ...cols.map((col) => cell(get(c, col.impl, col.threads), suite))];
    for (const rc of ratioCols) row.push(ratio(get(c, rc.other.impl, rc.other.threads), get(c, rc.ours.impl, rc.ours.threads)));
    lines.push(`| ${row.join(" | ")} |`);
  }
  return lines.join("\n");
}

const fmtMiB = (bytes: number): string => `${fmtNum(bytes / 2 ** 20, bytes < 2 ** 20 ? 2 : 1)} MiB`;

/**
 * The gpu backend's kernel cases with upload, compute and download apart (and the cpu backend's time
 * beside them), headed by what ran where; "" when no record has gpu timings.
 */
export function gpuTable(records: readonly BenchRecord[]): string {
  const rs = records.filter((r) => r.gpu !== undefined);
  if (rs.length === 0) return "";
  const ran = (r: BenchRecord): string => `${r.impl} ran ${r.impl === "lrc-ts-gpu" ? `GPU.js ${r.gpu!.mode}` : r.gpu!.mode} on ${r.gpu!.device}`;
  const runs = [...new Set(rs.map(ran))];
  const software = rs.every((r) => r.gpu!.software);
  const lines = [
    `${runs.join("; and ")}.`,
    software
      ? "**GPU speed is unmeasured**: these kernels ran on the CPU (in software), so they measure the gpu backend's overheads, not a GPU. See \"The gpu column on a real GPU\" in benchmarks/README.md for the command to run on a machine with one."
      : rs.some((r) => r.gpu!.software)
        ? "Some rows ran in software (on the CPU); the others on the GPU named above."
        : "These rows ran on the GPU named above.",
    "",
  ];
  const multi = new Set(rs.map((r) => `${r.impl} ${r.gpu!.mode}`)).size > 1;
  const header = ["case", ...(multi ? ["mode"] : []), "upload", "compute", "download", "upload + compute + download", "lrc-ts 1t (cpu backend)"];
  lines.push(`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i === 0 ? " --- " : " ---: ")).join("|")}|`);
  for (const r of rs) {
    const g = r.gpu!;
    const cpu = records.find((c) => c.suite === r.suite && c.case === r.case && c.impl === "lrc-ts" && c.threads === 1);
    lines.push(`| ${[
      r.case,
      ...(multi ? [`${r.impl === "lrc-ts-gpu" ? "GPU.js " : ""}${g.mode}`] : []),
      `${fmtMs(g.uploadMs)} (${fmtMiB(g.uploadBytes)})`,
      fmtMs(r.medianMs),
      `${fmtMs(g.downloadMs)} (${fmtMiB(g.downloadBytes)})`,
      fmtMs(g.uploadMs + r.medianMs + g.downloadMs),
      cpu === undefined ? "–" : fmtMs(cpu.medianMs),
    ].join(" | ")} |`);
  }
  return lines.join("\n");
}

const SUITE_TITLES: Record<Suite, string> = {
  kernels: "Kernels (median time · GFLOP/s)",
  gradients: "Gradients (median time of forward + backward · GFLOP/s)",
  e2e: "End to end (tokens/s of one training step, or documents/s of eval-tasks scoring · peak RSS of the process)",
};

/** The full markdown report of a run. */
export function renderReport(res: ResultsFile): string {
  const out: string[] = [];
  out.push(`Machine: ${describeMachine(res.machine)} (id \`${res.machine.id}\`). Date: ${res.date}.`);
  out.push(`Command: \`${res.command}\`${res.quick ? " (quick mode: short time per case, noisier)" : ""}.`);
  out.push("Ratios are TF.js (or PyTorch) time / lrc-ts time at the same thread count: above 1× means lrc-ts is faster.");
  for (const suite of ["kernels", "gradients", "e2e"] as const) {
    const t = suiteTable(res.records, suite);
    if (t !== "") out.push(`### ${SUITE_TITLES[suite]}\n\n${t}`);
    if (suite !== "kernels" || t === "") continue;
    const g = gpuTable(res.records);
    out.push(g !== ""
      ? `### GPU backend: upload · compute · download (median times)\n\n${g}`
      : "GPU backend (lrc-ts-gpu): not in this run, so GPU speed is unmeasured here.");
  }
  if (res.external.length > 0) {
    const lines = ["| reference | compare with | threads | tokens/s | peak RSS |", "| --- | --- | ---: | ---: | ---: |"];
    for (const e of res.external)
      lines.push(`| ${e.label} | ${e.comparesTo} | ${e.threads} | ${fmtNum(e.tokensPerSec, 0)} | ${e.peakRssMiB !== undefined ? `${fmtNum(e.peakRssMiB, 0)} MiB` : "–"} |`);
    out.push(`### External references (same machine, not run by this harness)\n\n${lines.join("\n")}`);
  }
  // Per-case notes, grouped: one line per implementation and note, naming the cases it applies to (or
  // saying "all" when it applies to every case that implementation ran).
  const byNote = new Map<string, { impl: Impl; cases: Set<string> }>();
  for (const r of res.records) {
    if (r.note === undefined) continue;
    const key = `${r.impl}: ${r.note}`;
    const entry = byNote.get(key) ?? { impl: r.impl, cases: new Set<string>() };
    entry.cases.add(`${r.suite}/${r.case}`);
    byNote.set(key, entry);
  }
  const casesOf = (impl: Impl): number => new Set(res.records.filter((r) => r.impl === impl).map((r) => `${r.suite}/${r.case}`)).size;
  const notes = [...res.notes, ...[...byNote].map(([key, { impl, cases }]) =>
    `${key} (${cases.size > 1 && cases.size === casesOf(impl) ? `all ${cases.size} ${impl} cases` : [...cases].join("; ")})`)];
  if (notes.length > 0) out.push(`Notes:\n\n${notes.map((n) => `- ${n}`).join("\n")}`);
  if (res.skipped.length > 0)
    out.push(`Skipped:\n\n${res.skipped.map((s) => `- ${s.suite}/${s.case} ${s.impl}@${s.threads}t: ${s.reason}`).join("\n")}`);
  return out.join("\n\n");
}

/** Replaces the generated section of the README (between the markers) with the report. */
export function replaceReadmeSection(readme: string, report: string): string {
  const start = readme.indexOf(README_START), end = readme.indexOf(README_END);
  if (start < 0 || end < start) throw new Error(`benchmarks/README.md: markers ${README_START} / ${README_END} not found`);
  return `${readme.slice(0, start + README_START.length)}\n\n${report}\n\n${readme.slice(end)}`;
}
