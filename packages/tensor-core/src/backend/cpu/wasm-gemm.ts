/**
 * WebAssembly SIMD micro-kernel for float32 gemm, emitted as bytes at run time (no toolchain, no binary checked
 * in). The module imports one memory (`env.mem`) and exports `mk(a, b, c, kc, ldc)`:
 *
 *   C[MR x NR] += Apanel[kc][MR] * Bpanel[kc][NR]
 *
 * where `a`, `b`, `c` are byte offsets into the memory, `Apanel` holds MR rows interleaved per k step, `Bpanel`
 * NR columns per k step (both produced by the packing routines in gemm-runtime.ts), and `ldc` is the byte
 * distance between rows of the C tile. The accumulators live in v128 locals (MR x NR/4 of them), each k step
 * loads the NR-wide B row once and splats one A value per row. Summation over k is strictly sequential per
 * output element, so the result does not depend on how tiles are spread over threads.
 *
 * With relaxed SIMD (wasm-features.ts) each multiply-add is one `f32x4.relaxed_madd` (vfmadd231ps on x64 with
 * FMA3): ~1.5-2x the throughput of the separate f32x4.mul + f32x4.add. 4 x 8 stays the tile: V8 keeps 15 xmm
 * registers allocatable, and 12 accumulators (6 x 8, 4 x 12) spill and run at half speed. Measured on a Zen 4 VM
 * (Node 20, the kernel alone over a packed 128 x 512 x 256 block): 4 x 8 at ~53 GFLOP/s a core; 5 x 8, 3 x 12,
 * 2 x 16, or 4 x 8 with the k loop unrolled 2 or 4 times, at 17-33.
 */

import { buildModule, F32, Fn, I32, Op, S, uleb, V128 } from "./wasm-builder.js";
import { hasRelaxedSimd, hasSimd, wasmApi } from "./wasm-features.js";

/** Rows of the register tile. */
export const WASM_MR = 4;
/** Columns of the register tile (a multiple of 4: one f32x4 per 4 columns). */
export const WASM_NR = 8;

/** Builds the micro-kernel module bytes for an `mr` x `nr` register tile (fused multiply-add with `fma`). */
export function buildGemmWasm(mr: number = WASM_MR, nr: number = WASM_NR, fma = false): Uint8Array {
  if (nr % 4 !== 0) throw new RangeError(`wasm-gemm: nr must be a multiple of 4, got ${nr}`);
  const nv = nr / 4;
  // params: 0 a, 1 b, 2 c, 3 kc, 4 ldc; then v128 locals: accumulators, B vectors, A splat.
  const acc = (i: number, j: number): number => 5 + i * nv + j;
  const bv = (j: number): number => 5 + mr * nv + j;
  const av = 5 + mr * nv + nv;
  const f = new Fn("mk", [I32, I32, I32, I32, I32], []);
  for (let i = 0; i < mr * nv + nv + 1; i++) f.local(V128);
  // do { ... } while (--kc != 0) inside a block that kc == 0 skips: one branch per k step instead of two (the
  // loop-top test and the back edge), measured 1.06x the micro-kernel's throughput.
  f.op(Op.block, 0x40);
  f.get(3).op(Op.i32Eqz, Op.brIf, 0);
  f.op(Op.loop, 0x40);
  for (let j = 0; j < nv; j++) f.get(1).load(16 * j).set(bv(j));
  for (let i = 0; i < mr; i++) {
    f.get(0).simd(S.load32Splat, 2, ...uleb(4 * i)).set(av);
    for (let j = 0; j < nv; j++) {
      // relaxed_madd(a, b, c) = a * b + c
      if (fma) f.get(av).get(bv(j)).get(acc(i, j)).simd(S.f32x4RelaxedMadd);
      else f.get(acc(i, j)).get(av).get(bv(j)).simd(S.f32x4Mul).simd(S.f32x4Add);
      f.set(acc(i, j));
    }
  }
  f.get(0).i32(4 * mr).op(Op.i32Add).set(0);
  f.get(1).i32(4 * nr).op(Op.i32Add).set(1);
  f.get(3).i32(1).op(Op.i32Sub).tee(3);
  f.op(Op.brIf, 0, Op.end, Op.end); // br_if loop; } }
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nv; j++) f.get(2).get(2).load(16 * j).get(acc(i, j)).simd(S.f32x4Add).store(16 * j);
    f.get(2).get(4).op(Op.i32Add).set(2);
  }
  return buildModule([
    f, buildMacroKernel(mr, nr), buildPack("pa", mr, 4), buildPack("pb", nr, 4), buildPack("pa16", mr, 2), buildPack("pb16", nr, 2),
    buildPack("pah", mr, "f16"), buildPack("pbh", nr, "f16"), buildScale(), buildAxpy(),
  ]);
}

