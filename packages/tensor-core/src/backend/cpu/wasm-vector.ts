/**
 * WebAssembly SIMD vector kernels generated at run time (wasm-builder.ts): the exp-bound row work of softmax,
 * cross-entropy and temperature KL, the fused SwiGLU and MSE passes, quadFormMse's float64 dot, AdamW, RMSNorm
 * (forward and backward) and rotary embedding, and the binary add / sub / mul / div, all float32.
 *
 * exp is a f32x4 Cephes-style polynomial (range reduction by n = round(x log2 e), a degree-6 polynomial on
 * |r| <= ln2/2, 2^n built in the exponent bits; ~2 ulp), with x clamped to [-87.3, 88]: exp of anything below is
 * ~1e-38 instead of 0, which callers only feed after max-subtraction (or as sigmoid's exp(-x)). Sums accumulate in
 * f64x2 lanes. Rows whose length is not a multiple of 4 end in a partial vector whose extra lanes are masked out of
 * every sum and max (the mask table sits at the start of memory); elementwise kernels also compute the extra lanes
 * (the caller pads its buffers) and the caller ignores them.
 *
 * The kernels work on this module's own memory: callers (rows.ts, fused.ts, adamw.ts) copy operands in, in chunks
 * that stay in L2, run the kernel and copy results out. Everything here is deterministic: a row's result depends
 * only on that row, never on chunking or threads.
 */
import { buildModule, F32, F64, Fn, I32, Op, S, V128 } from "./wasm-builder.js";
import { hasRelaxedSimd, hasSimd, wasmApi } from "./wasm-features.js";
import { instantiate, type WasmInstance } from "./wasm-instance.js";

/** Byte offset of the lane-mask table (masks[r] keeps the first r lanes, r = 1..3). */
export const MASKS = 0;
/** Byte offset of scalar side outputs (min of maxmin; lmsums' four f64x2 sums, 64 bytes up to DATA). */
export const SCRATCH = 64;
/** First byte of the data regions. */
export const DATA = 128;
/** The memory layout above, for the row runtime (rows-runtime.ts) that loads this module on every thread. */
export const VECTOR_LAYOUT = { masks: MASKS, scratch: SCRATCH, data: DATA } as const;

const LOG2E = 1.4426950408889634;
const EXP_HI = 88.0;
const EXP_LO = -87.33654;
const C1 = 0.693359375;
const C2 = -2.12194440e-4;
const P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
/** 1.5 * 2^23: adding it rounds to an integer n (ties to even, like f32x4.nearest) held in the low mantissa bits. */
const ROUND_BIAS = 12582912;

/**
 * Pushes exp(x) for the v128 local x (clobbered), using v128 locals n and r. Cephes' expf: x = n ln2 + r with
 * n = nearest(x log2e), a degree-5 polynomial for exp(r), times 2^n built in the exponent bits. The clamp uses
 * pmin / pmax (one instruction each; NaN still propagates since the comparisons are false for NaN), and n comes
 * from the float rounding trick: the bits of x log2e + ROUND_BIAS are 0x4B400000 + n, and 0x4B400000 is a multiple of
 * 512, so (bits + 127) << 23 is 2^n's bits (n + 127 lies in [1, 254] after the clamp) — the same values as nearest
 * and trunc_sat, bit for bit, without V8's multi-instruction sequences for f32x4.min/max and i32x4.trunc_sat.
 *
 * With `fma` (relaxed SIMD available, as for the gemm micro-kernel) every multiply-add of the range reduction and the
 * polynomial is one `f32x4.relaxed_madd` (vfmadd on x64 with FMA3; a multiply and an add elsewhere): 17 vector
 * operations instead of 26, ~1.7x the throughput of the exp-bound passes (softmax and cross-entropy rows, the LM
 * head's rows, SwiGLU, attention). Fused roundings make it as accurate or more (one rounding per step instead of
 * two; x - n C1 is exact either way) but not bit-identical to the unfused form; results still depend only on the
 * element and the machine, never on threads.
 */
export function emitExp(f: Fn, x: number, n: number, r: number, fma = false): void {
  f.get(x).f32x4(EXP_HI).simd(S.f32x4Pmin).f32x4(EXP_LO).simd(S.f32x4Pmax).set(x);
  if (fma) {
    // relaxed_madd(a, b, c) = a b + c
    f.get(x).f32x4(LOG2E).f32x4(ROUND_BIAS).simd(S.f32x4RelaxedMadd).set(n);
    f.get(n).f32x4(ROUND_BIAS).simd(S.f32x4Sub).set(r);
    f.get(r).f32x4(-C1).get(x).simd(S.f32x4RelaxedMadd).set(x);
    f.get(r).f32x4(-C2).get(x).simd(S.f32x4RelaxedMadd).set(r);
    f.f32x4(P[0]!);
    for (let i = 1; i < P.length; i++) f.get(r).f32x4(P[i]!).simd(S.f32x4RelaxedMadd);
    // (p r) r + r, then + 1 (as the unfused form: r before 1, so r keeps its low bits)
    f.get(r).simd(S.f32x4Mul).get(r).get(r).simd(S.f32x4RelaxedMadd).f32x4(1).simd(S.f32x4Add);
  } else {
    f.get(x).f32x4(LOG2E).simd(S.f32x4Mul).f32x4(ROUND_BIAS).simd(S.f32x4Add).set(n);
    f.get(n).f32x4(ROUND_BIAS).simd(S.f32x4Sub).set(r);
    f.get(x).get(r).f32x4(C1).simd(S.f32x4Mul).simd(S.f32x4Sub).get(r).f32x4(C2).simd(S.f32x4Mul).simd(S.f32x4Sub).set(r);
    f.f32x4(P[0]!);
    for (let i = 1; i < P.length; i++) f.get(r).simd(S.f32x4Mul).f32x4(P[i]!).simd(S.f32x4Add);
    f.get(r).simd(S.f32x4Mul).get(r).simd(S.f32x4Mul).get(r).simd(S.f32x4Add).f32x4(1).simd(S.f32x4Add);
  }
  f.get(n).i32x4(127).simd(S.i32x4Add).i32(23).simd(S.i32x4Shl);
  f.simd(S.f32x4Mul);
}

