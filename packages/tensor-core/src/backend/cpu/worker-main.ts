/**
 * The pool worker's entry module: bundled by esbuild (scripts/worker-bundle.ts) into worker-bundle.generated.ts,
 * the source string every worker runs. It builds the same runtimes as the calling thread (gemm, attention, rows)
 * from the same modules and bytes, so a parallel kernel is bit-identical to a serial one, then serves tasks: it
 * sleeps in `Atomics.wait` on the generation counter (after a short spin), reads its tasks from its port with
 * `receiveMessageOnPort`, claims work items from the shared counter, and reports done (or the first failure).
 */
import { receiveMessageOnPort, workerData as data } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import { createAttentionRuntime } from "./attention-runtime.js";
import { createGemmRuntime } from "./gemm-runtime.js";
import { createRowsRuntime, rowsInstance } from "./rows-runtime.js";
import { CLAIM_STOP, MESSAGE_CHARS, SPIN_LOADS, type TaskKind, type WorkerData } from "./worker-protocol.js";

const workerData = data as WorkerData;
const gemm = createGemmRuntime(workerData.wasm);
const attention = createAttentionRuntime(gemm, workerData.attnWasm);
const rows = createRowsRuntime(rowsInstance(workerData.vecWasm, workerData.vecLayout), workerData.vecLayout);
const ctrl = new Int32Array(workerData.ctrl, 0, 4);
const message = new Uint16Array(workerData.ctrl, 16, MESSAGE_CHARS);
const port = workerData.port as MessagePort;
const claim = (): number => Atomics.add(ctrl, 0, 1);

function handle(task: { kind: TaskKind; job: never }): void {
  try {
    if (task.kind === "gemm") gemm.runTiles(task.job, claim);
    else if (task.kind === "attnFwd") attention.forwardItems(task.job, claim);
    else if (task.kind === "attnBwd") attention.backwardItems(task.job, claim);
    else if (task.kind === "rows") rows.runItems(task.job, claim);
    else throw new Error(`unknown task kind ${String(task.kind)}`);
  } catch (e) {
    const text = String((e as Error | null)?.stack ?? e).slice(0, MESSAGE_CHARS - 1);
    if (Atomics.compareExchange(ctrl, 2, 0, 1) === 0) {
      for (let i = 0; i < text.length; i++) message[i] = text.charCodeAt(i);
      message[text.length] = 0;
    }
    Atomics.store(ctrl, 0, CLAIM_STOP);
  }
  Atomics.add(ctrl, 1, 1);
  Atomics.notify(ctrl, 1);
}

// Start from 0 (the counter's initial value), not the current value: tasks may be queued before this thread runs.
let seen = 0;
for (;;) {
  // Spin briefly (back-to-back kernels arrive within microseconds), then sleep on the futex.
  for (let i = 0; i < SPIN_LOADS && Atomics.load(ctrl, 3) === seen; i++);
  if (Atomics.load(ctrl, 3) === seen) Atomics.wait(ctrl, 3, seen, 1000);
  seen = Atomics.load(ctrl, 3);
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) handle(m.message as { kind: TaskKind; job: never });
}
