// The fused ops swiglu and mse on the cpu backend against their composite forms: gradient
// properties against finite differences in float64 on random shapes, forward values and gradients against the
// composite ops in float32 (the WebAssembly SIMD path) and float64, and the TypeScript fallback against the wasm
// path; and a decoder-block step bit-identical on 1, 2 and 4 threads.
import fc from "fast-check";
import { afterEach, describe, expect, test } from "vitest";
import { setVectorWasmDisabled } from "./wasm-vector.js";
import { getParallelThreshold, getThreadCount, setParallelThreshold, setThreadCount, shutdownPool } from "./worker-pool.js";
import { checkGrad } from "../../testing.js";
import { Tensor, tensor } from "../../tensor.js";
import { rng } from "../../random.js";
import { valueAndGrad } from "../../autodiff/grad.js";
import * as O from "../../ops/index.js";
import { uniformTensor } from "../../testing-internal/tensors.js";

const shapeArb = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 0, maxLength: 3 });

const randT = (shape: readonly number[], seed: number, dtype: "float32" | "float64", scale = 3): Tensor => uniformTensor(shape, seed, dtype, scale);

const compositeSwiglu = (g: Tensor, u: Tensor): Tensor => O.mul(O.silu(g), u);
const compositeMse = (a: Tensor, b: Tensor): Tensor => O.mean(O.square(O.sub(a, b)));

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Value and both gradients of sum(f(a, b) * w) (a fixed random weighting). */
function valueAndGrads(fn: (a: Tensor, b: Tensor) => Tensor, a: Tensor, b: Tensor, w: Tensor): [Float64Array, Float64Array, Float64Array] {
  const [v, [ga, gb]] = valueAndGrad((x: Tensor, y: Tensor) => O.sum(O.mul(fn(x, y), w)))(a, b);
  return [Float64Array.from(v.buf), Float64Array.from(ga!.buf), Float64Array.from(gb!.buf)];
}

afterEach(() => setVectorWasmDisabled(false));

describe("fused ops: gradients against finite differences (float64)", () => {
  for (const [name, fn] of [["swiglu", O.swiglu], ["mse", O.mse]] as const)
    test(name, () => {
      fc.assert(
        fc.property(shapeArb, fc.integer({ min: 0, max: 1 << 30 }), (shape, seed) => {
          const r = rng(seed);
          const res = checkGrad(fn, [randT(shape, seed, "float64"), randT(shape, seed + 1, "float64")], r);
          if (!res.ok) throw new Error(`analytic ${res.analytic} vs numeric ${res.numeric}`);
        }),
        { numRuns: 30, seed: 9 },
      );
    });
});

describe("fused ops against the composite ops", () => {
  const cases = [
    ["swiglu", O.swiglu, compositeSwiglu],
    ["mse", O.mse, compositeMse],
  ] as const;
  for (const [name, fused, composite] of cases)
    for (const dtype of ["float32", "float64"] as const)
      test(`${name} ${dtype}: value and gradients (odd sizes, chunk boundaries)`, () => {
        for (const shape of [[1], [3], [7, 5], [2, 3, 11], [16385], [3, 12289]]) {
          const seed = shape.reduce((a, b) => a * 31 + b, 7);
          const a = randT(shape, seed, dtype, 12), b = randT(shape, seed + 1, dtype, 12);
          const w = randT(name === "mse" ? [] : shape, seed + 2, dtype);
          const got = valueAndGrads(fused, a, b, w);
          const want = valueAndGrads(composite, a, b, w);
          const tol = dtype === "float32" ? 2e-5 : 1e-12;
          for (let i = 0; i < 3; i++) {
            const scale = Math.max(1, ...Array.from(want[i]!, Math.abs));
            expect(maxDiff(got[i]!, want[i]!) / scale).toBeLessThan(tol);
          }
        }
      });

  test("swiglu handles extreme gates (exp overflow / underflow) like the composite", () => {
    const g = tensor([-200, -88, -30, 0, 30, 88, 200, 1e-30], [8]);
    const u = tensor([1, 2, 3, 4, 5, 6, 7, 8], [8]);
    const got = O.swiglu(g, u).buf, want = compositeSwiglu(g, u).buf;
    for (let i = 0; i < 8; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want[i]!)));
  });

  test("the TypeScript fallback agrees with the wasm path (float32)", () => {
    const a = randT([5, 1001], 3, "float32", 6), b = randT([5, 1001], 4, "float32", 6), w = randT([5, 1001], 5, "float32");
    for (const fn of [O.swiglu, O.mse]) {
      const ww = fn === O.mse ? tensor(0.7, []) : w;
      const wasm = valueAndGrads(fn, a, b, ww);
      setVectorWasmDisabled(true);
      const js = valueAndGrads(fn, a, b, ww);
      setVectorWasmDisabled(false);
      for (let i = 0; i < 3; i++) expect(maxDiff(wasm[i]!, js[i]!)).toBeLessThan(2e-5 * Math.max(1, ...Array.from(js[i]!, Math.abs)));
    }
  });

  test("mse skips the gradient of an input that does not require it, and rejects shape / dtype mismatches", () => {
    const a = randT([4, 3], 1, "float32"), b = randT([4, 3], 2, "float32");
    const [, [ga]] = valueAndGrad((x: Tensor) => O.mse(x, b))(a);
    const want = O.mul(O.sub(a, b), 2 / 12);
    expect(maxDiff(ga!.buf, want.buf)).toBeLessThan(1e-6);
    expect(() => O.mse(a, randT([3, 4], 3, "float32"))).toThrow(/mse: shapes \[4, 3\] and \[3, 4\] differ/);
    expect(() => O.swiglu(a, randT([4, 3], 3, "float64"))).toThrow(/swiglu: dtype mismatch/);
  });
});

