// float16 (IEEE binary16), the second storage-only dtype of frozen weights, beside bfloat16 (bfloat16.test.ts):
// made from F16 bits (a checkpoint's) or by rounding float32; widened exactly (dtype.ts's 65,536-entry table) by
// astype, matmul (forward and the products of its backward, serial and parallel), gather / embedding and
// lmHeadLoss, each giving the bits of the same op on the widened float32 tensor; refused, naming the op and
// float16, everywhere else; never on the tape.
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { createGemmRuntime } from "./backend/cpu/gemm-runtime.js";
import { gemmWasmBytes } from "./backend/cpu/wasm-gemm.js";
import { float16Table } from "./dtype.js";
import * as ops from "./ops/index.js";
import { Rng } from "./random.js";
import { f16BitsToFloat32, float32BitsToBF16Bits, float32BitsToF16Bits, parseSafetensors, serializeSafetensors } from "./safetensors.js";
import { Tensor, bfloat16Tensor, float16Tensor, full, randn, tensor, zeros } from "./tensor.js";

/** F16 bits of random values with a spread of exponents, subnormals included (and the float32 tensor of their widening). */
function f16Pair(shape: number[], seed: number): [Tensor, Tensor] {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const f = new Float32Array(n).map(() => rng.normal() * 2 ** Math.floor(rng.uniform() * 24 - 18));
  const bits = Uint16Array.from(new Uint32Array(f.buffer), float32BitsToF16Bits);
  return [float16Tensor(bits, shape), tensor(Float32Array.from(bits, f16BitsToFloat32), shape)];
}

const same = (a: Tensor, b: Tensor) => expect(Array.from(a.data())).toEqual(Array.from(b.data()));

