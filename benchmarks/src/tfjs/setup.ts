// TensorFlow.js backends for the reference side: tfjs-backend-cpu (plain JavaScript, one thread) and
// tfjs-backend-wasm (XNNPACK, SIMD), its .wasm files loaded from node_modules by file path (no network).
//
// Threads: tfjs-backend-wasm 4.22 turns multi-threading off under Node (WASM_HAS_MULTITHREAD_SUPPORT is
// hard-wired to false, tensorflow/tfjs#3830). For threads > 1 this file shims it on: it forces the flag,
// makes Emscripten's pthread workers loadable by Node (the worker script and the module factory arrive as
// blob: URLs, which node:worker_threads cannot load, so the Worker constructor is wrapped to evaluate the
// packaged worker source with the factory source passed as workerData), and reports twice the requested
// thread count from os.cpus() while the module initialises, because the C++ side caps XNNPACK's pool at
// cpus / 2. The effective count is read back with getThreadsCount() and checked.
//
// Gradients: tfjs-core's CommonJS node bundle registers no gradients (the @tensorflow/tfjs union package
// normally does). They are registered from tfjs-core's own ESM build, dist/register_all_gradients.js, through a
// resolve hook (resolve-hook.mjs) for its extensionless imports. The registries and the engine live on
// the global object, so gradients registered by that copy serve the CommonJS copy used here.
//
// The TF.js packages themselves are loaded with require() so that the backends register on one instance.

import { createRequire, register } from "node:module";
import * as path from "node:path";
import type * as TfCore from "@tensorflow/tfjs-core";
import type * as TfWasm from "@tensorflow/tfjs-backend-wasm";

const require = createRequire(import.meta.url);

export type Tf = typeof TfCore;
export type TfBackend = "cpu" | "wasm";

function wasmPackageDir(): string {
  return path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
}

/** Marker the shim replaces in the packaged pthread worker: the load of the main script from a Blob. */
const WORKER_LOAD_SNIPPET =
  'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}else{var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)}';

function installNodeThreadsShim(): () => void {
  const dir = wasmPackageDir();
  const { wasmWorkerContents } = require(path.join(dir, "wasm-out/tfjs-backend-wasm-threaded-simd.worker.js")) as { wasmWorkerContents: string };
  const factory = require(path.join(dir, "wasm-out/tfjs-backend-wasm-threaded-simd.js")) as (...a: unknown[]) => unknown;
  if (!wasmWorkerContents.includes(WORKER_LOAD_SNIPPET))
    throw new Error("tfjs-backend-wasm threads shim: the packaged pthread worker changed; cannot enable threads under Node");
  // Same escaping tfjs applies before turning the source into a Blob.
  const workerSource = wasmWorkerContents
    .replace(/\n/g, "\\n")
    .replace(WORKER_LOAD_SNIPPET, '(0,eval)(require("worker_threads").workerData);');
  const factorySource = `var WasmBackendModuleThreadedSimd = ${factory.toString()}`;
  const wt = require("node:worker_threads") as { Worker: new (file: string | URL, opts?: Record<string, unknown>) => unknown };
  const Original = wt.Worker;
  class PthreadWorker extends (Original as new (file: string | URL, opts?: Record<string, unknown>) => object) {
    constructor(file: string | URL, opts?: Record<string, unknown>) {
      if (typeof file === "string" && file.startsWith("blob:")) super(workerSource, { ...opts, eval: true, workerData: factorySource });
      else super(file, opts);
    }
  }
  wt.Worker = PthreadWorker as unknown as typeof wt.Worker;
  const os = require("node:os") as { cpus: () => unknown[] };
  const cpus = os.cpus;
  os.cpus = () => [...cpus(), ...cpus()];
  return () => {
    os.cpus = cpus;
  };
}

async function registerGradients(tf: Tf): Promise<void> {
  register(new URL("./resolve-hook.mjs", import.meta.url));
  // The ESM copy prints the "install tfjs-node" banner through console.log while loading.
  const log = console.log;
  console.log = () => {};
  try {
    await import("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  } finally {
    console.log = log;
  }
  // Check one gradient end to end, so a broken registration fails here rather than in a case.
  const g = tf.tidy(() => tf.grad((x: TfCore.Tensor) => tf.sum(tf.mul(x, x)))(tf.tensor1d([3])).dataSync()[0]);
  if (g !== 6) throw new Error(`TF.js gradient registration failed (d/dx x^2 at 3 gave ${g})`);
}

/** Loads TF.js with the given backend; returns the tf namespace and a description of what runs. */
export async function loadTf(backend: TfBackend, threads: number): Promise<{ tf: Tf; description: string }> {
  const tf = require("@tensorflow/tfjs-core") as Tf;
  // Production mode: no "install tfjs-node" banner and no debug-only warnings.
  tf.env().set("PROD", true);
  const ready = async (): Promise<void> => {
    await tf.ready();
    await registerGradients(tf);
  };
  if (backend === "cpu") {
    if (threads !== 1) throw new Error("tfjs-backend-cpu is single-threaded; run it with 1 thread");
    require("@tensorflow/tfjs-backend-cpu");
    if (!(await tf.setBackend("cpu"))) throw new Error("tf.setBackend('cpu') failed");
    await ready();
    return { tf, description: `TF.js ${tf.version_core} tfjs-backend-cpu (JavaScript, 1 thread)` };
  }
  const wasm = require("@tensorflow/tfjs-backend-wasm") as typeof TfWasm;
  wasm.setWasmPaths(`${path.join(wasmPackageDir(), "dist")}${path.sep}`);
  wasm.setThreadsCount(threads);
  let restore = (): void => {};
  if (threads > 1) {
    restore = installNodeThreadsShim();
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  }
  try {
    if (!(await tf.setBackend("wasm"))) throw new Error("tf.setBackend('wasm') failed");
    await tf.ready();
  } finally {
    restore();
  }
  await registerGradients(tf);
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  const actual = wasm.getThreadsCount();
  if (actual !== threads) throw new Error(`tfjs-backend-wasm runs ${actual} threads, wanted ${threads}`);
  const how = threads > 1 ? `${actual} threads via a Node pthread shim (not supported upstream under Node)` : "1 thread";
  return { tf, description: `TF.js ${tf.version_core} tfjs-backend-wasm (XNNPACK, SIMD ${simd ? "on" : "off"}, ${how})` };
}