describe("swiglu's VJP adds into the cotangents pending for gate and up", () => {
  // gate and up also feed clone-term-like losses, whose VJPs run first: the swiglu VJP is offered their cotangents
  // (`into`) and adds its own in its kernel; the gradients are the bits of the two parts added separately.
  const shape = [3, 40001];
  const g0 = randT(shape, 1, "float32", 6), u0 = randT(shape, 2, "float32", 6), w = randT(shape, 3, "float32");
  const tg = randT(shape, 4, "float32", 6), tu = randT(shape, 5, "float32", 6);
  const clone = (g: Tensor, u: Tensor): Tensor => O.add(O.mse(g, tg), O.mse(u, tu));
  const act = (g: Tensor, u: Tensor, took: boolean[] | null): Tensor => {
    const y = O.swiglu(g, u);
    if (took !== null && y.node !== null) {
      const inner = y.node.vjp;
      y.node = { ...y.node, vjp: (dy, into) => inner(dy, (i) => { const p = into(i); took.push(p !== null); return p; }) };
    }
    return O.sum(O.mul(y, w));
  };
  const grads = (fn: (g: Tensor, u: Tensor) => Tensor, g: Tensor, u: Tensor): Float32Array[] =>
    valueAndGrad(fn)(g, u)[1].map((t) => Float32Array.from(t!.buf));
  for (const [label, threads, wasm] of [["1 thread", 1, true], ["2 threads", 2, true], ["TypeScript fallback", 1, false]] as const)
    test(label, () => {
      const threshold = getParallelThreshold(), before = getThreadCount();
      setThreadCount(threads);
      setParallelThreshold(0);
      setVectorWasmDisabled(!wasm);
      try {
        const took: boolean[] = [];
        const fused = grads((g, u) => O.add(act(g, u, took), clone(g, u)), g0, u0);
        expect(took).toEqual([true, true]);
        const [ag, au] = grads((g, u) => act(g, u, null), g0, u0), [cg, cu] = grads(clone, g0, u0);
        const sum = (a: Float32Array, b: Float32Array): Float32Array => a.map((v, i) => v + b[i]!);
        expect(fused[0]).toEqual(sum(cg!, ag!));
        expect(fused[1]).toEqual(sum(cu!, au!));
      } finally {
        setParallelThreshold(threshold);
        setThreadCount(before);
        shutdownPool();
      }
    });

  test("float64: the same, and gradients against finite differences", () => {
    const [g, u] = [randT([5, 7], 6, "float64"), randT([5, 7], 7, "float64")];
    const [wt, t1, t2] = [randT([5, 7], 8, "float64"), randT([5, 7], 9, "float64"), randT([5, 7], 10, "float64")];
    const f = (a: Tensor, b: Tensor): Tensor => O.add(O.sum(O.mul(O.swiglu(a, b), wt)), O.add(O.mse(a, t1), O.mse(b, t2)));
    const res = checkGrad(f, [g, u], rng(3));
    if (!res.ok) throw new Error(`analytic ${res.analytic} vs numeric ${res.numeric}`);
    const comp = (a: Tensor, b: Tensor): Tensor => O.add(O.sum(O.mul(compositeSwiglu(a, b), wt)), O.add(O.mse(a, t1), O.mse(b, t2)));
    const [, [fg, fu]] = valueAndGrad(f)(g, u), [, [cg, cu]] = valueAndGrad(comp)(g, u);
    expect(maxDiff(fg!.buf, cg!.buf)).toBeLessThan(1e-12);
    expect(maxDiff(fu!.buf, cu!.buf)).toBeLessThan(1e-12);
  });
});