/** Float lanes (0-3 first operand, 4-7 second) as i8x16.shuffle byte lanes. */
function lanes(...ls: number[]): number[] {
  return ls.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);
}

/**
 * Packing of one operand slice into w-wide panels (w = MR for A, NR for B; a multiple of 4), from a raw copy in
 * memory: `pack(raw, dst, pad, kc, trans, ld)` writes dst[(q kc + p) w + c] for q < pad / w, p < kc, c < w, from
 *   trans = 0: raw[(q w + c) ld + p]   (the operand's rows run along k: a 4 x 4 shuffle transpose per step)
 *   trans = 1: raw[p ld + q w + c]     (k-major rows: straight 16-byte copies)
 * ld is in elements. With trans = 0 the last group of a panel may read up to 3 elements past kc in its rows and
 * write up to 3 steps past kc into the next panel (rewritten right after) or past the slice (the caller leaves 3 w
 * floats of room after both).
 *
 * `raw` is the raw element type: 4 (float32), 2 (BF16 bit patterns, `pa16` / `pb16`: each group of 4 is read with
 * `v128.load16x4_u` and shifted into the high half of its float32 lane, `i32x4.shl` 16, the exact widening) or
 * "f16" (IEEE binary16 bit patterns, `pah` / `pbh`: read the same way and widened exactly, see `widenF16`), so a
 * 16-bit operand costs a 2-byte memcpy into the raw region and the same pack as float32.
 */
