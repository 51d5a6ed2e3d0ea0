// How far the demo's run drifts between two setups: the page's DistillSession on the bundled demo data
// (public/demo/, written by `pnpm run demo-data`) on the cpu kernels, then on DRIFT_AGAINST: a backend
// ("webgpu", "gpu") or "lr", the cpu kernels again with the learning rate scaled by (1 + DRIFT_EPS) (default
// 1e-7, below float32's resolution of the lr): a perturbation at rounding level, to tell fp32 reordering apart
// from a kernel bug. Prints the losses of every step side by side and each backend's cpu fallbacks.
//   pnpm --filter @lrc-ts/example-browser-distill drift            # DRIFT_AGAINST=webgpu DRIFT_STEPS=30

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { backendReport, initBackend, resetBackendReport, setBackend } from "@lrc-ts/tensor-core";
import { DEFAULT_OPTIONS, DistillSession } from "../src/session.js";

const demo = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "public", "demo");
const teacher = new Map(["config.json", "model.safetensors", "tokenizer.json"].map((n) => [n, new Uint8Array(fs.readFileSync(path.join(demo, "teacher", n)))]));
const corpus = fs.readFileSync(path.join(demo, "corpus.txt"), "utf8");
const against = process.env.DRIFT_AGAINST ?? "webgpu";
const steps = Number(process.env.DRIFT_STEPS ?? 30);
const eps = Number(process.env.DRIFT_EPS ?? 1e-7);

async function losses(backend: string, lr: number): Promise<Array<Record<string, number>>> {
  if (backend === "cpu") setBackend("cpu");
  else await initBackend(backend);
  resetBackendReport();
  const s = await DistillSession.create(teacher, corpus, { ...DEFAULT_OPTIONS, steps, lr });
  const rows: Array<Record<string, number>> = [];
  while (!s.done) rows.push((await s.next()).losses);
  const fallbacks = backendReport().ops.filter((o) => o.cpu > 0).map((o) => `${o.op} x${o.cpu}`);
  console.log(`${backend} (lr ${lr}): cpu fallbacks: ${fallbacks.length > 0 ? fallbacks.join(", ") : "none"}`);
  setBackend("cpu");
  return rows;
}

const base = await losses("cpu", DEFAULT_OPTIONS.lr);
const other = against === "lr" ? await losses("cpu", DEFAULT_OPTIONS.lr * (1 + eps)) : await losses(against, DEFAULT_OPTIONS.lr);
console.log(`step  term: cpu / ${against === "lr" ? `cpu, lr x (1 + ${eps})` : against} (relative difference)`);
base.forEach((row, i) => {
  const terms = ["total", "ce", "kl", "clone"].filter((k) => row[k] !== undefined);
  const cell = (k: string): string => `${k} ${row[k]!.toFixed(5)} / ${other[i]![k]!.toFixed(5)} (${((other[i]![k]! / row[k]! - 1) * 100).toFixed(3)}%)`;
  console.log(`${String(i + 1).padStart(4)}  ${terms.map(cell).join("  ")}`);
});