/** HIGH: i8x16.shuffle lanes moving float lanes 2, 3 of a vector into lanes 0, 1 (for f64x2.promote_low_f32x4). */
const HIGH = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];

/** acc0 += promote(lo lanes of v), acc1 += promote(hi lanes of v), v a v128 local. */
export function emitAccF64(f: Fn, v: number, acc0: number, acc1: number): void {
  f.get(acc0).get(v).simd(S.f64x2PromoteLow).simd(S.f64x2Add).set(acc0);
  f.get(acc1).get(v).get(v).shuffle(HIGH);
  f.simd(S.f64x2PromoteLow).simd(S.f64x2Add).set(acc1);
}

/** Pushes the f64 sum of all four lanes of acc0 + acc1. */
export function emitSumF64(f: Fn, acc0: number, acc1: number): void {
  f.get(acc0).get(acc1).simd(S.f64x2Add).set(acc0);
  f.get(acc0).simd(S.f64x2ExtractLane, 0).get(acc0).simd(S.f64x2ExtractLane, 1).op(Op.f64Add);
}

/**
 * acc0 += x[0..1] y[0..1] and acc1 += x[2..3] y[2..3] in float64 (v128 locals x, y of float32 lanes): each product
 * of two float32 values is exact in float64, so lane j of acc0 / acc1 sums the elements i = j mod 4 in order.
 */
function emitMulAddF64(f: Fn, acc0: number, acc1: number, x: number, y: number): void {
  f.get(acc0).get(x).simd(S.f64x2PromoteLow).get(y).simd(S.f64x2PromoteLow).simd(S.f64x2Mul).simd(S.f64x2Add).set(acc0);
  f.get(acc1).get(x).get(x).shuffle(HIGH).simd(S.f64x2PromoteLow).get(y).get(y).shuffle(HIGH).simd(S.f64x2PromoteLow);
  f.simd(S.f64x2Mul).simd(S.f64x2Add).set(acc1);
}

/** Pushes the tail mask for `rem` (i32 local, 1..3) lanes. */
function emitMask(f: Fn, rem: number): void {
  f.get(rem).i32(4).op(Op.i32Shl).load(MASKS);
}

/** On the final partial vector (masked), zeroes the lanes of the vector on the stack that lie past n. */
function emitZeroTail(f: Fn, masked: boolean, rem: number): void {
  if (!masked) return;
  emitMask(f, rem);
  f.simd(S.and);
}

/**
 * A row loop over `n` f32 elements: `body(i, masked)` is emitted once for full vectors (i = byte offset of the
 * vector) and once for the final partial vector (masked = true), which runs when n % 4 != 0.
 */
function rowLoop(f: Fn, n: number, body: (i: number, masked: boolean, rem: number) => void): void {
  const i = f.local(I32);
  const end = f.local(I32);
  const rem = f.local(I32);
  f.get(n).i32(-4).op(Op.i32And).i32(4).op(Op.i32Mul).set(end);
  f.get(n).i32(3).op(Op.i32And).set(rem);
  f.i32(0).set(i);
  f.forLoop(i, end, 16, () => body(i, false, rem));
  f.get(rem).op(Op.if, 0x40);
  body(i, true, rem);
  f.op(Op.end);
}

/**
 * maxmin(p, n) -> max over p[0..n) (f32, NaN-propagating); min stored at SCRATCH. n >= 1. Four independent
 * max/min accumulators over 16-float blocks: V8's NaN-correct f32x4.max/min is a ~7-instruction dependent sequence,
 * so a single accumulator chain ran at ~1 ns per float; max and min do not depend on the order.
 */
function buildMaxMin(): Fn {
  const f = new Fn("maxmin", [I32, I32], [F32]);
  const [p, n] = [0, 1];
  const U = 4;
  const mx = Array.from({ length: U }, () => f.local(V128));
  const mn = Array.from({ length: U }, () => f.local(V128));
  const v = f.local(V128), i = f.local(I32), end = f.local(I32), rem = f.local(I32);
  for (let u = 0; u < U; u++) f.f32x4(-Infinity).set(mx[u]!).f32x4(Infinity).set(mn[u]!);
  const acc = (u: number, offset: number): void => {
    f.get(p).get(i).op(Op.i32Add).load(offset).set(v);
    f.get(v).get(mx[u]!).simd(S.f32x4Max).set(mx[u]!);
    f.get(v).get(mn[u]!).simd(S.f32x4Min).set(mn[u]!);
  };
  f.i32(0).set(i);
  f.get(n).i32(-16).op(Op.i32And).i32(4).op(Op.i32Mul).set(end);
  f.forLoop(i, end, 64, () => {
    for (let u = 0; u < U; u++) acc(u, 16 * u);
  });
  f.get(n).i32(-4).op(Op.i32And).i32(4).op(Op.i32Mul).set(end);
  f.forLoop(i, end, 16, () => acc(0, 0));
  f.get(n).i32(3).op(Op.i32And).set(rem);
  f.get(rem).op(Op.if, 0x40);
  f.get(p).get(i).op(Op.i32Add).load().set(v);
  f.get(v).f32x4(-Infinity);
  emitMask(f, rem);
  f.simd(S.bitselect).get(mx[0]!).simd(S.f32x4Max).set(mx[0]!);
  f.get(v).f32x4(Infinity);
  emitMask(f, rem);
  f.simd(S.bitselect).get(mn[0]!).simd(S.f32x4Min).set(mn[0]!);
  f.op(Op.end);
  for (let u = 1; u < U; u++) {
    f.get(mx[0]!).get(mx[u]!).simd(S.f32x4Max).set(mx[0]!);
    f.get(mn[0]!).get(mn[u]!).simd(S.f32x4Min).set(mn[0]!);
  }
  // store min
  f.i32(SCRATCH);
  f.get(mn[0]!).simd(S.f32x4ExtractLane, 0).get(mn[0]!).simd(S.f32x4ExtractLane, 1).op(Op.f32Min);
  f.get(mn[0]!).simd(S.f32x4ExtractLane, 2).get(mn[0]!).simd(S.f32x4ExtractLane, 3).op(Op.f32Min).op(Op.f32Min);
  f.op(Op.f32Store, 2, 0);
  f.get(mx[0]!).simd(S.f32x4ExtractLane, 0).get(mx[0]!).simd(S.f32x4ExtractLane, 1).op(Op.f32Max);
  f.get(mx[0]!).simd(S.f32x4ExtractLane, 2).get(mx[0]!).simd(S.f32x4ExtractLane, 3).op(Op.f32Max).op(Op.f32Max);
  return f;
}

