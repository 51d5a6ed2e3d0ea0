/**
 * WebAssembly SIMD kernels for float32 causal attention (driven by attention-runtime.ts), generated at run time with
 * wasm-builder.ts. The module imports one memory (`env.mem`); every pointer and stride is a byte offset into it.
 *
 *   mm(a, sai, sak, b, ldb, c, ldc, M, N, K, alpha, acc, mode, diag)
 *       C[i, n] = alpha * sum_k A(i, k) * B[k, n]  (+ C[i, n] when acc != 0),  i < M (a multiple of 4),
 *       n < N (a multiple of 8), with A(i, k) at a + i*sai + k*sak (any strides: A or A^T) and B, C row-major.
 *       One 4 x 8 register tile at a time, A values splatted, B rows loaded as two f32x4; the k sum is sequential
 *       per element (so the result never depends on threads). Relaxed fused multiply-add when available.
 *       `mode` skips work the causal mask makes zero, per block of 4 rows starting at i: 1 = compute only columns
 *       below up8(diag + i + 4) (the rest of C is left as is: score tiles, masked later), 2 = sum only k < diag +
 *       i + 4 (A is zero beyond), 3 = sum only k >= i - diag (A is zero before); 0 = everything.
 *   vmax(p, vis) -> max of the first vis (>= 1) floats.
 *   vexp(p, n, shift, vis) -> p[j] = j < vis ? exp(p[j] - shift) : 0 for j < n (a multiple of 4); returns the sum
 *       (float64 accumulation).
 *   vscale(p, n, c): p[j] *= c for j < n (a multiple of 4).
 *   bwdrow(p, dp, n, vis, lse, d): p[j] = exp(p[j] - lse), dp[j] = p[j] (dp[j] - d) for j < vis, both 0 for
 *       vis <= j < n (a multiple of 4): the attention backward's probabilities and score gradients of one row.
 *
 * exp is wasm-vector.ts's f32x4 polynomial; masked lanes are cleared with a bit mask (never multiplied), so
 * garbage or non-finite values past `vis` never leak into results.
 */
import { buildModule, F32, F64, Fn, I32, Op, S, V128 } from "./wasm-builder.js";
import { hasRelaxedSimd, hasSimd, wasmApi } from "./wasm-features.js";
import { emitAccF64, emitExp, emitSumF64 } from "./wasm-vector.js";

const I32X4_LT_S = 0x39;

/** Pushes a v128 constant of the four i32 lanes. */
function i32x4Lanes(f: Fn, lanes: [number, number, number, number]): void {
  f.v128([...new Uint8Array(new Int32Array(lanes).buffer)]);
}

/** Pushes min(local x, local y) (signed i32). */
function minI32(f: Fn, x: number, y: number): void {
  f.get(x).get(y).get(x).get(y).op(Op.i32LtS).op(Op.select);
}

