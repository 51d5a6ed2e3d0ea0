/**
 * Fused elementwise kernels behind the fused ops (ops/nn.ts): SwiGLU forward/backward in one pass each, the MSE sum
 * of squared differences and its gradient, quadFormMse's float64 dot and scale-add (quad-form.ts), and the sum of
 * squares and scaling of gradient clipping (optim.ts). Each has a TypeScript loop (the reference; float64 and the
 * no-wasm fallback) and, for float32, a WebAssembly SIMD path: a job of the row runtime (rows-runtime.ts), which
 * streams the operands through the vector module's memory in L2-sized chunks, spread over the worker pool when
 * large. Results depend only on the element (sums: on the fixed chunk order), never on threads.
 */
import type { Float } from "./gemm-runtime.js";
import { acquireForWorkers, release } from "./buffer-pool.js";
import { rowsRuntime, runRows } from "./rows-dispatch.js";
import { SUM_CHUNK } from "./rows-runtime.js";
import { vectorKernels, type VectorKernels } from "./wasm-vector.js";

function f32Kernels(...arrays: Float[]): VectorKernels | null {
  for (const a of arrays) if (!(a instanceof Float32Array)) return null;
  return vectorKernels();
}

function need(fn: string, name: string, arr: { length: number }, n: number): void {
  if (arr.length < n) throw new RangeError(`${fn}: ${name} needs ${n} elements, has ${arr.length}`);
}

/** out = silu(g) * u = g * sigmoid(g) * u. */
export function swigluForward(g: Float, u: Float, out: Float, n: number): void {
  need("swigluForward", "g", g, n);
  need("swigluForward", "u", u, n);
  need("swigluForward", "out", out, n);
  const rt = f32Kernels(g, u, out) !== null ? rowsRuntime() : null;
  if (rt !== null) {
    runRows(rt, { kind: "swiglu", gate: g as Float32Array, up: u as Float32Array, out: out as Float32Array, n }, n);
    return;
  }
  for (let i = 0; i < n; i++) {
    const x = g[i]!;
    out[i] = (x / (1 + Math.exp(-x))) * u[i]!;
  }
}

/**
 * With s = sigmoid(g): du = dy * g * s, dg = dy * u * s * (1 + g * (1 - s)); with `addG` / `addU` added into what dg /
 * du hold (each sum the float32 (or float64) addition of the two values, as a separate add would give). `product`,
 * unless null, gets silu(g) * u with swigluForward's bits (the SwiGLU product recomputed in the same pass).
 */
export function swigluBackward(
  g: Float, u: Float, dy: Float, dg: Float, du: Float, n: number, addG = false, addU = false, product: Float | null = null,
): void {
  for (const [name, a] of [["g", g], ["u", u], ["dy", dy], ["dg", dg], ["du", du]] as const) need("swigluBackward", name, a, n);
  if (product !== null) need("swigluBackward", "product", product, n);
  const rt = f32Kernels(g, u, dy, dg, du, ...(product === null ? [] : [product])) !== null ? rowsRuntime() : null;
  if (rt !== null) {
    const job = {
      kind: "swigluGrad", gate: g as Float32Array, up: u as Float32Array, dy: dy as Float32Array,
      dGate: dg as Float32Array, dUp: du as Float32Array, n, addGate: addG, addUp: addU, product: product as Float32Array | null,
    } as const;
    runRows(rt, job, n);
    return;
  }
  const round = dg instanceof Float32Array ? Math.fround : (v: number) => v;
  for (let i = 0; i < n; i++) {
    const x = g[i]!;
    const s = 1 / (1 + Math.exp(-x));
    const ds = dy[i]! * s;
    if (product !== null) product[i] = (x / (1 + Math.exp(-x))) * u[i]!; // swigluForward's expression
    const vu = round(ds * x), vg = round(ds * u[i]! * (1 + x * (1 - s)));
    du[i] = addU ? du[i]! + vu : vu;
    dg[i] = addG ? dg[i]! + vg : vg;
  }
}

/**
 * sum over i < n of x[i]^2, accumulated in float64 (gradient-norm clipping). The JavaScript loop runs at ~4 ns per
 * element here (a float32 load and a dependent float64 add per element); the wasm path (the vector module's `sumsq`,
 * float64 lanes, on the row runtime: partial sums of SUM_CHUNK elements, added in order) at ~0.4 ns.
 */