/** sumexp(p, n, scale, shift) -> sum of exp(p[i] * scale - shift) (f64 accumulation). */
function buildSumExp(fma: boolean): Fn {
  const f = new Fn("sumexp", [I32, I32, F32, F32], [F64]);
  const [p, n, scale, shift] = [0, 1, 2, 3];
  const sc = f.local(V128), sh = f.local(V128), x = f.local(V128), nn = f.local(V128), r = f.local(V128);
  const a0 = f.local(V128), a1 = f.local(V128);
  f.get(scale).simd(S.f32x4Splat).set(sc).get(shift).simd(S.f32x4Splat).set(sh);
  rowLoop(f, n, (i, masked, rem) => {
    f.get(p).get(i).op(Op.i32Add).load().get(sc).simd(S.f32x4Mul).get(sh).simd(S.f32x4Sub).set(x);
    emitExp(f, x, nn, r, fma);
    emitZeroTail(f, masked, rem);
    f.set(x);
    emitAccF64(f, x, a0, a1);
  });
  emitSumF64(f, a0, a1);
  return f;
}

/** expaff(src, dst, n, scale, shift, mul): dst[i] = exp(src[i] * scale - shift) * mul (whole vectors). */
function buildExpAff(fma: boolean): Fn {
  const f = new Fn("expaff", [I32, I32, I32, F32, F32, F32], []);
  const [src, dst, n, scale, shift, mul] = [0, 1, 2, 3, 4, 5];
  const sc = f.local(V128), sh = f.local(V128), mu = f.local(V128), x = f.local(V128), nn = f.local(V128), r = f.local(V128);
  f.get(scale).simd(S.f32x4Splat).set(sc).get(shift).simd(S.f32x4Splat).set(sh).get(mul).simd(S.f32x4Splat).set(mu);
  rowLoop(f, n, (i) => {
    f.get(src).get(i).op(Op.i32Add).load().get(sc).simd(S.f32x4Mul).get(sh).simd(S.f32x4Sub).set(x);
    f.get(dst).get(i).op(Op.i32Add);
    emitExp(f, x, nn, r, fma);
    f.get(mu).simd(S.f32x4Mul).store();
  });
  return f;
}

/**
 * klrow(t, s, n, invT, shT, mT, d) -> sum of pT ((t - s) invT - d) with pT = exp(t invT - shT) mT; the caller
 * passes shT = max(t) invT, mT = exp(shT - lseT) and d = lseT - lseS (computed in float64).
 */
function buildKlRow(fma: boolean): Fn {
  const f = new Fn("klrow", [I32, I32, I32, F32, F32, F32, F32], [F64]);
  const [t, s, n, invT, shT, mT, d] = [0, 1, 2, 3, 4, 5, 6];
  const it = f.local(V128), sh = f.local(V128), mv = f.local(V128), dv = f.local(V128);
  const tv = f.local(V128), x = f.local(V128), nn = f.local(V128), r = f.local(V128), a0 = f.local(V128), a1 = f.local(V128);
  f.get(invT).simd(S.f32x4Splat).set(it).get(shT).simd(S.f32x4Splat).set(sh);
  f.get(mT).simd(S.f32x4Splat).set(mv).get(d).simd(S.f32x4Splat).set(dv);
  rowLoop(f, n, (i, masked, rem) => {
    f.get(t).get(i).op(Op.i32Add).load().get(it).simd(S.f32x4Mul).tee(tv).get(sh).simd(S.f32x4Sub).set(x);
    emitExp(f, x, nn, r, fma);
    f.get(mv).simd(S.f32x4Mul);
    f.get(tv).get(s).get(i).op(Op.i32Add).load().get(it).simd(S.f32x4Mul).simd(S.f32x4Sub).get(dv).simd(S.f32x4Sub);
    f.simd(S.f32x4Mul);
    emitZeroTail(f, masked, rem);
    f.set(x);
    emitAccF64(f, x, a0, a1);
  });
  emitSumF64(f, a0, a1);
  return f;
}

/**
 * klgrad(t, s, dst, n, invT, shT, mT, shS, mS): dst = exp(s invT - shS) mS - exp(t invT - shT) mT, i.e. the
 * caller's g / T (pS - pT) with mX = g / T exp(shX - lseX) folded in.
 */
function buildKlGrad(fma: boolean): Fn {
  const f = new Fn("klgrad", [I32, I32, I32, I32, F32, F32, F32, F32, F32], []);
  const [t, s, dst, n, invT, shT, mT, shS, mS] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const it = f.local(V128), hT = f.local(V128), vT = f.local(V128), hS = f.local(V128), vS = f.local(V128);
  const x = f.local(V128), y = f.local(V128), nn = f.local(V128), r = f.local(V128), ps = f.local(V128);
  f.get(invT).simd(S.f32x4Splat).set(it).get(shT).simd(S.f32x4Splat).set(hT).get(mT).simd(S.f32x4Splat).set(vT);
  f.get(shS).simd(S.f32x4Splat).set(hS).get(mS).simd(S.f32x4Splat).set(vS);
  rowLoop(f, n, (i) => {
    f.get(s).get(i).op(Op.i32Add).load().get(it).simd(S.f32x4Mul).get(hS).simd(S.f32x4Sub).set(x);
    f.get(t).get(i).op(Op.i32Add).load().get(it).simd(S.f32x4Mul).get(hT).simd(S.f32x4Sub).set(y);
    emitExp(f, x, nn, r, fma);
    f.get(vS).simd(S.f32x4Mul).set(ps);
    f.get(dst).get(i).op(Op.i32Add);
    f.get(ps);
    emitExp(f, y, nn, r, fma);
    f.get(vT).simd(S.f32x4Mul);
    f.simd(S.f32x4Sub).store();
  });
  return f;
}