function buildMm(fma: boolean): Fn {
  const f = new Fn("mm", [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, F32, I32, I32, I32], []);
  const [a, sai, sak, b, ldb, c, ldc, M, N, K, alpha, acc, mode, diag] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const i = f.local(I32), n = f.local(I32), kk = f.local(I32), pk = f.local(I32), pb = f.local(I32), pc = f.local(I32);
  const nEnd = f.local(I32), k0 = f.local(I32), kEnd = f.local(I32), t = f.local(I32);
  const ar = [f.local(I32), f.local(I32), f.local(I32), f.local(I32)];
  const accs = Array.from({ length: 8 }, () => f.local(V128));
  const bv = [f.local(V128), f.local(V128)];
  const x = f.local(V128), al = f.local(V128);
  f.get(alpha).simd(S.f32x4Splat).set(al);
  f.i32(0).set(i);
  f.forLoop(i, M, 4, () => {
    f.get(a).get(i).get(sai).op(Op.i32Mul).op(Op.i32Add).set(ar[0]!);
    for (let r = 1; r < 4; r++) f.get(ar[r - 1]!).get(sai).op(Op.i32Add).set(ar[r]!);
    // causal limits of this row block: mode 1 N <= up8(diag + i + 4); mode 2 K <= diag + i + 4; mode 3 k >= i - diag
    f.get(N).set(nEnd).get(K).set(kEnd).i32(0).set(k0);
    f.get(mode).i32(1).op(Op.i32Eq).op(Op.if, 0x40);
    f.get(diag).get(i).op(Op.i32Add).i32(11).op(Op.i32Add).i32(-8).op(Op.i32And).set(t);
    minI32(f, t, N);
    f.set(nEnd).op(Op.end);
    f.get(mode).i32(2).op(Op.i32Eq).op(Op.if, 0x40);
    f.get(diag).get(i).op(Op.i32Add).i32(4).op(Op.i32Add).set(t);
    minI32(f, t, K);
    f.set(kEnd).op(Op.end);
    f.get(mode).i32(3).op(Op.i32Eq).op(Op.if, 0x40);
    f.get(i).get(diag).op(Op.i32Sub).set(t);
    f.get(t).i32(0).get(t).i32(0).op(Op.i32GtS).op(Op.select).set(k0);
    f.op(Op.end);
    f.i32(0).set(n);
    f.forLoop(n, nEnd, 8, () => {
      for (const v of accs) f.f32x4(0).set(v);
      f.get(k0).get(sak).op(Op.i32Mul).set(pk);
      f.get(b).get(n).i32(4).op(Op.i32Mul).op(Op.i32Add).get(k0).get(ldb).op(Op.i32Mul).op(Op.i32Add).set(pb);
      // do { ... } while (--kk) over kk = kEnd - k0 steps, skipped when there are none (one branch per step). With
      // sai = 4 (A^T stored) the block's four A values of a step are adjacent: splatted from one pointer (ar[0] + pk)
      // at immediate offsets, as the gemm micro-kernel does, instead of four address sums.
      const kLoop = (adjacent: boolean): void => {
        f.get(kEnd).get(k0).op(Op.i32Sub).set(kk);
        if (adjacent) f.get(ar[0]!).get(pk).op(Op.i32Add).set(pk);
        f.op(Op.block, 0x40);
        f.get(kk).i32(1).op(Op.i32LtS, Op.brIf, 0);
        f.op(Op.loop, 0x40);
        f.get(pb).load(0).set(bv[0]!);
        f.get(pb).load(16).set(bv[1]!);
        for (let r = 0; r < 4; r++) {
          if (adjacent) f.get(pk).simd(S.load32Splat, 2, 4 * r);
          else f.get(ar[r]!).get(pk).op(Op.i32Add).simd(S.load32Splat, 2, 0);
          f.set(x);
          for (let v = 0; v < 2; v++) {
            const t = accs[r * 2 + v]!;
            if (fma) f.get(x).get(bv[v]!).get(t).simd(S.f32x4RelaxedMadd);
            else f.get(x).get(bv[v]!).simd(S.f32x4Mul).get(t).simd(S.f32x4Add);
            f.set(t);
          }
        }
        f.get(pk).get(sak).op(Op.i32Add).set(pk);
        f.get(pb).get(ldb).op(Op.i32Add).set(pb);
        f.get(kk).i32(1).op(Op.i32Sub).tee(kk);
        f.op(Op.brIf, 0, Op.end, Op.end);
      };
      f.get(sai).i32(4).op(Op.i32Eq).op(Op.if, 0x40);
      kLoop(true);
      f.op(Op.else);
      kLoop(false);
      f.op(Op.end);
      // C rows: pc = c + (i + r) * ldc + n * 4
      f.get(c).get(i).get(ldc).op(Op.i32Mul).op(Op.i32Add).get(n).i32(4).op(Op.i32Mul).op(Op.i32Add).set(pc);
      const stores = (accumulate: boolean): void => {
        for (let r = 0; r < 4; r++) {
          for (let v = 0; v < 2; v++) {
            f.get(pc).get(accs[r * 2 + v]!).get(al).simd(S.f32x4Mul);
            if (accumulate) f.get(pc).load(16 * v).simd(S.f32x4Add);
            f.store(16 * v);
          }
          if (r < 3) f.get(pc).get(ldc).op(Op.i32Add).set(pc);
        }
      };
      f.get(acc).op(Op.if, 0x40);
      stores(true);
      f.op(Op.else);
      stores(false);
      f.op(Op.end);
    });
  });
  return f;
}

