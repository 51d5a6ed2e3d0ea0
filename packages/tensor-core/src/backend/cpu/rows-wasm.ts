/**
 * Float32 row kernels on the WebAssembly SIMD vector module (wasm-vector.ts): log-sum-exp rows, softmax, RMSNorm
 * and rope (cross-entropy and KL rows run in rows-runtime.ts, on the worker pool).
 * rows.ts calls these for Float32Array data when the module is available and keeps its TypeScript loops as the reference and fallback (float64, no
 * wasm, LRC_NO_WASM=1). Rows go through the module's memory in chunks of about CHUNK floats per operand. A row
 * holding a non-finite value (±Infinity, NaN) is handed back to the TypeScript reference (`fallbackRow`), so masking
 * with -Infinity keeps its exact semantics.
 */
import { DATA, SCRATCH, type VectorKernels } from "./wasm-vector.js";

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

/** max and min of a row already in memory; null when either is not finite. */
function finiteMax(k: VectorKernels, p: number, cols: number): number | null {
  const max = k.maxmin(p, cols);
  const min = k.heap[SCRATCH >> 2]!;
  return Number.isFinite(max) && Number.isFinite(min) ? max : null;
}

/** Shift (max * invT, rounded to float32 as the kernel sees it) and logsumexp(x * invT) of a finite row. */
function lseOf(k: VectorKernels, p: number, cols: number, invT: number, max: number): { sh: number; lse: number } {
  const sh = Math.fround(max * invT);
  return { sh, lse: sh + Math.log(k.sumexp(p, cols, invT, sh)) };
}

/**
 * lse[r] = log sum_j exp(x[r, j] * invT) for every row; rows with non-finite values get `fallbackRow(r)`.
 */
export function lseRowsWasm(
  k: VectorKernels, x: Float32Array, rows: number, cols: number, invT: number,
  lse: { [i: number]: number }, fallbackRow: (r: number) => number,
): void {
  if (cols === 0) {
    for (let r = 0; r < rows; r++) lse[r] = fallbackRow(r);
    return;
  }
  const L = layout(k, 1, cols, rows);
  for (let r0 = 0; r0 < rows; r0 += L.rowsPerChunk) {
    const r1 = Math.min(rows, r0 + L.rowsPerChunk);
    copyIn(k, L, 0, x, r0, r1, cols);
    for (let r = r0; r < r1; r++) {
      const p = rowPtr(L, 0, r - r0);
      const max = finiteMax(k, p, cols);
      lse[r] = max === null ? fallbackRow(r) : lseOf(k, p, cols, invT, max).lse;
    }
  }
}

/** out = softmax(x) per row (out may alias x); non-finite rows go to `fallbackRow(r)`. */
export function softmaxRowsWasm(
  k: VectorKernels, x: Float32Array, out: Float32Array, rows: number, cols: number, fallbackRow: (r: number) => void,
): void {
  if (cols === 0) return;
  const L = layout(k, 1, cols, rows);
  const bad: number[] = [];
  for (let r0 = 0; r0 < rows; r0 += L.rowsPerChunk) {
    const r1 = Math.min(rows, r0 + L.rowsPerChunk);
    copyIn(k, L, 0, x, r0, r1, cols);
    for (let r = r0; r < r1; r++) {
      const p = rowPtr(L, 0, r - r0);
      const max = finiteMax(k, p, cols);
      if (max === null) bad.push(r);
      else {
        const sum = k.sumexp(p, cols, 1, max);
        k.expaff(p, p, cols, 1, max, 1 / sum);
      }
    }
    copyOut(k, L, 0, out, r0, r1, cols);
    for (const r of bad) fallbackRow(r);
    bad.length = 0;
  }
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

/** RMSNorm backward (rows.ts's formulas in float32 arithmetic, row sums and dw in float64); dw is overwritten. */
export function rmsNormBackwardWasm(
  k: VectorKernels, dy: Float32Array, x: Float32Array, w: Float32Array, rstd: Float32Array, dx: Float32Array,
  dw: Float32Array | null, rows: number, dim: number,
): void {
  const L = layout(k, 3, dim, rows);
  const wp = DATA + 3 * L.regionBytes;
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