/**
 * lmsums(t, s, e, n, invT, shT, shS, sh1): the sums of the fused LM-head row (rows-runtime.ts's lmHead job) in one
 * pass with each exp computed once, over a teacher row t and a student row s:
 *   eT = exp(t invT - shT), stored over t;  eS = exp(s invT - shS), stored at e;  e1 = exp(s - sh1), stored over s
 * and four f64x2 lane pairs at SCRATCH (the caller adds each pair's two lanes): Σ eT, Σ eT (t invT - s invT),
 * Σ eS, Σ e1. Each sum is accumulated exactly as sumexp accumulates it (so Σ eT, Σ eS and Σ e1 are sumexp's bits);
 * the second gives the row's KL as Σ pT (log pT - log pS) = Σ eT (t - s) invT / Σ eT - (lseT - lseS).
 */
function buildLmSums(fma: boolean): Fn {
  const f = new Fn("lmsums", [I32, I32, I32, I32, F32, F32, F32, F32], []);
  const [t, s, e, n, invT, shT, shS, sh1] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [it, hT, hS, h1] = Array.from({ length: 4 }, () => f.local(V128));
  const tv = f.local(V128), sv = f.local(V128), y = f.local(V128), x = f.local(V128), nn = f.local(V128), r = f.local(V128);
  const ex = f.local(V128);
  const acc = Array.from({ length: 8 }, () => f.local(V128));
  for (const [arg, loc] of [[invT, it], [shT, hT], [shS, hS], [sh1, h1]] as const) f.get(arg).simd(S.f32x4Splat).set(loc);
  rowLoop(f, n, (i, masked, rem) => {
    /** Stores ex at base + i and adds it (pushed by `push`, masked past n) to the sum pair k. */
    const sum = (k: number, push: () => void): void => {
      push();
      emitZeroTail(f, masked, rem);
      f.set(x);
      emitAccF64(f, x, acc[2 * k]!, acc[2 * k + 1]!);
    };
    const keep = (base: number): void => {
      f.set(ex).get(base).get(i).op(Op.i32Add).get(ex).store();
    };
    f.get(s).get(i).op(Op.i32Add).load().tee(y).get(it).simd(S.f32x4Mul).set(sv);
    f.get(t).get(i).op(Op.i32Add).load().get(it).simd(S.f32x4Mul).tee(tv).get(hT).simd(S.f32x4Sub).set(x);
    emitExp(f, x, nn, r, fma);
    keep(t);
    sum(0, () => f.get(ex));
    sum(1, () => f.get(ex).get(tv).get(sv).simd(S.f32x4Sub).simd(S.f32x4Mul));
    f.get(sv).get(hS).simd(S.f32x4Sub).set(x);
    emitExp(f, x, nn, r, fma);
    keep(e);
    sum(2, () => f.get(ex));
    f.get(y).get(h1).simd(S.f32x4Sub).set(x);
    emitExp(f, x, nn, r, fma);
    keep(s);
    sum(3, () => f.get(ex));
  });
  for (let k = 0; k < 4; k++) f.i32(SCRATCH + 16 * k).get(acc[2 * k]!).get(acc[2 * k + 1]!).simd(S.f64x2Add).store();
  return f;
}

/**
 * lmdz(t, e, s, n, kT, mS, gk, m1): over lmsums' stored exps (eT at t, eS at e, e1 at s) the fused LM-head gradient
 * s = e1 m1 + eS mS - (eT kT) gk: the CE gradient (m1 = its scale / Σ e1) plus the temperature-KL gradient
 * (gk = its scale / T, mS = gk / Σ eS, kT = 1 / Σ eT), whole vectors.
 */
function buildLmDz(): Fn {
  const f = new Fn("lmdz", [I32, I32, I32, I32, F32, F32, F32, F32], []);
  const [t, e, s, n, kT, mS, gk, m1] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [vT, vS, vg, v1] = Array.from({ length: 4 }, () => f.local(V128));
  for (const [arg, loc] of [[kT, vT], [mS, vS], [gk, vg], [m1, v1]] as const) f.get(arg).simd(S.f32x4Splat).set(loc);
  rowLoop(f, n, (i) => {
    const at = (base: number): Fn => f.get(base).get(i).op(Op.i32Add);
    at(s);
    at(s).load().get(v1).simd(S.f32x4Mul);
    at(e).load().get(vS).simd(S.f32x4Mul).simd(S.f32x4Add);
    at(t).load().get(vT).simd(S.f32x4Mul).get(vg).simd(S.f32x4Mul).simd(S.f32x4Sub).store();
  });
  return f;
}

/** Pushes sigmoid(g) = 1 / (1 + exp(-g)) for the v128 local g (kept), using scratch locals x, n, r. */
function emitSigmoid(f: Fn, g: number, x: number, n: number, r: number, fma: boolean): void {
  f.f32x4(1);
  f.get(g).simd(S.f32x4Neg).set(x);
  f.f32x4(1);
  emitExp(f, x, n, r, fma);
  f.simd(S.f32x4Add).simd(S.f32x4Div);
}

/** swiglu(g, u, out, n): out = g sigmoid(g) u. */
function buildSwiglu(fma: boolean): Fn {
  const f = new Fn("swiglu", [I32, I32, I32, I32], []);
  const [g, u, out, n] = [0, 1, 2, 3];
  const gv = f.local(V128), x = f.local(V128), nn = f.local(V128), r = f.local(V128);
  rowLoop(f, n, (i) => {
    f.get(g).get(i).op(Op.i32Add).load().set(gv);
    f.get(out).get(i).op(Op.i32Add);
    emitSigmoid(f, gv, x, nn, r, fma);
    f.get(gv).simd(S.f32x4Mul);
    f.get(u).get(i).op(Op.i32Add).load().simd(S.f32x4Mul).store();
  });
  return f;
}

/**
 * swiglub(g, u, dy, n): with s = sigmoid(g): du = dy g s -> u's slot, dg = dy u s (1 + g (1 - s)) -> g's slot, and the
 * product (s g) u -> dy's slot (the forward's bits: the same sigmoid and multiplication order as `swiglu`).
 */
