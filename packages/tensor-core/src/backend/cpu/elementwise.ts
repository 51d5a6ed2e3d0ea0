// CPU elementwise kernels: unary maps and broadcasting binary ops. One loop per op (a switch outside the
// loop, never a per-element closure), with fast paths for equal shapes, a scalar operand and a broadcast
// row (the bias / gain pattern), and a general strided odometer otherwise. Float32 add / sub / mul / div on those
// fast paths run on WebAssembly SIMD (elementwise-wasm.ts) from WASM_MIN elements, bit-identical to the loops.

import type { TypedArray } from "../../dtype.js";
import type { Shape } from "../../shape.js";
import { broadcastStrides } from "../../shape.js";
import { binaryWasm } from "./elementwise-wasm.js";
import { vectorKernels, type BinaryWasmOp } from "./wasm-vector.js";

export type UnaryKernel =
  | "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "abs" | "tanh" | "sigmoid" | "silu" | "relu" | "sign"
  | "square" | "reciprocal" | "copy";

export type BinaryKernel =
  | "add" | "sub" | "mul" | "div" | "maximum" | "minimum" | "pow"
  | "eq" | "ne" | "lt" | "le" | "gt" | "ge";

export function unary(op: UnaryKernel, x: TypedArray, out: TypedArray, n: number): void {
  switch (op) {
    case "neg": for (let i = 0; i < n; i++) out[i] = -x[i]!; break;
    case "exp": for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!); break;
    case "log": for (let i = 0; i < n; i++) out[i] = Math.log(x[i]!); break;
    case "sqrt": for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!); break;
    case "rsqrt": for (let i = 0; i < n; i++) out[i] = 1 / Math.sqrt(x[i]!); break;
    case "abs": for (let i = 0; i < n; i++) out[i] = Math.abs(x[i]!); break;
    case "tanh": for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!); break;
    case "sigmoid": for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-x[i]!)); break;
    case "silu": for (let i = 0; i < n; i++) { const v = x[i]!; out[i] = v / (1 + Math.exp(-v)); } break;
    case "relu": for (let i = 0; i < n; i++) { const v = x[i]!; out[i] = v > 0 ? v : 0; } break;
    case "sign": for (let i = 0; i < n; i++) out[i] = Math.sign(x[i]!); break;
    case "square": for (let i = 0; i < n; i++) { const v = x[i]!; out[i] = v * v; } break;
    case "reciprocal": for (let i = 0; i < n; i++) out[i] = 1 / x[i]!; break;
    case "copy": out.set(x.subarray(0, n)); break;
    default: op satisfies never;
  }
}

/** out = x ** p for a scalar exponent. */
export function powScalar(x: TypedArray, p: number, out: TypedArray, n: number): void {
  if (p === 2) for (let i = 0; i < n; i++) { const v = x[i]!; out[i] = v * v; }
  else if (p === 0.5) for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!);
  else if (p === -1) for (let i = 0; i < n; i++) out[i] = 1 / x[i]!;
  else for (let i = 0; i < n; i++) out[i] = Math.pow(x[i]!, p);
}

/** out[i] = a[i] op b[j] over contiguous ranges (j strides by `sb`: 1 = same shape, 0 = scalar). */
function run(op: BinaryKernel, a: TypedArray, ao: number, sa: number, b: TypedArray, bo: number, sb: number, out: TypedArray, oo: number, n: number): void {
  switch (op) {
    case "add": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! + b[bo + i * sb]!; break;
    case "sub": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! - b[bo + i * sb]!; break;
    case "mul": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! * b[bo + i * sb]!; break;
    case "div": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! / b[bo + i * sb]!; break;
    case "maximum": for (let i = 0; i < n; i++) { const x = a[ao + i * sa]!, y = b[bo + i * sb]!; out[oo + i] = x > y || Number.isNaN(x) ? x : y; } break;
    case "minimum": for (let i = 0; i < n; i++) { const x = a[ao + i * sa]!, y = b[bo + i * sb]!; out[oo + i] = x < y || Number.isNaN(x) ? x : y; } break;
    case "pow": for (let i = 0; i < n; i++) out[oo + i] = Math.pow(a[ao + i * sa]!, b[bo + i * sb]!); break;
    case "eq": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! === b[bo + i * sb]! ? 1 : 0; break;
    case "ne": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! !== b[bo + i * sb]! ? 1 : 0; break;
    case "lt": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! < b[bo + i * sb]! ? 1 : 0; break;
    case "le": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! <= b[bo + i * sb]! ? 1 : 0; break;
    case "gt": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! > b[bo + i * sb]! ? 1 : 0; break;
    case "ge": for (let i = 0; i < n; i++) out[oo + i] = a[ao + i * sa]! >= b[bo + i * sb]! ? 1 : 0; break;
    default: op satisfies never;
  }
}

