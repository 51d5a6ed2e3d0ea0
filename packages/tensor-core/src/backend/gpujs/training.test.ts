// Training on the gpu backend (issue 8): a tiny Llama-like block (embedding, rmsNorm, rope, GQA causal
// attention, SwiGLU MLP, crossEntropy, AdamW) gives the same losses on gpu as on cpu, and a 1,000-step
// training loop keeps the number of live device buffers flat (textures are freed by scopes, not by GC).

import { beforeAll, describe, expect, it } from "vitest";
import type { Tensor } from "../../tensor.js";
import { keep, scope, tensor } from "../../tensor.js";
import { rng as makeRng } from "../../random.js";
import * as ops from "../../ops/index.js";
import { AdamW } from "../../optim/optim.js";
import type { GpuMode } from "./runtime.js";
import { backendReport, backendFinish, initBackend, setBackend } from "../backend.js";

const mode = (process.env.LRC_GPU_TEST_MODE ?? "webasm") as GpuMode;
const D = 8, H = 2, Hkv = 1, dh = 4, F = 12, V = 11, T = 5;

function init(seed: number): Float32Array[] {
  const r = makeRng(seed);
  const mk = (n: number, s: number): Float32Array => Float32Array.from({ length: n }, () => s * r.normal());
  return [mk(V * D, 0.5), Float32Array.from({ length: D }, () => 1), mk(D * H * dh, 0.3), mk(D * Hkv * dh, 0.3), mk(D * Hkv * dh, 0.3),
    mk(H * dh * D, 0.3), Float32Array.from({ length: D }, () => 1), mk(D * F, 0.3), mk(D * F, 0.3), mk(F * D, 0.3), mk(D * V, 0.3)];
}
const shapes = [[V, D], [D], [D, H * dh], [D, Hkv * dh], [D, Hkv * dh], [H * dh, D], [D], [D, F], [D, F], [F, D], [D, V]];

function ropeTables(): [Tensor, Tensor] {
  const c = new Float32Array(T * dh), s = new Float32Array(T * dh);
  for (let t = 0; t < T; t++) for (let i = 0; i < dh / 2; i++) {
    const a = t / 10000 ** ((2 * i) / dh);
    c[t * dh + i] = c[t * dh + i + dh / 2] = Math.cos(a);
    s[t * dh + i] = s[t * dh + i + dh / 2] = Math.sin(a);
  }
  return [keep(tensor(c, [T, dh])), keep(tensor(s, [T, dh]))];
}

function loss(p: Tensor[], ids: Tensor, targets: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const [emb, n1, wq, wk, wv, wo, n2, wg, wu, wd, head] = p as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
  const x = ops.embedding(emb, ids); // (1, T, D)
  const h = ops.rmsNorm(x, n1, 1e-6);
  const heads = (w: Tensor, n: number): Tensor => ops.transpose(ops.reshape(ops.matmul(h, w), [1, T, n, dh]), 1, 2); // (1, n, T, dh)
  const q = ops.rope(heads(wq, H), cos, sin), k = ops.rope(heads(wk, Hkv), cos, sin), v = heads(wv, Hkv);
  const a = ops.reshape(ops.transpose(ops.causalAttention(q, k, v), 1, 2), [1, T, H * dh]);
  const x2 = ops.add(x, ops.matmul(a, wo));
  const h2 = ops.rmsNorm(x2, n2, 1e-6);
  const x3 = ops.add(x2, ops.matmul(ops.swiglu(ops.matmul(h2, wg), ops.matmul(h2, wu)), wd));
  return ops.crossEntropy(ops.matmul(x3, head), targets);
}

/** Trains for `steps` steps; the losses are read after the loop (asynchronously: webgpu reads no other way). */
async function train(steps: number): Promise<number[]> {
  const params = init(3).map((b, i) => keep(tensor(b, shapes[i]!, { requiresGrad: true })));
  const ids = keep(tensor(new Int32Array([1, 4, 7, 2, 9]), [1, T]));
  const targets = keep(tensor(new Int32Array([4, 7, 2, 9, 3]), [1, T]));
  const [cos, sin] = ropeTables();
  const opt = new AdamW(params, { lr: 0.02 });
  const losses: Tensor[] = [];
  for (let s = 0; s < steps; s++)
    scope(() => {
      for (const p of params) {
        p.grad?.dispose(); // grads are kept past scopes: free them explicitly
        p.grad = null;
      }
      const l = loss(params, ids, targets, cos, sin);
      l.backward();
      opt.step();
      losses.push(keep(l));
    });
  const out: number[] = [];
  for (const l of losses) {
    out.push(await l.itemAsync());
    l.dispose();
  }
  for (const t of [...params, ids, targets, cos, sin]) t.dispose();
  return out;
}

describe(`gpu backend training (GPU.js ${mode})`, () => {
  beforeAll(async () => {
    await initBackend("gpu", { mode });
    setBackend("cpu");
  }, 60_000);

  it("a tiny Llama-like block trains to the same losses on gpu as on cpu", async () => {
    setBackend("cpu");
    const c = await train(6);
    setBackend("gpu");
    const g = await train(6);
    const rep = backendReport();
    setBackend("cpu");
    expect(c[5]!).toBeLessThan(c[0]!);
    g.forEach((l, i) => expect(Math.abs(l - c[i]!), `step ${i}: gpu ${l} vs cpu ${c[i]}`).toBeLessThan(mode === "webasm" || mode === "cpu" ? 2e-4 : 2e-3));
    for (const op of ["gemm", "rmsNorm", "rope", "attention", "crossEntropy", "adamw", "gather"])
      expect(rep.ops.find((o) => o.op === op)?.device ?? 0, `${op} ran on gpu`).toBeGreaterThan(0);
  });

  it("1,000 training steps do not grow the number of live device buffers", async () => {
    setBackend("gpu");
    const w = keep(tensor(Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)), [3, 4], { requiresGrad: true }));
    const x = keep(tensor(Float32Array.from({ length: 6 }, (_, i) => Math.cos(i)), [2, 3]));
    const opt = new AdamW([w], { lr: 0.01 });
    const step = (): void => scope(() => {
      w.grad?.dispose();
      w.grad = null;
      const l = ops.mean(ops.square(ops.tanh(ops.matmul(x, w))));
      l.backward();
      opt.step();
    });
    for (let i = 0; i < 10; i++) step();
    await backendFinish(); // webgpu: buffers are deleted once the kernels reading them were submitted
    const live = backendReport().device!.liveBuffers;
    for (let i = 0; i < 1000; i++) step();
    await backendFinish();
    expect(backendReport().device!.liveBuffers).toBe(live);
    setBackend("cpu");
  }, 120_000);
});
