// The WebGPU backend's elementwise, movement, row and reduction kernels against the cpu kernels (run in float64,
// their plain TypeScript paths) on lavapipe, with rows longer than one 256-lane workgroup and odd sizes. The row
// kernels run twice: with subgroup reductions (lavapipe has subgroups) and on a device with them forced off.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as cpuEw from "../cpu/elementwise.js";
import * as cpuRows from "../cpu/rows.js";
import * as cpuFused from "../cpu/fused.js";
import * as cpuMove from "../cpu/movement.js";
import { reduce as cpuReduce } from "../cpu/reduce.js";
import { adamwUpdate as cpuAdamw } from "../cpu/adamw.js";
import { maxAbsDiff } from "../../testing-internal/reference.js";
import type { UnaryKernel, BinaryKernel } from "../cpu/elementwise.js";
import type { WebGpuBuffer, WebGpuDevice } from "./device.js";
import * as ew from "./elementwise.js";
import * as rows from "./rows.js";
import { randomArray, testDevice } from "./test-device.js";

let dev: WebGpuDevice | null = null;
let plainDev: WebGpuDevice | null = null;
beforeAll(async () => {
  dev = await testDevice();
  if (dev !== null) plainDev = await testDevice({ subgroups: false });
});
afterAll(async () => {
  await dev?.destroy();
  await plainDev?.destroy();
});

const f64 = (a: Float32Array): Float64Array => Float64Array.from(a);

/** Element by element: NaN where want is NaN, the same infinity where it is infinite, else within tol (relative above 1). */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, label: string): void {
  expect(got.length, label).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!, g = got[i]!;
    if (Number.isNaN(w)) expect(Number.isNaN(g), `${label} at ${i}`).toBe(true);
    else if (!Number.isFinite(w)) expect(g, `${label} at ${i}`).toBe(w);
    else expect(Math.abs(g - w), `${label} at ${i}: ${g} vs ${w}`).toBeLessThan(tol * Math.max(1, Math.abs(w)));
  }
}

/** Uploads the inputs, runs the gpu kernel on fresh outputs of the given sizes, reads them back, frees everything. */
async function onGpu(inputs: Array<Float32Array | Int32Array>, outSizes: number[], run: (ins: WebGpuBuffer[], outs: WebGpuBuffer[]) => void, d = dev!): Promise<Float32Array[]> {
  const ins = inputs.map((x) => d.upload(x));
  const outs = outSizes.map((n) => d.zeros(n));
  run(ins, outs);
  const got: Float32Array[] = [];
  for (const o of outs) got.push((await d.read(o)) as Float32Array);
  for (const b of [...ins, ...outs]) b.free();
  return got;
}