describe("swigluLinear: swiglu(gate, up) @ wᵀ without keeping the product", () => {
  const composite = (g: Tensor, u: Tensor, w: Tensor): Tensor => O.matmul(O.swiglu(g, u), w, { transB: true });

  test("gradients against finite differences (float64)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 1 << 30 }), (N, F, D, seed) => {
        const args = [randT([N, F], seed, "float64"), randT([N, F], seed + 1, "float64"), randT([D, F], seed + 2, "float64", 1)];
        const res = checkGrad(O.swigluLinear, args, rng(seed));
        if (!res.ok) throw new Error(`analytic ${res.analytic} vs numeric ${res.numeric}`);
      }),
      { numRuns: 30, seed: 11 },
    );
  });

  // The same gemms and elementwise passes as the composite: the same bits, also with gate and up feeding a second
  // loss (their cotangents added in the recomputing pass), on 1 and 2 threads and on the TypeScript fallback.
  const [g0, u0, w0] = [randT([300, 1000], 1, "float32", 4), randT([300, 1000], 2, "float32", 4), randT([48, 1000], 3, "float32", 0.1)];
  const [tg, tu] = [randT([300, 1000], 4, "float32", 4), randT([300, 1000], 5, "float32", 4)];
  const loss = (mm: (g: Tensor, u: Tensor, w: Tensor) => Tensor) => (g: Tensor, u: Tensor, w: Tensor): Tensor =>
    O.add(O.sum(O.square(mm(g, u, w))), O.add(O.mse(g, tg), O.mse(u, tu)));
  for (const [label, threads, wasm] of [["1 thread", 1, true], ["2 threads", 2, true], ["TypeScript fallback", 1, false]] as const)
    test(`float32, ${label}: the composite's value and gradients bit for bit`, () => {
      const threshold = getParallelThreshold(), before = getThreadCount();
      setThreadCount(threads);
      setParallelThreshold(0);
      setVectorWasmDisabled(!wasm);
      try {
        const run = (mm: (g: Tensor, u: Tensor, w: Tensor) => Tensor): Float32Array[] => {
          const [v, gs] = valueAndGrad(loss(mm))(g0, u0, w0);
          return [Float32Array.from(v.buf), ...gs.map((t) => Float32Array.from(t!.buf))];
        };
        expect(run(O.swigluLinear)).toEqual(run(composite));
        expect(O.swigluLinear(g0, u0, w0).buf).toEqual(composite(g0, u0, w0).buf);
      } finally {
        setParallelThreshold(threshold);
        setThreadCount(before);
        shutdownPool();
      }
    });

  test("a frozen bfloat16 weight (no gradient for it), and shape errors", () => {
    const wb = w0.astype("bfloat16");
    const [, [dg, du]] = valueAndGrad((g: Tensor, u: Tensor) => O.sum(O.square(O.swigluLinear(g, u, wb))))(g0, u0);
    const [, [cg, cu]] = valueAndGrad((g: Tensor, u: Tensor) => O.sum(O.square(composite(g, u, wb))))(g0, u0);
    expect(dg!.buf).toEqual(cg!.buf);
    expect(du!.buf).toEqual(cu!.buf);
    expect(() => O.swigluLinear(g0, u0, randT([48, 999], 6, "float32"))).toThrow(/swigluLinear: gate \[300, 1000\] and up \[300, 1000\] must be \[N, F\] and w \[48, 999\] \[D, F\]/);
  });
});

