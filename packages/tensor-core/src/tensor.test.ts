// Forward values against hand-computed or independently computed references, error messages, memory scopes.

import { describe, expect, test } from "vitest";
import fc from "fast-check";
import * as tc from "./index.js";
import { assertClose } from "./testing.js";

const { tensor } = tc;

describe("creation", () => {
  test("nested arrays, dtypes, shapes", () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe("float32");
    expect(t.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(tensor(new Int32Array([1, 2])).dtype).toBe("int32");
    expect(tensor(3).item()).toBe(3);
    expect(tc.arange(5).toArray()).toEqual([0, 1, 2, 3, 4]);
    expect(tc.arange(1, 2, 0.25).toArray()).toEqual([1, 1.25, 1.5, 1.75]);
    expect(tc.full([2], 7, { dtype: "float64" }).data()).toEqual(new Float64Array([7, 7]));
    expect(() => tensor([1, 2, 3], [2, 2])).toThrow(/3 values do not fit shape \[2, 2\]/);
  });
  test("seeded randomness is reproducible and roughly standard normal", () => {
    const a = Array.from(tc.randn([1000], { rng: tc.rng(7) }).data());
    const b = Array.from(tc.randn([1000], { rng: tc.rng(7) }).data());
    expect(a).toEqual(b);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const varr = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.1);
    expect(Math.abs(varr - 1)).toBeLessThan(0.15);
    const r = tc.rng(3);
    r.normal();
    const st = r.state();
    const x = [r.uniform(), r.normal()];
    const r2 = tc.Rng.fromState(st);
    expect([r2.uniform(), r2.normal()]).toEqual(x);
  });
});

describe("elementwise and broadcasting", () => {
  test("numpy broadcasting", () => {
    const a = tensor([[1], [2]]), b = tensor([10, 20, 30]);
    expect(a.add(b).toArray()).toEqual([[11, 21, 31], [12, 22, 32]]);
    expect(tc.sub(5, b).toArray()).toEqual([-5, -15, -25]);
    expect(() => tc.add(tensor([1, 2]), tensor([1, 2, 3]))).toThrow(/add: shapes \[2\] and \[3\] cannot be broadcast/);
  });
  test("general strided broadcast matches a naive loop", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), (shape, ma, mb) => {
        const sa = shape.map((d, i) => (ma[i] ? 1 : d)), sb = shape.map((d, i) => (mb[i] ? 1 : d));
        const r = tc.rng(1);
        const a = tc.randn(sa, { rng: r, dtype: "float64" }), b = tc.randn(sb, { rng: r, dtype: "float64" });
        const out = tc.mul(a, b);
        const os = shape.map((_, i) => Math.max(sa[i]!, sb[i]!));
        expect(out.shape).toEqual(os);
        const n = out.size, st = (s: number[]) => s.map((_, i) => s.slice(i + 1).reduce((p, q) => p * q, 1));
        const so = st(os), ssa = st(sa), ssb = st(sb);
        for (let i = 0; i < n; i++) {
          let ia = 0, ib = 0;
          os.forEach((_, d) => {
            const c = Math.floor(i / so[d]!) % os[d]!;
            ia += (sa[d] === 1 ? 0 : c) * ssa[d]!;
            ib += (sb[d] === 1 ? 0 : c) * ssb[d]!;
          });
          expect(out.buf[i]).toBe(a.buf[ia]! * b.buf[ib]!);
        }
      }),
      { numRuns: 50, seed: 5 },
    );
  });
  test("dtype mismatch is an error, ints promote", () => {
    expect(() => tc.add(tensor([1], undefined, { dtype: "float64" }), tensor([1]))).toThrow(/dtype mismatch float64 vs float32/);
    expect(tc.add(tensor([1.5]), tensor(new Int32Array([2]))).toArray()).toEqual([3.5]);
  });
});