describe("webgpu elementwise", () => {
  it("unary ops match the cpu kernels", async () => {
    if (dev === null) return;
    const n = 1000;
    const x = randomArray(n, 4).map((v) => v * 3);
    const pos = x.map((v) => Math.abs(v) + 0.1);
    for (const op of ["neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "silu", "relu", "sign", "square", "reciprocal", "copy"] as UnaryKernel[]) {
      const input = ["log", "sqrt", "rsqrt", "reciprocal"].includes(op) ? pos : x;
      const want = new Float64Array(n);
      cpuEw.unary(op, f64(input), want, n);
      const [got] = await onGpu([input], [n], ([a], [o]) => ew.unary(dev!, op, a!, o!, n));
      expect(maxAbsDiff(got!, want), op).toBeLessThan(2e-5 * Math.max(1, ...want.map(Math.abs)));
    }
  });

  it("broadcasting binary ops, pow with negative bases, where", async () => {
    if (dev === null) return;
    const cases: Array<[number[], number[], number[]]> = [[[3, 4, 5], [3, 4, 5], [3, 4, 5]], [[3, 1, 5], [4, 1], [3, 4, 5]], [[1], [2, 3], [2, 3]], [[7, 1, 1, 2], [1, 3, 5, 1], [7, 3, 5, 2]]];
    for (const [as, bs, os] of cases) {
      const size = (s: number[]): number => s.reduce((p, d) => p * d, 1);
      const a = randomArray(size(as), 5).map((v) => Math.round(v * 4) / 2), b = randomArray(size(bs), 6).map((v) => Math.round(v * 4) / 2 + 0.25); // no zero divisor: WGSL division by zero is not IEEE
      for (const op of ["add", "sub", "mul", "div", "maximum", "minimum", "pow", "eq", "ne", "lt", "le", "gt", "ge"] as BinaryKernel[]) {
        const want = new Float64Array(size(os));
        cpuEw.binary(op, f64(a), as, f64(b), bs, want, os);
        const [got] = await onGpu([a, b], [size(os)], ([x, y], [o]) => ew.binary(dev!, op, x!, as, y!, bs, o!, os));
        expectClose(got!, want, 1e-5, `${op} ${as}/${bs}`);
      }
    }
    const c = Float32Array.from({ length: 9 }, (_, i) => i % 2), x = randomArray(9, 7), y = randomArray(9, 8);
    const [w] = await onGpu([c, x, y], [9], ([cc, xx, yy], [o]) => ew.where(dev!, cc!, xx!, yy!, o!, 9));
    expect(Array.from(w!)).toEqual(Array.from(x.map((v, i) => (c[i] ? v : y[i]!))));
  });

  it("swiglu forward and backward, rope and its inverse, accumulate", async () => {
    if (dev === null) return;
    const n = 777;
    const g = randomArray(n, 9).map((v) => v * 4), u = randomArray(n, 10), dy = randomArray(n, 11);
    const out = new Float64Array(n), dg = new Float64Array(n), du = new Float64Array(n);
    cpuFused.swigluForward(f64(g), f64(u), out, n);
    cpuFused.swigluBackward(f64(g), f64(u), f64(dy), dg, du, n);
    const [o] = await onGpu([g, u], [n], ([a, b], [c]) => ew.swigluForward(dev!, a!, b!, c!, n));
    const [gg, gu] = await onGpu([g, u, dy], [n, n], ([a, b, c], [d, e]) => ew.swigluBackward(dev!, a!, b!, c!, d!, e!, n));
    expect(maxAbsDiff(o!, out)).toBeLessThan(1e-5);
    expect(maxAbsDiff(gg!, dg)).toBeLessThan(1e-5);
    expect(maxAbsDiff(gu!, du)).toBeLessThan(1e-5);

    const [outer, T, dh, pos] = [3, 5, 8, 2];
    const x = randomArray(outer * T * dh, 12), cos = randomArray((pos + T) * dh, 13), sin = randomArray((pos + T) * dh, 14);
    for (const inverse of [false, true]) {
      const want = new Float64Array(x.length);
      cpuRows.ropeForward(f64(x), f64(cos), f64(sin), want, outer, T, dh, inverse, pos);
      const [got] = await onGpu([x, cos, sin], [x.length], ([a, c, s], [r]) => ew.ropeForward(dev!, a!, c!, s!, r!, outer, T, dh, inverse, pos));
      expect(maxAbsDiff(got!, want), `inverse ${inverse}`).toBeLessThan(1e-5);
    }

    const d0 = randomArray(300, 15), s0 = randomArray(300, 16);
    const dst = dev.upload(d0), src = dev.upload(s0);
    ew.accumulate(dev, dst, src, 300, 0.5);
    const acc = await dev.read(dst);
    expect(maxAbsDiff(acc, d0.map((v, i) => v + 0.5 * s0[i]!))).toBeLessThan(1e-6);
    dst.free(); src.free();
  });

  it("AdamW matches the cpu update over three steps", async () => {
    if (dev === null) return;
    const n = 1031;
    const p0 = randomArray(n, 17), g = randomArray(n, 18);
    const P = f64(p0), M = new Float64Array(n), V = new Float64Array(n);
    const [dp, dgr, dm, dv] = [dev.upload(p0), dev.upload(g), dev.zeros(n), dev.zeros(n)];
    for (let step = 1; step <= 3; step++) {
      const o = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
      cpuAdamw(P, f64(g), M, V, n, o);
      ew.adamwUpdate(dev, dp, dgr, dm, dv, n, o);
    }
    expect(maxAbsDiff(await dev.read(dp), P)).toBeLessThan(1e-5);
    expect(maxAbsDiff(await dev.read(dm), M)).toBeLessThan(1e-6);
    expect(maxAbsDiff(await dev.read(dv), V)).toBeLessThan(1e-6);
    for (const b of [dp, dgr, dm, dv]) b.free();
  });
});

describe("webgpu movement", () => {
  it("strided copy (a transpose, a slice, an expand) and its accumulation", async () => {
    if (dev === null) return;
    const x = randomArray(2 * 3 * 4, 19);
    const views: Array<[number, number[], number[]]> = [[0, [12, 1, 4], [2, 4, 3]], [5, [12, 4, 1], [2, 2, 2]], [1, [0, 4, 1], [3, 2, 3]]];
    for (const [offset, strides, shape] of views) {
      const n = shape.reduce((p, d) => p * d, 1);
      const want = new Float64Array(n);
      cpuMove.stridedCopy(f64(x), offset, strides, want, shape);
      const [got] = await onGpu([x], [n], ([a], [o]) => ew.stridedCopy(dev!, a!, offset, strides, o!, shape));
      expect(Array.from(got!), `${strides}`).toEqual(Array.from(want).map(Math.fround));
    }
    const src = randomArray(2 * 4 * 3, 20), dst = randomArray(24, 21);
    const want = f64(dst);
    cpuMove.stridedAddInto(f64(src), [2, 4, 3], want, 0, [12, 1, 4]);
    const s = dev.upload(src), d = dev.upload(dst);
    ew.stridedAddInto(dev, s, [2, 4, 3], d, 0, [12, 1, 4]);
    expect(maxAbsDiff(await dev.read(d), want)).toBeLessThan(1e-6);
    s.free(); d.free();
  });

  it("gather rows and scatter-add with repeated indices", async () => {
    if (dev === null) return;
    const [vocab, cols] = [11, 6];
    const table = randomArray(vocab * cols, 22);
    const idx = Int32Array.from([3, 0, 10, 3, 3, 7]);
    const want = new Float64Array(idx.length * cols);
    cpuMove.gatherRows(f64(table), vocab, cols, idx, want, "test");
    const [got] = await onGpu([table, idx], [idx.length * cols], ([t, i], [o]) => ew.gatherRows(dev!, t!, vocab, cols, i!, o!));
    expect(maxAbsDiff(got!, want)).toBe(0);
    const dy = randomArray(idx.length * cols, 23);
    const dx = new Float64Array(vocab * cols);
    cpuMove.scatterAddRows(f64(dy), cols, idx, dx);
    const [gdx] = await onGpu([dy, idx], [vocab * cols], ([a, i], [o]) => ew.scatterAddRows(dev!, a!, cols, i!, o!));
    expect(maxAbsDiff(gdx!, dx)).toBeLessThan(1e-6);
  });
});

describe.each(["subgroups", "plain"] as const)("webgpu rows and reductions (%s)", (mode) => {
  const R = 5, C = 300; // rows longer than one 256-lane workgroup
  let d: WebGpuDevice | null = null;
  beforeAll(() => {
    d = mode === "plain" ? plainDev : dev;
  });

  it("runs the reduction it names", () => {
    if (d === null) return;
    if (mode === "plain") expect(d.features.subgroups).toBe(false);
    // lavapipe (Mesa 25) offers subgroups of 8 and WGSL's subgroup_id: the subgroup path is tested there
    else if (/llvmpipe/i.test(d.adapter.name)) expect(d.features.subgroups).toBe(true);
  });

  it("softmax and log-softmax, forward and backward", async () => {
    if (d === null) return;
    const x = randomArray(R * C, 24).map((v) => v * 5), dy = randomArray(R * C, 25);
    for (const log of [false, true]) {
      const y = new Float64Array(R * C), dx = new Float64Array(R * C);
      (log ? cpuRows.logSoftmaxRows : cpuRows.softmaxRows)(f64(x), y, R, C);
      (log ? cpuRows.logSoftmaxRowsBackward : cpuRows.softmaxRowsBackward)(y, f64(dy), dx, R, C);
      const [gy] = await onGpu([x], [R * C], ([a], [o]) => (log ? rows.logSoftmaxRows : rows.softmaxRows)(d!, a!, o!, R, C), d!);
      const [gdx] = await onGpu([Float32Array.from(y), dy], [R * C], ([a, b], [o]) => (log ? rows.logSoftmaxRowsBackward : rows.softmaxRowsBackward)(d!, a!, b!, o!, R, C), d!);
      expect(maxAbsDiff(gy!, y), `log ${log}`).toBeLessThan(1e-5);
      expect(maxAbsDiff(gdx!, dx), `log ${log}`).toBeLessThan(1e-5);
    }
  });

  it("cross-entropy forward and backward with an ignored row", async () => {
    if (d === null) return;
    const logits = randomArray(R * C, 26).map((v) => v * 4), targets = Int32Array.from([5, -100, 299, 0, 256]), g = randomArray(R, 27);
    const loss = new Float64Array(R), lse = new Float64Array(R), dl = new Float64Array(R * C);
    cpuRows.crossEntropyForward(f64(logits), targets, R, C, -100, loss, lse);
    cpuRows.crossEntropyBackward(f64(logits), targets, lse, f64(g), dl, R, C, -100);
    const [gl, glse] = await onGpu([logits, targets], [R, R], ([a, t], [l, s]) => rows.crossEntropyForward(d!, a!, t!, R, C, -100, l!, s!), d!);
    const [gdl] = await onGpu([logits, targets, Float32Array.from(lse), g], [R * C], ([a, t, s, gg], [o]) => rows.crossEntropyBackward(d!, a!, t!, s!, gg!, o!, R, C, -100), d!);
    expect(maxAbsDiff(gl!, loss)).toBeLessThan(1e-5);
    expect(maxAbsDiff(glse!, lse)).toBeLessThan(1e-5);
    expect(maxAbsDiff(gdl!, dl)).toBeLessThan(1e-6);
  });

  it("temperature KL forward and backward (both gradients, and the student's alone)", async () => {
    if (d === null) return;
    const t = randomArray(R * C, 28).map((v) => v * 6), s = randomArray(R * C, 29).map((v) => v * 6), g = randomArray(R, 30);
    const tau = 2.5;
    const kl = new Float64Array(R), ds = new Float64Array(R * C), dt = new Float64Array(R * C);
    cpuRows.klDivForward(f64(t), f64(s), R, C, tau, kl);
    cpuRows.klDivBackward(f64(t), f64(s), R, C, tau, f64(g), ds, dt);
    const [gkl] = await onGpu([t, s], [R], ([a, b], [o]) => rows.klDivForward(d!, a!, b!, R, C, tau, o!), d!);
    const [gds, gdt] = await onGpu([t, s, g], [R * C, R * C], ([a, b, c], [o1, o2]) => rows.klDivBackward(d!, a!, b!, R, C, tau, c!, o1!, o2!), d!);
    const [gds2] = await onGpu([t, s, g], [R * C], ([a, b, c], [o1]) => rows.klDivBackward(d!, a!, b!, R, C, tau, c!, o1!, null), d!);
    expect(maxAbsDiff(gkl!, kl)).toBeLessThan(1e-5);
    expect(maxAbsDiff(gds!, ds)).toBeLessThan(1e-6);
    expect(maxAbsDiff(gdt!, dt)).toBeLessThan(1e-6);
    expect(maxAbsDiff(gds2!, ds)).toBeLessThan(1e-6);
  });

  it("RMSNorm forward and backward with the weight gradient", async () => {
    if (d === null) return;
    const x = randomArray(R * C, 31), w = randomArray(C, 32), dy = randomArray(R * C, 33);
    const out = new Float64Array(R * C), rstd = new Float64Array(R), dx = new Float64Array(R * C), dw = new Float64Array(C);
    cpuRows.rmsNormForward(f64(x), f64(w), out, rstd, R, C, 1e-6);
    cpuRows.rmsNormBackward(f64(dy), f64(x), f64(w), rstd, dx, dw, R, C);
    const [go, gr] = await onGpu([x, w], [R * C, R], ([a, b], [o, r]) => rows.rmsNormForward(d!, a!, b!, o!, r!, R, C, 1e-6), d!);
    const [gdx, gdw] = await onGpu([dy, x, w, Float32Array.from(rstd)], [R * C, C], ([a, b, c, rs], [o, e]) => rows.rmsNormBackward(d!, a!, b!, c!, rs!, o!, e!, R, C), d!);
    expect(maxAbsDiff(go!, out)).toBeLessThan(1e-5);
    expect(maxAbsDiff(gr!, rstd)).toBeLessThan(1e-5);
    expect(maxAbsDiff(gdx!, dx)).toBeLessThan(1e-5);
    expect(maxAbsDiff(gdw!, dw)).toBeLessThan(1e-5);
  });

  it("sum, max and min over [outer, r, inner]", async () => {
    if (d === null) return;
    for (const [outer, r, inner] of [[3, 700, 1], [2, 5, 7], [1, 1, 4], [4, 0, 2]] as const) {
      const x = randomArray(outer * r * inner, 34);
      for (const op of ["sum", "max", "min"] as const) {
        const want = new Float64Array(outer * inner);
        cpuReduce(op, f64(x), want, outer, r, inner);
        const [got] = await onGpu([x], [outer * inner], ([a], [o]) => rows.reduce(d!, op, a!, o!, outer, r, inner), d!);
        expectClose(got!, want, 1e-4, `${op} ${outer}x${r}x${inner}`);
      }
    }
  });
});