/**
 * vmax with four independent accumulators over 16-float blocks: V8's NaN-propagating f32x4.max is a multi-instruction
 * dependent sequence, so one accumulator chain ran at its latency. max does not depend on the order (NaN propagates
 * and max(-0, +0) = +0 either way), so the value is that of one sequential chain.
 */
function buildVmax(): Fn {
  const f = new Fn("vmax", [I32, I32], [F32]);
  const [p, vis] = [0, 1];
  const U = 4;
  const j = f.local(I32), end = f.local(I32), m = f.local(F32);
  const mx = Array.from({ length: U }, () => f.local(V128));
  for (const v of mx) f.f32x4(-Infinity).set(v);
  f.i32(0).set(j);
  f.get(vis).i32(-16).op(Op.i32And).i32(4).op(Op.i32Mul).set(end);
  f.forLoop(j, end, 64, () => {
    for (let u = 0; u < U; u++) f.get(p).get(j).op(Op.i32Add).load(16 * u).get(mx[u]!).simd(S.f32x4Max).set(mx[u]!);
  });
  f.get(vis).i32(-4).op(Op.i32And).i32(4).op(Op.i32Mul).set(end);
  f.forLoop(j, end, 16, () => {
    f.get(p).get(j).op(Op.i32Add).load().get(mx[0]!).simd(S.f32x4Max).set(mx[0]!);
  });
  for (let u = 1; u < U; u++) f.get(mx[0]!).get(mx[u]!).simd(S.f32x4Max).set(mx[0]!);
  const v0 = mx[0]!;
  f.get(v0).simd(S.f32x4ExtractLane, 0).get(v0).simd(S.f32x4ExtractLane, 1).op(Op.f32Max);
  f.get(v0).simd(S.f32x4ExtractLane, 2).get(v0).simd(S.f32x4ExtractLane, 3).op(Op.f32Max).op(Op.f32Max).set(m);
  f.get(vis).i32(4).op(Op.i32Mul).set(end);
  f.forLoop(j, end, 4, () => {
    f.get(m).get(p).get(j).op(Op.i32Add).op(Op.f32Load, 2, 0).op(Op.f32Max).set(m);
  });
  f.get(m);
  return f;
}

/**
 * Emits a loop over j (byte offset, step 16) below 4 min(n, up4(vis)) keeping `idx` = the lane indices and `mask` =
 * idx < vis, then stores zero vectors at each of `zeroed` (byte pointers) + j for the rest of j below n * 4: lanes
 * from vis on hold zero either way, but vectors wholly past vis cost a store instead of an exp.
 */
function maskedLoop(f: Fn, n: number, vis: number, zeroed: readonly number[], body: (j: number, mask: number) => void): void {
  const j = f.local(I32), end = f.local(I32), idx = f.local(V128), vv = f.local(V128), mask = f.local(V128);
  f.get(vis).simd(S.i32x4Splat).set(vv);
  i32x4Lanes(f, [0, 1, 2, 3]);
  f.set(idx);
  f.get(vis).i32(3).op(Op.i32Add).i32(-4).op(Op.i32And).set(end);
  minI32(f, end, n);
  f.i32(4).op(Op.i32Mul).set(end);
  f.i32(0).set(j);
  f.forLoop(j, end, 16, () => {
    f.get(idx).get(vv).simd(I32X4_LT_S).set(mask);
    body(j, mask);
    f.get(idx).i32x4(4).simd(S.i32x4Add).set(idx);
  });
  // j is end (or 0 when end <= 0); zero the vectors up to n
  f.get(j).i32(0).get(j).i32(0).op(Op.i32GtS).op(Op.select).set(j);
  f.get(n).i32(4).op(Op.i32Mul).set(end);
  f.forLoop(j, end, 16, () => {
    for (const z of zeroed) f.get(z).get(j).op(Op.i32Add).f32x4(0).store();
  });
}