function buildPack(exportName: string, w: number, rawType: 2 | 4 | "f16"): Fn {
  const es = rawType === 4 ? 4 : 2;
  const f = new Fn(exportName, [I32, I32, I32, I32, I32, I32], []);
  const [raw, dst, pad, kc, trans, ld] = [0, 1, 2, 3, 4, 5];
  const q = f.local(I32), p = f.local(I32), src = f.local(I32), out = f.local(I32);
  const r0 = f.local(V128), r1 = f.local(V128), r2 = f.local(V128), r3 = f.local(V128);
  const t0 = f.local(V128), t1 = f.local(V128), t2 = f.local(V128), t3 = f.local(V128);
  const widen = rawType === "f16" ? widenF16(f) : null;
  /** Loads 4 raw elements at [top of stack + 4 es v] as float32 lanes. */
  const load4 = (v: number): Fn =>
    es === 4 ? f.load(16 * v) :
    widen === null ? f.simd(S.load16x4U, 3, ...uleb(8 * v)).i32(16).simd(S.i32x4Shl) :
    widen(f.simd(S.load16x4U, 3, ...uleb(8 * v)));
  f.get(trans).op(Op.if, 0x40);
  // k-major: dst panel q, step p <- raw row p, columns q w .. q w + w
  f.i32(0).set(q);
  f.forLoop(q, pad, w, () => {
    f.get(dst).get(q).get(kc).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add).set(out);
    f.get(raw).get(q).i32(es).op(Op.i32Mul).op(Op.i32Add).set(src);
    f.i32(0).set(p);
    f.forLoop(p, kc, 1, () => {
      for (let v = 0; v < w / 4; v++) {
        f.get(out).get(src);
        load4(v).store(16 * v);
      }
      f.inc(out, 4 * w);
      f.get(src).get(ld).i32(es).op(Op.i32Mul).op(Op.i32Add).set(src);
    });
  });
  f.op(Op.else);
  // rows along k: for each 4-row group g of a panel, 4 x 4 shuffle transposes, 4 steps of p at a time
  const s0 = f.local(I32), s1 = f.local(I32), s2 = f.local(I32), s3 = f.local(I32), ldb = f.local(I32);
  f.get(ld).i32(es).op(Op.i32Mul).set(ldb);
  f.i32(0).set(q);
  f.forLoop(q, pad, w, () => {
    for (let g = 0; g < w / 4; g++) {
      f.get(raw).get(q).i32(4 * g).op(Op.i32Add).get(ldb).op(Op.i32Mul).op(Op.i32Add).set(s0);
      f.get(s0).get(ldb).op(Op.i32Add).set(s1);
      f.get(s1).get(ldb).op(Op.i32Add).set(s2);
      f.get(s2).get(ldb).op(Op.i32Add).set(s3);
      f.get(dst).get(q).get(kc).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add).i32(16 * g).op(Op.i32Add).set(out);
      f.i32(0).set(p);
      f.forLoop(p, kc, 4, () => {
        f.get(s0);
        load4(0).set(r0).get(s1);
        load4(0).set(r1).get(s2);
        load4(0).set(r2).get(s3);
        load4(0).set(r3);
        f.get(r0).get(r1).shuffle(lanes(0, 4, 1, 5)).set(t0);
        f.get(r2).get(r3).shuffle(lanes(0, 4, 1, 5)).set(t1);
        f.get(r0).get(r1).shuffle(lanes(2, 6, 3, 7)).set(t2);
        f.get(r2).get(r3).shuffle(lanes(2, 6, 3, 7)).set(t3);
        f.get(out).get(t0).get(t1).shuffle(lanes(0, 1, 4, 5)).store(0);
        f.get(out).get(t0).get(t1).shuffle(lanes(2, 3, 6, 7)).store(4 * w);
        f.get(out).get(t2).get(t3).shuffle(lanes(0, 1, 4, 5)).store(8 * w);
        f.get(out).get(t2).get(t3).shuffle(lanes(2, 3, 6, 7)).store(12 * w);
        for (const sp of [s0, s1, s2, s3]) f.inc(sp, 4 * es);
        f.inc(out, 16 * w);
      });
    }
  });
  f.op(Op.end);
  return f;
}

/**
 * Exact IEEE binary16 -> float32 widening of 4 lanes (each i32 lane holding 16 bits, zero-extended): with
 * e = h & 0x7fff, a normal number's bits are e << 13 with the exponent rebased (+ 112 << 23), infinity and NaN
 * (e >= 0x7c00) get the exponent 255 (+ 224 << 23, the payload kept), a subnormal or zero (e < 0x400) is
 * e * 2^-24 (e converted exactly, times a power of two), and the sign is h's bit 15 moved to bit 31. Returns the
 * emitter: it consumes the loaded lanes on the stack and leaves the float32 lanes.
 */
function widenF16(f: Fn): (loaded: Fn) => Fn {
  const h = f.local(V128), e = f.local(V128), r = f.local(V128);
  return () => {
    f.set(h);
    f.get(h).i32x4(0x7fff).simd(S.and).set(e);
    // normal: (e << 13) + (112 << 23); plus another 112 << 23 where e >= 0x7c00 (infinity, NaN)
    f.get(e).i32(13).simd(S.i32x4Shl).i32x4(112 << 23).simd(S.i32x4Add);
    f.get(e).i32x4(0x7bff).simd(S.i32x4GtS).i32x4(112 << 23).simd(S.and).simd(S.i32x4Add).set(r);
    // subnormal or zero where e < 0x400: e * 2^-24
    f.get(e).simd(S.f32x4ConvertI32x4S).f32x4(2 ** -24).simd(S.f32x4Mul).get(r);
    f.get(e).i32x4(0x400).simd(S.i32x4LtS).simd(S.bitselect);
    // the sign
    f.get(h).i32x4(0x8000).simd(S.and).i32(16).simd(S.i32x4Shl).simd(S.or);
    return f;
  };
}