describe("ropeHeads: RoPE of x [B, T, H·dh] split into heads, in one pass", () => {
  function tables(T: number, dh: number, dtype: "float32" | "float64"): [Tensor, Tensor] {
    const half = dh / 2, cos = new Float64Array(T * dh), sin = new Float64Array(T * dh);
    for (let t = 0; t < T; t++)
      for (let i = 0; i < half; i++) {
        cos[t * dh + i] = cos[t * dh + half + i] = Math.cos(t / 10 ** (i / half));
        sin[t * dh + i] = sin[t * dh + half + i] = Math.sin(t / 10 ** (i / half));
      }
    return [tensor(cos, [T, dh], { dtype }), tensor(sin, [T, dh], { dtype })];
  }
  const composite = (x: Tensor, H: number, cos: Tensor, sin: Tensor): Tensor => {
    const [B, T, HD] = x.shape as [number, number, number];
    return O.rope(O.permute(O.reshape(x, [B, T, H, HD / H]), [0, 2, 1, 3]), cos, sin);
  };

  test("gradients against finite differences (float64), x also feeding a second loss", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.constantFrom(2, 4, 8), fc.integer({ min: 0, max: 1 << 30 }), (B, T, H, dh, seed) => {
        const [cos, sin] = tables(T, dh, "float64");
        const t = randT([B, T, H * dh], seed + 1, "float64");
        const f = (x: Tensor): Tensor => O.add(O.sum(O.mul(O.ropeHeads(x, H, cos, sin), randT([B, H, T, dh], seed + 2, "float64"))), O.mse(x, t));
        const res = checkGrad(f, [randT([B, T, H * dh], seed, "float64")], rng(seed));
        if (!res.ok) throw new Error(`analytic ${res.analytic} vs numeric ${res.numeric}`);
      }),
      { numRuns: 25, seed: 13 },
    );
  });

  // The same rotation per row as rope after the permute: the composite's bits, values and gradients (with the
  // cotangent pending from the second loss taken by the VJP), on the wasm path (dh / 2 a multiple of 4) and off it.
  for (const [B, T, H, dh] of [[2, 37, 14, 64], [3, 5, 2, 8], [2, 9, 3, 6]] as const)
    for (const wasm of [true, false])
      test(`float32 [${B}, ${T}, ${H}·${dh}]${wasm ? "" : ", TypeScript fallback"}: the composite bit for bit`, () => {
        setVectorWasmDisabled(!wasm);
        const [cos, sin] = tables(T, dh, "float32");
        const x0 = randT([B, T, H * dh], 1, "float32"), w = randT([B, H, T, dh], 2, "float32"), t = randT([B, T, H * dh], 3, "float32");
        const run = (fn: (x: Tensor, H: number, c: Tensor, s: Tensor) => Tensor): Float32Array[] => {
          const [v, [g]] = valueAndGrad((x: Tensor) => O.add(O.sum(O.mul(fn(x, H, cos, sin), w)), O.mse(x, t)))(x0);
          return [Float32Array.from(v.buf), Float32Array.from(g!.buf), Float32Array.from(fn(x0, H, cos, sin).buf)];
        };
        expect(run(O.ropeHeads)).toEqual(run(composite));
      });

  test("rejects a head count that does not divide the last axis", () => {
    const [cos, sin] = tables(4, 8, "float32");
    expect(() => O.ropeHeads(randT([1, 4, 20], 1, "float32"), 3, cos, sin)).toThrow(/ropeHeads: x \[1, 4, 20\] must be \[B, T, H·dh\] with H = 3/);
  });
});

