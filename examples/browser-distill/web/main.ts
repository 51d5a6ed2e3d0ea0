// The page: reads the teacher and corpus (the bundled demo, fetched from demo/, or files the user picks),
// starts the training worker, draws the loss curves live (lrc's SVG plot) with an ETA, lists the student's
// samples, and offers the exported student as one zip. The page's state is also kept in `window.lrcDemo`
// for the end-to-end test.

import { EtaClock, clock, lossPlotSvg } from "@lrc-ts/lrc";
import type { Series } from "@lrc-ts/lrc";
import type { BackendChoice, DemoState, FromWorker, ToWorker } from "../src/protocol.js";
import type { SessionOptions } from "../src/session.js";
import { studentZip } from "../src/student-zip.js";

const state: DemoState = {
  phase: "idle", backend: null, info: null, steps: [], evals: [], samples: [], teacherSample: null, downloads: [], error: null, seconds: null,
};
(window as unknown as { lrcDemo: DemoState }).lrcDemo = state;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`page: no element #${id}`);
  return el as T;
};
const input = (id: string) => $<HTMLInputElement>(id);
const statusEl = $("status");
const setStatus = (text: string, error = false) => {
  statusEl.textContent = text;
  statusEl.classList.toggle("error", error);
};

const DEMO_TEACHER_FILES = ["config.json", "model.safetensors", "tokenizer.json"];

async function fetchBytes(path: string): Promise<Uint8Array> {
  const url = new URL(path, document.baseURI);
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} (the demo data is made by \`pnpm build\`)`);
  return new Uint8Array(await r.arrayBuffer());
}

async function readInputs(): Promise<{ teacher: Map<string, Uint8Array>; corpus: string }> {
  const source = (document.querySelector('input[name="source"]:checked') as HTMLInputElement).value;
  if (source === "demo") {
    const teacher = new Map<string, Uint8Array>();
    for (const f of DEMO_TEACHER_FILES) teacher.set(f, await fetchBytes(`demo/teacher/${f}`));
    return { teacher, corpus: new TextDecoder().decode(await fetchBytes("demo/corpus.txt")) };
  }
  const picked = [...(input("teacher-files").files ?? [])];
  if (picked.length === 0) throw new Error("pick the teacher's folder (config.json, model.safetensors, tokenizer.json)");
  const teacher = new Map<string, Uint8Array>();
  for (const f of picked) if (/\.(json|safetensors)$/.test(f.name)) teacher.set(f.name, new Uint8Array(await f.arrayBuffer()));
  const corpusFile = input("corpus-file").files?.[0];
  if (corpusFile === undefined) throw new Error("pick a corpus text file");
  return { teacher, corpus: await corpusFile.text() };
}

function number(id: string, what: string): number {
  const v = Number(input(id).value);
  if (!Number.isFinite(v)) throw new Error(`${what}: not a number`);
  return v;
}

function readOptions(): SessionOptions {
  return {
    hiddenSize: number("hidden", "student hidden size"),
    steps: number("steps", "steps"),
    batchSize: number("batch", "batch size"),
    seqLen: number("seqlen", "sequence length"),
    lr: number("lr", "learning rate"),
    temperature: number("temperature", "temperature"),
    alpha: number("alpha", "clone weight"),
    seed: 0,
  };
}

const fmt = (v: number) => (Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toFixed(4));

let lastDraw = 0;
function drawChart(force = false): void {
  if (!force && performance.now() - lastDraw < 250) return;
  lastDraw = performance.now();
  const series: Series[] = [];
  for (const key of ["total", "ce", "kl", "clone"]) {
    const pts = state.steps.filter((s) => s.losses[key] !== undefined).map((s) => [s.step, s.losses[key]!] as const);
    if (pts.length > 0) series.push({ name: `train ${key}`, points: pts });
  }
  if (state.evals.length > 0) series.push({ name: "val ce (student)", points: state.evals.map((e) => [e.step, e.loss] as const), markers: true });
  const teacher = state.evals.find((e) => e.teacherLoss !== null)?.teacherLoss;
  if (series.length === 0 || series.every((s) => s.points.length < 1)) return;
  $("chart").innerHTML = lossPlotSvg(series, {
    title: "Low-Rank Clone losses",
    width: 720,
    height: 340,
    ...(teacher !== undefined && teacher !== null ? { reference: { name: "teacher val ce", value: teacher } } : {}),
  });
  const last = state.steps.at(-1);
  if (last !== undefined) {
    const rows = Object.entries(last.losses).filter(([k]) => !k.startsWith("layers."));
    $("latest").innerHTML = rows.map(([k, v]) => `<tr><td>${k}</td><td>${fmt(v)}</td></tr>`).join("") +
      `<tr><td>lr</td><td>${last.lr.toExponential(2)}</td></tr><tr><td>grad norm</td><td>${last.gradNorm.toFixed(3)}</td></tr>`;
  }
}

/** A sample: the step (in full, as its own label), the prompt (grey), then the student's continuation (marked). */
function addSample(step: number, text: string): void {
  state.samples.push({ step, text });
  const span = (className: string, content: string) => Object.assign(document.createElement("span"), { className, textContent: content });
  const li = document.createElement("li");
  li.append(span("step", `step ${step}`), span("prompt", input("prompt").value), span("continuation", text));
  $("samples").prepend(li);
}