export function sumSquares(x: Float, n: number): number {
  need("sumSquares", "x", x, n);
  const rt = f32Kernels(x) !== null ? rowsRuntime() : null;
  if (rt !== null) return partialSums(n, (parts) => runRows(rt, { kind: "sumsq", x: x as Float32Array, n, parts }, n));
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i]! * x[i]!;
  return s;
}

/** x[i] *= c for i < n, in place (float32 arithmetic with c rounded to float32, as torch's `mul_` by a float32 scalar). */
export function scaleInPlace(x: Float, n: number, c: number): void {
  scaleInto(x, c, x, n, false);
}

/**
 * out[i] = c x[i], or out[i] += c x[i] with `add`, for i < n; out may be x. Float32: c rounded to float32 first and
 * each product rounded to float32 before the add (the values of a scale then an add); float64: plain.
 */
export function scaleInto(x: Float, c: number, out: Float, n: number, add: boolean): void {
  need("scaleInto", "x", x, n);
  need("scaleInto", "out", out, n);
  const rt = f32Kernels(x, out) !== null ? rowsRuntime() : null;
  if (rt !== null) {
    runRows(rt, { kind: "scale", x: x as Float32Array, c, out: out as Float32Array, add, n }, n);
    return;
  }
  const f32 = out instanceof Float32Array;
  const cc = f32 ? Math.fround(c) : c;
  if (f32 && add) for (let i = 0; i < n; i++) out[i] += Math.fround(cc * x[i]!);
  else if (add) for (let i = 0; i < n; i++) out[i] += cc * x[i]!;
  else for (let i = 0; i < n; i++) out[i] = cc * x[i]!;
}

/** The float64 total of the partial sums `run` writes, one per SUM_CHUNK elements of n, added in order. */
function partialSums(n: number, run: (parts: Float64Array) => void): number {
  const items = Math.ceil(n / SUM_CHUNK);
  const parts = acquireForWorkers("float64", items);
  try {
    run(parts);
    let total = 0;
    for (let t = 0; t < items; t++) total += parts[t]!;
    return total;
  } finally {
    release(parts);
  }
}

/**
 * sum over i < n of (a[i] - b[i])^2, accumulated in float64 (float32: partial sums of SUM_CHUNK elements on the row
 * runtime, added in order).
 */
export function sqDiffSum(a: Float, b: Float, n: number): number {
  need("sqDiffSum", "a", a, n);
  need("sqDiffSum", "b", b, n);
  const rt = f32Kernels(a, b) !== null ? rowsRuntime() : null;
  if (rt !== null) return partialSums(n, (parts) => runRows(rt, { kind: "sqdiff", a: a as Float32Array, b: b as Float32Array, n, parts }, n));
  let s = 0;
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    s += d * d;
  }
  return s;
}

/**
 * sum over i < n of a[i] b[i], accumulated in float64 (each product of two float32 values exact). Float32 with the
 * wasm kernels: partial sums of SUM_CHUNK elements on the row runtime (each in the vector module's `dot` order: four
 * float64 lanes of the elements i = j mod 4, then (lane 0 + lane 2) + (lane 1 + lane 3)), added in order; otherwise
 * one float64 sum in index order. quadFormMse's Σ F ⊙ Δ.
 */
export function dotSum(a: Float, b: Float, n: number): number {
  need("dotSum", "a", a, n);
  need("dotSum", "b", b, n);
  const rt = f32Kernels(a, b) !== null ? rowsRuntime() : null;
  if (rt !== null) return partialSums(n, (parts) => runRows(rt, { kind: "dot", a: a as Float32Array, b: b as Float32Array, n, parts }, n));
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i]! * b[i]!;
  return s;
}

/** da = c * (a - b), db = -da (either may be null to skip it). */
export function diffScale(a: Float, b: Float, c: number, da: Float | null, db: Float | null, n: number): void {
  need("diffScale", "a", a, n);
  need("diffScale", "b", b, n);
  if (da !== null) need("diffScale", "da", da, n);
  if (db !== null) need("diffScale", "db", db, n);
  const rt = f32Kernels(a, b, ...(da === null ? [] : [da]), ...(db === null ? [] : [db])) !== null ? rowsRuntime() : null;
  if (rt !== null) {
    runRows(rt, { kind: "diffscale", a: a as Float32Array, b: b as Float32Array, c, da: da as Float32Array | null, db: db as Float32Array | null, n }, n);
    return;
  }
  for (let i = 0; i < n; i++) {
    const d = c * (a[i]! - b[i]!);
    if (da !== null) da[i] = d;
    if (db !== null) db[i] = -d;
  }
}
