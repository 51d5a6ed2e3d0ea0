// One evaluation of an LRC run's student, as the trainer does it (the student's generated weights built once and
// reused over the val batches: LrcTask.withEvalModel; the teacher's evaluation, made once per run, is left out) against the path before (the weights rebuilt for every batch:
// the val source over LrcTask.evalModel()), interleaved, on a teacher checkpoint and a shard directory: one
// training step first (the recompute decision of the step's shape), then `rounds` pairs. Prints each
// evaluation's seconds and whether the val losses are bit-identical. At real shapes run it under
// `flock /tmp/lrc-bigmem.lock`.
//
//   node_modules/.bin/tsx --conditions=source benchmarks/eval-weights.ts TEACHER SHARDS [eval batches, default 4] [rounds, default 1]

import os from "node:os";
import { loadCausalLM } from "@lrc-ts/nn";
import { LowRankClone, LrcTask, Trainer, valSource } from "@lrc-ts/lrc";
import type { BatchSource } from "@lrc-ts/lrc";

const [teacherDir, shards] = process.argv.slice(2, 4);
if (teacherDir === undefined || shards === undefined) throw new Error("usage: eval-weights.ts TEACHER SHARDS [eval batches] [rounds]");
const maxBatches = Number(process.argv[4] ?? 4), rounds = Number(process.argv[5] ?? 1);
const win = { seqLen: 256, batchSize: 4, maxBatches };
const teacher = await loadCausalLM(teacherDir, { keepDType: true });
const clone = new LowRankClone(teacher, { hiddenSize: teacher.config.hidden_size / 2 });
const task = new LrcTask(clone);
// The one training step's batch: tokens of a fixed pattern (only the step's shape matters here).
const n = win.batchSize * win.seqLen;
const ids = Int32Array.from({ length: n + 1 }, (_, i) => (i * 7919) % teacher.config.vocab_size);
const reader: BatchSource = {
  next: () => ({ inputs: ids.slice(0, n), targets: ids.slice(1), shape: [win.batchSize, win.seqLen] }),
  state: () => ({}) as never, restore: () => {}, describe: () => ({}),
};
const val = valSource(shards, win);
const trainer = new Trainer(task, reader, val, { steps: 2 });
console.log(`load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}; ${teacher.config.num_hidden_layers} layers, ${maxBatches} val batches of 4 x 256`);
let t0 = performance.now();
await trainer.step1();
console.log(`step: ${((performance.now() - t0) / 1000).toFixed(1)} s; recompute: ${clone.recomputePlan(4, 256).recompute}`);
for (let r = 0; r < rounds; r++) {
  t0 = performance.now();
  const before = await val.evaluate(task.evalModel());
  const tBefore = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const after = await task.withEvalModel((m) => val.evaluate(m)); // Trainer.evaluate()'s student evaluation
  const tAfter = (performance.now() - t0) / 1000;
  console.log(
    `round ${r + 1}: per batch ${tBefore.toFixed(1)} s (loss ${before.loss}), once ${tAfter.toFixed(1)} s (loss ${after.loss}); ` +
      `${(tBefore / tAfter).toFixed(2)}x; bit-identical: ${before.loss === after.loss}; peak RSS so far ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
  );
}
