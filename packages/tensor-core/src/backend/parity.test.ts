// Backend parity: every op and its gradient on each registered backend other than cpu against cpu, on small
// random shapes (odd sizes, rows longer than one 64-block). The GPU.js backend runs in the mode named by
// LRC_GPU_TEST_MODE (default webasm: no native dependency; `gl` runs under `xvfb-run -a`); a backend that
// cannot start fails its suite with the reason, nothing is skipped (the native webgpu backend runs with
// LRC_WEBGPU_TEST=1, as CI's lavapipe step sets). A stub backend with no kernels at all is
// registered here too: everything it runs falls back to cpu, is counted as such, and matches cpu bit for bit;
// the suite dispatches every kernel of the interface. The GPU.js kernels' own paths (tiles, CSR scatter-add,
// device residency) are in gpujs/parity.test.ts.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CpuKernels } from "./cpu/cpu-kernels.js";
import type { GpuMode } from "./gpujs/runtime.js";
import { backendReport, initBackend, registerBackend, registeredBackends, resetBackendReport, setBackend, startedBackend, type InitBackendOptions } from "./backend.js";
import type { Tensor } from "../tensor.js";
import { tensor } from "../tensor.js";
import * as ops from "../ops/index.js";
import { AdamW, accumulate, clipGradNormAsync } from "../optim/optim.js";
import { both, close, rnd, values, withGrads } from "../testing-internal/parity.js";

const mode = (process.env.LRC_GPU_TEST_MODE ?? "webasm") as GpuMode;

registerBackend("stub", () => ({ name: "stub", kernels: {} }));

const options: Record<string, InitBackendOptions> = { gpu: { mode } };
const tolerances: Record<string, number> = { gpu: { webasm: 2e-4, gl: 2e-3, cpu: 1e-5, webgpu: 2e-3 }[mode], stub: 0 };

/**
 * Kernels an op dispatches only where the active backend has them (`hasKernel`), running a composite of other
 * kernels elsewhere: on a backend without them they are never dispatched, so never counted (lm-head-loss.test.ts
 * checks lmHeadLoss's composite on the gpu backend, quad-form-mse.test.ts quadFormMse's; ropeHeads' composite runs in
 * every model forward there, e.g. lrc's trainer-gpu.test.ts).
 */
const compositeElsewhere = new Set(["lmHeadLoss", "quadFormMse", "quadFormMseBackward", "ropeHeads", "ropeHeadsBackward"]);

/** Every kernel of the interface (the cpu backend implements each one) that these backends get dispatched. */
const allKernels = Object.getOwnPropertyNames(CpuKernels.prototype).filter((k) => k !== "constructor" && !compositeElsewhere.has(k)).sort();

/**
 * The backends under test: every registered one but cpu; webgpu only with LRC_WEBGPU_TEST=1 (CI runs it on
 * lavapipe, where it must start), since most machines running `pnpm test` have no WebGPU adapter.
 */
const underTest = registeredBackends().filter((b) => b !== "cpu" && (b !== "webgpu" || process.env.LRC_WEBGPU_TEST === "1"));

