/**
 * Float32 RMSNorm and rope rows on the WebAssembly SIMD vector module (wasm-vector.ts), and the chunked copy-in /
 * copy-out helpers they share with reduce.ts's row sums. rows.ts calls these for Float32Array data when the
 * module is available and keeps its TypeScript loops as the reference and fallback (float64, no wasm,
 * LRC_NO_WASM=1); rows go through the module's memory in chunks of about CHUNK floats per operand. Softmax,
 * log-sum-exp, cross-entropy and KL rows run in rows-runtime.ts instead, on the worker pool.
 */
import { DATA, type VectorKernels } from "./wasm-vector.js";

/** Floats per operand region (128 KiB: a few regions stay in L2). */
const CHUNK = 1 << 15;

/** Region layout for `regions` operands of rows of `cols` floats. */
export interface Layout {
  stride: number;
  rowsPerChunk: number;
  /** Byte offset of region j is DATA + j * regionBytes. */
  regionBytes: number;
}

export function layout(k: VectorKernels, regions: number, cols: number, rowsHint = Infinity): Layout {
  const stride = Math.ceil(cols / 4) * 4;
  const rowsPerChunk = Math.max(1, Math.min(rowsHint, Math.floor(CHUNK / Math.max(stride, 1))));
  const regionBytes = rowsPerChunk * stride * 4;
  k.ensure(DATA + regions * regionBytes);
  return { stride, rowsPerChunk, regionBytes };
}

/** Copies rows [r0, r1) of a [rows, cols] array into region `j`. */
export function copyIn(k: VectorKernels, L: Layout, j: number, src: Float32Array, r0: number, r1: number, cols: number): void {
  const base = (DATA + j * L.regionBytes) >> 2;
  if (L.stride === cols) k.heap.set(src.subarray(r0 * cols, r1 * cols), base);
  else for (let r = r0; r < r1; r++) k.heap.set(src.subarray(r * cols, (r + 1) * cols), base + (r - r0) * L.stride);
}

/** Copies region `j` back into rows [r0, r1) of dst. */
export function copyOut(k: VectorKernels, L: Layout, j: number, dst: Float32Array, r0: number, r1: number, cols: number): void {
  const base = (DATA + j * L.regionBytes) >> 2;
  if (L.stride === cols) dst.set(k.heap.subarray(base, base + (r1 - r0) * cols), r0 * cols);
  else for (let r = r0; r < r1; r++) {
    const o = base + (r - r0) * L.stride;
    dst.set(k.heap.subarray(o, o + cols), r * cols);
  }
}

/** Byte offset of row r (chunk-relative index) in region j. */
export function rowPtr(L: Layout, j: number, r: number): number {
  return DATA + j * L.regionBytes + r * L.stride * 4;
}

/** RMSNorm forward (rows.ts semantics: float64 mean square, float32-rounded rstd, out = (x rstd) w in float32). */
export function rmsNormForwardWasm(
  k: VectorKernels, x: Float32Array, w: Float32Array, out: Float32Array, rstd: Float32Array, rows: number, dim: number,
  eps: number,
): void {
  const L = layout(k, 2, dim, rows);
  const wp = DATA + 2 * L.regionBytes;
  k.ensure(wp + L.stride * 4);
  k.heap.set(w.subarray(0, dim), wp >> 2);
  const fr = Math.fround;
  for (let r0 = 0; r0 < rows; r0 += L.rowsPerChunk) {
    const r1 = Math.min(rows, r0 + L.rowsPerChunk);
    copyIn(k, L, 0, x, r0, r1, dim);
    for (let r = r0; r < r1; r++) {
      const p = rowPtr(L, 0, r - r0);
      const rs = fr(1 / Math.sqrt(fr(fr(k.sumsq(p, dim) / dim) + eps)));
      rstd[r] = rs;
      k.rmsout(p, wp, rowPtr(L, 1, r - r0), dim, rs);
    }
    copyOut(k, L, 1, out, r0, r1, dim);
  }
}

/**
 * RMSNorm backward (rows.ts's formulas in float32 arithmetic, row sums and dw in float64); dw is overwritten, dx
 * too, or added into (float32) with `addDx`.
 */
