// Backend parity (issue 8): every gpu op and its gradient against cpu on small random shapes (odd sizes
// included), in the GPU.js mode named by LRC_GPU_TEST_MODE (default webasm: no native dependency; `gl`
// runs under `xvfb-run -a`). A mode that cannot start fails the suite with the reason; nothing is skipped.
// The tiled matmul is forced on small odd shapes (tileMinWork = 0), and the row-statistic kernels are run on
// rows longer than one 64-block. Attention's matmuls run both ways (one output per thread and tiled, with
// the causal mask fused), and the embedding gradient's CSR scatter-add runs on a 5,000-row vocabulary.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tensor } from "../../tensor.js";
import { scope, tensor } from "../../tensor.js";
import { rng as makeRng } from "../../random.js";
import * as ops from "../../ops/index.js";
import { AdamW } from "../../optim/optim.js";
import type { GpuMode } from "./runtime.js";
import type { GpuOps } from "./ops.js";
import { rowIndex } from "./ops.js";
import { backendReport, getBackend, initBackend, setBackend, startedBackend } from "../backend.js";
import type { GpujsBackend } from "./backend.js";
import { valueAndGrad } from "../../autodiff/grad.js";

const mode = (process.env.LRC_GPU_TEST_MODE ?? "webasm") as GpuMode;
/** The started gpu backend's ops (to set its tiling threshold). */
function gpu(): GpuOps {
  return (startedBackend("gpu") as GpujsBackend).kernels;
}

const tol = { webasm: 2e-4, gl: 2e-3, cpu: 1e-5, webgpu: 2e-3 }[mode];

/** Runs fn on cpu and on gpu with the same host inputs; returns the values (host copies) of both. */
async function both(fn: () => Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  setBackend("cpu");
  const c = scope(() => fn().map((t) => Float32Array.from(t.data())));
  setBackend("gpu");
  const outs = scope(fn);
  setBackend("cpu");
  return [c, await values(outs)];
}

/** Host copies of the values of ts (read asynchronously: webgpu reads no other way), which are then disposed. */
async function values(ts: Tensor[]): Promise<Float32Array[]> {
  try {
    const out: Float32Array[] = [];
    for (const t of ts) out.push(Float32Array.from(await t.dataAsync()));
    return out;
  } finally {
    for (const t of ts) t.dispose();
  }
}

/** close() over both(fn). */
async function closeBoth(name: string, fn: () => Tensor[], t = tol): Promise<void> {
  const [c, g] = await both(fn);
  close(name, c, g, t);
}

function close(name: string, cpu: Float32Array[], gpu: Float32Array[], t = tol): void {
  expect(gpu.length).toBe(cpu.length);
  cpu.forEach((c, i) => {
    const g = gpu[i]!;
    expect(g.length, `${name} output ${i} length`).toBe(c.length);
    let worst = 0;
    for (let j = 0; j < c.length; j++) worst = Math.max(worst, Math.abs(g[j]! - c[j]!) / (1 + Math.abs(c[j]!)));
    expect(worst, `${name} output ${i}: max relative difference`).toBeLessThan(t);
  });
}

const r = makeRng(8);
function rnd(shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const b = new Float32Array(n);
  for (let i = 0; i < n; i++) b[i] = scale * r.normal();
  return tensor(b, shape);
}

/** Forward value and gradients of sum(f(xs) * w) with respect to every input, on one backend. */
function withGrads(f: (...xs: Tensor[]) => Tensor, xs: Tensor[]): Tensor[] {
  const lf = (...a: Tensor[]): Tensor => {
    const y = f(...a);
    return ops.sum(ops.mul(y, wFor(y.shape)));
  };
  const [v, gs] = valueAndGrad(lf, xs.map((_, i) => i))(...xs);
  return [v, ...(gs as Tensor[])];
}
const weights = new Map<string, Float32Array>();
function wFor(shape: readonly number[]): Tensor {
  const key = shape.join(",");
  let w = weights.get(key);
  if (w === undefined) {
    w = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < w.length; i++) w[i] = Math.sin(i + 1);
    weights.set(key, w);
  }
  return tensor(w, [...shape]);
}