function buildSwigluBackward(fma: boolean): Fn {
  const f = new Fn("swiglub", [I32, I32, I32, I32], []);
  const [g, u, dy, n] = [0, 1, 2, 3];
  const gv = f.local(V128), uv = f.local(V128), dv = f.local(V128), s = f.local(V128);
  const x = f.local(V128), nn = f.local(V128), r = f.local(V128), ds = f.local(V128);
  rowLoop(f, n, (i) => {
    f.get(g).get(i).op(Op.i32Add).load().set(gv);
    f.get(u).get(i).op(Op.i32Add).load().set(uv);
    f.get(dy).get(i).op(Op.i32Add).load().set(dv);
    emitSigmoid(f, gv, x, nn, r, fma);
    f.set(s);
    // the product (s g) u, over dy
    f.get(dy).get(i).op(Op.i32Add).get(s).get(gv).simd(S.f32x4Mul).get(uv).simd(S.f32x4Mul).store();
    // ds = dy * s
    f.get(dv).get(s).simd(S.f32x4Mul).set(ds);
    // du = ds * g
    f.get(u).get(i).op(Op.i32Add).get(ds).get(gv).simd(S.f32x4Mul).store();
    // dg = ds * u * (1 + g * (1 - s))
    f.get(g).get(i).op(Op.i32Add);
    f.get(ds).get(uv).simd(S.f32x4Mul);
    f.f32x4(1).get(gv).f32x4(1).get(s).simd(S.f32x4Sub).simd(S.f32x4Mul).simd(S.f32x4Add);
    f.simd(S.f32x4Mul).store();
  });
  return f;
}

/** sqdiff(a, b, n) -> sum of (a - b)^2 (f64 accumulation). */
function buildSqDiff(): Fn {
  const f = new Fn("sqdiff", [I32, I32, I32], [F64]);
  const [a, b, n] = [0, 1, 2];
  const d = f.local(V128), a0 = f.local(V128), a1 = f.local(V128);
  rowLoop(f, n, (i, masked, rem) => {
    f.get(a).get(i).op(Op.i32Add).load().get(b).get(i).op(Op.i32Add).load().simd(S.f32x4Sub).tee(d).get(d).simd(S.f32x4Mul);
    emitZeroTail(f, masked, rem);
    f.set(d);
    emitAccF64(f, d, a0, a1);
  });
  emitSumF64(f, a0, a1);
  return f;
}

/** diffscale(a, b, n, c): a = c (a - b), b = -a (in place). */
function buildDiffScale(): Fn {
  const f = new Fn("diffscale", [I32, I32, I32, F32], []);
  const [a, b, n, c] = [0, 1, 2, 3];
  const cv = f.local(V128), d = f.local(V128);
  f.get(c).simd(S.f32x4Splat).set(cv);
  rowLoop(f, n, (i) => {
    f.get(a).get(i).op(Op.i32Add).load().get(b).get(i).op(Op.i32Add).load().simd(S.f32x4Sub).get(cv).simd(S.f32x4Mul).set(d);
    f.get(a).get(i).op(Op.i32Add).get(d).store();
    f.get(b).get(i).op(Op.i32Add).get(d).simd(S.f32x4Neg).store();
  });
  return f;
}

/**
 * adamw(p, g, m, v, n, decay, w1, beta1, beta2, w2, stepSize, bc2Sqrt, eps, lowWeight): the adamw.ts update in
 * float32 arithmetic (torch's op order: decay, lerp, v, sqrt(v)/bc2 + eps, addcdiv).
 */
function buildAdamW(): Fn {
  const f = new Fn("adamw", [I32, I32, I32, I32, I32, F32, F32, F32, F32, F32, F32, F32, F32, I32], []);
  const [p, g, m, v, n, decay, w1, beta1, beta2, w2, stepSize, bc2, eps, low] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const vs = [decay, w1, beta1, beta2, w2, stepSize, bc2, eps].map((s) => {
    const l = f.local(V128);
    f.get(s).simd(S.f32x4Splat).set(l);
    return l;
  });
  const [D, W1, B1, B2, W2, SS, BC, EP] = vs as [number, number, number, number, number, number, number, number];
  const gv = f.local(V128), mv = f.local(V128), vv = f.local(V128), pv = f.local(V128);
  const loop = (lowWeight: boolean): void =>
    rowLoop(f, n, (i) => {
      f.get(g).get(i).op(Op.i32Add).load().set(gv);
      f.get(m).get(i).op(Op.i32Add).load().set(mv);
      f.get(p).get(i).op(Op.i32Add).load().get(D).simd(S.f32x4Mul).set(pv);
      // m = lowWeight ? m + w1 (g - m) : g - (g - m) beta1
      if (lowWeight) f.get(mv).get(W1).get(gv).get(mv).simd(S.f32x4Sub).simd(S.f32x4Mul).simd(S.f32x4Add);
      else f.get(gv).get(gv).get(mv).simd(S.f32x4Sub).get(B1).simd(S.f32x4Mul).simd(S.f32x4Sub);
      f.set(mv);
      f.get(m).get(i).op(Op.i32Add).get(mv).store();
      // v = v beta2 + (w2 g) g
      f.get(v).get(i).op(Op.i32Add).load().get(B2).simd(S.f32x4Mul).get(W2).get(gv).simd(S.f32x4Mul).get(gv).simd(S.f32x4Mul);
      f.simd(S.f32x4Add).set(vv);
      f.get(v).get(i).op(Op.i32Add).get(vv).store();
      // p = p - (stepSize m) / (sqrt(v) / bc2 + eps)
      f.get(p).get(i).op(Op.i32Add);
      f.get(pv).get(SS).get(mv).simd(S.f32x4Mul);
      f.get(vv).simd(S.f32x4Sqrt).get(BC).simd(S.f32x4Div).get(EP).simd(S.f32x4Add);
      f.simd(S.f32x4Div).simd(S.f32x4Sub).store();
    });
  f.get(low).op(Op.if, 0x40);
  loop(true);
  f.op(Op.else);
  loop(false);
  f.op(Op.end);
  return f;
}