export function rmsNormBackwardWasm(
  k: VectorKernels, dy: Float32Array, x: Float32Array, w: Float32Array, rstd: Float32Array, dx: Float32Array,
  dw: Float32Array | null, rows: number, dim: number, addDx: boolean,
): void {
  const L = layout(k, 4, dim, rows);
  const wp = DATA + 4 * L.regionBytes;
  const accp = wp + L.stride * 4;
  k.ensure(accp + L.stride * 8);
  k.heap.set(w.subarray(0, dim), wp >> 2);
  const acc = new Float64Array(k.heap.buffer, accp, L.stride);
  acc.fill(0);
  for (let r0 = 0; r0 < rows; r0 += L.rowsPerChunk) {
    const r1 = Math.min(rows, r0 + L.rowsPerChunk);
    copyIn(k, L, 0, dy, r0, r1, dim);
    copyIn(k, L, 1, x, r0, r1, dim);
    for (let r = r0; r < r1; r++) {
      const pdy = rowPtr(L, 0, r - r0), px = rowPtr(L, 1, r - r0);
      const rs = rstd[r]!;
      const c = (rs * rs * rs * k.dot3(wp, pdy, px, dim)) / dim;
      k.rmsbwd(wp, pdy, px, rowPtr(L, 2, r - r0), dw === null ? 0 : accp, dim, rs, c);
    }
    if (addDx) {
      copyIn(k, L, 3, dx, r0, r1, dim);
      k.badd(rowPtr(L, 2, 0), rowPtr(L, 3, 0), rowPtr(L, 2, 0), (r1 - r0) * L.stride, 0);
    }
    copyOut(k, L, 2, dx, r0, r1, dim);
  }
  if (dw !== null) for (let j = 0; j < dim; j++) dw[j] = acc[j]!;
}

/**
 * Rotary embedding of `outer * T` rows of dh floats (dh / 2 a multiple of 4), row r at table position
 * posOffset + r mod T; sign -1 is the inverse rotation. out may alias x.
 */
export function ropeWasm(
  k: VectorKernels, x: Float32Array, cos: Float32Array, sin: Float32Array, out: Float32Array, outer: number, T: number,
  dh: number, sign: number, posOffset: number,
): void {
  const n = outer * T;
  if (n === 0) return;
  const L = layout(k, 1, dh, n);
  const cp = DATA + L.regionBytes, sp = cp + T * dh * 4;
  k.ensure(sp + T * dh * 4);
  k.heap.set(cos.subarray(posOffset * dh, (posOffset + T) * dh), cp >> 2);
  k.heap.set(sin.subarray(posOffset * dh, (posOffset + T) * dh), sp >> 2);
  for (let r0 = 0; r0 < n; r0 += L.rowsPerChunk) {
    const r1 = Math.min(n, r0 + L.rowsPerChunk);
    copyIn(k, L, 0, x, r0, r1, dh);
    const p = rowPtr(L, 0, 0);
    k.rope(p, cp, sp, p, r1 - r0, T, r0 % T, dh, sign);
    copyOut(k, L, 0, out, r0, r1, dh);
  }
}

/**
 * Rotary embedding with the head split or merge around it, a [T, H, dh] block of each of the `B` batch rows at a
 * time: `merge` false: x [B, T, H, dh] -> out [B, H, T, dh] rotated (sign 1); `merge` true: x [B, H, T, dh] rotated
 * by `sign` -> out [B, T, H, dh], added into what out holds with `add`. The same per-row rotation as ropeWasm (the
 * same bits as a permute and a rope); dh / 2 a multiple of 4.
 */
export function ropeHeadsWasm(
  k: VectorKernels, x: Float32Array, cos: Float32Array, sin: Float32Array, out: Float32Array, B: number, T: number,
  H: number, dh: number, sign: number, merge: boolean, add: boolean,
): void {
  const blk = T * H * dh;
  if (blk === 0) return;
  const src = DATA, dst = src + blk * 4, acc = dst + blk * 4, cp = acc + blk * 4, sp = cp + T * dh * 4;
  k.ensure(sp + T * dh * 4);
  k.heap.set(cos.subarray(0, T * dh), cp >> 2);
  k.heap.set(sin.subarray(0, T * dh), sp >> 2);
  for (let b = 0; b < B; b++) {
    const h = k.heap;
    h.set(x.subarray(b * blk, (b + 1) * blk), src >> 2);
    if (!merge) {
      k.scopy(src, dst, 1, H, T, dh, 0, dh, H * dh, 1); // [T, H, dh] -> [H, T, dh]
      k.rope(dst, cp, sp, dst, H * T, T, 0, dh, sign);
    } else {
      k.rope(src, cp, sp, src, H * T, T, 0, dh, sign);
      k.scopy(src, dst, 1, T, H, dh, 0, dh, T * dh, 1); // [H, T, dh] -> [T, H, dh]
      if (add) {
        h.set(out.subarray(b * blk, (b + 1) * blk), acc >> 2);
        k.badd(dst, acc, dst, blk, 0);
      }
    }
    out.set(h.subarray(dst >> 2, (dst >> 2) + blk), b * blk);
  }
}