describe("rmsNorm's VJP adds dx into the cotangent pending for x", () => {
  // x also feeds a second loss whose VJP runs first (as a residual stream does): the bits of the two parts added.
  const x0 = randT([37, 900], 1, "float32", 3), w0 = randT([900], 2, "float32"), wt = randT([37, 900], 3, "float32");
  const t = randT([37, 900], 4, "float32", 3);
  const norm = (x: Tensor, w: Tensor, took: boolean[] | null): Tensor => {
    const y = O.rmsNorm(x, w, 1e-6);
    if (took !== null && y.node !== null) {
      const inner = y.node.vjp;
      y.node = { ...y.node, vjp: (dy, into) => inner(dy, (i) => { const p = into(i); took.push(p !== null); return p; }) };
    }
    return O.sum(O.mul(y, wt));
  };
  const grads = (fn: (x: Tensor, w: Tensor) => Tensor): Float32Array[] => valueAndGrad(fn)(x0, w0)[1].map((g) => Float32Array.from(g!.buf));
  for (const wasm of [true, false])
    test(wasm ? "wasm" : "TypeScript fallback", () => {
      setVectorWasmDisabled(!wasm);
      const took: boolean[] = [];
      const [gx, gw] = grads((x, w) => O.add(norm(x, w, took), O.mse(x, t)));
      expect(took).toEqual([true]);
      const [nx, nw] = grads((x, w) => norm(x, w, null)), [mx] = grads((x) => O.mse(x, t));
      expect(gx).toEqual(mx!.map((v, i) => v + nx![i]!));
      expect(gw).toEqual(nw);
    });

  test("float64 gradients against finite differences", () => {
    const [x, w, wt64, t64] = [randT([3, 8], 5, "float64"), randT([8], 6, "float64"), randT([3, 8], 7, "float64"), randT([3, 8], 8, "float64")];
    const res = checkGrad((a: Tensor, b: Tensor) => O.add(O.sum(O.mul(O.rmsNorm(a, b, 1e-6), wt64)), O.mse(a, t64)), [x, w], rng(4));
    if (!res.ok) throw new Error(`analytic ${res.analytic} vs numeric ${res.numeric}`);
  });
});

describe("determinism across thread counts", () => {
  test("a small decoder-block step (matmul, rmsNorm, rope, attention, swiglu, cross-entropy, mse) is bit-identical with 1, 2 and 4 threads", () => {
    const B = 2, T = 33, D = 40, H = 4, Hkv = 2, dh = 10, F = 56, V = 97;
    const params = [
      randT([D, D], 1, "float32", 0.3), randT([Hkv * dh, D], 2, "float32", 0.3), randT([Hkv * dh, D], 3, "float32", 0.3),
      randT([F, D], 4, "float32", 0.3), randT([F, D], 5, "float32", 0.3), randT([V, F], 6, "float32", 0.3),
      randT([D], 7, "float32", 1),
    ];
    const x = randT([B * T, D], 8, "float32", 1);
    const ids = tensor(Array.from({ length: B * T }, (_, i) => (i * 31) % V), [B * T], { dtype: "int32" });
    const half = dh / 2;
    const cos = new Float32Array(T * dh), sin = new Float32Array(T * dh);
    for (let t = 0; t < T; t++)
      for (let i = 0; i < half; i++) {
        cos[t * dh + i] = cos[t * dh + half + i] = Math.cos(t / 10 ** (i / half));
        sin[t * dh + i] = sin[t * dh + half + i] = Math.sin(t / 10 ** (i / half));
      }
    const cosT = tensor(cos, [T, dh]), sinT = tensor(sin, [T, dh]);
    const loss = (wq: Tensor, wk: Tensor, wv: Tensor, wg: Tensor, wu: Tensor, wo: Tensor, g: Tensor): Tensor => {
      const a = O.rmsNorm(x, g, 1e-6);
      const heads = (t: Tensor, n: number): Tensor => O.permute(O.reshape(t, [B, T, n, dh]), [0, 2, 1, 3]);
      const q = O.rope(heads(O.matmul(a, wq, { transB: true }), H), cosT, sinT);
      const k = O.rope(heads(O.matmul(a, wk, { transB: true }), Hkv), cosT, sinT);
      const v = heads(O.matmul(a, wv, { transB: true }), Hkv);
      const ctx = O.reshape(O.permute(O.causalAttention(q, k, v), [0, 2, 1, 3]), [B * T, D]);
      const h = O.add(x, ctx);
      const m = O.swiglu(O.matmul(h, wg, { transB: true }), O.matmul(h, wu, { transB: true }));
      const logits = O.matmul(m, wo, { transB: true });
      return O.add(O.crossEntropy(logits, ids), O.mse(h, x));
    };
    const run = (threads: number): number[][] => {
      setThreadCount(threads);
      const [v, gs] = valueAndGrad(loss)(...(params as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]));
      return [Array.from(v.buf), ...gs.map((g) => Array.from(g.buf))];
    };
    const threshold = getParallelThreshold(), threads = getThreadCount();
    try {
      const one = run(1);
      setParallelThreshold(0);
      expect(run(2)).toEqual(one);
      expect(run(4)).toEqual(one);
    } finally {
      setParallelThreshold(threshold);
      shutdownPool();
      setThreadCount(threads);
    }
  });
});