/** acc0 += promote(lo lanes of v)^2, acc1 += promote(hi lanes of v)^2 (f64 products of f32 values are exact). */
function emitAccSqF64(f: Fn, v: number, t: number, acc0: number, acc1: number): void {
  f.get(v).simd(S.f64x2PromoteLow).tee(t).get(t).simd(S.f64x2Mul).get(acc0).simd(S.f64x2Add).set(acc0);
  f.get(v).get(v).shuffle(HIGH);
  f.simd(S.f64x2PromoteLow).tee(t).get(t).simd(S.f64x2Mul).get(acc1).simd(S.f64x2Add).set(acc1);
}

/** sumsq(p, n) -> sum of p[i]^2 (f64 accumulation): RMSNorm's mean square. */
function buildSumSq(): Fn {
  const f = new Fn("sumsq", [I32, I32], [F64]);
  const [p, n] = [0, 1];
  const v = f.local(V128), t = f.local(V128), a0 = f.local(V128), a1 = f.local(V128);
  rowLoop(f, n, (i, masked, rem) => {
    f.get(p).get(i).op(Op.i32Add).load();
    emitZeroTail(f, masked, rem);
    f.set(v);
    emitAccSqF64(f, v, t, a0, a1);
  });
  emitSumF64(f, a0, a1);
  return f;
}

/** rmsout(x, w, out, n, rs): out = (x rs) w, RMSNorm's output in float32 arithmetic (whole vectors). */
function buildRmsOut(): Fn {
  const f = new Fn("rmsout", [I32, I32, I32, I32, F32], []);
  const [x, w, out, n, rs] = [0, 1, 2, 3, 4];
  const rv = f.local(V128);
  f.get(rs).simd(S.f32x4Splat).set(rv);
  rowLoop(f, n, (i) => {
    f.get(out).get(i).op(Op.i32Add);
    f.get(x).get(i).op(Op.i32Add).load().get(rv).simd(S.f32x4Mul).get(w).get(i).op(Op.i32Add).load().simd(S.f32x4Mul);
    f.store();
  });
  return f;
}

/** dot3(w, dy, x, n) -> sum of (w dy) x (f32 product w dy, the rest in f64): RMSNorm backward's row sum. */
function buildDot3(): Fn {
  const f = new Fn("dot3", [I32, I32, I32, I32], [F64]);
  const [w, dy, x, n] = [0, 1, 2, 3];
  const g = f.local(V128), xv = f.local(V128), a0 = f.local(V128), a1 = f.local(V128);
  rowLoop(f, n, (i, masked, rem) => {
    f.get(w).get(i).op(Op.i32Add).load().get(dy).get(i).op(Op.i32Add).load().simd(S.f32x4Mul);
    emitZeroTail(f, masked, rem);
    f.set(g);
    f.get(x).get(i).op(Op.i32Add).load();
    emitZeroTail(f, masked, rem);
    f.set(xv);
    emitMulAddF64(f, a0, a1, g, xv);
  });
  emitSumF64(f, a0, a1);
  return f;
}

/**
 * dot(a, b, n) -> sum of a b: each product of two float32 values exact in float64, summed in four float64 lanes
 * (lane j: the elements i = j mod 4 in index order), then (lane 0 + lane 2) + (lane 1 + lane 3). quadFormMse's
 * Σ F ⊙ Δ.
 */
function buildDot(): Fn {
  const f = new Fn("dot", [I32, I32, I32], [F64]);
  const [a, b, n] = [0, 1, 2];
  const av = f.local(V128), bv = f.local(V128), a0 = f.local(V128), a1 = f.local(V128);
  rowLoop(f, n, (i, masked, rem) => {
    // both operands' lanes past n zeroed (they hold whatever the memory held: a NaN there times 0 is still NaN)
    f.get(a).get(i).op(Op.i32Add).load();
    emitZeroTail(f, masked, rem);
    f.set(av);
    f.get(b).get(i).op(Op.i32Add).load();
    emitZeroTail(f, masked, rem);
    f.set(bv);
    emitMulAddF64(f, a0, a1, av, bv);
  });
  emitSumF64(f, a0, a1);
  return f;
}

/**
 * rmsbwd(w, dy, x, dx, acc, n, rs, c): dx = (rs w) dy - c x (float32 arithmetic, whole vectors); when acc != 0,
 * the float64 array at acc (n doubles, padded to vectors) += dy (x rs): RMSNorm's weight gradient.
 */
function buildRmsBwd(): Fn {
  const f = new Fn("rmsbwd", [I32, I32, I32, I32, I32, I32, F32, F32], []);
  const [w, dy, x, dx, acc, n, rs, c] = [0, 1, 2, 3, 4, 5, 6, 7];
  const rv = f.local(V128), cv = f.local(V128), dyv = f.local(V128), xv = f.local(V128), t = f.local(V128), pa = f.local(I32);
  f.get(rs).simd(S.f32x4Splat).set(rv).get(c).simd(S.f32x4Splat).set(cv);
  rowLoop(f, n, (i) => {
    f.get(dy).get(i).op(Op.i32Add).load().set(dyv);
    f.get(x).get(i).op(Op.i32Add).load().set(xv);
    f.get(dx).get(i).op(Op.i32Add);
    f.get(rv).get(w).get(i).op(Op.i32Add).load().simd(S.f32x4Mul).get(dyv).simd(S.f32x4Mul);
    f.get(cv).get(xv).simd(S.f32x4Mul).simd(S.f32x4Sub).store();
    f.get(acc).op(Op.if, 0x40);
    f.get(dyv).get(xv).get(rv).simd(S.f32x4Mul).simd(S.f32x4Mul).set(t);
    f.get(acc).get(i).i32(2).op(Op.i32Mul).op(Op.i32Add).set(pa);
    f.get(pa).get(pa).load(0).get(t).simd(S.f64x2PromoteLow).simd(S.f64x2Add).store(0);
    f.get(pa).get(pa).load(16).get(t).get(t).shuffle(HIGH);
    f.simd(S.f64x2PromoteLow).simd(S.f64x2Add).store(16);
    f.op(Op.end);
  });
  return f;
}

