// The storage-only dtypes of frozen weights, bfloat16 and float16 (IEEE binary16): made from a checkpoint's bits
// or by rounding float32; widened exactly (BF16 by a shift, F16 by dtype.ts's 65,536-entry table) by astype, matmul
// (forward and the products of its backward, serial and parallel), gather / embedding and lmHeadLoss, each giving
// the bits of the same op on the widened float32 tensor (one set of tests for both dtypes); refused with a message
// naming the op and the dtype everywhere else; never on the tape; run on cpu unless the active backend accepts them
// (webgpu: backend/webgpu/backend.test.ts).
import fc from "fast-check";
import { afterAll, describe, expect, it, vi } from "vitest";
import { backendReport, initBackend, registerBackend, resetBackendReport, setBackend } from "./backend/backend.js";
import type { Kernels } from "./backend/kernels.js";
import { createGemmRuntime } from "./backend/cpu/gemm-runtime.js";
import { gemmWasmBytes } from "./backend/cpu/wasm-gemm.js";
import { float16Table } from "./dtype.js";
import * as ops from "./ops/index.js";
import { Rng } from "./random.js";
import { f16BitsToFloat32, float32BitsToBF16Bits, float32BitsToF16Bits, parseSafetensors, serializeSafetensors } from "./safetensors.js";
import { Tensor, bfloat16Tensor, float16Tensor, full, randn, tensor, zeros } from "./tensor.js";

afterAll(() => setBackend("cpu"));

/** BF16 bits of random values with a spread of exponents (and the float32 tensor of their widening). */
function bf16Pair(shape: number[], seed: number): [Tensor, Tensor] {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const f = new Float32Array(n).map(() => rng.normal() * 2 ** Math.floor(rng.uniform() * 12 - 8));
  const bits = Uint16Array.from(new Uint32Array(f.buffer), float32BitsToBF16Bits);
  const wide = new Float32Array(n);
  new Uint32Array(wide.buffer).set(Array.from(bits, (b) => b << 16));
  return [bfloat16Tensor(bits, shape), tensor(wide, shape)];
}

/** F16 bits of random values with a spread of exponents, subnormals included (and the float32 tensor of their widening). */
function f16Pair(shape: number[], seed: number): [Tensor, Tensor] {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const f = new Float32Array(n).map(() => rng.normal() * 2 ** Math.floor(rng.uniform() * 24 - 18));
  const bits = Uint16Array.from(new Uint32Array(f.buffer), float32BitsToF16Bits);
  return [float16Tensor(bits, shape), tensor(Float32Array.from(bits, f16BitsToFloat32), shape)];
}

const same = (a: Tensor, b: Tensor) => expect(Array.from(a.data())).toEqual(Array.from(b.data()));

