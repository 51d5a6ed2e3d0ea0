/**
 * A synchronous worker pool for the cpu kernels (Node `worker_threads` + SharedArrayBuffer + Atomics).
 *
 * Size: `LRC_THREADS` if set (1 = no workers), else min(os.availableParallelism(), 8) threads in total, the calling
 * thread included (so a 2-core machine gets one worker). Workers are created lazily on the first parallel call,
 * from one source string (`new Worker(WORKER_SOURCE, { eval: true })`): worker-main.ts and the runtime modules it
 * imports, bundled by esbuild into worker-bundle.generated.ts (`pnpm build:worker`; a test fails when it is
 * stale), so the pool works the same from .ts (tsx, vitest) and from compiled dist, and every thread runs the
 * calling thread's code. Workers are `unref()`ed: they never keep the process alive.
 *
 * Workers never return to their event loop: each sleeps in `Atomics.wait` on a generation counter (after a short
 * spin) and reads its task from its own MessagePort with `receiveMessageOnPort`, so a wake-up is a futex wake
 * instead of an event-loop message delivery (which cost ~0.4 ms per parallel call on a 2-core VM, 5-10% of a
 * 1024x256x704 gemm). A parallel call queues one task on each worker it needs, bumps the counter, then the calling
 * thread joins in: every thread claims
 * work items from a shared counter (`Atomics.add`) until none are left, and the caller blocks in `Atomics.wait`
 * until each worker has reported done, so the call stays synchronous. Operands must be SharedArrayBuffer-backed
 * (the kernels' entry points copy anything else into pooled shared scratch first).
 *
 * Outside Node (no `process.getBuiltinModule`, no `worker_threads`) or without SharedArrayBuffer the pool has
 * size 1 and everything runs on the calling thread.
 */
import type { Worker as NodeWorker } from "node:worker_threads";
import { attentionWasmBytes } from "./wasm-attention.js";
import { gemmWasmBytes } from "./wasm-gemm.js";
import { VECTOR_LAYOUT, vectorWasmBytes } from "./wasm-vector.js";
import { WORKER_SOURCE } from "./worker-bundle.generated.js";
import { CLAIM_STOP, MESSAGE_CHARS, type TaskKind, type WorkerData } from "./worker-protocol.js";

export type { TaskKind };

const MAX_DEFAULT_THREADS = 8;

interface NodeProcessLike {
  env?: Record<string, string | undefined>;
  getBuiltinModule?: (id: string) => unknown;
}

function nodeProcess(): NodeProcessLike | undefined {
  return (globalThis as { process?: NodeProcessLike }).process;
}

function defaultThreads(): number {
  const env = nodeProcess()?.env?.["LRC_THREADS"];
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`LRC_THREADS must be a positive integer, got "${env}"`);
    }
    return n;
  }
  const os = nodeProcess()?.getBuiltinModule?.("node:os") as
    | { availableParallelism?: () => number; cpus: () => unknown[] }
    | undefined;
  if (os === undefined) return 1;
  const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cores, MAX_DEFAULT_THREADS));
}

let threadCount = defaultThreads();
/** Minimum flop count (2*batch*m*n*k) for a gemm to go parallel (~160^3); from scripts/bench-gemm.ts on a 2-core VM. */
let gemmThreshold = 1 << 23;

interface Pool {
  workers: NodeWorker[];
  ports: { postMessage(value: unknown): void; close(): void }[];
  ctrl: Int32Array;
  message: Uint16Array;
}

let pool: Pool | null = null;

/** What the last parallel call did (for tests and diagnostics). */
export interface ParallelRunInfo {
  kind: TaskKind;
  items: number;
  helpers: number;
  /** Items the calling thread ran itself. */
  localItems: number;
}

let lastRun: ParallelRunInfo | null = null;

/** The last parallel call's split, or null if none ran on the pool yet. */
export function lastParallelRun(): ParallelRunInfo | null {
  return lastRun;
}

function createPool(workerCount: number): Pool | null {
  const wt = nodeProcess()?.getBuiltinModule?.("node:worker_threads") as
    | typeof import("node:worker_threads")
    | undefined;
  if (wt === undefined || typeof SharedArrayBuffer !== "function" || typeof Atomics.wait !== "function") {
    return null;
  }
  const sab = new SharedArrayBuffer(16 + 2 * MESSAGE_CHARS);
  const wasm = gemmWasmBytes();
  const attnWasm = attentionWasmBytes();
  const vecWasm = vectorWasmBytes();
  const workers: NodeWorker[] = [];
  const ports: Pool["ports"] = [];
  for (let i = 0; i < workerCount; i++) {
    const { port1, port2 } = new wt.MessageChannel();
    const workerData: WorkerData = { wasm, attnWasm, vecWasm, vecLayout: VECTOR_LAYOUT, ctrl: sab, port: port2 };
    const w = new wt.Worker(WORKER_SOURCE, {
      eval: true,
      workerData,
      transferList: [port2],
    });
    w.unref();
    port1.unref();
    workers.push(w);
    ports.push(port1);
  }
  return { workers, ports, ctrl: new Int32Array(sab, 0, 4), message: new Uint16Array(sab, 16, MESSAGE_CHARS) };
}