/**
 * rope(x, cs, sn, out, rows, T, t0, dh, sign): for each of `rows` rows of dh floats (row r at position
 * (t0 + r) mod T of the [T, dh] cos/sin tables), out = x cos + rotate_half(x) sin sign, rotate_half(x) =
 * concat(-x2, x1). dh / 2 must be a multiple of 4. out may alias x.
 */
function buildRope(): Fn {
  const f = new Fn("rope", [I32, I32, I32, I32, I32, I32, I32, I32, F32], []);
  const [x, cs, sn, out, rows, T, t0, dh, sign] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const r = f.local(I32), t = f.local(I32), i = f.local(I32), half = f.local(I32), px = f.local(I32), po = f.local(I32);
  const pc = f.local(I32), ps = f.local(I32), sg = f.local(V128), x1 = f.local(V128), x2 = f.local(V128);
  f.get(sign).simd(S.f32x4Splat).set(sg);
  f.get(dh).i32(2).op(Op.i32Mul).set(half); // half row in bytes
  f.get(t0).set(t);
  f.i32(0).set(r);
  f.forLoop(r, rows, 1, () => {
    f.get(x).get(r).get(dh).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add).set(px);
    f.get(out).get(r).get(dh).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add).set(po);
    f.get(cs).get(t).get(dh).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add).set(pc);
    f.get(sn).get(t).get(dh).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add).set(ps);
    f.i32(0).set(i);
    f.forLoop(i, half, 16, () => {
      f.get(px).get(i).op(Op.i32Add).load().set(x1);
      f.get(px).get(i).op(Op.i32Add).get(half).op(Op.i32Add).load().set(x2);
      // out1 = x1 c1 - x2 (sign s1)
      f.get(po).get(i).op(Op.i32Add);
      f.get(x1).get(pc).get(i).op(Op.i32Add).load().simd(S.f32x4Mul);
      f.get(x2).get(sg).get(ps).get(i).op(Op.i32Add).load().simd(S.f32x4Mul).simd(S.f32x4Mul).simd(S.f32x4Sub).store();
      // out2 = x2 c2 + x1 (sign s2)
      f.get(po).get(i).op(Op.i32Add).get(half).op(Op.i32Add);
      f.get(x2).get(pc).get(i).op(Op.i32Add).get(half).op(Op.i32Add).load().simd(S.f32x4Mul);
      f.get(x1).get(sg).get(ps).get(i).op(Op.i32Add).get(half).op(Op.i32Add).load().simd(S.f32x4Mul).simd(S.f32x4Mul);
      f.simd(S.f32x4Add).store();
    });
    // t = (t + 1) mod T
    f.get(t).i32(1).op(Op.i32Add).set(t);
    f.get(t).get(T).op(Op.i32GeS).op(Op.if, 0x40).i32(0).set(t).op(Op.end);
  });
  return f;
}

/** The elementwise binary ops with a wasm kernel (float32 results equal the TypeScript loop's exactly). */
export const BINARY_WASM_OPS = { add: S.f32x4Add, sub: S.f32x4Sub, mul: S.f32x4Mul, div: S.f32x4Div } as const;
export type BinaryWasmOp = keyof typeof BINARY_WASM_OPS;

/**
 * b<op>(a, b, out, n, mode): out = a op b over n floats (whole vectors); mode 0: both are arrays, 1: b is one
 * scalar (splat), 2: a is one scalar.
 */
function buildBinary(name: BinaryWasmOp): Fn {
  const f = new Fn(`b${name}`, [I32, I32, I32, I32, I32], []);
  const [a, b, out, n, mode] = [0, 1, 2, 3, 4];
  const sv = f.local(V128);
  const loop = (m: 0 | 1 | 2): void =>
    rowLoop(f, n, (i) => {
      f.get(out).get(i).op(Op.i32Add);
      if (m === 2) f.get(sv);
      else f.get(a).get(i).op(Op.i32Add).load();
      if (m === 1) f.get(sv);
      else f.get(b).get(i).op(Op.i32Add).load();
      f.simd(BINARY_WASM_OPS[name]).store();
    });
  f.get(mode).op(Op.if, 0x40);
  f.get(mode).i32(1).op(Op.i32Eq).op(Op.if, 0x40);
  f.get(b).simd(S.load32Splat, 2, 0).set(sv);
  loop(1);
  f.op(Op.else);
  f.get(a).simd(S.load32Splat, 2, 0).set(sv);
  loop(2);
  f.op(Op.end);
  f.op(Op.else);
  loop(0);
  f.op(Op.end);
  return f;
}

/**
 * scopy(src, dst, n0, n1, n2, n3, s0, s1, s2, s3): dst, contiguous [n0, n1, n2, n3], gets
 * src[i0 s0 + i1 s1 + i2 s2 + i3 s3] (strides in floats, non-negative). With s3 = 1 the innermost runs are copied
 * four floats at a time; otherwise element by element. The permute / strided-copy kernel of movement.ts.
 */
function buildStridedCopy(): Fn {
  const f = new Fn("scopy", [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32], []);
  const [src, dst, n0, n1, n2, n3, s0, s1, s2, s3] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const i0 = f.local(I32), i1 = f.local(I32), i2 = f.local(I32), i3 = f.local(I32);
  const p = f.local(I32), q = f.local(I32), out = f.local(I32), vend = f.local(I32), step = f.local(I32);
  f.get(dst).set(out);
  f.get(n3).i32(-4).op(Op.i32And).set(vend);
  f.get(s3).i32(4).op(Op.i32Mul).set(step);
  f.i32(0).set(i0);
  f.forLoop(i0, n0, 1, () => {
    f.i32(0).set(i1);
    f.forLoop(i1, n1, 1, () => {
      f.i32(0).set(i2);
      f.forLoop(i2, n2, 1, () => {
        // p = src + 4 (i0 s0 + i1 s1 + i2 s2)
        f.get(i0).get(s0).op(Op.i32Mul).get(i1).get(s1).op(Op.i32Mul).op(Op.i32Add);
        f.get(i2).get(s2).op(Op.i32Mul).op(Op.i32Add).i32(4).op(Op.i32Mul).get(src).op(Op.i32Add).set(p);
        f.i32(0).set(i3);
        f.get(s3).i32(1).op(Op.i32Eq).op(Op.if, 0x40);
        f.forLoop(i3, vend, 4, () => {
          f.get(i3).i32(4).op(Op.i32Mul).set(q);
          f.get(out).get(q).op(Op.i32Add).get(p).get(q).op(Op.i32Add).load().store();
        });
        f.op(Op.end);
        f.get(p).get(i3).get(step).op(Op.i32Mul).op(Op.i32Add).set(p);
        f.forLoop(i3, n3, 1, () => {
          f.get(out).get(i3).i32(4).op(Op.i32Mul).op(Op.i32Add);
          f.get(p).op(Op.f32Load, 2, 0).op(Op.f32Store, 2, 0);
          f.get(p).get(step).op(Op.i32Add).set(p);
        });
        f.get(out).get(n3).i32(4).op(Op.i32Mul).op(Op.i32Add).set(out);
      });
    });
  });
  return f;
}