describe.each([["bfloat16", bf16Pair], ["float16", f16Pair]] as const)("%s tensors in the ops that read them", (dtype, pair) => {
  it("matmul: the bits of the widened float32 product, forward and the float32 operand's gradient (W P, Pᵀ W, x Wᵀ)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 24 }), fc.integer(), (rows, D, d, seed) => {
        const [Wh, Wf] = pair([rows, D], seed); // a frozen teacher matrix [out, D]
        const [Wo, Wof] = pair([D, rows], seed + 3); // o / down: [D, F] used as P_oᵀ W_o
        const cases: Array<(W: Tensor, Wo: Tensor, P: Tensor, x: Tensor) => Tensor> = [
          (W, _, P) => ops.matmul(W, P), // q/k/v/gate/up: W P
          (W, _, P) => ops.matmul(P, W, { transA: true, transB: true }), // Pᵀ Wᵀ
          (W, _, _P, x) => ops.matmul(x, W, { transB: true }), // the teacher's linear: x Wᵀ
          (_, Wo, P) => ops.matmul(P, Wo, { transA: true }), // Pᵀ W_o
        ];
        for (const f of cases) {
          // value and gradients of sum(f(W) ⊙ c) for a fixed c, through the 16-bit W and through its widening
          const run = (W: Tensor, Wo: Tensor) => {
            const P = randn([D, d], { rng: new Rng(seed + 1), requiresGrad: true });
            const x = randn([2, d, D], { rng: new Rng(seed + 2), requiresGrad: true });
            const y = f(W, Wo, P, x);
            expect(y.dtype).toBe("float32");
            const loss = ops.sum(ops.mul(y, randn([...y.shape], { rng: new Rng(seed + 4) })));
            loss.backward();
            return [loss, P.grad ?? zeros([1]), x.grad ?? zeros([1])];
          };
          const a = run(Wh, Wo), b = run(Wf, Wof);
          a.forEach((t, i) => same(t, b[i]!));
        }
      }),
      { numRuns: 12, seed: 16 },
    );
  });

  it("matmul on the parallel path (large operands) gives the same bits", () => {
    const [Wh, Wf] = pair([384, 320], 5);
    const P = randn([320, 160], { rng: new Rng(6) });
    same(ops.matmul(Wh, P), ops.matmul(Wf, P));
    same(ops.matmul(P, Wh, { transA: true, transB: true }), ops.matmul(P, Wf, { transA: true, transB: true }));
  });

  it("gather / embedding of a 16-bit table gives the widened rows in float32", () => {
    const [Eh, Ef] = pair([11, 6], 7);
    const ids = tensor(new Int32Array([3, 0, 10, 3]), [2, 2]);
    const out = ops.embedding(Eh, ids);
    expect(out.dtype).toBe("float32");
    same(out, ops.embedding(Ef, ids));
    expect(() => ops.gather(Eh, tensor(new Int32Array([0])), 1)).toThrow(new RegExp(`permute: does not read ${dtype}`));
  });

  it("lmHeadLoss with a 16-bit teacher head (and a 16-bit student head) matches the widened float32 one exactly", () => {
    const V = 37, D = 12, d = 8, B = 2, T = 5;
    const rng = new Rng(8);
    const [WTh, WTf] = pair([V, D], 9);
    const [WSh, WSf] = pair([V, d], 10);
    const hT = randn([B, T, D], { rng });
    const h = randn([B, T, d], { rng, requiresGrad: true });
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
    expect(() => ops.lmHeadLoss(tensor(new Float64Array(B * T * d), [B, T, d]), WSh, { targets })).toThrow(/lmHeadLoss: dtype mismatch float64 vs float32/);
  });

  it("without the WebAssembly engine (LRC_NO_WASM=1) gemm widens 16-bit operands into scratch first: the same bits", async () => {
    vi.stubEnv("LRC_NO_WASM", "1");
    vi.resetModules();
    try {
      const { gemm, gemmUsesWasm } = await import("./backend/cpu/gemm.js");
      const fresh = await import("./tensor.js"); // float16: the fresh module graph's registry of float16 buffers
      expect(gemmUsesWasm()).toBe(false);
      const [Wh, Wf] = pair([9, 7], 13);
      const x = randn([5, 7], { rng: new Rng(14) }).data() as Float32Array;
      const c1 = new Float32Array(45), c2 = new Float32Array(45);
      const p = { batch: 1, m: 5, n: 9, k: 7, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0 };
      gemm({ ...p, a: x, b: dtype === "float16" ? fresh.float16Tensor(Wh.bits, [9, 7]).bits : Wh.bits, c: c1 });
      gemm({ ...p, a: x, b: Wf.data() as Float32Array, c: c2 });
      expect(Array.from(c1)).toEqual(Array.from(c2));
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});

describe("bfloat16 tensors", () => {
  it("are made from bits, widen exactly with astype, and round float32 to nearest even", () => {
    const [h, w] = bf16Pair([3, 5], 1);
    expect(h.dtype).toBe("bfloat16");
    expect([h.nbytes, w.nbytes, w.astype("float64").nbytes]).toEqual([30, 60, 120]);
    same(h.astype("float32"), w);
    expect(Array.from(h.astype("float64").data())).toEqual(Array.from(w.data()));
    const back = w.astype("bfloat16");
    expect(back.dtype).toBe("bfloat16");
    expect(Array.from(back.bits)).toEqual(Array.from(h.bits));
    // 1 + 2^-8 is halfway between two BF16 values: ties to the even one (1); 1 + 3·2^-8 ties up to 1 + 2^-6.
    const r = tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8, -0.1]).astype("bfloat16").astype("float32");
    expect(Array.from(r.data())).toEqual([1, 1 + 2 ** -6, -0.10009765625]);
    expect(tensor([2.7, -1.5]).astype("bfloat16").astype("int32").data()).toEqual(new Int32Array([2, -1]));
    // full / zeros make frozen storage, the value rounded to bfloat16.
    expect(Array.from(zeros([2, 2], { dtype: "bfloat16" }).bits)).toEqual([0, 0, 0, 0]);
    expect(Array.from(full([3], -0.1, { dtype: "bfloat16" }).astype("float32").data())).toEqual([-0.10009765625, -0.10009765625, -0.10009765625]);
    expect(Array.from(full([1], -0, { dtype: "bfloat16" }).bits)).toEqual([0x8000]);
    // Large tensors live in shared memory (worker-thread kernels read them without a copy).
    expect(bfloat16Tensor(new Uint16Array(1 << 16), [1 << 16]).bits.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it("load from a safetensors file's BF16 words (readBF16Bits) and give the values readFloat32 gives", () => {
    const [, w] = bf16Pair([4, 3], 3);
    const st = parseSafetensors(serializeSafetensors({ w: { shape: [4, 3], data: w.data() as Float32Array, dtype: "BF16" }, f: { shape: [1], data: new Float32Array(1) } }), "x.safetensors");
    same(bfloat16Tensor(st.readBF16Bits("w"), [4, 3]).astype("float32"), tensor(st.readFloat32("w"), [4, 3]));
    same(tensor(st.readFloat32("w"), [4, 3]), w);
    expect(() => st.readBF16Bits("f")).toThrow(/x\.safetensors: tensor "f": dtype F32 is not BF16; readBF16Bits reads BF16 tensors only/);
  });

  it("are refused, naming the op, by every op that does not read them, and never require grad", () => {
    const [h] = bf16Pair([2, 3], 2);
    expect(() => ops.add(h, tensor([1, 2, 3]))).toThrow(/add: dtype mismatch bfloat16 vs float32/);
    expect(() => ops.mul(h, h)).toThrow(/binary \(mul\): does not read bfloat16 tensors.*astype\("float32"\)/);
    expect(() => ops.transpose(h)).toThrow(/permute: does not read bfloat16/);
    expect(() => ops.slice(h, [0, 0], [1, 3])).toThrow(/slice: does not read bfloat16/);
    expect(() => ops.exp(h)).toThrow(/exp.*bfloat16/);
    expect(() => ops.sum(h)).toThrow(/bfloat16/);
    expect(() => ops.softmax(h)).toThrow(/bfloat16/);
    expect(() => h.buf).toThrow(/is bfloat16 \(frozen storage\): reading its values needs astype\("float32"\)/);
    expect(() => h.peek()).toThrow(/is bfloat16 \(frozen storage\)/);
    // data(), item() and toArray() give the widened values.
    expect(Array.from(h.data())).toEqual(Array.from(h.astype("float32").data()));
    expect(h.data()).toBeInstanceOf(Float32Array);
    expect(bfloat16Tensor(new Uint16Array([0xc040]), []).item()).toBe(-3);
    expect(bfloat16Tensor(new Uint16Array([0x3f80, 0x4000]), [2, 1]).toArray()).toEqual([[1], [2]]);
    expect(() => { h.requiresGrad = true; }).toThrow(/bfloat16, a frozen storage dtype: it cannot require grad/);
    expect(() => randn([2], { rng: new Rng(0), dtype: "bfloat16" })).toThrow(/randn: bfloat16 is a storage dtype/);
    expect(() => zeros([2], { dtype: "bfloat16", requiresGrad: true })).toThrow(/cannot require grad/);
    expect(() => tensor([1], undefined, { dtype: "bfloat16" })).toThrow(/tensor: bfloat16 is a storage dtype/);
    expect(() => tensor(new Float64Array([1])).astype("bfloat16")).toThrow(/astype: bfloat16 is made from float32 only, got float64/);
    expect(() => ops.matmul(tensor(new Float64Array(6), [2, 3]), h, { transB: true })).toThrow(/matmul: a bfloat16 operand multiplies float32 tensors only/);
    expect(() => bfloat16Tensor(new Uint16Array(5), [2, 3])).toThrow(/bfloat16Tensor: 5 values do not fit shape/);
    // Views share the bits: reshape works.
    expect(Array.from(ops.reshape(h, [3, 2]).astype("float32").data())).toEqual(Array.from(h.astype("float32").data()));
  });

  it("runs on cpu, counted as a fallback, when a backend with those kernels is active", async () => {
    const ran: string[] = [];
    const kernels: Partial<Kernels> = {
      gemm: () => { ran.push("gemm"); throw new Error("must not run"); },
      gather: () => { ran.push("gather"); throw new Error("must not run"); },
      binary: () => { ran.push("binary"); throw new Error("must not run"); },
    };
    registerBackend("f32only", () => ({ name: "f32only", kernels }));
    await initBackend("f32only");
    resetBackendReport();
    const [Wh, Wf] = bf16Pair([6, 4], 11);
    const x = randn([3, 4], { rng: new Rng(12) });
    setBackend("cpu");
    const want = ops.matmul(x, Wf, { transB: true });
    setBackend("f32only");
    same(ops.matmul(x, Wh, { transB: true }), want);
    expect(ops.embedding(Wh, tensor(new Int32Array([1]), [1])).dtype).toBe("float32");
    expect(() => ops.add(Wh, Wh)).toThrow(/binary \(add\): does not read bfloat16/);
    expect(ran).toEqual([]);
    expect(backendReport().ops).toEqual([{ op: "gather", device: 0, cpu: 1 }, { op: "gemm", device: 0, cpu: 1 }]);
    setBackend("cpu");
  });

  it("gemm widens BF16 operands at any offset and length (odd starts, views into a buffer of an odd count)", async () => {
    const { gemm } = await import("./backend/cpu/gemm.js");
    const [m, n, k] = [7, 5, 301]; // k > the 256-wide panels: rows are copied in pieces
    const [, wide] = bf16Pair([1, 3 + m * k + n * k], 15); // an odd number of values
    const all = Uint16Array.from(new Uint32Array((wide.data() as Float32Array).buffer), (w) => w >>> 16);
    for (const [view, off] of [[1, 2], [0, 1], [3, 0]] as const) {
      const bits = all.subarray(view), f32 = wide.data().subarray(view) as Float32Array;
      for (const [transA, transB] of [[false, true], [true, false]] as const) {
        const p = { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, strideC: 0, offsetA: off, offsetB: off + m * k };
        const c1 = new Float32Array(m * n), c2 = new Float32Array(m * n);
        gemm({ ...p, a: bits, b: bits, c: c1 });
        gemm({ ...p, a: f32, b: f32, c: c2 });
        expect(Array.from(c1), `view ${view} offset ${off} ${transA}/${transB}`).toEqual(Array.from(c2));
      }
    }
  });
});

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

  it("a float16 operand beside a bfloat16 one in one gemm gives the widened bits, serial and parallel", () => {
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
      createGemmRuntime(bytes), createGemmRuntime(bytes, { wholeMax: 0, bAllMax: 0, aAllMax: 0, aTransMax: 0 }),
      createGemmRuntime(bytes, { wholeMax: 1e9, bAllMax: 1e9, aAllMax: 1e9, aTransMax: 1e9 }), createGemmRuntime(bytes, { wholeMax: 1e9, bAllMax: 0, aAllMax: 0, aTransMax: 1e9 }),
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
});