/** Total threads (calling thread included) parallel kernels use. */
export function getThreadCount(): number {
  return threadCount;
}

/** Sets the total thread count (1 = never use workers); an existing pool of another size is shut down. */
export function setThreadCount(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setThreadCount: need a positive integer, got ${n}`);
  if (n !== threadCount) {
    shutdownPool();
    threadCount = n;
  }
}

/** Minimum gemm flop count (2*batch*m*n*k) that runs on the pool. */
export function getParallelThreshold(): number {
  return gemmThreshold;
}

/** Sets the minimum gemm flop count that runs on the pool (0 = always, useful in tests). */
export function setParallelThreshold(flops: number): void {
  if (!(flops >= 0)) throw new RangeError(`setParallelThreshold: need flops >= 0, got ${flops}`);
  gemmThreshold = flops;
}

/** Terminates the workers (they are recreated on the next parallel call). */
export function shutdownPool(): void {
  if (pool === null) return;
  for (const w of pool.workers) void w.terminate();
  for (const p of pool.ports) p.close();
  pool = null;
}

/** True when a parallel call can run on more than the calling thread. */
export function poolAvailable(): boolean {
  if (threadCount <= 1) return false;
  if (pool === null) pool = createPool(threadCount - 1);
  if (pool === null) threadCount = 1;
  return pool !== null;
}

/** The first typed-array field of `job` that is not SharedArrayBuffer-backed (so no worker can see it), or null. */
export function unsharedField(job: object): string | null {
  for (const [key, value] of Object.entries(job)) {
    if (ArrayBuffer.isView(value) && !(value.buffer instanceof SharedArrayBuffer)) return key;
  }
  return null;
}

/**
 * Runs `items` work items of `kind` on up to `threadCount` threads: each worker gets `job` (whose typed arrays
 * must be SharedArrayBuffer-backed) and the calling thread runs `runLocal` with the same shared claim counter.
 * Returns when every item is done; rethrows the first failure.
 */
export function runParallel(
  kind: TaskKind,
  job: object,
  items: number,
  runLocal: (claim: () => number) => void,
): void {
  if (!poolAvailable() || pool === null) {
    let next = 0;
    runLocal(() => next++);
    return;
  }
  const unshared = unsharedField(job);
  if (unshared !== null) throw new TypeError(`worker-pool: ${kind} job field ${unshared} is not SharedArrayBuffer-backed`);
  const { workers, ports, ctrl, message } = pool;
  const helpers = Math.min(workers.length, items - 1);
  Atomics.store(ctrl, 0, 0);
  Atomics.store(ctrl, 1, 0);
  Atomics.store(ctrl, 2, 0);
  // Queue the task on each helper's port, then wake the helpers through the futex (much faster than waiting for
  // a worker's event loop to deliver a message); they read the task with receiveMessageOnPort.
  for (let i = 0; i < helpers; i++) ports[i]!.postMessage({ kind, job });
  Atomics.add(ctrl, 3, 1);
  Atomics.notify(ctrl, 3);
  let localError: unknown = null;
  let localItems = 0;
  try {
    runLocal(() => {
      const item = Atomics.add(ctrl, 0, 1);
      if (item < items) localItems++;
      return item;
    });
  } catch (e) {
    localError = e;
    Atomics.store(ctrl, 0, CLAIM_STOP);
  }
  const started = Date.now();
  for (;;) {
    const done = Atomics.load(ctrl, 1);
    if (done >= helpers) break;
    if (Atomics.wait(ctrl, 1, done, 1000) === "timed-out" && Date.now() - started > 600_000) {
      shutdownPool();
      throw new Error(`worker-pool: ${kind} workers did not finish within 600 s; the pool was shut down`);
    }
  }
  lastRun = { kind, items, helpers, localItems };
  if (localError !== null) throw localError;
  if (Atomics.load(ctrl, 2) !== 0) {
    let text = "";
    for (let i = 0; i < message.length && message[i] !== 0; i++) text += String.fromCharCode(message[i]!);
    throw new Error(`worker-pool: a ${kind} worker failed: ${text}`);
  }
}