describe("float16 tensors", () => {
  it("widen exactly for all 65,536 bit patterns (the table is safetensors' F16 reader's), and round float32 to nearest even", () => {
    const all = float16Tensor(Uint16Array.from({ length: 65536 }, (_, i) => i), [65536]);
    expect(all.dtype).toBe("float16");
    expect(all.nbytes).toBe(2 * 65536);
    const wide = all.astype("float32").data() as Float32Array;
    expect(Array.from(new Uint32Array(wide.buffer))).toEqual(Array.from(float16Table()));
    expect([wide[0x3c00], wide[0xc000], wide[0x0001], wide[0x7bff], wide[0xfc00]]).toEqual([1, -2, 2 ** -24, 65504, -Infinity]);
    // 1 + 2^-11 is halfway between two F16 values: ties to the even one (1); 1 + 3·2^-11 ties up to 1 + 2^-9.
    expect(Array.from(tensor([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e6]).astype("float16").astype("float32").data())).toEqual([1, 1 + 2 ** -9, Infinity]);
    const [h, w] = f16Pair([3, 5], 1);
    same(h.astype("float32"), w);
    expect(Array.from(h.astype("float64").data())).toEqual(Array.from(w.data()));
    expect(Array.from(w.astype("float16").bits)).toEqual(Array.from(h.bits));
    expect(Array.from(full([2], -0.1, { dtype: "float16" }).astype("float32").data())).toEqual([-0.0999755859375, -0.0999755859375]);
    expect(Array.from(zeros([2], { dtype: "float16" }).bits)).toEqual([0, 0]);
    expect(float16Tensor(new Uint16Array(1 << 16), [1 << 16]).bits.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it("safetensors F16 round trip: readF16Bits gives the words readFloat32 widens; other dtypes are refused by name", () => {
    const [h, w] = f16Pair([4, 3], 3);
    const bytes = serializeSafetensors({ w: { shape: [4, 3], data: w.data() as Float32Array, dtype: "F16" }, b: { shape: [1], data: new Float32Array(1), dtype: "BF16" } });
    const st = parseSafetensors(bytes, "x.safetensors");
    expect(Array.from(st.readF16Bits("w"))).toEqual(Array.from(h.bits));
    same(float16Tensor(st.readF16Bits("w"), [4, 3]).astype("float32"), tensor(st.readFloat32("w"), [4, 3]));
    expect(() => st.readF16Bits("b")).toThrow(/x\.safetensors: tensor "b": dtype BF16 is not F16; readF16Bits reads F16 tensors only/);
    expect(() => st.readBF16Bits("w")).toThrow(/dtype F16 is not BF16/);
  });

  it("are refused, naming the op and float16, by every op that does not read them, and never require grad", () => {
    const [h] = f16Pair([2, 3], 2);
    expect(() => ops.mul(h, h)).toThrow(/binary \(mul\): does not read float16 tensors.*astype\("float32"\)/);
    expect(() => ops.transpose(h)).toThrow(/permute: does not read float16/);
    expect(() => ops.softmax(h)).toThrow(/float16/);
    expect(() => h.buf).toThrow(/is float16 \(frozen storage\): reading its values needs astype\("float32"\)/);
    expect(() => { h.requiresGrad = true; }).toThrow(/float16, a frozen storage dtype: it cannot require grad/);
    expect(() => randn([2], { rng: new Rng(0), dtype: "float16" })).toThrow(/randn: float16 is a storage dtype/);
    expect(() => tensor(new Float64Array([1])).astype("float16")).toThrow(/astype: float16 is made from float32 only, got float64/);
    expect(() => ops.matmul(tensor(new Float64Array(6), [2, 3]), h, { transB: true })).toThrow(/matmul: a float16 operand multiplies float32 tensors only/);
    expect(() => float16Tensor(new Uint16Array(5), [2, 3])).toThrow(/float16Tensor: 5 values do not fit shape/);
    expect(float16Tensor(new Uint16Array([0xc200]), []).item()).toBe(-3);
  });

  it("matmul: the bits of the widened float32 product, forward and the float32 operand's gradient (W P, Pᵀ Wᵀ, x Wᵀ)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 24 }), fc.integer(), (rows, D, d, seed) => {
        const [Wh, Wf] = f16Pair([rows, D], seed);
        const cases: Array<(W: Tensor, P: Tensor, x: Tensor) => Tensor> = [
          (W, P) => ops.matmul(W, P),
          (W, P) => ops.matmul(P, W, { transA: true, transB: true }),
          (W, _P, x) => ops.matmul(x, W, { transB: true }),
        ];
        for (const f of cases) {
          const run = (W: Tensor) => {
            const P = randn([D, d], { rng: new Rng(seed + 1), requiresGrad: true });
            const x = randn([2, d, D], { rng: new Rng(seed + 2), requiresGrad: true });
            const y = f(W, P, x);
            expect(y.dtype).toBe("float32");
            const loss = ops.sum(ops.mul(y, randn([...y.shape], { rng: new Rng(seed + 4) })));
            loss.backward();
            return [loss, P.grad ?? zeros([1]), x.grad ?? zeros([1])];
          };
          const a = run(Wh), b = run(Wf);
          a.forEach((t, i) => same(t, b[i]!));
        }
      }),
      { numRuns: 12, seed: 16 },
    );
  });

  it("matmul on the parallel path, and a float16 operand beside a bfloat16 one, give the widened bits", () => {
    const [Wh, Wf] = f16Pair([384, 320], 5);
    const P = randn([320, 160], { rng: new Rng(6) });
    same(ops.matmul(Wh, P), ops.matmul(Wf, P));
    same(ops.matmul(P, Wh, { transA: true, transB: true }), ops.matmul(P, Wf, { transA: true, transB: true }));
    // the gemm engine takes A as BF16 and B as F16 in one call (each operand's own widening), serial and parallel
    for (const [m, k, n] of [[5, 7, 3], [256, 320, 384]] as const) {
      const f = randn([m, k], { rng: new Rng(m) }).data() as Float32Array;
      const bfBits = Uint16Array.from(new Uint32Array(f.buffer), float32BitsToBF16Bits);
      const A = bfloat16Tensor(bfBits, [m, k]);
      const [Bh, Bf] = f16Pair([k, n], n);
      same(ops.matmul(A, Bh), ops.matmul(A.astype("float32"), Bf));
    }
  });

  it("the gemm engine's every packing strategy (whole-block or per-row raw copies, B per slice or for all of k) gives the widened float32 bits", () => {
    const bytes = gemmWasmBytes();
    const runtimes = [
      createGemmRuntime(bytes), createGemmRuntime(bytes, { wholeMax: 0, bAllMax: 0 }),
      createGemmRuntime(bytes, { wholeMax: 1e9, bAllMax: 1e9 }), createGemmRuntime(bytes, { wholeMax: 1e9, bAllMax: 0 }),
    ];
    for (const [m, n, k] of [[131, 45, 701], [9, 530, 300]] as const)
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const)
        for (const which of ["a", "b", "ab"] as const) {
          const [ah, af] = f16Pair([m * k + 1], m + k), [bh, bf] = f16Pair([n * k + 1], n + k);
          const job = { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, strideC: 0, offsetA: 1, offsetB: 1, offsetC: 0, accumulate: false, alpha: 1 };
          for (const rt of runtimes) {
            const run = (a: Float32Array | Uint16Array, b: Float32Array | Uint16Array, flags: object) => {
              const c = new Float32Array(m * n);
              let next = 0;
              rt.runTiles({ ...job, a, b, c, ...flags }, () => next++);
              return Array.from(c);
            };
            const got = run(which !== "b" ? ah.bits : (af.data() as Float32Array), which !== "a" ? bh.bits : (bf.data() as Float32Array), { f16A: which !== "b", f16B: which !== "a" });
            expect(got, `${m}x${n}x${k} ${transA} ${transB} ${which}`).toEqual(run(af.data() as Float32Array, bf.data() as Float32Array, {}));
          }
        }
  });

  it("gather / embedding of a float16 table gives the widened rows in float32", () => {
    const [Eh, Ef] = f16Pair([11, 6], 7);
    const ids = tensor(new Int32Array([3, 0, 10, 3]), [2, 2]);
    const out = ops.embedding(Eh, ids);
    expect(out.dtype).toBe("float32");
    same(out, ops.embedding(Ef, ids));
  });

  it("lmHeadLoss with float16 teacher and student heads matches the widened float32 one exactly", () => {
    const V = 37, D = 12, d = 8, B = 2, T = 5;
    const rng = new Rng(8);
    const [WTh, WTf] = f16Pair([V, D], 9);
    const [WSh, WSf] = f16Pair([V, d], 10);
    const hT = randn([B, T, D], { rng });
    const h = randn([B, T, d], { rng });
    const targets = tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 7) % V), [B, T]);
    const run = (wT: Tensor, wS: Tensor) => {
      const hs = h.detach();
      hs.requiresGrad = true;
      const loss = ops.lmHeadLoss(hs, wS, { targets, teacher: { hidden: hT, weight: wT, temperature: 2 }, chunkElements: 3 * V });
      loss.total.backward();
      return [loss.total, loss.ce!, loss.kl!, hs.grad!];
    };
    const a = run(WTh, WSh), b = run(WTf, WSf);
    a.forEach((t, i) => same(t, b[i]!));
  });

  it("without the WebAssembly engine (LRC_NO_WASM=1) gemm widens float16 operands into scratch first: the same bits", async () => {
    vi.stubEnv("LRC_NO_WASM", "1");
    vi.resetModules();
    try {
      const { gemm, gemmUsesWasm } = await import("./backend/cpu/gemm.js");
      const { float16Tensor: f16 } = await import("./tensor.js"); // the fresh module graph's registry of float16 buffers
      expect(gemmUsesWasm()).toBe(false);
      const [Wh, Wf] = f16Pair([9, 7], 13);
      const x = randn([5, 7], { rng: new Rng(14) }).data() as Float32Array;
      const c1 = new Float32Array(45), c2 = new Float32Array(45);
      const p = { batch: 1, m: 5, n: 9, k: 7, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0 };
      gemm({ ...p, a: x, b: f16(Wh.bits, [9, 7]).bits, c: c1 });
      gemm({ ...p, a: x, b: Wf.data() as Float32Array, c: c2 });
      expect(Array.from(c1)).toEqual(Array.from(c2));
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});