describe("reductions", () => {
  test("sum/mean/max over axes with keepdims", () => {
    const x = tensor([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]);
    expect(x.sum().item()).toBe(36);
    expect(x.sum([0, 2]).toArray()).toEqual([14, 22]);
    expect(x.sum(1, true).shape).toEqual([2, 1, 2]);
    expect(x.mean(-1).toArray()).toEqual([[1.5, 3.5], [5.5, 7.5]]);
    expect(x.max([1, 2]).toArray()).toEqual([4, 8]);
    expect(tc.argmax(tensor([[1, 9, 3], [7, 2, 7]])).toArray()).toEqual([1, 0]);
    const l = tc.logsumexp(tensor([[1000, 1000], [0, Math.log(3)]]), -1).data();
    expect(l[0]).toBeCloseTo(1000 + Math.log(2), 3);
    expect(l[1]).toBeCloseTo(Math.log(4), 5);
  });

  test("logsumexp of rows with an infinite max: -Infinity rows, +Infinity entries, float64 beyond float32", () => {
    const inf = Infinity;
    expect(Array.from(tc.logsumexp(tensor(new Float32Array([-inf, -inf, 1, inf, 0, 2]), [3, 2]), -1).data())).toEqual(
      [-inf, inf, Math.fround(2 + Math.log1p(Math.exp(-2)))]);
    const big = tc.logsumexp(tensor(new Float64Array([1e300, 1e300]), [2]), 0).item();
    expect(big).toBe(1e300 + Math.log(2));
  });
});

describe("matmul", () => {
  function naive(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
    const c = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) { let s = 0; for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!; c[i * n + j] = s; }
    return c;
  }
  test("matches a naive loop on random odd shapes, all transposes, float32", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 70 }), fc.boolean(), fc.boolean(), (m, k, n, ta, tb) => {
        const r = tc.rng(m * 1000 + k * 10 + n);
        const a = tc.randn([m, k], { rng: r, dtype: "float64" }), b = tc.randn([k, n], { rng: r, dtype: "float64" });
        const ref = naive(a.buf as Float64Array, b.buf as Float64Array, m, k, n);
        const a32 = (ta ? a.transpose() : a).astype("float32"), b32 = (tb ? b.transpose() : b).astype("float32");
        const c = tc.matmul(a32, b32, { transA: ta, transB: tb });
        expect(c.shape).toEqual([m, n]);
        assertClose(c.buf, ref, 1e-4 * Math.sqrt(k), 1e-4);
      }),
      { numRuns: 60, seed: 6 },
    );
  });
  test("numpy 1-D and batch-broadcast semantics", () => {
    const a = tensor([[1, 2], [3, 4]]);
    expect(tc.matmul(tensor([1, 1]), a).toArray()).toEqual([4, 6]);
    expect(tc.matmul(a, tensor([1, 1])).toArray()).toEqual([3, 7]);
    expect(tc.matmul(tensor([1, 2]), tensor([3, 4])).item()).toBe(11);
    const bat = tc.stack([a, a.mul(2), a.mul(3)]);
    expect(tc.matmul(bat, a).shape).toEqual([3, 2, 2]);
    expect(tc.matmul(bat, a).slice([2]).reshape([2, 2]).toArray()).toEqual([[21, 30], [45, 66]]);
    expect(tc.matmul(tc.ones([2, 1, 3, 4]), tc.ones([5, 4, 2])).shape).toEqual([2, 5, 3, 2]);
    expect(() => tc.matmul(tc.ones([2, 3]), tc.ones([4, 5]))).toThrow(/matmul: inner dimensions differ: \[2, 3\] @ \[4, 5\]/);
  });
});

