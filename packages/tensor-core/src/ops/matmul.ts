// matmul with numpy semantics (batched, broadcasting batch dims, 1-D operands promoted and squeezed) and
// transpose flags, all running on one gemm kernel that is equally fast for A B, A^T B and A B^T, which is
// what the backward pass needs. A bfloat16 or float16 operand (frozen weights, dtype.ts) with a float32 one gives float32.

import { isHalf, resultDType } from "../dtype.js";
import { record } from "../autodiff/tape.js";
import { dispatch } from "../backend/dispatch.js";
import { broadcastShapes, fmt, sizeOf } from "../shape.js";
import { Tensor } from "../tensor.js";
import { broadcastTo, reshape } from "./movement.js";
import { sumTo } from "./reduce.js";

export interface MatmulOptions {
  /** Use a's last two axes transposed. */
  transA?: boolean;
  /** Use b's last two axes transposed. */
  transB?: boolean;
}

/** a @ b (numpy matmul); with transA / transB the last two axes of that operand are swapped first. */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  if (a.rank === 0 || b.rank === 0) throw new RangeError(`matmul: scalars not allowed, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  if (a.dtype === "int32" || b.dtype === "int32") throw new TypeError(`matmul: expects float tensors, got ${a.dtype} and ${b.dtype}`);
  // A bfloat16 / float16 operand (frozen weights) is widened exactly inside the gemm and multiplies float32 into float32.
  const half = isHalf(a.dtype) ? a.dtype : isHalf(b.dtype) ? b.dtype : null;
  if (half !== null && (a.dtype === "float64" || b.dtype === "float64"))
    throw new TypeError(`matmul: a ${half} operand multiplies float32 tensors only, got ${a.dtype} and ${b.dtype}`);
  if (half === null) resultDType("matmul", a.dtype, b.dtype);
  // 1-D cases: a [k] -> [1, k]; b [k] -> [k, 1]; the added axis is removed from the result.
  const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]!]) : a;
  const b2 = b.rank === 1 ? reshape(b, [b.shape[0]!, 1]) : b;
  const out = matmulNd(a2, b2, a.rank === 1 ? false : transA, b.rank === 1 ? false : transB);
  if (a.rank === 1 && b.rank === 1) return reshape(out, []);
  if (a.rank === 1) return reshape(out, [...out.shape.slice(0, -2), out.shape[out.rank - 1]!]);
  if (b.rank === 1) return reshape(out, out.shape.slice(0, -1));
  return out;
}

function matmulNd(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  const [ar, ac] = [a.shape[a.rank - 2]!, a.shape[a.rank - 1]!];
  const [br, bc] = [b.shape[b.rank - 2]!, b.shape[b.rank - 1]!];
  const m = transA ? ac : ar, k = transA ? ar : ac;
  const k2 = transB ? bc : br, n = transB ? br : bc;
  if (k !== k2)
    throw new RangeError(`matmul: inner dimensions differ: ${fmt(a.shape)}${transA ? "^T" : ""} @ ${fmt(b.shape)}${transB ? "^T" : ""} (${k} vs ${k2})`);
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  const batchShape = broadcastShapes("matmul", aBatch, bBatch);
  const batch = sizeOf(batchShape);
  // Batch broadcasting: an operand whose batch is all ones is shared (stride 0); any other partial
  // broadcast is materialised.
  const aFull = sizeOf(aBatch) === 1 || sizeOf(aBatch) === batch ? a : broadcastTo(a, [...batchShape, ar, ac]);
  const bFull = sizeOf(bBatch) === 1 || sizeOf(bBatch) === batch ? b : broadcastTo(b, [...batchShape, br, bc]);
  const strideA = sizeOf(aFull.shape.slice(0, -2)) === 1 ? 0 : ar * ac;
  const strideB = sizeOf(bFull.shape.slice(0, -2)) === 1 ? 0 : br * bc;
  const outShape = [...batchShape, m, n];
  const out = dispatch("gemm", aFull, bFull, { batch, m, n, k, transA, transB, strideA, strideB }, outShape);
  // With C = op(A) op(B):  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC; each case below is that identity
  // rewritten with transpose flags so no transpose is materialised.
  // Only the gradients the tape will use are computed: with a frozen operand (LRC's teacher weights in
  // W_student = W_teacher P) its product would be a full matmul thrown away.
  return record("matmul", out, [a, b], (dy) => {
    let da: Tensor | null = null, db: Tensor | null = null;
    const needA = a.requiresGrad, needB = b.requiresGrad;
    if (!transA && !transB) {
      if (needA) da = matmulNd(dy, b, false, true);
      if (needB) db = matmulNd(a, dy, true, false);
    } else if (transA && !transB) {
      if (needA) da = matmulNd(b, dy, false, true);
      if (needB) db = matmulNd(a, dy, false, false);
    } else if (!transA && transB) {
      if (needA) da = matmulNd(dy, b, false, false);
      if (needB) db = matmulNd(dy, a, true, false);
    } else {
      if (needA) da = matmulNd(b, dy, true, true);
      if (needB) db = matmulNd(dy, a, true, true);
    }
    return [da === null ? null : sumTo(da, a.shape), db === null ? null : sumTo(db, b.shape)];
  });
}