/**
 * `mb(a, b, c, kc, mcPad, ncPad)`: runs `mk` over every (column panel, row panel) pair of one packed KC slice
 * (A panels at a, B panels at b, the C tile at c with row stride ncPad), so the JavaScript side makes one call per
 * slice instead of one per register tile.
 */
function buildMacroKernel(mr: number, nr: number): Fn {
  const f = new Fn("mb", [I32, I32, I32, I32, I32, I32], []);
  const [a, b, c, kc, mcPad, ncPad] = [0, 1, 2, 3, 4, 5];
  const jr = f.local(I32), ir = f.local(I32);
  f.i32(0).set(jr);
  f.forLoop(jr, ncPad, nr, () => {
    f.i32(0).set(ir);
    f.forLoop(ir, mcPad, mr, () => {
      f.get(a).get(ir).get(kc).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add);
      f.get(b).get(jr).get(kc).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add);
      f.get(c).get(ir).get(ncPad).op(Op.i32Mul).get(jr).op(Op.i32Add).i32(4).op(Op.i32Mul).op(Op.i32Add);
      f.get(kc).get(ncPad).i32(4).op(Op.i32Mul);
      f.op(0x10, 0); // call mk
    });
  });
  return f;
}

/** `scale(p, n, alpha)`: p[i] *= alpha for i < n (n a multiple of 4). */
function buildScale(): Fn {
  const f = new Fn("scale", [I32, I32, F32], []);
  const [p, n, alpha] = [0, 1, 2];
  const av = f.local(V128), i = f.local(I32), end = f.local(I32);
  f.get(alpha).simd(S.f32x4Splat).set(av);
  f.get(p).set(i).get(p).get(n).i32(4).op(Op.i32Mul).op(Op.i32Add).set(end);
  f.forLoop(i, end, 16, () => {
    f.get(i).get(i).load().get(av).simd(S.f32x4Mul).store();
  });
  return f;
}

/** `axpy(x, y, n, alpha)`: y[i] = alpha * x[i] + y[i] for i < n (n a multiple of 4). */
function buildAxpy(): Fn {
  const f = new Fn("axpy", [I32, I32, I32, F32], []);
  const [x, y, n, alpha] = [0, 1, 2, 3];
  const av = f.local(V128), i = f.local(I32), end = f.local(I32);
  f.get(alpha).simd(S.f32x4Splat).set(av);
  f.i32(0).set(i).get(n).i32(4).op(Op.i32Mul).set(end);
  f.forLoop(i, end, 16, () => {
    f.get(y).get(i).op(Op.i32Add);
    f.get(x).get(i).op(Op.i32Add).load().get(av).simd(S.f32x4Mul);
    f.get(y).get(i).op(Op.i32Add).load().simd(S.f32x4Add).store();
  });
  return f;
}

let cached: Uint8Array | null | undefined;

/**
 * The module bytes if this runtime validates WebAssembly SIMD (the relaxed-madd kernel when relaxed SIMD is
 * available), else null (callers fall back to JS).
 */
export function gemmWasmBytes(): Uint8Array | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (!hasSimd()) return cached;
  try {
    const fma = hasRelaxedSimd();
    const bytes = buildGemmWasm(WASM_MR, WASM_NR, fma);
    if (wasmApi()?.validate(bytes) === true) cached = bytes;
  } catch {
    cached = null;
  }
  return cached;
}

/** True when the gemm micro-kernel uses relaxed SIMD fused multiply-add. */
export function gemmUsesRelaxedSimd(): boolean {
  return gemmWasmBytes() !== null && hasRelaxedSimd();
}
