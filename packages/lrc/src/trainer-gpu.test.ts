// The trainer on tensor-core's gpu backend, in the GPU.js mode named by LRC_GPU_TEST_MODE (default webasm; CI
// also runs it in `gl` under xvfb-run and in `webgpu` on Dawn + lavapipe, where every read of a value is
// asynchronous), or on the native WebGPU backend with LRC_TEST_BACKEND=webgpu (CI: on lavapipe): a tiny teacher pretrained and then LRC-distilled, checkpoints, evaluation and the export
// included, gives the losses of the same run on cpu, and its student generates the same greedy tokens, with
// no op falling back to cpu.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate, loadCausalLM, saveCausalLM } from "@lrc-ts/nn";
import type { GpuMode } from "@lrc-ts/tensor-core";
import { backendReport, initBackend, resetBackendReport, setBackend } from "@lrc-ts/tensor-core";
import { distill, pretrain } from "./node/run.js";
import { tinyConfigJson, writeJson, writeMarkovShards } from "./testing-internal/fixtures.js";

const mode = (process.env.LRC_GPU_TEST_MODE ?? "webasm") as GpuMode;
const backend = process.env.LRC_TEST_BACKEND ?? "gpu";
const label = backend === "gpu" ? `the gpu backend (GPU.js ${mode})` : `the ${backend} backend`;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-trainer-gpu-"));
const data = path.join(root, "shards");
const quiet = { progress: false, log: () => {} } as const;
afterAll(() => {
  setBackend("cpu");
  fs.rmSync(root, { recursive: true, force: true });
});

beforeAll(() => {
  writeMarkovShards(data, { vocab: 64, trainTokens: 6000, valTokens: 600 });
  writeJson(path.join(root, "teacher-config.json"), tinyConfigJson({ hidden: 32, vocab: 64 }));
  fs.writeFileSync(path.join(root, "tokenizer.json"), "{}\n");
});

/**
 * Pretrains a teacher (20 steps) and distills it (10 steps of 2 accumulated micro-batches: the gradient sums run
 * where the gradients live) under `name`, with evaluation, checkpoints and weight decay (two AdamW groups: the
 * decayed tensors and the biases, gains and embedding).
 */
async function run(name: string) {
  const dir = path.join(root, name);
  const teacher = await pretrain({
    config: path.join(root, "teacher-config.json"), data, out: path.join(dir, "teacher"), steps: 20, batchSize: 8, seqLen: 16, lr: 1e-2,
    warmupSteps: 2, evalEvery: 10, saveEvery: 10, weightDecay: 0.1, tokenizer: path.join(root, "tokenizer.json"), ...quiet,
  });
  const student = await distill({
    teacher: path.join(dir, "teacher", "model"), hiddenSize: 16, data, batchSize: 2, gradAccum: 2, seqLen: 16, lr: 5e-3, warmupSteps: 2, alpha: 0.5,
    temperature: 2, out: path.join(dir, "student"), steps: 10, evalEvery: 5, saveEvery: 5, weightDecay: 0.05, ...quiet,
  });
  expect(teacher.exported).not.toBeNull();
  return { teacher, student };
}

/** 12 greedy tokens of the exported model in `dir`, on the active backend. */
async function sample(dir: string): Promise<number[]> {
  const model = await loadCausalLM(dir);
  return (await generate(model, [1, 2, 3], { maxNewTokens: 12, temperature: 0, stopTokens: [] })).tokens;
}

describe(`the trainer on ${label}`, () => {
  it("pretrain + distill give the cpu run's losses, evaluation and exported student; nothing falls back to cpu", async () => {
    setBackend("cpu");
    const cpu = await run("cpu");
    const cpuTokens = await sample(cpu.student.exported!);
    await initBackend(backend, { mode });
    resetBackendReport();
    const gpu = await run("gpu");
    const gpuTokens = await sample(gpu.student.exported!);
    const report = backendReport();
    setBackend("cpu");
    // Greedy generation with the KV cache (concat on the device, each token's logits read asynchronously).
    expect(gpuTokens).toHaveLength(12);
    expect(gpuTokens).toEqual(cpuTokens);
    if (backend === "gpu") expect(report.backend.mode).toBe(mode);
    else expect(report.backend.name).toBe(backend);
    // No cpu fallback at all: the gradient clip's sums of squares and scaling run on the device too.
    expect(report.ops.filter((o) => o.cpu > 0).map((o) => o.op)).toEqual([]);
    for (const op of ["gemm", "attentionBackward", "crossEntropy", "klDiv", "adamw", "accumulate", "gatherBackward", "concat", "sumSquares", "scale"])
      expect(report.ops.find((o) => o.op === op)?.device ?? 0, `${op} ran on gpu`).toBeGreaterThan(0);
    const tol = backend === "gpu" && mode === "webasm" ? 1e-4 : 2e-3;
    const close = (what: string, a: number, b: number): void => expect(Math.abs(a - b), `${what}: gpu ${b} vs cpu ${a}`).toBeLessThan(tol * (1 + Math.abs(a)));
    for (const k of ["ce", "total"]) close(`pretrain ${k}`, cpu.teacher.final[k]!, gpu.teacher.final[k]!);
    for (const k of ["ce", "kl", "clone", "total"]) close(`distill ${k}`, cpu.student.final[k]!, gpu.student.final[k]!);
    close("distill val loss", cpu.student.val!.loss, gpu.student.val!.loss);
    // The exported students (folded on the device, read back) hold the same weights.
    expect(gpu.student.exported).not.toBeNull();
    const a = await loadCausalLM(cpu.student.exported!);
    const b = await loadCausalLM(gpu.student.exported!);
    const wa = a.parameters(), wb = b.parameters();
    expect(wb.length).toBe(wa.length);
    let worst = 0;
    wa.forEach((t, i) => {
      const x = t.data(), y = wb[i]!.data();
      for (let j = 0; j < x.length; j++) worst = Math.max(worst, Math.abs(x[j]! - y[j]!));
    });
    expect(worst).toBeLessThan(tol);
  }, 300_000);

  it.runIf(backend === "webgpu")("distills a BF16 teacher kept as bfloat16 on the device: the float32 load's losses bit for bit, its matmuls and embedding on the device", async () => {
    const bf = path.join(root, "bf16-teacher");
    setBackend("cpu");
    await saveCausalLM(await loadCausalLM(path.join(root, "gpu", "teacher", "model")), bf, { dtype: "BF16" });
    await initBackend("webgpu");
    const runs: Array<Record<string, number>> = [];
    for (const keep of [true, false]) {
      resetBackendReport();
      const r = await distill({
        teacher: bf, hiddenSize: 16, data, batchSize: 4, seqLen: 16, lr: 5e-3, warmupSteps: 2, alpha: 0.5, temperature: 2,
        out: path.join(root, `bf16-${keep}`), steps: 4, evalEvery: 2, keepTeacherDType: keep, ...quiet,
      });
      runs.push({ ...r.final, val: r.val!.loss });
      if (keep) expect(backendReport().ops.filter((o) => o.cpu > 0).map((o) => o.op)).toEqual([]); // no cpu fallback, the gradient clip included
    }
    setBackend("cpu");
    expect(Object.keys(runs[0]!)).toEqual(expect.arrayContaining(["ce", "kl", "clone", "val"]));
    expect(runs[0]).toEqual(runs[1]);
  }, 300_000);
});