describe("fused ops against compositions", () => {
  const r = tc.rng(11);
  const x = tc.randn([3, 4, 7], { rng: r, dtype: "float64", std: 3 });
  test("softmax rows sum to 1 and match exp / sum", () => {
    const s = tc.softmax(x);
    const rows = s.sum(-1).data();
    for (const v of rows) expect(v).toBeCloseTo(1, 12);
    const e = x.sub(x.max(-1, true)).exp();
    assertClose(s, e.div(e.sum(-1, true)), 1e-12);
    assertClose(tc.logSoftmax(x, 1), x.sub(tc.logsumexp(x, 1, true)), 1e-12);
  });
  test("rmsNorm matches the HF formula", () => {
    const w = tc.randn([7], { rng: r, dtype: "float64" });
    const ref = x.mul(x.square().mean(-1, true).add(1e-6).rsqrt()).mul(w);
    assertClose(tc.rmsNorm(x, w, 1e-6), ref, 1e-12);
  });
  test("crossEntropy equals log-sum-exp minus the target logit, by hand", () => {
    const logits = tensor([[2, 1, 0.1], [0.5, 2.5, -1]], undefined, { dtype: "float64" });
    const t = tensor([0, 2], undefined, { dtype: "int32" });
    const byHand = [Math.log(Math.exp(2) + Math.exp(1) + Math.exp(0.1)) - 2, Math.log(Math.exp(0.5) + Math.exp(2.5) + Math.exp(-1)) + 1];
    assertClose(tc.crossEntropy(logits, t, { reduction: "none" }), byHand, 1e-12);
    expect(tc.crossEntropy(logits, t).item()).toBeCloseTo((byHand[0]! + byHand[1]!) / 2, 12);
    const ti = tensor([0, -100], undefined, { dtype: "int32" });
    expect(tc.crossEntropy(logits, ti, { ignoreIndex: -100 }).item()).toBeCloseTo(byHand[0]!, 12);
    expect(() => tc.crossEntropy(logits, tensor([0, 3], undefined, { dtype: "int32" }))).toThrow(/3/);
  });
  test("klDivergence: hand computation with temperature and the batchmean reduction", () => {
    const t = tensor([[[1, 2, 3]], [[0, 0, 0]]], undefined, { dtype: "float64" });
    const s = tensor([[[3, 2, 1]], [[1, 0, 0]]], undefined, { dtype: "float64" });
    const tau = 2;
    const sm = (z: number[]) => { const e = z.map((v) => Math.exp(v / tau)); const S = e.reduce((a, b) => a + b); return e.map((v) => v / S); };
    const kl = (p: number[], q: number[]) => p.reduce((acc, pi, i) => acc + pi * Math.log(pi / q[i]!), 0);
    const k0 = kl(sm([1, 2, 3]), sm([3, 2, 1])), k1 = kl(sm([0, 0, 0]), sm([1, 0, 0]));
    expect(tc.klDivergence(t, s, { temperature: tau }).item()).toBeCloseTo((k0 + k1) / 2, 12);
    expect(tc.klDivergence(t, s, { temperature: tau, reduction: "sum" }).item()).toBeCloseTo(k0 + k1, 12);
    expect(tc.klDivergence(t, t, { temperature: 40 }).item()).toBeCloseTo(0, 14);
  });
  test("causalAttention matches masked softmax(q k^T) v with GQA", () => {
    const B = 2, H = 4, Hkv = 2, T = 5, dh = 3;
    const q = tc.randn([B, H, T, dh], { rng: r, dtype: "float64" });
    const k = tc.randn([B, Hkv, T, dh], { rng: r, dtype: "float64" });
    const v = tc.randn([B, Hkv, T, dh], { rng: r, dtype: "float64" });
    const rep = (t: tc.Tensor) => tc.reshape(tc.broadcastTo(tc.unsqueeze(t, 2), [B, Hkv, H / Hkv, T, dh]), [B, H, T, dh]);
    const scores = tc.matmul(q, rep(k), { transB: true }).mul(1 / Math.sqrt(dh));
    const mask = tensor(Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -Infinity : 0)), [T, T], { dtype: "float64" });
    const ref = tc.matmul(tc.softmax(scores.add(mask)), rep(v));
    assertClose(tc.causalAttention(q, k, v), ref, 1e-12);
    // KV-cache decoding: the last query alone with offset T-1 equals the last row.
    const last = tc.causalAttention(q.slice([0, 0, T - 1]), k, v);
    assertClose(last, ref.slice([0, 0, T - 1]), 1e-12);
  });
  test("rope rotates pairs (x1, x2) by the angle and preserves the norm", () => {
    const T = 3, dh = 4;
    const ang = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    const cos = tensor(Array.from({ length: T * dh }, (_, i) => Math.cos(ang[(Math.floor(i / dh) * 2 + (i % 2)) % 6]!)), [T, dh], { dtype: "float64" });
    const sin = tensor(Array.from({ length: T * dh }, (_, i) => Math.sin(ang[(Math.floor(i / dh) * 2 + (i % 2)) % 6]!)), [T, dh], { dtype: "float64" });
    const xx = tc.randn([2, T, dh], { rng: r, dtype: "float64" });
    const y = tc.rope(xx, cos, sin);
    const half = dh / 2;
    const rot = tc.concat([xx.slice([0, 0, half]).neg(), xx.slice([0, 0, 0], [2, T, half])], -1);
    assertClose(y, xx.mul(cos).add(rot.mul(sin)), 1e-12);
  });
});

