/** Test fixtures shared by the op and kernel tests (not exported from the package). */
import { rng } from "../random.js";
import { Tensor, tensor } from "../tensor.js";

/** A tensor of the given shape with values uniform in [-scale, scale), reproducible from seed. */
export function uniformTensor(shape: readonly number[], seed: number, dtype: "float32" | "float64", scale = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = scale * (2 * r.uniform() - 1);
  return tensor(d, shape, { dtype });
}
