/**
 * Causal grouped-query attention, forward and flash-style backward, over one (batch, head) work item at a time.
 *
 * Like gemm-runtime.ts this factory is self-contained (the worker pool embeds its source); it takes the thread's
 * gemm runtime and runs every product through it (so float32 gets the WebAssembly SIMD micro-kernel). Queries go
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
 */
import type { Float, GemmJob, GemmRuntime } from "./gemm-runtime.js";

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
}

export function createAttentionRuntime(gemm: GemmRuntime): AttentionRuntime {
  const QT = 64;
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
    const { q, k, v, out, lse, B, H, Hkv, T, S, dh, scale, offset } = job;
    const f32 = q instanceof Float32Array;
    const rep = H / Hkv;
    const s = scratch(f32, QT * S, 0);
    for (let item = claim(); item < B * H; item = claim()) {
      const b = Math.floor(item / H);
      const h = item - b * H;
      const g = Math.floor(h / rep);
      const qBase = (b * H + h) * T * dh;
      const kBase = (b * Hkv + g) * S * dh;
      const lBase = (b * H + h) * T;
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

  return { forwardItems, backwardItems };
}