function buildVexp(fma: boolean): Fn {
  const f = new Fn("vexp", [I32, I32, F32, I32], [F64]);
  const [p, n, shift, vis] = [0, 1, 2, 3];
  const sh = f.local(V128), x = f.local(V128), nn = f.local(V128), r = f.local(V128);
  const a0 = f.local(V128), a1 = f.local(V128);
  f.get(shift).simd(S.f32x4Splat).set(sh);
  maskedLoop(f, n, vis, [p], (j, mask) => {
    f.get(p).get(j).op(Op.i32Add).load().get(sh).simd(S.f32x4Sub).set(x);
    emitExp(f, x, nn, r, fma);
    f.get(mask).simd(S.and).set(x);
    f.get(p).get(j).op(Op.i32Add).get(x).store();
    emitAccF64(f, x, a0, a1);
  });
  emitSumF64(f, a0, a1);
  return f;
}

function buildVscale(): Fn {
  const f = new Fn("vscale", [I32, I32, F32], []);
  const [p, n, c] = [0, 1, 2];
  const cv = f.local(V128), j = f.local(I32), end = f.local(I32);
  f.get(c).simd(S.f32x4Splat).set(cv);
  f.get(n).i32(4).op(Op.i32Mul).set(end);
  f.i32(0).set(j);
  f.forLoop(j, end, 16, () => {
    f.get(p).get(j).op(Op.i32Add).get(p).get(j).op(Op.i32Add).load().get(cv).simd(S.f32x4Mul).store();
  });
  return f;
}

function buildBwdRow(fma: boolean): Fn {
  const f = new Fn("bwdrow", [I32, I32, I32, I32, F32, F32], []);
  const [p, dp, n, vis, lse, d] = [0, 1, 2, 3, 4, 5];
  const lv = f.local(V128), dv = f.local(V128), x = f.local(V128), nn = f.local(V128), r = f.local(V128);
  f.get(lse).simd(S.f32x4Splat).set(lv).get(d).simd(S.f32x4Splat).set(dv);
  maskedLoop(f, n, vis, [p, dp], (j, mask) => {
    f.get(p).get(j).op(Op.i32Add).load().get(lv).simd(S.f32x4Sub).set(x);
    emitExp(f, x, nn, r, fma);
    f.get(mask).simd(S.and).set(x);
    f.get(p).get(j).op(Op.i32Add).get(x).store();
    f.get(dp).get(j).op(Op.i32Add);
    f.get(x).get(dp).get(j).op(Op.i32Add).load().get(dv).simd(S.f32x4Sub).simd(S.f32x4Mul);
    f.get(mask).simd(S.and).store();
  });
  return f;
}

/** The module bytes (fused multiply-add in `mm` when `fma`). */
export function buildAttentionWasm(fma: boolean): Uint8Array {
  return buildModule([buildMm(fma), buildVmax(), buildVexp(fma), buildVscale(), buildBwdRow(fma)]);
}

let cached: Uint8Array | null | undefined;

/** The module bytes when WebAssembly SIMD is available (and allowed), else null (callers use the gemm path). */
export function attentionWasmBytes(): Uint8Array | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (!hasSimd()) return cached;
  try {
    const bytes = buildAttentionWasm(hasRelaxedSimd());
    if (wasmApi()?.validate(bytes) === true) cached = bytes;
  } catch {
    cached = null;
  }
  return cached;
}