/** Broadcasting binary op: a has shape aShape, b has bShape, out has outShape (already broadcast). */
export function binary(op: BinaryKernel, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape, out: TypedArray, outShape: Shape): void {
  const n = out.length;
  const na = a.length, nb = b.length;
  if (n === 0) return;
  if (n >= WASM_MIN && binaryF32Wasm(op, a, aShape, b, bShape, out, outShape)) return;
  if (na === n && nb === n) return run(op, a, 0, 1, b, 0, 1, out, 0, n);
  if (nb === 1 && na === n) return run(op, a, 0, 1, b, 0, 0, out, 0, n);
  if (na === 1 && nb === n) return run(op, a, 0, 0, b, 0, 1, out, 0, n);
  const last = outShape[outShape.length - 1]!;
  // Row broadcast: one operand is the full tensor, the other repeats every `nb` (or `na`) elements,
  // i.e. its shape is a suffix of the output's shape.
  if (na === n && nb > 0 && n % nb === 0 && isSuffix(bShape, outShape)) {
    for (let o = 0; o < n; o += nb) run(op, a, o, 1, b, 0, 1, out, o, nb);
    return;
  }
  if (nb === n && na > 0 && n % na === 0 && isSuffix(aShape, outShape)) {
    for (let o = 0; o < n; o += na) run(op, a, 0, 1, b, o, 1, out, o, na);
    return;
  }
  // General strided case: odometer over all but the last axis, inner loop over the last.
  const rank = outShape.length;
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const idx = new Array<number>(rank).fill(0);
  let ia = 0, ib = 0;
  const sal = sa[rank - 1]!, sbl = sb[rank - 1]!;
  for (let o = 0; o < n; o += last) {
    run(op, a, ia, sal, b, ib, sbl, out, o, last);
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      ia += sa[d]!;
      ib += sb[d]!;
      if (idx[d]! < outShape[d]!) break;
      ia -= sa[d]! * outShape[d]!;
      ib -= sb[d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
}

/** Below this many elements the TypeScript loop wins (no copies through wasm memory). */
const WASM_MIN = 2048;

function isWasmOp(op: BinaryKernel): op is BinaryWasmOp {
  return op === "add" || op === "sub" || op === "mul" || op === "div";
}

/** The float32 wasm fast paths (equal shapes, scalar, broadcast row of a multiple of 4); false when none applies. */
function binaryF32Wasm(op: BinaryKernel, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape, out: TypedArray, outShape: Shape): boolean {
  if (!isWasmOp(op) || !(a instanceof Float32Array) || !(b instanceof Float32Array) || !(out instanceof Float32Array)) return false;
  const n = out.length, na = a.length, nb = b.length;
  let which: "both" | "a" | "b";
  let row = 0;
  if (na === n && nb === n) which = "both";
  else if (na === n && (nb === 1 || (nb % 4 === 0 && nb > 0 && n % nb === 0 && isSuffix(bShape, outShape)))) [which, row] = ["a", nb];
  else if (nb === n && (na === 1 || (na % 4 === 0 && na > 0 && n % na === 0 && isSuffix(aShape, outShape)))) [which, row] = ["b", na];
  else return false;
  const k = vectorKernels();
  if (k === null) return false;
  binaryWasm(k, op, a, b, out, n, which, row);
  return true;
}

function isSuffix(s: Shape, full: Shape): boolean {
  // s, with leading 1s stripped, must equal the trailing dims of full.
  let k = 0;
  while (k < s.length && s[k] === 1) k++;
  const t = s.length - k;
  for (let i = 0; i < t; i++) if (s[k + i] !== full[full.length - t + i]) return false;
  return true;
}

/** out = cond ? a : b with broadcasting (all three already expanded to outShape by the caller). */
export function where(cond: TypedArray, a: TypedArray, b: TypedArray, out: TypedArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = cond[i] !== 0 ? a[i]! : b[i]!;
}
