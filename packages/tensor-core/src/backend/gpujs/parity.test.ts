// GPU.js backend parity, its own kernel paths (every op and gradient against cpu is in ../parity.test.ts): in
// the GPU.js mode named by LRC_GPU_TEST_MODE (default webasm: no native dependency; `gl` runs under
// `xvfb-run -a`). A mode that cannot start fails the suite with the reason; nothing is skipped. The tiled
// matmul is forced on small odd shapes (tileMinWork = 0); attention's matmuls run both ways (one output per
// thread and tiled, with the causal mask fused), and the embedding gradient's CSR scatter-add runs on a
// 5,000-row vocabulary.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tensor } from "../../tensor.js";
import { scope, tensor } from "../../tensor.js";
import { rng as makeRng } from "../../random.js";
import * as ops from "../../ops/index.js";
import type { GpuMode } from "./runtime.js";
import type { GpuOps } from "./ops.js";
import { rowIndex } from "./ops.js";
import type { GpujsBackend } from "./backend.js";
import { backendReport, getBackend, initBackend, setBackend, startedBackend } from "../backend.js";
import { both as bothOn, close as closeTol, rnd, values, withGrads } from "../../testing-internal/parity.js";

const mode = (process.env.LRC_GPU_TEST_MODE ?? "webasm") as GpuMode;
/** The started gpu backend's kernels (to set its tiling threshold). */
function gpu(): GpuOps {
  return (startedBackend("gpu") as GpujsBackend).kernels;
}

const r = makeRng(9);
const tol = { webasm: 2e-4, gl: 2e-3, cpu: 1e-5, webgpu: 2e-3 }[mode];
const both = (fn: () => Tensor[]): Promise<[Float32Array[], Float32Array[]]> => bothOn("gpu", fn);
const close = (name: string, c: Float32Array[], g: Float32Array[], t = tol): void => closeTol(name, c, g, t);
async function closeBoth(name: string, fn: () => Tensor[], t = tol): Promise<void> {
  const [c, g] = await both(fn);
  close(name, c, g, t);
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