/** Builds the whole module's bytes (exp with fused multiply-adds when `fma`, see emitExp). */
export function buildVectorWasm(fma = false): Uint8Array {
  return buildModule([
    buildMaxMin(), buildSumExp(fma), buildExpAff(fma), buildKlRow(fma), buildKlGrad(fma), buildLmSums(fma), buildLmDz(), buildSwiglu(fma), buildSwigluBackward(fma),
    buildSqDiff(), buildDiffScale(), buildAdamW(), buildSumSq(), buildRmsOut(), buildDot3(), buildDot(), buildRmsBwd(), buildRope(),
    buildStridedCopy(),
    ...(Object.keys(BINARY_WASM_OPS) as BinaryWasmOp[]).map(buildBinary),
  ]);
}

/** The instantiated kernels plus a growable float32 view of their memory. */
export interface VectorKernels {
  /** Float32 view of the memory (re-fetch after `ensure`). */
  heap: Float32Array;
  /** Grows memory so that byte offsets below `bytes` are valid; refreshes `heap`. */
  ensure(bytes: number): void;
  maxmin(p: number, n: number): number;
  sumexp(p: number, n: number, scale: number, shift: number): number;
  expaff(src: number, dst: number, n: number, scale: number, shift: number, mul: number): void;
  klrow(t: number, s: number, n: number, invT: number, shT: number, mT: number, d: number): number;
  klgrad(t: number, s: number, dst: number, n: number, invT: number, shT: number, mT: number, shS: number, mS: number): void;
  lmsums(t: number, s: number, e: number, n: number, invT: number, shT: number, shS: number, sh1: number): void;
  lmdz(t: number, e: number, s: number, n: number, kT: number, mS: number, gk: number, m1: number): void;
  swiglu(g: number, u: number, out: number, n: number): void;
  swiglub(g: number, u: number, dy: number, n: number): void;
  sqdiff(a: number, b: number, n: number): number;
  diffscale(a: number, b: number, n: number, c: number): void;
  adamw(
    p: number, g: number, m: number, v: number, n: number, decay: number, w1: number, beta1: number, beta2: number,
    w2: number, stepSize: number, bc2Sqrt: number, eps: number, lowWeight: number,
  ): void;
  sumsq(p: number, n: number): number;
  rmsout(x: number, w: number, out: number, n: number, rs: number): void;
  dot3(w: number, dy: number, x: number, n: number): number;
  dot(a: number, b: number, n: number): number;
  rmsbwd(w: number, dy: number, x: number, dx: number, acc: number, n: number, rs: number, c: number): void;
  rope(x: number, cs: number, sn: number, out: number, rows: number, T: number, t0: number, dh: number, sign: number): void;
  scopy(src: number, dst: number, n0: number, n1: number, n2: number, n3: number, s0: number, s1: number, s2: number, s3: number): void;
  badd(a: number, b: number, out: number, n: number, mode: number): void;
  bsub(a: number, b: number, out: number, n: number, mode: number): void;
  bmul(a: number, b: number, out: number, n: number, mode: number): void;
  bdiv(a: number, b: number, out: number, n: number, mode: number): void;
}

let instance: VectorKernels | null | undefined;
let forcedOff = false;

/** Turns the wasm vector kernels off (true) or back on, e.g. to test the TypeScript reference paths. */
export function setVectorWasmDisabled(off: boolean): void {
  forcedOff = off;
}

let bytes: Uint8Array | null | undefined;

/** The module's bytes (built once), or null without WebAssembly SIMD; the worker pool's row runtime loads them too. */
export function vectorWasmBytes(): Uint8Array | null {
  if (bytes !== undefined) return bytes;
  bytes = null;
  if (wasmApi() === undefined || !hasSimd()) return bytes;
  try {
    const b = buildVectorWasm(hasRelaxedSimd());
    if (wasmApi()?.validate(b) === true) bytes = b;
  } catch {
    bytes = null;
  }
  return bytes;
}

let shared: WasmInstance<Omit<VectorKernels, "heap" | "ensure">> | null | undefined;

/**
 * The calling thread's one instance of the module (its masks written), shared by the vector kernels and the row
 * runtime (rows-dispatch.ts); null without WebAssembly SIMD.
 */
export function vectorInstance(): WasmInstance<Omit<VectorKernels, "heap" | "ensure">> | null {
  if (shared !== undefined) return shared;
  shared = instantiate<Omit<VectorKernels, "heap" | "ensure">>(vectorWasmBytes(), 16);
  if (shared !== null) {
    const masks = new Int32Array(shared.memory.buffer, MASKS, 16);
    for (let r = 0; r < 4; r++) for (let l = 0; l < 4; l++) masks[r * 4 + l] = l < r ? -1 : 0;
  }
  return shared;
}

/** The vector kernels, or null when WebAssembly SIMD is unavailable, disabled, or failed to build. */
export function vectorKernels(): VectorKernels | null {
  if (forcedOff) return null;
  if (instance !== undefined) return instance;
  const inst = vectorInstance();
  instance = inst === null ? null : {
    ...inst.exports,
    get heap(): Float32Array {
      return inst.heap;
    },
    ensure: (bytes: number): void => inst.ensure(bytes),
  };
  return instance;
}
