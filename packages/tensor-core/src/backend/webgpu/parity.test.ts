// Op and gradient parity of the webgpu backend (initBackend("webgpu")) against cpu, through the public ops and
// the tape: every op the LRC step uses, forward and gradients, on small odd shapes; and the dispatch report
// showing those kernels ran on the device, not as cpu fallbacks. On lavapipe in CI (LRC_WEBGPU_TEST=1, where a
// backend that cannot start fails the suite); skipped where no WebGPU adapter answers otherwise.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tensor } from "../../tensor.js";
import { scope, tensor } from "../../tensor.js";
import { rng as makeRng } from "../../random.js";
import * as ops from "../../ops/index.js";
import { AdamW } from "../../optim/optim.js";
import { valueAndGrad } from "../../autodiff/grad.js";
import { backendReport, getBackend, initBackend, resetBackendReport, setBackend } from "../backend.js";
import { webgpuRequired } from "./test-device.js";

let ready = false;
beforeAll(async () => {
  try {
    await initBackend("webgpu");
    ready = true;
  } catch (e) {
    if (webgpuRequired) throw e;
    console.warn(`webgpu parity skipped (set LRC_WEBGPU_TEST=1 to require it): ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    setBackend("cpu");
  }
});
afterAll(() => setBackend("cpu"));

const TOL = 1e-4;

/** Runs fn on cpu and on webgpu with the same host inputs; compares every output (relative to 1 + |cpu|). */
async function closeBoth(name: string, fn: () => Tensor[], tol = TOL): Promise<void> {
  setBackend("cpu");
  const c = scope(() => fn().map((t) => Float32Array.from(t.data())));
  setBackend("webgpu");
  const outs = scope(fn);
  setBackend("cpu");
  const g: Float32Array[] = [];
  try {
    for (const t of outs) g.push(Float32Array.from(await t.dataAsync()));
  } finally {
    for (const t of outs) t.dispose();
  }
  expect(g.length).toBe(c.length);
  c.forEach((cv, i) => {
    expect(g[i]!.length, `${name} output ${i} length`).toBe(cv.length);
    let worst = 0;
    for (let j = 0; j < cv.length; j++) worst = Math.max(worst, Math.abs(g[i]![j]! - cv[j]!) / (1 + Math.abs(cv[j]!)));
    expect(worst, `${name} output ${i}: max relative difference`).toBeLessThan(tol);
  });
}

const r = makeRng(17);
function rnd(shape: number[], s = 1): Tensor {
  const b = new Float32Array(shape.reduce((a, d) => a * d, 1));
  for (let i = 0; i < b.length; i++) b[i] = s * r.normal();
  return tensor(b, shape);
}

/** Forward value and gradients of sum(f(xs) * w) with respect to every input. */
function withGrads(f: (...xs: Tensor[]) => Tensor, xs: Tensor[]): Tensor[] {
  const lf = (...a: Tensor[]): Tensor => {
    const y = f(...a);
    const w = new Float32Array(y.size).map((_, i) => Math.sin(i + 1));
    return ops.sum(ops.mul(y, tensor(w, [...y.shape])));
  };
  const [v, gs] = valueAndGrad(lf, xs.map((_, i) => i))(...xs);
  return [v, ...(gs as Tensor[])];
}

describe("webgpu backend parity with cpu", () => {
  it("names the adapter and whether it is software", () => {
    if (!ready) return;
    setBackend("webgpu");
    const info = getBackend();
    setBackend("cpu");
    expect(info.name).toBe("webgpu");
    expect(info.description).toMatch(/^webgpu: WGSL kernels on .+; matmul (tiled|texture)/);
    expect(typeof info.software).toBe("boolean");
  });

  it("unary and binary ops with broadcasting, and their gradients", async () => {
    if (!ready) return;
    const x = rnd([3, 5]), pos = ops.add(ops.abs(rnd([3, 5])), 0.5), b = rnd([5]);
    for (const op of ["neg", "exp", "tanh", "sigmoid", "silu", "relu", "square", "abs"] as const)
      await closeBoth(op, () => withGrads((a) => ops[op](a), [x]));
    for (const f of [ops.log, ops.sqrt, ops.rsqrt, ops.reciprocal, (a: Tensor) => ops.pow(a, 1.5)])
      await closeBoth("positive unary", () => withGrads(f, [pos]));
    for (const op of ["add", "sub", "mul", "div", "maximum", "minimum"] as const)
      await closeBoth(op, () => withGrads((p, q) => ops[op](p, q), [x, op === "div" ? ops.add(ops.abs(b), 0.5) : b]));
    await closeBoth("comparisons", () => [ops.lt(x, b), ops.ge(x, b), ops.eq(x, x)]);
  });

  it("reductions (sum, mean, max, min, logsumexp) and gradients", async () => {
    if (!ready) return;
    const x = rnd([3, 4, 5]);
    await closeBoth("sum", () => withGrads((a) => ops.sum(a, [0, 2]), [x]));
    await closeBoth("mean", () => withGrads((a) => ops.mean(a, 1, true), [x]));
    await closeBoth("max", () => withGrads((a) => ops.max(a, -1), [x]));
    await closeBoth("min", () => withGrads((a) => ops.min(a, 0), [x]));
    await closeBoth("logsumexp", () => withGrads((a) => ops.logsumexp(a, -1), [x]));
    const long = rnd([2, 600]);
    await closeBoth("sum long", () => [ops.sum(long, -1)]);
  });

  it("matmul: batched, shared operands, transposes, with gradients", async () => {
    if (!ready) return;
    const a = rnd([2, 3, 5]), b = rnd([5, 7]), bt = rnd([2, 7, 5]), at = rnd([2, 5, 3]);
    await closeBoth("matmul", () => withGrads((x, y) => ops.matmul(x, y), [a, b]));
    await closeBoth("matmul transB", () => withGrads((x, y) => ops.matmul(x, y, { transB: true }), [a, bt]));
    await closeBoth("matmul transA", () => withGrads((x, y) => ops.matmul(x, y, { transA: true }), [at, b]));
    await closeBoth("matmul both", () => withGrads((x, y) => ops.matmul(x, y, { transA: true, transB: true }), [at, bt]));
    const big = [rnd([70, 130]), rnd([130, 9])];
    await closeBoth("matmul 70x130x9", () => withGrads((x, y) => ops.matmul(x, y), big));
  });

  it("movement: permute, broadcastTo, slice, concat and gradients", async () => {
    if (!ready) return;
    const x = rnd([2, 3, 5]);
    await closeBoth("permute", () => withGrads((a) => ops.permute(a, [2, 0, 1]), [x]));
    await closeBoth("broadcastTo", () => withGrads((a) => ops.broadcastTo(a, [4, 2, 3, 5]), [x]));
    await closeBoth("slice", () => withGrads((a) => ops.slice(a, [1, 1, 2], [2, 3, 5]), [x]));
    const y = rnd([2, 1, 5]);
    await closeBoth("concat axis 1", () => withGrads((p, q) => ops.concat([p, q], 1), [x, y]));
  });

  it("softmax, logSoftmax, rmsNorm, rope, swiglu and their gradients", async () => {
    if (!ready) return;
    const x = rnd([3, 4, 300], 3);
    await closeBoth("softmax", () => withGrads((a) => ops.softmax(a), [x]));
    await closeBoth("logSoftmax", () => withGrads((a) => ops.logSoftmax(a), [x]));
    const w = rnd([300]);
    await closeBoth("rmsNorm", () => withGrads((a, ww) => ops.rmsNorm(a, ww, 1e-6), [x, w]));
    const T = 5, dh = 6;
    const cb = new Float32Array(T * dh), sb = new Float32Array(T * dh);
    for (let t = 0; t < T; t++) for (let i = 0; i < dh / 2; i++) {
      const ang = t / 10 ** (i / 3);
      cb[t * dh + i] = cb[t * dh + i + dh / 2] = Math.cos(ang);
      sb[t * dh + i] = sb[t * dh + i + dh / 2] = Math.sin(ang);
    }
    const cos = tensor(cb, [T, dh]), sin = tensor(sb, [T, dh]);
    const xr = rnd([2, 3, T, dh]), gu = [rnd([4, 9], 2), rnd([4, 9])];
    await closeBoth("rope", () => withGrads((a) => ops.rope(a, cos, sin), [xr]));
    await closeBoth("swiglu", () => withGrads((g, u) => ops.swiglu(g, u), gu));
  });

  it("causal GQA attention (with and without an offset) and its gradients", async () => {
    if (!ready) return;
    const q = rnd([2, 4, 3, 8]), k = rnd([2, 2, 5, 8]), v = rnd([2, 2, 5, 8]);
    await closeBoth("attention offset 2", () => withGrads((a, b, c) => ops.causalAttention(a, b, c), [q, k, v]));
    const q2 = rnd([1, 2, 70, 8]), k2 = rnd([1, 1, 70, 8]), v2 = rnd([1, 1, 70, 8]);
    await closeBoth("attention T 70", () => withGrads((a, b, c) => ops.causalAttention(a, b, c), [q2, k2, v2]));
  });

  it("crossEntropy (ignoreIndex), klDivergence (temperature), mse, embedding, with gradients", async () => {
    if (!ready) return;
    const logits = rnd([2, 3, 300], 2), t = rnd([2, 3, 300], 2);
    const targets = tensor(new Int32Array([1, 299, -100, 0, 3, 3]), [2, 3]);
    await closeBoth("crossEntropy", () => withGrads((a) => ops.crossEntropy(a, targets), [logits]));
    await closeBoth("klDivergence", () => withGrads((a, b) => ops.klDivergence(a, b, { temperature: 2 }), [t, logits]));
    await closeBoth("mse", () => withGrads((a, b) => ops.mse(a, b), [t, logits]));
    const ids = tensor(new Int32Array([0, 3, 3, 6, 1, 3]), [2, 3]);
    const table = rnd([7, 5]);
    await closeBoth("embedding", () => withGrads((w) => ops.embedding(w, ids), [table]));
  });

  it("AdamW steps on the device match cpu", async () => {
    if (!ready) return;
    const p0 = rnd([33, 5]).data();
    const run = async (backend: string): Promise<Float32Array> => {
      setBackend(backend);
      const p = tensor(Float32Array.from(p0), [33, 5]);
      const r2 = makeRng(3);
      const opt = new AdamW([p], { lr: 1e-2, weightDecay: 0.1 });
      for (let s = 0; s < 3; s++) {
        const g = tensor(Float32Array.from({ length: p.size }, () => r2.normal()), [...p.shape]);
        opt.step([g]);
        g.dispose();
      }
      setBackend("cpu");
      return Float32Array.from(await p.dataAsync());
    };
    const c = await run("cpu");
    const g = await run("webgpu");
    let worst = 0;
    for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(c[i]! - g[i]!));
    expect(worst).toBeLessThan(1e-5);
  });

  it("runs the LRC step's kernels on the device: no cpu fallback for them", async () => {
    if (!ready) return;
    resetBackendReport();
    setBackend("webgpu");
    const outs = scope(() => withGrads((x, w, ww) => {
      const h = ops.rmsNorm(x, w, 1e-6);
      const logits = ops.matmul(h, ww, { transB: true });
      return ops.add(ops.crossEntropy(logits, tensor(new Int32Array([1, 2, 3, 4]), [4])), ops.mse(h, x));
    }, [rnd([4, 16]), rnd([16]), rnd([11, 16])]));
    setBackend("cpu");
    for (const t of outs) await t.dataAsync();
    for (const t of outs) t.dispose();
    const fallbacks = backendReport().ops.filter((o) => o.cpu > 0).map((o) => o.op);
    expect(fallbacks).toEqual([]);
  });
});