describe("autodiff API", () => {
  test("backward accumulates into .grad; valueAndGrad leaves arguments alone", () => {
    const w = tensor([1, 2, 3], undefined, { requiresGrad: true });
    const loss = w.mul(w).sum();
    loss.backward();
    expect(w.grad!.toArray()).toEqual([2, 4, 6]);
    w.mul(3).sum().backward();
    expect(w.grad!.toArray()).toEqual([5, 7, 9]);
    const x = tensor([1, 2]);
    const [v, [g]] = tc.valueAndGrad((x: tc.Tensor) => x.mul(x).sum())(x);
    expect(v.item()).toBe(5);
    expect(g!.toArray()).toEqual([2, 4]);
    expect(x.grad).toBeNull();
    const [gy] = tc.grad((x: tc.Tensor, y: tc.Tensor) => x.mul(y).sum(), 1)(x, tensor([3, 4]));
    expect(gy!.toArray()).toEqual([1, 2]);
  });
  test("noGrad records nothing; detach cuts the tape", () => {
    const w = tensor([1, 2], undefined, { requiresGrad: true });
    expect(tc.noGrad(() => w.mul(2)).requiresGrad).toBe(false);
    expect(w.detach().mul(2).requiresGrad).toBe(false);
    expect(() => w.detach().sum().backward()).toThrow(/does not require grad/);
  });
  test("scope disposes intermediates and keeps results and leaf grads", () => {
    const w = tensor([1, 2], undefined, { requiresGrad: true });
    let inner: tc.Tensor | null = null;
    const out = tc.scope(() => {
      inner = w.mul(3);
      const l = inner.sum();
      l.backward();
      return l;
    });
    expect(out.item()).toBe(9);
    expect(inner!.disposed).toBe(true);
    expect(w.grad!.toArray()).toEqual([3, 3]);
    expect(() => inner!.data()).toThrow(/disposed/);
  });
});

