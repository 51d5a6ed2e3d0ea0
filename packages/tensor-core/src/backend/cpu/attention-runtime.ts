/**
 * Causal grouped-query attention, forward and flash-style backward, over one (batch, head) work item at a time.
 *
 * The calling thread and every pool worker run this same code (worker-main.ts). It takes the thread's gemm runtime and runs every product through it (so float32 gets the WebAssembly SIMD micro-kernel). Queries go
 * in tiles of QT rows; for a tile only the [QT, L] score block against the L keys it can see is ever held
 * (L = offset + last query + 1), never the full [T, S] matrix.
 *
 * Layouts: q, out, dout, dq [B, H, T, dh]; k, v, dk, dv [B, Hkv, S, dh]; lse [B, H, T]. Query row t is at absolute
 * position offset + t and sees keys j <= offset + t. Query head h reads kv head floor(h / (H / Hkv)).
 *
 * Forward, per tile: S = scale * Q K^T; P = softmax(S) per row over the visible keys; O = P V; lse = log-sum-exp(S).
 * Backward, per kv head (so GQA heads sum into dk/dv without races), per query head in its group, per tile:
 *   P = exp(scale * Q K^T - lse)            (recomputed, masked)
 *   dV += P^T dO
 *   dP = dO V^T;  dS = P * (dP - rowsum(dO * O))
 *   dQ = scale * dS K;  dK += scale * dS^T Q
 *
 * float32 with the WebAssembly module of wasm-attention.ts (bytes passed in) runs a dedicated path instead: the
 * item's K (transposed) and V are laid out once in the module's memory (head dim padded to a multiple of 8 with
 * zeros), and every product is the module's 4 x 8 `mm` on tiles in that memory. The forward walks key blocks of KB
 * with an online softmax (running max m and sum l per row, O rescaled when m grows; out = O / l, lse = m + log l),
 * so only a [QT, KB] score tile exists; the backward holds one [QT, L] tile of P and one of dS per query tile.
 * float64 (and float32 without the module) keeps the gemm-based path above.
 */
import type { Float, GemmJob, GemmRuntime } from "./gemm-runtime.js";
import { instantiate } from "./wasm-instance.js";

/** Everything an attention work item needs (arrays are shared between threads in parallel runs). */
export interface AttentionJob {
  q: Float;
  k: Float;
  v: Float;
  out: Float;
  lse: Float;
  dout: Float | null;
  dq: Float | null;
  dk: Float | null;
  dv: Float | null;
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  dh: number;
  scale: number;
  offset: number;
}

export interface AttentionRuntime {
  /** Forward over work items (b, h), item = b * H + h, while claim() < B * H. */
  forwardItems(job: AttentionJob, claim: () => number): void;
  /** Backward over work items (b, g), item = b * Hkv + g, while claim() < B * Hkv. */
  backwardItems(job: AttentionJob, claim: () => number): void;
  /** True when float32 runs the WebAssembly kernels. */
  readonly wasm: boolean;
}

