// The cpu kernel of lmHeadLoss (ops/lm-head-loss.ts): the LM head fused with its losses, a chunk of rows at a
// time. Each chunk's student logits z_S = h_S W_Sᵀ (and the teacher's z_T = h_T W_Tᵀ) live only in pooled
// scratch of [chunk, V]; the chunk's CE and KL rows are summed, and, when gradients are wanted, the chunk's
// dz = ceScale · dCE/dz + klScale · dKL/dz gives dh rows (dz W) and a dW accumulation (dzᵀ h) in the same pass.
// No [rows, V] buffer is ever allocated. The op owns validation, the reductions' scales and the tape.

import type { FloatArray } from "../../dtype.js";
import { binary } from "./elementwise.js";
import { acquire, release } from "./buffer-pool.js";
import { gemm } from "./gemm.js";
import { crossEntropyBackward, crossEntropyForward, klDivBackward, klDivForward } from "./rows.js";

export interface LmHeadChunkedParams {
  /** The scratch's dtype (the hidden states'). */
  dtype: "float32" | "float64";
  /** Student hidden states [rows, d] and LM head [V, d] (BF16 bits with float32 scratch: widened by gemm). */
  h: FloatArray; w: FloatArray | Uint16Array;
  /** int32 targets [rows] (adds CE), or null. */
  targets: Int32Array | null;
  /** Teacher hidden states [rows, D] and LM head [V, D] (adds KL; BF16 bits like w), or null. */
  hT: FloatArray | null; wT: FloatArray | Uint16Array | null;
  rows: number; V: number; d: number; D: number;
  /** Rows per chunk (>= 1). */
  chunk: number;
  ignore: number; tau: number;
  /** The per-row cotangents of the CE and KL sums in dz. */
  ceScale: number; klScale: number;
  /** Outputs: dh [rows, d] (written) and dW [V, d] (accumulated into), or null when not wanted. */
  dh: FloatArray | null; dw: FloatArray | null;
}

/** Runs the chunked forward (and gradient); returns the unscaled sums of the CE and KL rows. */
export function lmHeadLossChunked(p: LmHeadChunkedParams): { ceSum: number; klSum: number } {
  const { dtype, h, w, targets: tg, hT, wT, rows, V, d, D, ignore, tau, ceScale, klScale, dh, dw } = p;
  const wantGrad = dh !== null || dw !== null;
  const R = Math.min(p.chunk, rows);
  const scratch = (n: number): FloatArray => acquire(dtype, n) as FloatArray;
  const zS = scratch(R * V), zT = hT === null ? null : scratch(R * V);
  const dz = wantGrad ? scratch(R * V) : null;
  const dzKl = wantGrad && tg !== null && zT !== null ? scratch(R * V) : null;
  const perRow = scratch(R), lse = scratch(R), gRow = scratch(R);
  let ceSum = 0, klSum = 0;
  try {
    for (let s = 0; s < rows; s += R) {
      const r = Math.min(R, rows - s), n = r * V;
      const z = zS.subarray(0, n) as FloatArray;
      gemm({ a: h, b: w, c: z, batch: 1, m: r, n: V, k: d, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0, offsetA: s * d });
      const g = dz === null ? null : (dz.subarray(0, n) as FloatArray);
      if (tg !== null) {
        const t = tg.subarray(s, s + r);
        crossEntropyForward(z, t, r, V, ignore, perRow, lse);
        for (let i = 0; i < r; i++) ceSum += perRow[i]!;
        if (g !== null) {
          gRow.fill(ceScale);
          crossEntropyBackward(z, t, lse, gRow, g, r, V, ignore);
        }
      }
      if (zT !== null) {
        const zt = zT.subarray(0, n) as FloatArray;
        gemm({ a: hT!, b: wT!, c: zt, batch: 1, m: r, n: V, k: D, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0, offsetA: s * D });
        klDivForward(zt, z, r, V, tau, perRow);
        for (let i = 0; i < r; i++) klSum += perRow[i]!;
        if (g !== null) {
          gRow.fill(klScale);
          const into = dzKl === null ? g : (dzKl.subarray(0, n) as FloatArray);
          klDivBackward(zt, z, r, V, tau, gRow, into, null);
          if (dzKl !== null) binary("add", g, [n], into, [n], g, [n]);
        }
      }
      if (g === null) continue;
      // dh[s:s+r] = dz W;  dW += dzᵀ h[s:s+r]
      if (dh !== null)
        gemm({ a: g, b: w, c: dh, batch: 1, m: r, n: d, k: V, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0, offsetC: s * d });
      if (dw !== null)
        gemm({ a: g, b: h, c: dw, batch: 1, m: V, n: d, k: r, transA: true, transB: false, strideA: 0, strideB: 0, strideC: 0, offsetB: s * d, accumulate: true });
    }
  } finally {
    for (const a of [zS, zT, dz, dzKl, perRow, lse, gRow]) if (a !== null) release(a);
  }
  return { ceSum, klSum };
}