describe.each(underTest)("%s backend against cpu: ops and gradients", (name) => {
  const tol = tolerances[name] ?? 2e-3;
  const closeBoth = async (what: string, fn: () => Tensor[]): Promise<void> => {
    const [c, g] = await both(name, fn);
    close(what, c, g, tol);
  };

  beforeAll(async () => {
    await initBackend(name, options[name]);
    setBackend("cpu");
    resetBackendReport();
  }, 60_000);
  afterAll(() => setBackend("cpu"));

  const unary = ["neg", "exp", "tanh", "sigmoid", "silu", "relu", "square", "abs"] as const;
  it.each(unary)("unary %s and its gradient", async (op) => {
    const x = rnd([3, 5]);
    await closeBoth(op, (() => withGrads((a) => ops[op](a), [x])));
  });

  it("log, sqrt, rsqrt, reciprocal, pow on positive inputs", async () => {
    const x = ops.add(ops.abs(rnd([7])), 0.5);
    for (const f of [ops.log, ops.sqrt, ops.rsqrt, ops.reciprocal, (a: Tensor) => ops.pow(a, 1.5)])
      await closeBoth("positive unary", (() => withGrads(f, [x])));
  });

  const binary = ["add", "sub", "mul", "div", "maximum", "minimum"] as const;
  it.each(binary)("binary %s with broadcasting and its gradient", async (op) => {
    const a = rnd([2, 3, 5]), b = ops.add(ops.abs(rnd([3, 1])), 0.5);
    await closeBoth(op, (() => withGrads((x, y) => ops[op](x, y), [a, b])));
    await closeBoth(`${op} scalar`, (() => withGrads((x) => ops[op](x, 1.5), [a])));
  });

  it("comparisons, where (and its gradient), astype, argmax", async () => {
    const a = rnd([4, 3]), b = rnd([3]);
    await closeBoth("cmp", (() => [ops.lt(a, b), ops.ge(a, b), ops.eq(a, a)]));
    await closeBoth("where", (() => withGrads((x, y) => ops.where(ops.gt(x, 0), x, y), [a, b])));
    // From host values: a backend without these kernels reads its inputs back synchronously, which webgpu cannot.
    const a3 = ops.mul(a, 3);
    await closeBoth("astype, argmax", (() => [ops.astype(ops.astype(a3, "int32"), "float32"), ops.astype(ops.argmax(a, 0), "float32")]));
    // Ties go to the first largest entry, truncation is toward zero, and the int32 results are equal, not close.
    const t = tensor(new Float32Array([1, 5, 5, -2.7, -Infinity, -Infinity, 2.5, 0, 7, 7, -0.5, 3]), [3, 4]);
    const exact = async (): Promise<Array<[string, number[]]>> => {
      const u = ops.maximum(t, -3); // finite: the int32 value of an infinity or NaN is the backend's (cpu: 0)
      const outs = [ops.argmax(t, 1), ops.argmax(t, 0), ops.astype(u, "int32"), ops.astype(ops.astype(u, "int32"), "float32")];
      return Promise.all(outs.map(async (o): Promise<[string, number[]]> => [o.dtype, Array.from(await o.dataAsync())]));
    };
    setBackend("cpu");
    const want = await exact();
    setBackend(name);
    const got = await exact();
    setBackend("cpu");
    expect(got).toEqual(want);
    expect(want[0]).toEqual(["int32", [1, 2, 0]]);
  });

  it("reductions over axes (sum, mean, max, min, logsumexp) and gradients, including long blocked sums", async () => {
    const x = rnd([3, 4, 5]);
    await closeBoth("sum", (() => withGrads((a) => ops.sum(a, [0, 2]), [x])));
    await closeBoth("mean", (() => withGrads((a) => ops.mean(a, 1, true), [x])));
    await closeBoth("max", (() => withGrads((a) => ops.max(a, -1), [x])));
    await closeBoth("min", (() => withGrads((a) => ops.min(a, 0), [x])));
    await closeBoth("logsumexp", (() => withGrads((a) => ops.logsumexp(a, -1), [x])));
    const long = rnd([2, 300]);
    await closeBoth("sum long", (() => [ops.sum(long, -1)]));
  });

  it("matmul: batched, broadcast batch, transposes, vectors, and gradients", async () => {
    const a = rnd([2, 3, 5]), b = rnd([5, 7]), bt = rnd([2, 7, 5]), at = rnd([2, 5, 3]);
    await closeBoth("matmul", (() => withGrads((x, y) => ops.matmul(x, y), [a, b])));
    await closeBoth("matmul transB", (() => withGrads((x, y) => ops.matmul(x, y, { transB: true }), [a, bt])));
    await closeBoth("matmul transA", (() => withGrads((x, y) => ops.matmul(x, y, { transA: true }), [at, b])));
    await closeBoth("matmul both", (() => withGrads((x, y) => ops.matmul(x, y, { transA: true, transB: true }), [at, bt])));
    const vec = rnd([5]);
    await closeBoth("matvec", (() => withGrads((x, y) => ops.matmul(x, y), [a, vec])));
    const k = rnd([3, 130]), k2 = rnd([130, 2]);
    await closeBoth("matmul long k", (() => [ops.matmul(k, k2)]));
  });

  it("movement: permute, transpose, broadcastTo, slice, reshape and gradients", async () => {
    const x = rnd([2, 3, 5]);
    await closeBoth("permute", (() => withGrads((a) => ops.permute(a, [2, 0, 1]), [x])));
    await closeBoth("broadcastTo", (() => withGrads((a) => ops.broadcastTo(a, [4, 2, 3, 5]), [x])));
    await closeBoth("slice", (() => withGrads((a) => ops.slice(a, [1, 1, 2], [2, 3, 5]), [x])));
    await closeBoth("reshape+transpose", (() => withGrads((a) => ops.transpose(ops.reshape(a, [6, 5])), [x])));
  });

  it("concat along the first, a middle and the last axis (2 and 3 inputs, odd sizes) and its gradient; each call counted once", async () => {
    const a = rnd([2, 3, 5]), b = rnd([2, 1, 5]), c = rnd([2, 4, 5]), d = rnd([1, 3, 5]), e = rnd([2, 3, 2]);
    await closeBoth("concat axis 1", (() => withGrads((x, y, z) => ops.concat([x, y, z], 1), [a, b, c])));
    await closeBoth("concat axis 0", (() => withGrads((x, y) => ops.concat([x, y], 0), [a, d])));
    await closeBoth("concat axis 2", (() => withGrads((x, y) => ops.concat([x, y], -1), [a, e])));
    const before = backendReport().ops.find((o) => o.op === "concat")!;
    setBackend(name);
    const [v] = await values([ops.concat([tensor([1, 2]), tensor([3]), tensor([4, 5, 6])])]);
    setBackend("cpu");
    expect(Array.from(v!)).toEqual([1, 2, 3, 4, 5, 6]);
    const after = backendReport().ops.find((o) => o.op === "concat")!;
    const own = startedBackend(name)!.kernels.concat !== undefined;
    expect([after.device - before.device, after.cpu - before.cpu]).toEqual(own ? [1, 0] : [0, 1]);
  });

  it("softmax and logSoftmax (last and middle axis) with gradients, large logits stay finite", async () => {
    const x = rnd([3, 4, 7], 3);
    await closeBoth("softmax", (() => withGrads((a) => ops.softmax(a), [x])));
    await closeBoth("softmax axis 1", (() => withGrads((a) => ops.softmax(a, 1), [x])));
    await closeBoth("logSoftmax", (() => withGrads((a) => ops.logSoftmax(a), [x])));
    const big = ops.mul(rnd([2, 5]), 80);
    await closeBoth("logSoftmax big", (() => [ops.logSoftmax(big)]));
  });

  it("rmsNorm and its gradient", async () => {
    const x = rnd([3, 5, 6]), w = rnd([6]);
    await closeBoth("rmsNorm", (() => withGrads((a, b) => ops.rmsNorm(a, b, 1e-6), [x, w])));
  });

  it("rope and its gradient", async () => {
    const T = 5, dh = 6;
    const cb = new Float32Array(T * dh), sb = new Float32Array(T * dh);
    for (let t = 0; t < T; t++) for (let i = 0; i < dh / 2; i++) {
      const ang = t / 10 ** (i / 3);
      cb[t * dh + i] = cb[t * dh + i + dh / 2] = Math.cos(ang);
      sb[t * dh + i] = sb[t * dh + i + dh / 2] = Math.sin(ang);
    }
    const cos = tensor(cb, [T, dh]), sin = tensor(sb, [T, dh]);
    const x = rnd([2, 3, T, dh]);
    await closeBoth("rope", (() => withGrads((a) => ops.rope(a, cos, sin), [x])));
  });

  it("causalAttention (GQA, offset) and its gradients", async () => {
    const q = rnd([2, 4, 3, 4]), k = rnd([2, 2, 5, 4]), v = rnd([2, 2, 5, 4]);
    await closeBoth("attention", (() => withGrads((a, b, c) => ops.causalAttention(a, b, c), [q, k, v])));
  });

  it("crossEntropy (ignoreIndex), klDivergence (temperature), mse, swiglu with gradients", async () => {
    const logits = rnd([2, 3, 7], 2);
    const targets = tensor(new Int32Array([1, 6, -100, 0, 3, 3]), [2, 3]);
    await closeBoth("crossEntropy", (() => withGrads((a) => ops.crossEntropy(a, targets), [logits])));
    const t = rnd([2, 3, 7], 2);
    await closeBoth("klDivergence", (() => withGrads((a, b) => ops.klDivergence(a, b, { temperature: 2 }), [t, logits])));
    await closeBoth("mse", (() => withGrads((a, b) => ops.mse(a, b), [t, logits])));
    await closeBoth("swiglu", (() => withGrads((a, b) => ops.swiglu(a, b), [t, logits])));
  });

  it("quadFormMse with gradients: composed of sub, matmul, mul and sum here, one kernel on cpu (so close, not bit for bit)", async () => {
    const a = rnd([2, 3, 7]), b = rnd([2, 3, 7]), w = rnd([5, 7]);
    const [c, g] = await both(name, () => withGrads((x, y) => ops.quadFormMse(x, y, ops.gramMatrix(w), 5), [a, b]));
    close("quadFormMse", c, g, Math.max(tol, 1e-5));
  });

  it("row-statistic kernels on odd rows longer than one 64-block: rmsNorm, attention, crossEntropy, klDivergence, softmax", async () => {
    const x = rnd([5, 67]), w = rnd([67]);
    await closeBoth("rmsNorm long rows", (() => withGrads((a, b) => ops.rmsNorm(a, b, 1e-6), [x, w])));
    const q = rnd([1, 4, 7, 3]), k = rnd([1, 2, 70, 3], 2), v = rnd([1, 2, 70, 3]);
    await closeBoth("attention S=70, offset 63", (() => withGrads((a, b, c) => ops.causalAttention(a, b, c), [q, k, v])));
    await closeBoth("attention S=70, offset 30 (masked tail)", (() => withGrads((a, b, c) => ops.causalAttention(a, b, c, { offset: 30 }), [q, k, v])));
    const logits = rnd([3, 67], 3), teacher = rnd([3, 67], 3);
    const targets = tensor(new Int32Array([66, -100, 0]), [3]);
    await closeBoth("crossEntropy V=67", (() => withGrads((a) => ops.crossEntropy(a, targets), [logits])));
    await closeBoth("klDivergence V=67", (() => withGrads((a, b) => ops.klDivergence(a, b, { temperature: 0.7 }), [teacher, logits])));
    await closeBoth("softmax V=67", (() => withGrads((a) => ops.softmax(a), [logits])));
  });

  it("embedding gather and its scatter-add gradient (repeated ids)", async () => {
    const w = rnd([7, 5]);
    const ids = tensor(new Int32Array([0, 3, 3, 6, 1, 3]), [2, 3]);
    await closeBoth("embedding", (() => withGrads((a) => ops.embedding(a, ids), [w])));
    setBackend(name);
    expect(() => ops.embedding(w, tensor(new Int32Array([7]), [1]))).toThrow(/out of range/);
    setBackend("cpu");
  });

  it("gradient accumulation, clipping and AdamW over 3 steps match cpu; the clip runs on the device", async () => {
    // Two gradients, one longer than a block of the device sums of squares (4096 entries), not a multiple of it.
    const shapes = [[5, 3], [3, 1701]] as const;
    const p0 = shapes.map((s) => rnd([...s]));
    const run = async (): Promise<Float32Array[]> => {
      const ps = p0.map((p) => tensor(p.data(), p.shape));
      for (const p of ps) p.requiresGrad = true;
      const opt = new AdamW(ps, { lr: 0.1, weightDecay: 0.1 });
      const norms: number[] = [];
      for (let s = 0; s < 3; s++) {
        const accs = ps.map((p) => tensor(new Float32Array(p.size), p.shape));
        for (let micro = 0; micro < 2; micro++)
          accs.forEach((acc, k) => accumulate(acc, tensor(Float32Array.from({ length: acc.size }, (_, i) => (k + 1) * Math.cos(i + s + micro)), acc.shape), 2));
        norms.push(await clipGradNormAsync(accs, 1));
        opt.step(accs);
      }
      const st = await opt.stateAsync();
      const out: Float32Array[] = [Float32Array.from(norms)];
      for (let k = 0; k < ps.length; k++) out.push(Float32Array.from(await ps[k]!.dataAsync()), Float32Array.from(st.m[k]!), Float32Array.from(st.v[k]!));
      return out;
    };
    setBackend("cpu");
    const c = await run();
    setBackend(name);
    const before = backendReport().ops;
    const g = await run();
    const after = backendReport().ops;
    setBackend("cpu");
    close("accumulate + clip + adamw", c, g, tol);
    expect(c[0]![0]!, "the clip scaled").toBeGreaterThan(1);
    if (name !== "stub")
      for (const op of ["sumSquares", "scale", "accumulate", "adamw"]) {
        const was = before.find((o) => o.op === op) ?? { device: 0, cpu: 0 };
        const now = after.find((o) => o.op === op)!;
        expect({ op, device: now.device - was.device, cpu: now.cpu - was.cpu }, `${op} on ${name}`).toEqual({ op, device: expect.any(Number), cpu: 0 });
        expect(now.device - was.device, `${op} ran on ${name}`).toBeGreaterThan(0);
      }
  });

  it("every kernel of the interface was dispatched and counted; a backend without it counts it as a cpu fallback", () => {
    const rep = backendReport().ops;
    expect(rep.map((o) => o.op).sort()).toEqual(allKernels);
    const kernels = startedBackend(name)!.kernels;
    for (const o of rep) if (kernels[o.op as keyof typeof kernels] === undefined) expect(o, `${o.op} has no ${name} kernel`).toMatchObject({ device: 0 });
    if (name === "stub") expect(rep.every((o) => o.device === 0 && o.cpu > 0)).toBe(true);
  });
});
