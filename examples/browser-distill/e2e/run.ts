// End-to-end test of the built page (run by `pnpm e2e` after `pnpm build`, and by .ci/run) in Debian's
// headless Chromium driven by playwright-core: serve dist/ on 127.0.0.1, open the page, run a short Low-Rank
// Clone on the bundled demo in the Web Worker, check that the losses fall and the validation loss drops,
// check that samples show full step numbers, download the exported student (one zip, a Playwright download
// event), unzip it and check it: config.json has hidden_size = d, model.safetensors parses with the right
// shapes, and the files load as a model in Node. Saves a screenshot
// to test-results/screenshot.png and a summary to test-results/summary.json. Fails loudly (exit 1) when
// Chromium is missing: it is never skipped.
//
// Runs (E2E_RUNS, default "gl:30,webgpu:30,native:30,auto:30": backend:steps, each a fresh page load):
//   gl      GPU.js WebGL2 forced. Headless Chromium has no GPU here, so WebGL2 is SwiftShader (software),
//           which is what runs the GPU.js kernels; the run checks that mode "gl" really ran.
//   webgpu  GPU.js WebGPU forced (Chromium's SwiftShader WebGPU adapter here).
//   native  the native WebGPU backend (WGSL kernels) forced, on the same adapter.
//   auto    the page's default: on a software WebGPU adapter and WebGL2 it picks the cpu kernels (the run
//           checks that the choice matches the renderer), on a hardware one native WebGPU.
// Every GPU run's losses must match the cpu run's (auto here) within 2%.
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_RUNS, E2E_GL (default swiftshader: ANGLE on
// SwiftShader with --enable-unsafe-swiftshader; "off": --disable-gpu), E2E_TIMEOUT_S (per run, default 600).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import type { Page } from "playwright-core";
import { loadCausalLMFromFiles } from "@lrc-ts/nn";
import { isSoftwareRenderer, parseSafetensors } from "@lrc-ts/tensor-core";
import { serveStatic } from "./server.js";
import type { DemoState } from "../src/protocol.js";
import { studentZipName, unzipStudent } from "../src/student-zip.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const exampleDir = path.join(here, "..");
const dist = path.join(exampleDir, "dist");
const results = path.join(exampleDir, "test-results");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const runs = (process.env.E2E_RUNS ?? "gl:30,webgpu:30,native:30,auto:30").split(",").map((r) => {
  const [backend, steps] = r.split(":");
  if (!["gl", "webgpu", "native", "auto", "webasm", "cpu"].includes(backend!) || !(Number(steps) >= 10)) throw new Error(`E2E_RUNS: bad run "${r}" (want backend:steps, steps >= 10)`);
  return { backend: backend!, steps: Number(steps) };
});
const gl = process.env.E2E_GL ?? "swiftshader";
const timeoutMs = Number(process.env.E2E_TIMEOUT_S ?? 600) * 1000;
const hidden = 32;

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`e2e check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function main(): Promise<void> {
  if (!fs.existsSync(executablePath))
    throw new Error(`${executablePath}: no Chromium here (install Debian's chromium: apt-get install -y chromium, or set CHROMIUM)`);
  if (!fs.existsSync(path.join(dist, "index.html"))) throw new Error(`${dist}/index.html: not built (run pnpm build first)`);
  fs.mkdirSync(results, { recursive: true });
  const t0 = Date.now();
  const server = await serveStatic(dist);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-e2e-chromium-"));
  const args = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
    "--disable-dev-shm-usage",
    ...(gl === "off" ? ["--disable-gpu"] : ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]),
    // WebGPU in headless Chromium: Dawn on SwiftShader (a software adapter) once it is enabled.
    "--enable-unsafe-webgpu",
  ];
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, args, acceptDownloads: true, viewport: { width: 1280, height: 1000 },
  });
  const logs: string[] = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => logs.push(`[${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`[pageerror] ${e.message}`));
    const version = context.browser()?.version() ?? "unknown";
    console.log(`chromium ${version}; page ${server.url}; gl ${gl}; runs ${runs.map((r) => `${r.backend}:${r.steps}`).join(", ")}`);
    const summaries: Record<string, unknown>[] = [];
    for (const [i, run] of runs.entries()) summaries.push(await runOnce(page, server.url, run.backend, run.steps, i === 0 ? "screenshot.png" : `screenshot-${run.backend}.png`));
    // The same run on GPU.js (WebGL2, WebGPU), the native WebGPU backend and the cpu kernels must give nearly the same losses.
    const ran = (r: Record<string, unknown>): string => {
      const b = (r.backend as DemoState["backend"])!;
      return b.name === "gpu" ? `gpu ${b.mode ?? ""}` : b.name;
    };
    for (const cpu of summaries.filter((r) => ran(r) === "cpu"))
      for (const gpu of summaries.filter((r) => ran(r) !== "cpu" && r.steps === cpu.steps)) {
        const a = (gpu.lastLoss as Record<string, number>).total!, c = (cpu.lastLoss as Record<string, number>).total!;
        check(Math.abs(a - c) <= 0.02 * Math.abs(c), `${ran(gpu)} and cpu agree after ${String(cpu.steps)} steps: total ${a.toFixed(4)} vs ${c.toFixed(4)}`);
      }
    const summary = { chromium: version, gl, runs: summaries, totalSeconds: (Date.now() - t0) / 1000 };
    fs.writeFileSync(path.join(results, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
    console.log(`e2e passed in ${summary.totalSeconds.toFixed(1)} s; screenshots and summary.json in ${path.relative(process.cwd(), results)}`);
  } catch (e) {
    console.error(logs.slice(-40).join("\n"));
    throw e;
  } finally {
    await context.close();
    await server.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

/** One page load: start a run on the demo, wait for it, check it, download and check the student. */
async function runOnce(page: Page, url: string, backend: string, steps: number, screenshot: string): Promise<Record<string, unknown>> {
  console.log(`--- run: backend ${backend}, ${steps} steps`);
  const query = new URLSearchParams({ steps: String(steps), hidden: String(hidden), backend });
  await page.goto(`${url}?${query}`);
  const tStart = Date.now();
  await page.click("#start");
  await page.waitForFunction(() => {
    const s = (window as unknown as { lrcDemo: DemoState }).lrcDemo;
    return s.phase === "done" || s.phase === "error";
  }, undefined, { timeout: timeoutMs, polling: 500 });
  const trainMs = Date.now() - tStart;
  const state = await page.evaluate(() => (window as unknown as { lrcDemo: DemoState }).lrcDemo);
  await page.screenshot({ path: path.join(results, screenshot), fullPage: true });
  if (state.error !== null) throw new Error(`the page reported an error: ${state.error}`);
  const b = state.backend!;
  console.log(`backend: ${b.description}; WebGL2 renderer: ${b.renderer ?? "none"} (${b.notes.join("; ") || "no notes"}; started in ${b.seconds.toFixed(2)} s)`);
  if (backend === "gl") check(b.name === "gpu" && b.mode === "gl", `GPU.js WebGL2 ran the kernels (${b.description})`);
  if (backend === "webgpu") check(b.name === "gpu" && b.mode === "webgpu", `GPU.js WebGPU ran the kernels (${b.description})`);
  if (backend === "native") check(b.name === "webgpu", `the native WebGPU backend ran the kernels (${b.description})`);
  if (backend === "auto") {
    // Software WebGPU and WebGL2 (SwiftShader here): the cpu kernels, saying why; hardware: native WebGPU or
    // GPU.js, unless they failed (then a note says why).
    const software = b.renderer === null || isSoftwareRenderer(b.renderer);
    check(software ? b.name === "cpu" : b.name !== "cpu" || b.notes.length > 0, `auto chose ${b.name} for WebGL2 renderer ${b.renderer ?? "none"}`);
    if (software) check(b.notes.some((n) => /WebGPU/.test(n)), `auto says why not WebGPU (${b.notes.join("; ")})`);
  }

  check(state.steps.length === steps, `ran ${steps} steps (got ${state.steps.length})`);
  const mean = (rows: DemoState["steps"], k: string) => rows.reduce((a, r) => a + r.losses[k]!, 0) / rows.length;
  const head = state.steps.slice(0, 5), tail = state.steps.slice(-5);
  for (const k of ["total", "kl", "ce"])
    check(mean(tail, k) < mean(head, k), `train ${k} falls: ${mean(head, k).toFixed(4)} (first 5 steps) -> ${mean(tail, k).toFixed(4)} (last 5)`);
  const firstEval = state.evals[0]!, lastEval = state.evals.at(-1)!;
  check(lastEval.loss < firstEval.loss, `val ce falls: ${firstEval.loss.toFixed(4)} (step 0) -> ${lastEval.loss.toFixed(4)} (step ${lastEval.step})`);
  check(state.samples.length >= 2 && state.teacherSample !== null, `samples shown (${state.samples.length} from the student, one from the teacher)`);
  const chartSvg = await page.locator("#chart svg").count();
  check(chartSvg === 1, "the loss chart is drawn");

  const zipName = studentZipName(hidden).file;
  check(state.downloads.length === 1 && state.downloads[0] === zipName, `one download offered: ${zipName} (got ${state.downloads.join(", ")})`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click(`#downloads a[data-file="${zipName}"]`)]);
  check(download.suggestedFilename() === zipName, `download event for ${zipName}`);
  const files = unzipStudent(new Uint8Array(fs.readFileSync(await download.path())));
  check(["config.json", "model.safetensors", "tokenizer.json"].every((f) => files.has(f)), "the zip holds config.json, model.safetensors, tokenizer.json");
  const sampleLabels = await page.locator("#samples li .step").allTextContents();
  check(sampleLabels.includes(`step ${steps}`), `sample labels show full step numbers (${sampleLabels.slice(0, 3).join(", ")})`);
  const config = JSON.parse(new TextDecoder().decode(files.get("config.json")!)) as Record<string, unknown>;
  check(config.hidden_size === hidden, `config.json hidden_size = ${hidden} (got ${String(config.hidden_size)})`);
  const st = parseSafetensors(files.get("model.safetensors")!, "model.safetensors");
  const embed = st.info("model.embed_tokens.weight").shape;
  check(embed[0] === config.vocab_size && embed[1] === hidden, `model.safetensors parses: ${st.names().length} tensors, embed [${embed.join(", ")}]`);
  const student = await loadCausalLMFromFiles(files, { source: "download" });
  check(student.config.hidden_size === hidden, "the downloaded files load as a model in Node");

  return {
    backend: state.backend, steps, trainSeconds: trainMs / 1000, pageSeconds: state.seconds, tokensPerSecond: state.steps.at(-1)!.tokensPerSecond,
    stepSeconds: state.steps.map((r, i) => Math.round((r.seconds - (i === 0 ? 0 : state.steps[i - 1]!.seconds)) * 100) / 100),
    firstLoss: head[0]!.losses, lastLoss: tail.at(-1)!.losses, val: { first: firstEval, last: lastEval }, samples: state.samples,
    teacherSample: state.teacherSample,
  };
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