export function createAttentionRuntime(gemm: GemmRuntime, wasmBytes: Uint8Array | null = null): AttentionRuntime {
  const QT = 64;
  const KB = 128;

  // ---- WebAssembly float32 path (see the header). Offsets below are in floats; the module takes bytes.
  interface AttnWasm {
    mm(a: number, sai: number, sak: number, b: number, ldb: number, c: number, ldc: number, M: number, N: number,
      K: number, alpha: number, acc: number, mode: number, diag: number): void;
    vmax(p: number, vis: number): number;
    vexp(p: number, n: number, shift: number, vis: number): number;
    vscale(p: number, n: number, c: number): void;
    bwdrow(p: number, dp: number, n: number, vis: number, lse: number, d: number): void;
  }
  const inst = instantiate<AttnWasm>(wasmBytes, 16);
  const kern = inst?.exports ?? null;
  let heap = inst?.heap ?? new Float32Array(0);

  function ensure(floats: number): void {
    const i = inst!;
    i.ensure(floats * 4);
    heap = i.heap;
  }

  const up = (n: number, m: number): number => Math.ceil(n / m) * m;

  /** heap[dst + x * ld + j] = src[base + j * dh + x] for j < S, x < dh; the rest of the [dhp, ld] block is zeroed. */
  function putTransposed(src: Float32Array, base: number, S: number, dh: number, dst: number, dhp: number, ld: number): void {
    const h = heap;
    h.fill(0, dst, dst + dhp * ld);
    for (let j = 0; j < S; j++) {
      const o = base + j * dh;
      for (let x = 0; x < dh; x++) h[dst + x * ld + j] = src[o + x]!;
    }
  }

  /** heap[dst + r * dhp + x] = src[base + r * dh + x] for r < rows, x < dh; padding columns and rows up to rowsP zeroed. */
  function putRows(src: Float32Array, base: number, rows: number, rowsP: number, dh: number, dst: number, dhp: number): void {
    const h = heap;
    if (dh === dhp) h.set(src.subarray(base, base + rows * dh), dst);
    else {
      h.fill(0, dst, dst + rows * dhp);
      for (let r = 0; r < rows; r++) h.set(src.subarray(base + r * dh, base + (r + 1) * dh), dst + r * dhp);
    }
    h.fill(0, dst + rows * dhp, dst + rowsP * dhp);
  }

  /** dst[base + r * dh + x] = heap[src + r * dhp + x] for r < rows, x < dh. */
  function getRows(dst: Float32Array, base: number, rows: number, dh: number, src: number, dhp: number): void {
    const h = heap;
    if (dh === dhp) dst.set(h.subarray(src, src + rows * dh), base);
    else for (let r = 0; r < rows; r++) dst.set(h.subarray(src + r * dhp, src + r * dhp + dh), base + r * dh);
  }

  /** A forward work item is one (batch, query head): its kv head g and the offsets of its q/out, k/v and lse rows. */
  function forwardItem(job: AttentionJob, item: number): { b: number; g: number; qBase: number; kBase: number; lBase: number } {
    const { H, Hkv, T, S, dh } = job;
    const b = Math.floor(item / H);
    const h = item - b * H;
    const g = Math.floor(h / (H / Hkv));
    return { b, g, qBase: (b * H + h) * T * dh, kBase: (b * Hkv + g) * S * dh, lBase: (b * H + h) * T };
  }

  function forwardWasm(job: AttentionJob, claim: () => number): void {
    const k = kern as AttnWasm;
    const { B, H, Hkv, T, S, dh, scale, offset } = job;
    const q = job.q as Float32Array, kk = job.k as Float32Array, v = job.v as Float32Array;
    const out = job.out as Float32Array, lse = job.lse as Float32Array;
    const dhp = up(dh, 8), Sp = up(S, 8);
    const KT = 0, VV = KT + dhp * Sp, QB = VV + Sp * dhp, OB = QB + QT * dhp, SC = OB + QT * dhp;
    ensure(SC + QT * KB);
    const m = new Float64Array(QT), l = new Float64Array(QT);
    let cachedKv = -1;
    for (let item = claim(); item < B * H; item = claim()) {
      const { b, g, qBase, kBase, lBase } = forwardItem(job, item);
      if (cachedKv !== b * Hkv + g) {
        cachedKv = b * Hkv + g;
        putTransposed(kk, kBase, S, dh, KT, dhp, Sp);
        putRows(v, kBase, S, Sp, dh, VV, dhp);
      }
      for (let t0 = 0; t0 < T; t0 += QT) {
        const rows = Math.min(QT, T - t0), rowsP = up(rows, 4);
        const L = Math.min(S, offset + t0 + rows);
        putRows(q, qBase + t0 * dh, rows, rowsP, dh, QB, dhp);
        heap.fill(0, OB, OB + rowsP * dhp);
        m.fill(-Infinity);
        l.fill(0);
        for (let kb0 = 0; kb0 < L; kb0 += KB) {
          const n = Math.min(KB, L - kb0), np = up(n, 8);
          // block column j is visible from tile row r when j <= diag + r
          const diag = offset + t0 - kb0;
          k.mm(QB * 4, dhp * 4, 4, (KT + kb0) * 4, Sp * 4, SC * 4, KB * 4, rowsP, np, dhp, scale, 0, 1, diag);
          for (let r = 0; r < rowsP; r++) {
            const row = (SC + r * KB) * 4;
            const vis = r < rows ? Math.min(n, offset + t0 + r + 1 - kb0) : 0;
            if (vis <= 0) {
              k.vexp(row, np, 0, 0);
              continue;
            }
            const mo = m[r]!;
            const mn = Math.max(mo, k.vmax(row, vis));
            const sum = k.vexp(row, np, mn, vis);
            if (l[r]! > 0 && mn !== mo) {
              const c = Math.exp(mo - mn);
              l[r] = l[r]! * c + sum;
              k.vscale((OB + r * dhp) * 4, dhp, c);
            } else l[r] = l[r]! + sum;
            m[r] = mn;
          }
          k.mm(SC * 4, KB * 4, 4, (VV + kb0 * dhp) * 4, dhp * 4, OB * 4, dhp * 4, rowsP, dhp, n, 1, 1, 2, diag);
        }
        for (let r = 0; r < rows; r++) {
          k.vscale((OB + r * dhp) * 4, dhp, 1 / l[r]!);
          lse[lBase + t0 + r] = m[r]! + Math.log(l[r]!);
        }
        getRows(out, qBase + t0 * dh, rows, dh, OB, dhp);
      }
    }
  }

  function backwardWasm(job: AttentionJob, claim: () => number): void {
    const k = kern as AttnWasm;
    const { B, H, Hkv, T, S, dh, scale, offset } = job;
    const q = job.q as Float32Array, kk = job.k as Float32Array, v = job.v as Float32Array;
    const out = job.out as Float32Array, lse = job.lse as Float32Array, dout = job.dout as Float32Array;
    const dq = job.dq as Float32Array, dk = job.dk as Float32Array, dv = job.dv as Float32Array;
    const rep = H / Hkv;
    const dhp = up(dh, 8), Sp = up(S, 8);
    const KT = 0, VT = KT + dhp * Sp, KR = VT + dhp * Sp, DK = KR + Sp * dhp, DV = DK + Sp * dhp;
    const QB = DV + Sp * dhp, DO = QB + QT * dhp, DQ = DO + QT * dhp, P = DQ + QT * dhp, DP = P + QT * Sp;
    ensure(DP + QT * Sp);
    const dvec = new Float64Array(QT);
    for (let item = claim(); item < B * Hkv; item = claim()) {
      const b = Math.floor(item / Hkv);
      const g = item - b * Hkv;
      const kBase = (b * Hkv + g) * S * dh;
      putTransposed(kk, kBase, S, dh, KT, dhp, Sp);
      putTransposed(v, kBase, S, dh, VT, dhp, Sp);
      putRows(kk, kBase, S, Sp, dh, KR, dhp);
      heap.fill(0, DK, DV + Sp * dhp);
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        const qBase = (b * H + h) * T * dh;
        const lBase = (b * H + h) * T;
        for (let t0 = 0; t0 < T; t0 += QT) {
          const rows = Math.min(QT, T - t0), rowsP = up(rows, 4);
          const L = Math.min(S, offset + t0 + rows), Lp = up(L, 8), L4 = up(L, 4);
          const qo = qBase + t0 * dh;
          const diag = offset + t0;
          putRows(q, qo, rows, rowsP, dh, QB, dhp);
          putRows(dout, qo, rows, rowsP, dh, DO, dhp);
          for (let r = 0; r < rows; r++) {
            let d = 0;
            const ro = qo + r * dh;
            for (let x = 0; x < dh; x++) d += dout[ro + x]! * out[ro + x]!;
            dvec[r] = d;
          }
          k.mm(QB * 4, dhp * 4, 4, KT * 4, Sp * 4, P * 4, Lp * 4, rowsP, Lp, dhp, scale, 0, 1, diag);
          k.mm(DO * 4, dhp * 4, 4, VT * 4, Sp * 4, DP * 4, Lp * 4, rowsP, Lp, dhp, 1, 0, 1, diag);
          for (let r = 0; r < rowsP; r++) {
            const real = r < rows;
            const vis = real ? Math.min(L, offset + t0 + r + 1) : 0;
            k.bwdrow((P + r * Lp) * 4, (DP + r * Lp) * 4, Lp, vis, real ? lse[lBase + t0 + r]! : 0, real ? dvec[r]! : 0);
          }
          // dV[0:L] += P^T dO ; dQ = scale dS K ; dK[0:L] += scale dS^T Q
          k.mm(P * 4, 4, Lp * 4, DO * 4, dhp * 4, DV * 4, dhp * 4, L4, dhp, rowsP, 1, 1, 3, diag);
          k.mm(DP * 4, Lp * 4, 4, KR * 4, dhp * 4, DQ * 4, dhp * 4, rowsP, dhp, L, scale, 0, 2, diag);
          k.mm(DP * 4, 4, Lp * 4, QB * 4, dhp * 4, DK * 4, dhp * 4, L4, dhp, rowsP, scale, 1, 3, diag);
          getRows(dq, qo, rows, dh, DQ, dhp);
        }
      }
      getRows(dk, kBase, S, dh, DK, dhp);
      getRows(dv, kBase, S, dh, DV, dhp);
    }
  }
  let scores32 = new Float32Array(0);
  let scores64 = new Float64Array(0);
  let dscores32 = new Float32Array(0);
  let dscores64 = new Float64Array(0);

  function scratch(f32: boolean, n: number, which: 0 | 1): Float {
    if (which === 0) {
      if (f32) {
        if (scores32.length < n) scores32 = new Float32Array(n);
        return scores32;
      }
      if (scores64.length < n) scores64 = new Float64Array(n);
      return scores64;
    }
    if (f32) {
      if (dscores32.length < n) dscores32 = new Float32Array(n);
      return dscores32;
    }
    if (dscores64.length < n) dscores64 = new Float64Array(n);
    return dscores64;
  }

  /** One single-thread gemm (batch 1). */
  function mm(
    a: Float, offsetA: number, transA: boolean, b: Float, offsetB: number, transB: boolean,
    c: Float, offsetC: number, m: number, n: number, k: number, alpha: number, accumulate: boolean,
  ): void {
    const job: GemmJob = {
      a, b, c, batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, strideC: 0,
      offsetA, offsetB, offsetC, accumulate, alpha,
    };
    let next = 0;
    gemm.runTiles(job, () => next++);
  }

  function forwardItems(job: AttentionJob, claim: () => number): void {
    if (kern !== null && job.q instanceof Float32Array) return forwardWasm(job, claim);
    const { q, k, v, out, lse, B, H, T, S, dh, scale, offset } = job;
    const f32 = q instanceof Float32Array;
    const s = scratch(f32, QT * S, 0);
    for (let item = claim(); item < B * H; item = claim()) {
      const { qBase, kBase, lBase } = forwardItem(job, item);
      for (let t0 = 0; t0 < T; t0 += QT) {
        const rows = Math.min(QT, T - t0);
        const L = Math.min(S, offset + t0 + rows);
        // s[r, j] = scale * q[t0 + r] . k[j]   (rows x L)
        mm(q, qBase + t0 * dh, false, k, kBase, true, s, 0, rows, L, dh, scale, false);
        for (let r = 0; r < rows; r++) {
          const visible = Math.min(L, offset + t0 + r + 1);
          const o = r * L;
          let max = -Infinity;
          for (let j = 0; j < visible; j++) if (s[o + j] > max) max = s[o + j];
          let sum = 0;
          for (let j = 0; j < visible; j++) {
            const e = Math.exp(s[o + j] - max);
            s[o + j] = e;
            sum += e;
          }
          const inv = 1 / sum;
          for (let j = 0; j < visible; j++) s[o + j] *= inv;
          for (let j = visible; j < L; j++) s[o + j] = 0;
          lse[lBase + t0 + r] = max + Math.log(sum);
        }
        // out[t0 + r] = sum_j p[r, j] v[j]
        mm(s, 0, false, v, kBase, false, out, qBase + t0 * dh, rows, dh, L, 1, false);
      }
    }
  }

  function backwardItems(job: AttentionJob, claim: () => number): void {
    if (kern !== null && job.q instanceof Float32Array) return backwardWasm(job, claim);
    const { q, k, v, out, lse, B, H, Hkv, T, S, dh, scale, offset } = job;
    const dout = job.dout as Float;
    const dq = job.dq as Float;
    const dk = job.dk as Float;
    const dv = job.dv as Float;
    const f32 = q instanceof Float32Array;
    const rep = H / Hkv;
    const p = scratch(f32, QT * S, 0);
    const ds = scratch(f32, QT * S, 1);
    for (let item = claim(); item < B * Hkv; item = claim()) {
      const b = Math.floor(item / Hkv);
      const g = item - b * Hkv;
      const kBase = (b * Hkv + g) * S * dh;
      dk.fill(0, kBase, kBase + S * dh);
      dv.fill(0, kBase, kBase + S * dh);
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        const qBase = (b * H + h) * T * dh;
        const lBase = (b * H + h) * T;
        for (let t0 = 0; t0 < T; t0 += QT) {
          const rows = Math.min(QT, T - t0);
          const L = Math.min(S, offset + t0 + rows);
          const qo = qBase + t0 * dh;
          mm(q, qo, false, k, kBase, true, p, 0, rows, L, dh, scale, false);
          mm(dout, qo, false, v, kBase, true, ds, 0, rows, L, dh, 1, false);
          for (let r = 0; r < rows; r++) {
            const visible = Math.min(L, offset + t0 + r + 1);
            const o = r * L;
            const l = lse[lBase + t0 + r];
            const ro = qo + r * dh;
            let d = 0;
            for (let x = 0; x < dh; x++) d += dout[ro + x] * out[ro + x];
            for (let j = 0; j < visible; j++) {
              const pj = Math.exp(p[o + j] - l);
              p[o + j] = pj;
              ds[o + j] = pj * (ds[o + j] - d);
            }
            for (let j = visible; j < L; j++) {
              p[o + j] = 0;
              ds[o + j] = 0;
            }
          }
          // dv[0:L] += p^T dout_tile ; dq_tile = scale * ds k[0:L] ; dk[0:L] += scale * ds^T q_tile
          mm(p, 0, true, dout, qo, false, dv, kBase, L, dh, rows, 1, true);
          mm(ds, 0, false, k, kBase, false, dq, qo, rows, dh, L, scale, false);
          mm(ds, 0, true, q, qo, false, dk, kBase, L, dh, rows, scale, true);
        }
      }
    }
  }

  return { forwardItems, backwardItems, wasm: kern !== null };
}
