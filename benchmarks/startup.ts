// The start-up cost of `auto`, the default backend of the lrc model commands (it looks for a WebGPU adapter and
// for GPU.js on a GPU before the command runs): `lrc eval` of a tiny model (a Qwen2 of hidden size 32, two
// layers, vocab 300, made here with `lrc tokenizer train` and `lrc init`) on a small text, with the default
// backend and with --backend cpu, interleaved, each in a fresh process. Prints the median wall time, CPU time
// (user + system, steadier than wall time on a loaded machine) and peak RSS of each (their difference is what
// auto's probe costs, in the noise of two whole commands), and the median time of
// `initBackend("auto", { asyncReads: true })` alone, as the CLI calls it, each in a fresh process.
//
//   node_modules/.bin/tsx --conditions=source benchmarks/startup.ts [runs, default 10]

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { initBackend } from "@lrc-ts/tensor-core";

if (process.argv[2] === "--probe") {
  const t0 = performance.now();
  const info = await initBackend("auto", { asyncReads: true });
  console.log(`PROBE ${performance.now() - t0} ${info.name}`);
  process.exit(0);
}

const root = path.resolve(import.meta.dirname, "..");
const tsx = path.join(root, "node_modules/.bin/tsx");
const runs = Number(process.argv[2] ?? 10);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`startup.ts: runs must be a positive integer, got ${process.argv[2]}`);
const load = os.loadavg().map((x) => x.toFixed(1)).join(" ");

/** Runs `lrc args` from the sources under /usr/bin/time; its stderr, wall and CPU seconds and peak RSS (MiB). */
function lrc(args: readonly string[]): { stderr: string; s: number; cpu: number; mib: number } {
  const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %M %U %S", tsx, "--conditions=source", path.join(root, "packages/lrc/src/cli.ts"), ...args], { encoding: "utf8" });
  const m = /TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  if (r.status !== 0 || m === null) throw new Error(`startup.ts: lrc ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return { stderr: r.stderr, s: Number(m[1]), cpu: Number(m[3]) + Number(m[4]), mib: Number(m[2]) / 1024 };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-startup-"));
const text = path.join(dir, "text.txt");
const words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "in", "rain"];
fs.writeFileSync(text, Array.from({ length: 200 }, (_, i) => Array.from({ length: 12 }, (_, j) => words[(i * 7 + j * 5 + i * j) % words.length]).join(" ")).join(".\n"));
const config = JSON.parse(fs.readFileSync(path.join(root, "packages/nn/fixtures/qwen2-tied-f32/config.json"), "utf8")) as Record<string, unknown>;
fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, vocab_size: 300 }));
lrc(["tokenizer", "train", "--input", text, "--vocab-size", "300", "--out", path.join(dir, "tokenizer.json")]);
lrc(["init", "--config", path.join(dir, "config.json"), "--out", path.join(dir, "model"), "--tokenizer", path.join(dir, "tokenizer.json")]);

const probeMs: number[] = [];
for (let i = 0; i <= runs; i++) {
  const r = spawnSync(tsx, ["--conditions=source", import.meta.filename, "--probe"], { encoding: "utf8" });
  const m = /PROBE ([\d.]+)/.exec(r.stdout);
  if (r.status !== 0 || m === null) throw new Error(`startup.ts: the probe failed (${r.status}): ${r.stderr}`);
  if (i > 0) probeMs.push(Number(m[1]));
}

const evalArgs = ["eval", "--model", path.join(dir, "model"), "--text", text, "--window", "16"];
const variants: Record<string, string[]> = { "default (auto)": [], "--backend cpu": ["--backend", "cpu"] };
const samples = new Map<string, Array<{ s: number; cpu: number; mib: number }>>(Object.keys(variants).map((k) => [k, []]));
let choice = "";
for (let i = 0; i <= runs; i++)
  for (const [name, extra] of Object.entries(variants)) {
    const r = lrc([...evalArgs, ...extra]);
    if (extra.length === 0) choice = r.stderr.split("\n").find((l) => l.startsWith("lrc backend:")) ?? "";
    if (i > 0) samples.get(name)!.push(r); // run 0 warms tsx's cache
  }
fs.rmSync(dir, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const med = new Map([...samples].map(([k, v]) => [k, { s: median(v.map((x) => x.s)), cpu: median(v.map((x) => x.cpu)), mib: median(v.map((x) => x.mib)) }]));
console.log(`${choice}\nload average at the start: ${load}; ${runs} runs of each, interleaved`);
for (const [k, v] of med) console.log(`${k.padEnd(15)} median ${v.s.toFixed(2)} s wall, ${v.cpu.toFixed(2)} s CPU, peak RSS ${v.mib.toFixed(0)} MiB`);
const a = med.get("default (auto)")!, c = med.get("--backend cpu")!;
console.log(`auto's probe: ${(a.s - c.s).toFixed(2)} s wall, ${(a.cpu - c.cpu).toFixed(2)} s CPU, ${(a.mib - c.mib).toFixed(0)} MiB (the differences); initBackend("auto") alone: median ${median(probeMs).toFixed(0)} ms`);
