// The MSE through a frozen linear map, from the map's Gram matrix: for W [m, k] and G = Wᵀ W [k, k],
//
//   mse(a Wᵀ, b Wᵀ) = Σ_rows Δ_r G Δ_rᵀ / (rows · m)      with Δ = a − b (a bias added to both sides cancels),
//
// torch's mean over the [..., m] tensor of the projections, without forming them. Forward: F = Δ G (one gemm, the
// cost of one projection), loss = Σ F ⊙ Δ / (rows · m). Backward: da = (2 dy / (rows · m)) F (G symmetric), db = −da:
// no gemm, where the projected form's backward takes dE W (another gemm as large as the forward's). LRC's
// reference attention-out clone term (R's attn-out-sim-loss) is this with the teacher's W_o (packages/lrc).
//
// The fused pass is the `quadFormMse` kernel (the cpu one: Δ, the gemm, the float64 sum of F ⊙ Δ) and its VJP
// `quadFormMseBackward` (c F, added into the cotangent pending for a when the tape offers it); on a backend without
// them (GPU.js, webgpu; `hasKernel`) the op is the same arithmetic composed of sub, matmul, mul and sum, so the
// values stay on the device.

import { noGrad, record } from "../autodiff/tape.js";
import { dispatch, hasKernel } from "../backend/dispatch.js";
import { requireFloat } from "../dtype.js";
import { fmt, shapeEq } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { add, div, mul, neg, sub } from "./elementwise.js";
import { matmul } from "./matmul.js";
import { reshape, transpose } from "./movement.js";
import { sum } from "./reduce.js";

/** Gram matrices already checked symmetric (a frozen weight's, made once and reused every step). */
const symmetric = new WeakSet<Tensor>();

/**
 * Wᵀ W of a constant weight w [m, k] (a frozen bfloat16 / float16 weight is widened exactly inside the gemm) as
 * float32 [k, k] (float64 for a float64 w), for quadFormMse: one gemm, then (M + Mᵀ) / 2, exactly symmetric
 * whatever order the gemm summed each element in (where it summed both alike, M itself). On any backend.
 */
export function gramMatrix(w: Tensor): Tensor {
  if (w.rank !== 2) throw new RangeError(`gramMatrix: w ${fmt(w.shape)} must be [m, k]`);
  if (w.requiresGrad) throw new TypeError("gramMatrix: w must be a constant (no gradient flows through Wᵀ W here)");
  const g = noGrad(() => {
    const m = matmul(w, w, { transA: true }), mt = transpose(m, 0, 1), both = add(m, mt);
    const out = mul(both, 0.5);
    for (const t of [m, mt, both]) t.dispose();
    return out;
  });
  symmetric.add(g);
  return g;
}

function checkSymmetric(g: Tensor): void {
  if (symmetric.has(g)) return;
  const k = g.shape[0]!, v = g.peek();
  for (let i = 0; i < k; i++)
    for (let j = i + 1; j < k; j++)
      if (v[i * k + j] !== v[j * k + i]) throw new RangeError(`quadFormMse: gram is not symmetric (gram[${i}][${j}] ≠ gram[${j}][${i}]); pass Wᵀ W`);
  symmetric.add(g);
}

/**
 * mse(a Wᵀ, b Wᵀ) of a, b [..., k] from gram = Wᵀ W [k, k] (symmetric, a constant: no gradient flows to it) and
 * W's row count `outFeatures` (m): Σ over rows of (a − b) gram (a − b)ᵀ divided by rows · m, the element count of
 * the [..., m] projections. The same value as the projected form up to float32 rounding (another sum order);
 * gradients w.r.t. a and b without a gemm (see the file header).
 */
export function quadFormMse(a: Tensor, b: Tensor, gram: Tensor, outFeatures: number): Tensor {
  requireFloat("quadFormMse", a, b, gram);
  if (!shapeEq(a.shape, b.shape) || a.rank < 1) throw new RangeError(`quadFormMse: a ${fmt(a.shape)} and b ${fmt(b.shape)} must have one shape [..., k]`);
  const k = a.shape[a.rank - 1]!;
  if (!shapeEq(gram.shape, [k, k])) throw new RangeError(`quadFormMse: gram ${fmt(gram.shape)} must be [k, k] = [${k}, ${k}] for a ${fmt(a.shape)}`);
  if (gram.dtype !== a.dtype || b.dtype !== a.dtype) throw new TypeError(`quadFormMse: a, b and gram must share one dtype, got ${a.dtype}, ${b.dtype}, ${gram.dtype}`);
  if (gram.requiresGrad) throw new TypeError("quadFormMse: gram is a constant (a frozen weight's Wᵀ W) and takes no gradient");
  if (!Number.isInteger(outFeatures) || outFeatures < 1) throw new RangeError(`quadFormMse: outFeatures must be a positive integer (W's rows), got ${outFeatures}`);
  checkSymmetric(gram);
  const rows = a.size / k, count = rows * outFeatures;
  const fused = hasKernel("quadFormMse", a, b, gram, count);
  const [loss, f] = fused
    ? dispatch("quadFormMse", a, b, gram, count)
    : noGrad(() => {
      const delta = reshape(sub(a, b), [rows, k]);
      const fd = matmul(delta, gram);
      return [div(sum(mul(fd, delta)), count), fd] as const;
    });
  const out = record("quadFormMse", loss, [a, b], (dy, into) => {
    if (fused) {
      const da = a.requiresGrad ? dispatch("quadFormMseBackward", f, dy, count, false, into(0)) : null;
      const db = b.requiresGrad ? dispatch("quadFormMseBackward", f, dy, count, true, into(1)) : null;
      return [da, db];
    }
    const da = reshape(mul(f, mul(dy, 2 / count)), a.shape);
    return [a.requiresGrad ? da : null, b.requiresGrad ? neg(da) : null];
  });
  if (!out.requiresGrad) f.dispose(); // no backward will read it
  return out;
}
