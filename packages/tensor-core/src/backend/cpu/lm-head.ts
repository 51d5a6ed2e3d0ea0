// The cpu kernel of lmHeadLoss (ops/lm-head-loss.ts): the LM head fused with its losses, a chunk of rows at a
// time. Each chunk's student logits z_S = h_S W_Sᵀ (and the teacher's z_T = h_T W_Tᵀ) live only in pooled
// scratch of [chunk, V] per side; one row pass (rows.ts's lmHeadRows) sums the chunk's CE and KL rows and, when
// gradients are wanted, writes dz = ceScale · dCE/dz + klScale · dKL/dz over the student's logits, which then give
// dh rows (dz W) and a dW accumulation (dzᵀ h). No [rows, V] buffer is ever allocated.
//
// When the student's and the teacher's head are the same weight (LRC's factorized head: the student's logits are
// (h_S P_lmᵀ) W_Tᵀ), both sides' logits come from one gemm over the stacked rows [h_S; h_T] ([2r, D]), so W is
// packed (and widened from BF16) once per chunk for both. dh = dz W is one gemm with k = V: the gemm engine packs
// such a deep B one KC slice at a time (gemm-runtime.ts), so no thread holds a V-deep panel, and dh's bits are
// those of the plain product.
// The op owns validation, the reductions' scales and the tape.

import type { FloatArray } from "../../dtype.js";
import { acquire, release } from "./buffer-pool.js";
import { gemm } from "./gemm.js";
import { lmHeadRows } from "./rows.js";

export interface LmHeadChunkedParams {
  /** The scratch's dtype (the hidden states'). */
  dtype: "float32" | "float64";
  /** Student hidden states [rows, d] and LM head [V, d] (BF16 bits with float32 scratch: widened by gemm). */
  h: FloatArray; w: FloatArray | Uint16Array;
  /** int32 targets [rows] (adds CE), or null. */
  targets: Int32Array | null;
  /**
   * Teacher hidden states [rows, D] and LM head [V, D] (adds KL; BF16 bits like w), or null. wT === w (the same
   * array) computes both sides' logits in one gemm.
   */
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
  const stacked = hT !== null && wT === w && D === d;
  const scratch = (n: number): FloatArray => acquire(dtype, n) as FloatArray;
  // [zS; zT] of a chunk: zS rows first, the teacher's after them (contiguous for the stacked gemm's [2r, V]).
  const z = scratch((hT === null ? 1 : 2) * R * V);
  const hs = stacked ? scratch(2 * R * d) : null;
  const ceRow = scratch(R), klRow = scratch(R);
  let ceSum = 0, klSum = 0;
  try {
    for (let s = 0; s < rows; s += R) {
      const r = Math.min(R, rows - s), n = r * V;
      const zS = z.subarray(0, n) as FloatArray;
      const zT = hT === null ? null : (z.subarray(n, 2 * n) as FloatArray);
      if (hs !== null) {
        hs.set(h.subarray(s * d, (s + r) * d));
        hs.set(hT!.subarray(s * d, (s + r) * d), r * d);
        gemm({ a: hs, b: w, c: z, batch: 1, m: 2 * r, n: V, k: d, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0 });
      } else {
        gemm({ a: h, b: w, c: zS, batch: 1, m: r, n: V, k: d, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0, offsetA: s * d });
        if (zT !== null)
          gemm({ a: hT!, b: wT!, c: zT, batch: 1, m: r, n: V, k: D, transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0, offsetA: s * D });
      }
      lmHeadRows(zS, zT, tg === null ? null : tg.subarray(s, s + r), r, V, ignore, tau, ceScale, klScale, wantGrad, ceRow, klRow);
      for (let i = 0; i < r; i++) {
        ceSum += ceRow[i]!;
        if (zT !== null) klSum += klRow[i]!;
      }
      if (!wantGrad) continue;
      const g = zS; // dz, written over the student's logits
      // dh[s:s+r] = dz W
      if (dh !== null)
        gemm({ a: g, b: w, c: dh, batch: 1, m: r, n: d, k: V, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0, offsetC: s * d });
      // dW += dzᵀ h[s:s+r]
      if (dw !== null)
        gemm({ a: g, b: h, c: dw, batch: 1, m: V, n: d, k: r, transA: true, transB: false, strideA: 0, strideB: 0, strideC: 0, offsetB: s * d, accumulate: true });
    }
  } finally {
    for (const a of [z, hs, ceRow, klRow]) if (a !== null) release(a);
  }
  return { ceSum, klSum };
}