describe(`gpu backend parity (GPU.js ${mode})`, () => {
  beforeAll(async () => {
    const info = await initBackend("gpu", { mode });
    expect(info.mode).toBe(mode);
    setBackend("cpu");
  }, 60_000);
  afterAll(() => setBackend("cpu"));

  it("reports the mode and kernel class that ran", async () => {
    setBackend("gpu");
    const d = getBackend();
    setBackend("cpu");
    expect(d.description).toMatch(mode === "gl" ? /HeadlessGLKernel/ : mode === "webasm" ? /WebAssemblyKernel/ : /Kernel/);
    if (mode === "webasm") expect(d.software).toBe(true);
  });

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

  it("comparisons", async () => {
    const a = rnd([4, 3]), b = rnd([3]);
    await closeBoth("cmp", (() => [ops.lt(a, b), ops.ge(a, b), ops.eq(a, a)]));
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

  describe("tiled matmul (2x2 tiles per thread, forced on small shapes)", () => {
    let saved = 0;
    beforeAll(() => {
      saved = gpu().tileMinWork;
      gpu().tileMinWork = 0;
    });
    afterAll(() => {
      gpu().tileMinWork = saved;
    });

    // [m, n, k]: odd rows and columns (edge tiles), single rows/columns, k not a multiple of 4 (gl packing),
    // k of exactly one block, k over several blocks with and without a ragged last block.
    const shapes = [[5, 7, 3], [1, 9, 6], [9, 1, 5], [2, 2, 1], [7, 6, 64], [3, 5, 130], [6, 3, 128]] as const;
    it.each(shapes)("m=%i n=%i k=%i, all transposes, with gradients", async (m, n, k) => {
      const a = rnd([m, k]), b = rnd([k, n]), at = rnd([k, m]), bt = rnd([n, k]);
      await closeBoth("tiled", (() => withGrads((x, y) => ops.matmul(x, y), [a, b])));
      await closeBoth("tiled transA", (() => withGrads((x, y) => ops.matmul(x, y, { transA: true }), [at, b])));
      await closeBoth("tiled transB", (() => withGrads((x, y) => ops.matmul(x, y, { transB: true }), [a, bt])));
      await closeBoth("tiled both", (() => withGrads((x, y) => ops.matmul(x, y, { transA: true, transB: true }), [at, bt])));
    });

    it("batched, with a broadcast (shared) operand on either side and partial broadcasting, with gradients", async () => {
      const a = rnd([3, 5, 7]), b = rnd([3, 7, 3]), shared = rnd([7, 3]), sharedA = rnd([5, 7]), a4 = rnd([2, 1, 5, 7]), b4 = rnd([1, 3, 7, 3]);
      await closeBoth("batched", (() => withGrads((x, y) => ops.matmul(x, y), [a, b])));
      await closeBoth("shared B", (() => withGrads((x, y) => ops.matmul(x, y), [a, shared])));
      await closeBoth("shared A", (() => withGrads((x, y) => ops.matmul(x, y), [sharedA, b])));
      await closeBoth("partial broadcast", (() => withGrads((x, y) => ops.matmul(x, y), [a4, b4])));
      const q = rnd([2, 3, 9, 5]), kk = rnd([2, 3, 11, 5]);
      await closeBoth("attention-like q k^T", (() => withGrads((x, y) => ops.matmul(x, y, { transB: true }), [q, kk])));
    });

    it("sums in the same order as the one-output-per-thread kernel: float32 blocks of 64, blocks added in order", async () => {
      const [B, m, n, k] = [3, 13, 11, 150];
      const a = rnd([B, m, k]), b = rnd([k, n]);
      const av = a.data(), bv = b.data();
      const f = Math.fround, want = new Float32Array(B * m * n);
      for (let i = 0; i < B * m; i++) for (let c = 0; c < n; c++) {
        let acc = 0;
        for (let j0 = 0; j0 < k; j0 += 64) {
          let part = 0;
          for (let j = j0; j < Math.min(k, j0 + 64); j++) part = f(part + f(av[i * k + j]! * bv[j * n + c]!));
          acc = f(acc + part);
        }
        want[i * n + c] = acc;
      }
      setBackend("gpu");
      const [tiled] = await values([ops.matmul(a, b)]);
      gpu().tileMinWork = Infinity;
      setBackend("gpu");
      const [plain] = await values([ops.matmul(a, b)]);
      gpu().tileMinWork = 0;
      let worst = 0;
      for (let i = 0; i < want.length; i++)
        worst = Math.max(worst, Math.abs(tiled[i]! - want[i]!) / (1 + Math.abs(want[i]!)), Math.abs(plain[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
      // webasm is IEEE float32 without contraction: bit-identical; a GLSL compiler may fuse multiply-adds.
      expect(worst).toBeLessThanOrEqual(mode === "webasm" ? 0 : 1e-6);
    });
  });

  it("movement: permute, transpose, broadcastTo, slice, reshape and gradients", async () => {
    const x = rnd([2, 3, 5]);
    await closeBoth("permute", (() => withGrads((a) => ops.permute(a, [2, 0, 1]), [x])));
    await closeBoth("broadcastTo", (() => withGrads((a) => ops.broadcastTo(a, [4, 2, 3, 5]), [x])));
    await closeBoth("slice", (() => withGrads((a) => ops.slice(a, [1, 1, 2], [2, 3, 5]), [x])));
    await closeBoth("reshape+transpose", (() => withGrads((a) => ops.transpose(ops.reshape(a, [6, 5])), [x])));
  });

  it("concat along the first, a middle and the last axis (2 and 3 inputs, odd sizes) and its gradient, on the gpu", async () => {
    const a = rnd([2, 3, 5]), b = rnd([2, 1, 5]), c = rnd([2, 4, 5]), d = rnd([1, 3, 5]), e = rnd([2, 3, 2]);
    await closeBoth("concat axis 1", (() => withGrads((x, y, z) => ops.concat([x, y, z], 1), [a, b, c])));
    await closeBoth("concat axis 0", (() => withGrads((x, y) => ops.concat([x, y], 0), [a, d])));
    await closeBoth("concat axis 2", (() => withGrads((x, y) => ops.concat([x, y], -1), [a, e])));
    const before = backendReport().ops.find((o) => o.op === "concat");
    setBackend("gpu");
    const [v] = await values([ops.concat([tensor([1, 2]), tensor([3]), tensor([4, 5, 6])])]);
    setBackend("cpu");
    expect(Array.from(v!)).toEqual([1, 2, 3, 4, 5, 6]);
    const after = backendReport().ops.find((o) => o.op === "concat")!;
    expect(after.device - (before?.device ?? 0)).toBe(1);
    expect(after.cpu - (before?.cpu ?? 0)).toBe(0);
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

  it("crossEntropy (ignoreIndex), klDivergence (temperature), mse with gradients", async () => {
    const logits = rnd([2, 3, 7], 2);
    const targets = tensor(new Int32Array([1, 6, -100, 0, 3, 3]), [2, 3]);
    await closeBoth("crossEntropy", (() => withGrads((a) => ops.crossEntropy(a, targets), [logits])));
    const t = rnd([2, 3, 7], 2);
    await closeBoth("klDivergence", (() => withGrads((a, b) => ops.klDivergence(a, b, { temperature: 2 }), [t, logits])));
    await closeBoth("mse", (() => withGrads((a, b) => ops.mse(a, b), [t, logits])));
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
    setBackend("gpu");
    expect(() => ops.embedding(w, tensor(new Int32Array([7]), [1]))).toThrow(/out of range/);
    setBackend("cpu");
  });

  describe("attention's matmuls: one output per thread and tiled (mask fused, causal skips)", () => {
    let saved = 0;
    beforeAll(() => {
      saved = gpu().tileMinWork;
    });
    afterAll(() => {
      gpu().tileMinWork = saved;
    });
    const paths = [["tiled", 0], ["one output per thread", Infinity]] as const;

    // [B, H, Hkv, T, S, dh, offset]: G = 3 with odd T (2x2 tiles straddle two sequences), a masked tail
    // (S > offset + T), G = 1, T and S past one 64-block (blocked sums over S and over the G T rows of dk, dv).
    const cases = [[1, 3, 1, 5, 5, 3, 0], [2, 4, 2, 7, 12, 5, 2], [1, 2, 2, 9, 13, 6, 4], [1, 2, 1, 70, 71, 4, 1]] as const;
    for (const [path, minWork] of paths)
      it.each(cases)(`${path}: B=%i H=%i Hkv=%i T=%i S=%i dh=%i offset=%i, with gradients`, async (B, H, Hkv, T, S, dh, offset) => {
        gpu().tileMinWork = minWork;
        const q = rnd([B, H, T, dh]), k = rnd([B, Hkv, S, dh]), v = rnd([B, Hkv, S, dh]);
        await closeBoth("attention", (() => withGrads((a, b, c) => ops.causalAttention(a, b, c, { offset }), [q, k, v])));
      });

    it.each(paths)("%s: masked probabilities are exactly 0 (keys no query sees hold 1e30 and get zero gradients)", async (_, minWork) => {
      gpu().tileMinWork = minWork;
      const [B, H, Hkv, T, S, dh, offset] = [2, 4, 2, 7, 12, 5, 2];
      const seen = offset + T; // keys from here on are masked for every query
      const q = rnd([B, H, T, dh]);
      const huge = (): Tensor => {
        const x = rnd([B, Hkv, S, dh]).data();
        for (let i = 0; i < x.length; i++) if (Math.floor(i / dh) % S >= seen) x[i] = 1e30;
        return tensor(x, [B, Hkv, S, dh]);
      };
      const k = huge(), v = huge();
      const [c, g] = await both(() => withGrads((a, b, cc) => ops.causalAttention(a, b, cc, { offset }), [q, k, v]));
      close("attention with huge masked keys", c, g);
      for (const grad of [g[2]!, g[3]!]) // dk, dv
        for (let i = 0; i < grad.length; i++) if (Math.floor(i / dh) % S >= seen) expect(grad[i]).toBe(0);
    });
  });

  describe("embedding gradient: scatter-add over a CSR of the ids", () => {
    it("rowIndex lists each row's positions in ascending order and rejects ids out of range", async () => {
      const { off, pos, maxCount } = rowIndex(new Int32Array([3, 0, 3, 5, 0, 3]), 6);
      expect(Array.from(off)).toEqual([0, 2, 2, 2, 5, 5, 6]);
      expect(Array.from(pos)).toEqual([1, 4, 0, 2, 5, 3]);
      expect(maxCount).toBe(3);
      expect(() => rowIndex(new Int32Array([0, 6]), 6)).toThrow(/index 6 at position 1 is out of range \[0, 6\)/);
      expect(() => rowIndex(new Int32Array([-1]), 6)).toThrow(/out of range/);
    });

    /** The gpu scatter-add of dy rows at ids against the cpu kernel's order (ascending position, float32 adds). */
    async function checkScatter(ids: Int32Array, V: number, cols: number): Promise<void> {
      const N = ids.length;
      const dy = rnd([N, cols]), dyv = dy.data();
      const want = new Float32Array(V * cols);
      for (let i = 0; i < N; i++) for (let c = 0; c < cols; c++) want[ids[i]! * cols + c] += dyv[i * cols + c]!;
      setBackend("gpu");
      const gotT = gpu().gatherBackward(dy, tensor(ids, [N]), [V, cols]);
      setBackend("cpu");
      const [got] = await values([gotT]);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
      // webasm adds in IEEE float32 like the cpu kernel: bit-identical.
      expect(worst).toBeLessThanOrEqual(mode === "webasm" ? 0 : 1e-6);
    }

    it.each([16, 3])("V=5000, N=64, cols=%i: repeated ids, the first and last rows, a hot row; sums in ascending position order", async (cols) => {
      const V = 5000, N = 64;
      const ids = new Int32Array(N);
      for (let i = 0; i < N; i++) ids[i] = i % 3 === 0 ? 1234 : Math.floor(r.uniform() * V); // a hot row (22 hits)
      ids[5] = 0; ids[9] = V - 1; ids[40] = 0; ids[63] = V - 1; ids[62] = 7; ids[61] = 7;
      await checkScatter(ids, V, cols);
      const w = rnd([V, cols]), idt = tensor(ids, [4, 16]);
      await closeBoth("embedding V=5000", (() => withGrads((a) => ops.embedding(a, idt), [w])));
    });

    it("one row hit by all of 1,500 positions (a loop bound of 2,048), next to empty rows", async () => {
      await checkScatter(new Int32Array(1500).fill(2), 5, 5);
    });
  });

  it("AdamW update matches cpu over 3 steps", async () => {
    const p0 = rnd([5, 3]);
    const run = async (): Promise<Float32Array[]> => {
      const p = tensor(p0.data(), [5, 3]);
      p.requiresGrad = true;
      const opt = new AdamW([p], { lr: 0.1, weightDecay: 0.1 });
      for (let s = 0; s < 3; s++) {
        const g = tensor(Float32Array.from({ length: 15 }, (_, i) => Math.cos(i + s)), [5, 3]);
        opt.step([g]);
      }
      const st = await opt.stateAsync();
      return [Float32Array.from(await p.dataAsync()), Float32Array.from(st.m[0]!), Float32Array.from(st.v[0]!)];
    };
    setBackend("cpu");
    const c = await run();
    setBackend("gpu");
    const g = await run();
    setBackend("cpu");
    close("adamw", c, g);
  });

  it("data stays on the device between kernels and the report lists where ops ran", async () => {
    setBackend("gpu");
    const before = backendReport().device!;
    const y = scope(() => {
      const x = rnd([4, 6]);
      const z = ops.softmax(ops.matmul(ops.tanh(x), x, { transB: true }));
      expect(z.storage!.data).toBeNull(); // still device-only
      return ops.sum(z, -1);
    });
    const after = backendReport().device!;
    expect(after.downloads).toBe(before.downloads);
    expect(Array.from(await y.dataAsync()).every((v) => Math.abs(v - 1) < 1e-4)).toBe(true);
    expect(backendReport().device!.downloads).toBe(before.downloads + 1);
    y.dispose();
    const rep = backendReport().ops;
    expect(rep.find((o) => o.op === "gemm")!.device).toBeGreaterThan(0);
    setBackend("cpu");
  });
});