describe("optimisers", () => {
  test("AdamW matches a step-by-step hand computation (torch semantics)", () => {
    const p = tensor([1, -2], undefined, { dtype: "float64" });
    const opt = new tc.AdamW([p], { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
    let w = [1, -2], m = [0, 0], v = [0, 0];
    const grads = [[0.5, -1], [0.25, 2], [-1, 0.1]];
    grads.forEach((g, t) => {
      opt.step([tensor(g, undefined, { dtype: "float64" })]);
      const step = t + 1;
      w = w.map((wi, i) => {
        const wd = wi * (1 - 0.1 * 0.1);
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.99 * v[i]! + 0.01 * g[i]! * g[i]!;
        const mh = m[i]! / (1 - 0.9 ** step), vh = v[i]! / (1 - 0.99 ** step);
        return wd - 0.1 * mh / (Math.sqrt(vh) + 1e-8);
      });
      assertClose(p.buf, w, 1e-12);
    });
    const st = opt.state();
    const p2 = tensor(p.data(), undefined, { dtype: "float64" });
    const opt2 = new tc.AdamW([p2], { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
    opt2.loadState(st);
    opt.step([tensor([0.3, 0.3], undefined, { dtype: "float64" })]);
    opt2.step([tensor([0.3, 0.3], undefined, { dtype: "float64" })]);
    expect(p2.data()).toEqual(p.data());
  });
  test("AdamW parameter groups: each group steps as its own optimizer with the group's weight decay", () => {
    const vals = [[1, -2, 0.5], [0.25, 3], [-1]];
    const mk = () => vals.map((v) => tensor(v, undefined, { dtype: "float64" }));
    const [a, b, c] = mk();
    const grouped = new tc.AdamW([{ params: [a!, c!] }, { params: [b!], weightDecay: 0 }], { lr: 0.1, beta2: 0.95, eps: 1e-6, weightDecay: 0.2 });
    expect(grouped.params).toEqual([a, c, b]);
    expect(grouped.groups.map((g) => g.weightDecay)).toEqual([0.2, 0]);
    const [a2, b2, c2] = mk();
    const decayed = new tc.AdamW([a2!, c2!], { lr: 0.1, beta2: 0.95, eps: 1e-6, weightDecay: 0.2 });
    const plain = new tc.AdamW([b2!], { lr: 0.1, beta2: 0.95, eps: 1e-6, weightDecay: 0 });
    for (let t = 0; t < 3; t++) {
      const g = (x: tc.Tensor, k: number) => tensor(x.data().map((_, i) => Math.sin(7 * t + 3 * k + i)), undefined, { dtype: "float64" });
      grouped.step([g(a!, 0), g(c!, 2), g(b!, 1)]);
      decayed.step([g(a2!, 0), g(c2!, 2)]);
      plain.step([g(b2!, 1)]);
    }
    for (const [x, y] of [[a, a2], [b, b2], [c, c2]] as const) expect(x!.data()).toEqual(y!.data());
    expect(() => new tc.AdamW([{ params: [a!] }, { params: [a!] }])).toThrow(/more than one place/);
  });
  test("clipGradNorm and schedules", () => {
    const g = tensor([3, 4]);
    expect(tc.clipGradNorm([g], 1)).toBeCloseTo(5, 6);
    assertClose(g.buf, [0.6, 0.8], 1e-6);
    // Two gradients on one buffer (the same tensor, or a view of it) count twice in the norm but are scaled once.
    const h = tensor([3, 4]), hv = h.reshape([2, 1]);
    expect(tc.clipGradNorm([h, hv, h], 1)).toBeCloseTo(Math.sqrt(75), 6);
    assertClose(h.buf, [3 / Math.sqrt(75), 4 / Math.sqrt(75)], 1e-6);
    const s = tc.schedules.warmupLinear(1, 10, 110);
    expect([s(0), s(5), s(10), s(60), s(110)]).toEqual([0, 0.5, 1, 0.5, 0]);
    const c = tc.schedules.warmupCosine(1, 0, 100);
    expect(c(50)).toBeCloseTo(0.5, 12);
    const sgd = new tc.SGD([tensor([1, 1])], { lr: 0.5, momentum: 0.9 });
    sgd.step([tensor([1, 2])]);
    sgd.step([tensor([1, 2])]);
    assertClose(sgd.params[0]!.buf, [1 - 0.5 - 0.5 * 1.9, 1 - 1 - 0.5 * 3.8], 1e-6);
  });
});