/** One download: the student's HF files in a zip holding one folder. */
function offerDownloads(files: ReadonlyArray<readonly [string, Uint8Array]>, d: number): void {
  const list = $("downloads");
  list.innerHTML = "";
  const zip = studentZip(files, d);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([zip.bytes as Uint8Array<ArrayBuffer>], { type: "application/zip" }));
  a.download = zip.name;
  a.textContent = zip.name;
  a.dataset.file = zip.name;
  const li = document.createElement("li");
  li.append(a, document.createTextNode(` (${(zip.bytes.length / 1024).toFixed(1)} KiB: ${files.map(([n]) => n).join(", ")})`));
  list.append(li);
  state.downloads.push(zip.name);
  $("download-note").textContent = `The student (hidden_size ${d}) as an HF model folder, zipped: unzip it and load the folder.`;
}

let worker: Worker | null = null;
let etaClock = new EtaClock(0);

function onMessage(m: FromWorker, options: SessionOptions): void {
  switch (m.type) {
    case "status":
      setStatus(m.text);
      break;
    case "backend":
      state.backend = m.backend;
      $("backend-info").textContent =
        `Backend: ${m.backend.description}${m.backend.renderer !== null ? `; WebGL2 renderer: ${m.backend.renderer}` : ""}` +
        `${m.backend.notes.length > 0 ? ` (${m.backend.notes.join("; ")})` : ""}`;
      break;
    case "ready":
      state.info = m.info;
      state.phase = "running";
      state.teacherSample = m.teacherSample;
      $("teacher-sample").textContent = `${input("prompt").value}${m.teacherSample}`;
      setStatus(
        `Teacher: hidden ${m.info.teacher.hiddenSize}, ${m.info.teacher.layers} layers, ${(m.info.teacher.params / 1000).toFixed(0)}k parameters; ` +
          `student d = ${m.info.studentHiddenSize}, ${(m.info.trainable / 1000).toFixed(0)}k trainable; ${m.info.trainTokens} train / ${m.info.valTokens} val tokens`,
      );
      break;
    case "step": {
      state.steps.push(m.report);
      const r = m.report;
      const eta = etaClock.after(r.step, r.totalSteps, r.seconds * 1000);
      setStatus(`step ${r.step}/${r.totalSteps} · loss ${fmt(r.losses.total!)} · ${r.tokensPerSecond.toFixed(0)} tokens/s · ${r.seconds.toFixed(1)} s · ETA ${clock(eta)}`);
      drawChart();
      break;
    }
    case "eval":
      state.evals.push({ step: m.step, loss: m.loss, teacherLoss: m.teacherLoss });
      drawChart(true);
      break;
    case "sample":
      addSample(m.step, m.text);
      break;
    case "done":
      drawChart(true);
      offerDownloads(m.files, options.hiddenSize);
      state.seconds = m.seconds;
      state.phase = "done";
      setStatus(`${m.stopped ? "Stopped" : "Done"} after ${m.step} steps in ${m.seconds.toFixed(1)} s.`);
      finish();
      break;
    case "error":
      state.error = m.message;
      state.phase = "error";
      setStatus(`Error: ${m.message}`, true);
      finish();
      break;
  }
}

function finish(): void {
  input("start").disabled = false;
  input("stop").disabled = true;
  worker?.terminate();
  worker = null;
}

async function start(): Promise<void> {
  Object.assign(state, { phase: "loading", backend: null, info: null, steps: [], evals: [], samples: [], teacherSample: null, downloads: [], error: null, seconds: null });
  $("samples").innerHTML = "";
  etaClock = new EtaClock(0);
  $("downloads").innerHTML = "";
  $("chart").innerHTML = "";
  $("latest").innerHTML = "";
  input("start").disabled = true;
  input("stop").disabled = false;
  try {
    setStatus("reading the teacher and the corpus");
    const options = readOptions();
    const { teacher, corpus } = await readInputs();
    worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    worker.onmessage = (ev: MessageEvent<FromWorker>) => onMessage(ev.data, options);
    worker.onerror = (ev) => onMessage({ type: "error", message: `worker: ${ev.message}` }, options);
    const msg: ToWorker = {
      type: "start", teacher: [...teacher], corpus, options, backend: $<HTMLSelectElement>("backend").value as BackendChoice,
      prompt: input("prompt").value, sampleEvery: Math.max(1, Math.round(options.steps / 10)), evalEvery: Math.max(1, Math.round(options.steps / 10)),
    };
    worker.postMessage(msg);
  } catch (e) {
    onMessage({ type: "error", message: e instanceof Error ? e.message : String(e) }, readOptionsSafe());
  }
}

function readOptionsSafe(): SessionOptions {
  try {
    return readOptions();
  } catch {
    return { hiddenSize: 0, steps: 0, batchSize: 0, seqLen: 0, lr: 0, temperature: 0, alpha: 0, seed: 0 };
  }
}

input("start").addEventListener("click", () => void start());
input("stop").addEventListener("click", () => {
  worker?.postMessage({ type: "stop" } satisfies ToWorker);
  setStatus("stopping after this step");
});
// ?steps=N&backend=cpu... preset the settings (used by the end-to-end test and handy for links).
const params = new URLSearchParams(location.search);
for (const [key, id] of [["hidden", "hidden"], ["steps", "steps"], ["batch", "batch"], ["seqlen", "seqlen"], ["lr", "lr"], ["temperature", "temperature"], ["prompt", "prompt"]] as const) {
  const v = params.get(key);
  if (v !== null) input(id).value = v;
}
const backendParam = params.get("backend");
if (backendParam !== null) $<HTMLSelectElement>("backend").value = backendParam;
