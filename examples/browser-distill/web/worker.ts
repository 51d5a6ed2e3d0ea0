// The training worker: picks the tensor-core backend ("auto": the native WebGPU backend, WGSL kernels, when
// the browser's WebGPU adapter is hardware (GPU.js on WebGPU if that one fails to start), else GPU.js on WebGL2
// through an OffscreenCanvas when its WebGL2 is hardware, else the cpu kernels, which beat a software
// rasteriser such as SwiftShader by far; "native", "webgpu", "gl", "webasm" and "cpu" force one), runs the DistillSession step by step (the session reads values asynchronously, which WebGPU
// needs), and posts every step's losses, the evaluations and samples, and finally the exported student's
// files. Between steps it yields to the event loop so a "stop" message is seen.

import { autoTakesWebGpu, backendReport, getBackend, initBackend, isSoftwareRenderer, setBackend, webGpuAdapterInfo } from "@lrc-ts/tensor-core";
import type { BackendReportMsg, FromWorker, ToWorker } from "../src/protocol.js";
import { DistillSession } from "../src/session.js";

const post = (m: FromWorker) => (self as unknown as Worker).postMessage(m);
let stopRequested = false;

/** The WebGL2 renderer's name (unmasked where the browser allows), or null without WebGL2 in this worker. */
function glRenderer(): string | null {
  if (typeof OffscreenCanvas === "undefined") return null;
  const gl = new OffscreenCanvas(1, 1).getContext("webgl2");
  if (gl === null) return null;
  const ext = gl.getExtension("WEBGL_debug_renderer_info");
  const name = String(gl.getParameter(ext !== null ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension("WEBGL_lose_context")?.loseContext();
  return name;
}


async function chooseBackend(choice: string): Promise<BackendReportMsg> {
  const t0 = performance.now();
  const notes: string[] = [];
  const renderer = glRenderer();
  const softwareGl = renderer !== null && isSoftwareRenderer(renderer);
  const hasWebGpu = typeof navigator !== "undefined" && "gpu" in navigator;
  if (!hasWebGpu) notes.push("no WebGPU (navigator.gpu) in this worker");
  if (choice === "cpu") setBackend("cpu");
  else if (choice === "auto") {
    let chosen = false;
    if (hasWebGpu) {
      const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
      let hardware = false;
      try {
        const pick = autoTakesWebGpu(await webGpuAdapterInfo());
        if (pick.take) hardware = true;
        else notes.push(`WebGPU: ${pick.why}`);
      } catch (e) {
        notes.push(`WebGPU: ${message(e)}`);
      }
      if (hardware) {
        try {
          await initBackend("webgpu");
          chosen = true;
        } catch (e) {
          notes.push(`native WebGPU: ${message(e)}`);
        }
      }
      if (hardware && !chosen) {
        try {
          await initBackend("gpu", { mode: "webgpu" });
          chosen = true;
        } catch (e) {
          notes.push(`GPU.js WebGPU: ${message(e)}`);
        }
      }
    }
    if (!chosen && softwareGl) {
      notes.push('this WebGL2 is a software rasteriser, slower than the cpu kernels (choose "GPU.js WebGL2" to use it anyway)');
    } else if (!chosen) {
      try {
        const info = await initBackend("gpu", { mode: "gl" });
        if (info.software === true) notes.push(`GPU.js WebGL2 runs in software (${info.description})`);
        else chosen = true;
      } catch (e) {
        notes.push(`GPU.js WebGL2: ${(e as Error).message}`);
      }
    }
    if (!chosen) {
      notes.push("the cpu kernels are used");
      setBackend("cpu");
    }
  } else if (choice === "native") {
    await initBackend("webgpu");
  } else {
    await initBackend("gpu", { mode: choice as "webgpu" | "gl" | "webasm" });
  }
  const b = getBackend();
  return { description: b.description, name: b.name, mode: b.mode ?? null, renderer, notes, seconds: (performance.now() - t0) / 1000 };
}

const pause = () => new Promise<void>((r) => setTimeout(r, 0));

async function run(msg: Extract<ToWorker, { type: "start" }>): Promise<void> {
  const t0 = performance.now();
  post({ type: "status", text: "starting the backend" });
  post({ type: "backend", backend: await chooseBackend(msg.backend) });
  post({ type: "status", text: "loading the teacher and tokenizing the corpus" });
  const session = await DistillSession.create(new Map(msg.teacher), msg.corpus, msg.options);
  const teacherSample = await session.sampleTeacher(msg.prompt);
  post({ type: "ready", info: session.info, teacherSample, seconds: (performance.now() - t0) / 1000 });
  const evaluate = async (): Promise<void> => {
    const e = await session.evaluate();
    post({ type: "eval", step: session.step, loss: e.loss, teacherLoss: e.teacherLoss });
  };
  await evaluate();
  post({ type: "sample", step: 0, text: await session.sampleStudent(msg.prompt) });
  while (!session.done && !stopRequested) {
    post({ type: "step", report: await session.next() });
    const s = session.step;
    if (s % msg.evalEvery === 0 || session.done) await evaluate();
    if (s % msg.sampleEvery === 0 || session.done) post({ type: "sample", step: s, text: await session.sampleStudent(msg.prompt) });
    await pause();
  }
  if (stopRequested && session.step % msg.evalEvery !== 0) await evaluate();
  const files = [...(await session.exportFiles())];
  const report = backendReport();
  const fallbacks = report.ops.filter((o) => o.cpu > 0).map((o) => `${o.op} x${o.cpu}`);
  if (report.backend.name !== "cpu") post({ type: "status", text: `kernels that ran on cpu: ${fallbacks.join(", ") || "none"}` });
  post({ type: "done", step: session.step, stopped: stopRequested, files, seconds: (performance.now() - t0) / 1000 });
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === "stop") {
    stopRequested = true;
    return;
  }
  stopRequested = false;
  run(msg).catch((e: unknown) => post({ type: "error", message: e instanceof Error ? e.message : String(e) }));
};
