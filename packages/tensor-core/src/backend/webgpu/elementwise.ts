// Elementwise kernels of the WebGPU backend, one WGSL source per op generated here: unary maps, broadcasting
// binary ops (up to rank 6, strides as uniforms), where, SwiGLU forward/backward, rope, AdamW, accumulation
// (dst += alpha * src), strided copies and strided accumulation (the view ops and their gradients), and the
// embedding's gather (from a float32 or a 16-bit table) / scatter-add. Same contracts as the cpu kernels of the same names (backend/cpu).

import type { Shape } from "../../shape.js";
import { broadcastStrides } from "../../shape.js";
import type { UnaryKernel, BinaryKernel } from "../cpu/elementwise.js";
import type { AdamWOptions } from "../cpu/adamw.js";
import type { WebGpuBuffer, ParamSpec, WebGpuDevice } from "./device.js";
import { paramsWgsl } from "./device.js";
import { enableF16, operandType, operandWgsl, type OperandType } from "./half16.js";

const WG = 256;

/** Workgroups covering n invocations of a 256-wide 1-D kernel (2-D grid past 65535 workgroups). */
function grid(n: number): [number, number] {
  const groups = Math.ceil(n / WG);
  return groups <= 65535 ? [groups, 1] : [65535, Math.ceil(groups / 65535)];
}

/** WGSL: `let i = ...;` the flat invocation index of a kernel dispatched with grid(). */
const FLAT_INDEX = "let i = gid.x + gid.y * nwg.x * 256u;";
const FLAT_MAIN = "@compute @workgroup_size(256)\nfn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)";

/** A buffer binding's element type: f32 (the default), i32, or a 16-bit operand read through `ld<name>(i)` (half16.ts). */
export type BufferType = "f32" | "i32" | OperandType;
export type BufferList = ReadonlyArray<readonly [string, "read" | "rw", BufferType?]>;

/** Buffer bindings from 1, in order: the name, "read" or "rw", and the element type. */
export function bufferDecls(list: BufferList): string {
  return list.map(([name, mode, ty], i) => ty !== undefined && ty !== "f32" && ty !== "i32" ? operandWgsl(name, i + 1, ty, false).trimEnd()
    : `@group(0) @binding(${i + 1}) var<storage, ${mode === "read" ? "read" : "read_write"}> ${name}: array<${ty ?? "f32"}>;`).join("\n");
}

/** `enable f16;` when a binding of the list needs it. */
export function bufferExtensions(list: BufferList): string {
  return enableF16(...list.map(([, , ty]) => (ty === undefined || ty === "i32" ? "f32" : ty)));
}

/** NaN and infinity at run time (WGSL rejects them as constants). */
export const SPECIAL_FLOATS = `fn nanf() -> f32 { var b = 0x7fc00000u; return bitcast<f32>(b); }
fn inff() -> f32 { var b = 0x7f800000u; return bitcast<f32>(b); }
`;

const flatSources = new Map<string, string>();

/** A flat kernel over p.n elements: `body` runs for i < p.n; `name` identifies the source (built once). */
function flatKernel(dev: WebGpuDevice, name: string, spec: ParamSpec, bufs: BufferList, body: string, helpers = ""): (values: Record<string, number>, bindings: WebGpuBuffer[]) => void {
  let source = flatSources.get(name);
  if (source === undefined) flatSources.set(name, (source = `${bufferExtensions(bufs)}// ${name}\n${paramsWgsl({ n: "u32", ...spec })}${bufferDecls(bufs)}\n${SPECIAL_FLOATS}${helpers}\n${FLAT_MAIN} {\n  ${FLAT_INDEX}\n  if (i >= p.n) { return; }\n${body}\n}\n`));
  const src = source;
  return (values, bindings) => {
    const n = values["n"]!;
    if (n === 0) return;
    dev.dispatch({ source: src, params: { spec: { n: "u32", ...spec }, values }, bindings, groups: grid(n) });
  };
}

const UNARY: Record<UnaryKernel, string> = {
  neg: "-v", exp: "exp(v)", log: "log(v)", sqrt: "sqrt(v)", rsqrt: "1.0 / sqrt(v)", abs: "abs(v)", tanh: "tanh(v)",
  sigmoid: "1.0 / (1.0 + exp(-v))", silu: "v / (1.0 + exp(-v))", relu: "max(v, 0.0)", sign: "sign(v)",
  square: "v * v", reciprocal: "1.0 / v", copy: "v",
};

const BINARY: Record<BinaryKernel, string> = {
  add: "a + b", sub: "a - b", mul: "a * b", div: "a / b", maximum: "max(a, b)", minimum: "min(a, b)", pow: "powf(a, b)",
  eq: "select(0.0, 1.0, a == b)", ne: "select(0.0, 1.0, a != b)", lt: "select(0.0, 1.0, a < b)",
  le: "select(0.0, 1.0, a <= b)", gt: "select(0.0, 1.0, a > b)", ge: "select(0.0, 1.0, a >= b)",
};

/** Math.pow: a negative base with an integer exponent, NaN for a fractional one, infinity for 0 ** negative (sign of zero ignored). */
const POWF = `fn powf(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a == 0.0) { return select(0.0, inff(), b < 0.0); }
  let r = pow(abs(a), b);
  if (a >= 0.0) { return r; }
  if (b != round(b)) { return nanf(); }
  return select(r, -r, abs(b % 2.0) == 1.0);
}`;

const MAX_RANK = 6;

export function unary(dev: WebGpuDevice, op: UnaryKernel, x: WebGpuBuffer, out: WebGpuBuffer, n: number): void {
  flatKernel(dev, `unary ${op}`, {}, [["X", "read"], ["O", "rw"]], `  let v = X[i];\n  O[i] = ${UNARY[op]};`)({ n }, [x, out]);
}

/** out = x ** e for a scalar exponent. */
export function powScalar(dev: WebGpuDevice, x: WebGpuBuffer, e: number, out: WebGpuBuffer, n: number): void {
  flatKernel(dev, "powScalar", { e: "f32" }, [["X", "read"], ["O", "rw"]], "  O[i] = powf(X[i], p.e);", POWF)({ n, e }, [x, out]);
}

/** Broadcasting binary op (shapes as the cpu kernel takes them: out already broadcast, rank <= 6). */
export function binary(dev: WebGpuDevice, op: BinaryKernel, a: WebGpuBuffer, aShape: Shape, b: WebGpuBuffer, bShape: Shape, out: WebGpuBuffer, outShape: Shape): void {
  const n = outShape.reduce((s, d) => s * d, 1);
  if (outShape.length > MAX_RANK) throw new RangeError(`webgpu binary ${op}: rank ${outShape.length} > ${MAX_RANK}`);
  const pad = MAX_RANK - outShape.length;
  const dims = [...Array<number>(pad).fill(1), ...outShape];
  const sa = [...Array<number>(pad).fill(0), ...broadcastStrides(aShape, outShape)];
  const sb = [...Array<number>(pad).fill(0), ...broadcastStrides(bShape, outShape)];
  const spec: Record<string, "u32"> = {};
  const values: Record<string, number> = { n };
  for (let d = 0; d < MAX_RANK; d++) {
    spec[`d${d}`] = spec[`a${d}`] = spec[`b${d}`] = "u32";
    values[`d${d}`] = dims[d]!;
    values[`a${d}`] = sa[d]!;
    values[`b${d}`] = sb[d]!;
  }
  const walk = Array.from({ length: MAX_RANK }, (_, k) => MAX_RANK - 1 - k).map((d) =>
    `  { let c = rem % p.d${d}; rem = rem / p.d${d}; ia += c * p.a${d}; ib += c * p.b${d}; }`).join("\n");
  const body = `  var rem = i; var ia = 0u; var ib = 0u;\n${walk}\n  let a = A[ia]; let b = B[ib];\n  O[i] = ${BINARY[op]};`;
  flatKernel(dev, `binary ${op}`, spec, [["A", "read"], ["B", "read"], ["O", "rw"]], body, op === "pow" ? POWF : "")(values, [a, b, out]);
}

/** out = cond != 0 ? a : b (same length n). */
export function where(dev: WebGpuDevice, cond: WebGpuBuffer, a: WebGpuBuffer, b: WebGpuBuffer, out: WebGpuBuffer, n: number): void {
  flatKernel(dev, "where", {}, [["Cd", "read"], ["A", "read"], ["B", "read"], ["O", "rw"]], "  O[i] = select(B[i], A[i], Cd[i] != 0.0);")({ n }, [cond, a, b, out]);
}

/** dst[i] += alpha * src[i] (gradient accumulation). */
export function accumulate(dev: WebGpuDevice, dst: WebGpuBuffer, src: WebGpuBuffer, n: number, alpha = 1): void {
  flatKernel(dev, "accumulate", { alpha: "f32" }, [["S", "read"], ["D", "rw"]], "  D[i] = D[i] + p.alpha * S[i];")({ n, alpha }, [src, dst]);
}

/** x[i] *= c, in place (float32: c rounded to float32, as the cpu kernel). */
export function scaleInPlace(dev: WebGpuDevice, x: WebGpuBuffer, n: number, c: number): void {
  flatKernel(dev, "scale", { c: "f32" }, [["X", "rw"]], "  X[i] = X[i] * p.c;")({ n, c }, [x]);
}

/** The index of the first largest entry along r of [outer, r, inner] (as the cpu kernel: NaN never picked), into int32 [outer, inner]. */
export function argmax(dev: WebGpuDevice, x: WebGpuBuffer, out: WebGpuBuffer, outer: number, r: number, inner: number): void {
  flatKernel(dev, "argmax", { r: "u32", inner: "u32" }, [["X", "read"], ["O", "rw", "i32"]], `  let o = i / p.inner;
  let base = o * p.r * p.inner + (i - o * p.inner);
  var best = 0u;
  var bv = -inff();
  for (var j = 0u; j < p.r; j++) {
    let v = X[base + j * p.inner];
    if (v > bv) { bv = v; best = j; }
  }
  O[i] = i32(best);`)({ n: outer * inner, r, inner }, [x, out]);
}

/** float32 <-> int32 (float -> int truncates toward zero, saturating at the int32 range). */
export function astype(dev: WebGpuDevice, x: WebGpuBuffer, from: "f32" | "i32", out: WebGpuBuffer, n: number): void {
  if (from === "f32") flatKernel(dev, "astype f32 i32", {}, [["X", "read"], ["O", "rw", "i32"]], "  O[i] = i32(X[i]);")({ n }, [x, out]);
  else flatKernel(dev, "astype i32 f32", {}, [["X", "read", "i32"], ["O", "rw"]], "  O[i] = f32(X[i]);")({ n }, [x, out]);
}

/** da = c (a - b), db = -c (a - b) with c = 2 dy[0] / n (mean squared error's gradient); null outputs skipped. */
export function mseBackward(dev: WebGpuDevice, a: WebGpuBuffer, b: WebGpuBuffer, dy: WebGpuBuffer, da: WebGpuBuffer | null, db: WebGpuBuffer | null, n: number): void {
  const c = "let c = 2.0 * DY[0] / f32(p.n); let d = c * (A[i] - B[i]);";
  const io: Array<readonly [string, "read" | "rw"]> = [["A", "read"], ["B", "read"], ["DY", "read"]];
  if (da !== null && db !== null) flatKernel(dev, "mseBackward ab", {}, [...io, ["DA", "rw"], ["DB", "rw"]], `  ${c}\n  DA[i] = d; DB[i] = -d;`)({ n }, [a, b, dy, da, db]);
  else if (da !== null) flatKernel(dev, "mseBackward a", {}, [...io, ["DA", "rw"]], `  ${c}\n  DA[i] = d;`)({ n }, [a, b, dy, da]);
  else if (db !== null) flatKernel(dev, "mseBackward b", {}, [...io, ["DB", "rw"]], `  ${c}\n  DB[i] = -d;`)({ n }, [a, b, dy, db]);
}

/** out = silu(g) * u. */
export function swigluForward(dev: WebGpuDevice, g: WebGpuBuffer, u: WebGpuBuffer, out: WebGpuBuffer, n: number): void {
  flatKernel(dev, "swiglu", {}, [["G", "read"], ["U", "read"], ["O", "rw"]], "  let v = G[i];\n  O[i] = v / (1.0 + exp(-v)) * U[i];")({ n }, [g, u, out]);
}

/** dg = dy * u * silu'(g), du = dy * silu(g). */
export function swigluBackward(dev: WebGpuDevice, g: WebGpuBuffer, u: WebGpuBuffer, dy: WebGpuBuffer, dg: WebGpuBuffer, du: WebGpuBuffer, n: number): void {
  flatKernel(dev, "swigluBackward", {}, [["G", "read"], ["U", "read"], ["DY", "read"], ["DG", "rw"], ["DU", "rw"]],
    "  let v = G[i]; let s = 1.0 / (1.0 + exp(-v)); let d = DY[i];\n  DU[i] = d * v * s;\n  DG[i] = d * U[i] * s * (1.0 + v * (1.0 - s));")({ n }, [g, u, dy, dg, du]);
}

/** Rotary embedding in HF's rotate-half layout (see the cpu ropeForward); inverse rotates by -sin (the backward). */
export function ropeForward(dev: WebGpuDevice, x: WebGpuBuffer, cos: WebGpuBuffer, sin: WebGpuBuffer, out: WebGpuBuffer, outer: number, T: number, dh: number, inverse: boolean, posOffset = 0): void {
  if (dh % 2 !== 0) throw new RangeError(`webgpu ropeForward: dh must be even, got ${dh}`);
  if (cos.length < (posOffset + T) * dh || sin.length < (posOffset + T) * dh) throw new RangeError(`webgpu ropeForward: cos/sin need ${(posOffset + T) * dh} elements`);
  const half = dh / 2;
  flatKernel(dev, "rope", { T: "u32", dh: "u32", half: "u32", pos: "u32", sign: "f32" }, [["X", "read"], ["Cs", "read"], ["Sn", "read"], ["O", "rw"]],
    `  let j = i % p.half; let row = i / p.half; let t = row % p.T;
  let base = row * p.dh; let cb = (p.pos + t) * p.dh;
  let x1 = X[base + j]; let x2 = X[base + j + p.half];
  let o1 = x1 * Cs[cb + j] - x2 * (p.sign * Sn[cb + j]);
  let o2 = x2 * Cs[cb + j + p.half] + x1 * (p.sign * Sn[cb + j + p.half]);
  O[base + j] = o1;
  O[base + j + p.half] = o2;`)({ n: outer * T * half, T, dh, half, pos: posOffset, sign: inverse ? -1 : 1 }, [x, cos, sin, out]);
}

/** AdamW with decoupled weight decay and bias correction, in place on param, m, v (see the cpu adamwUpdate). */
export function adamwUpdate(dev: WebGpuDevice, param: WebGpuBuffer, grad: WebGpuBuffer, m: WebGpuBuffer, v: WebGpuBuffer, n: number, o: AdamWOptions): void {
  if (!Number.isInteger(o.step) || o.step < 1) throw new RangeError(`webgpu adamwUpdate: step must be an integer >= 1, got ${o.step}`);
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1)) throw new RangeError(`webgpu adamwUpdate: beta1 and beta2 must be in [0, 1), got ${o.beta1}, ${o.beta2}`);
  for (const [name, b] of [["param", param], ["grad", grad], ["m", m], ["v", v]] as const)
    if (b.length < n) throw new RangeError(`webgpu adamwUpdate: ${name} needs ${n} elements, has ${b.length}`);
  // torch's order of operations, as the cpu kernel: m = lerp(m, g, 1 - beta1), denom = sqrt(v) / sqrt(bc2) + eps.
  const w1 = 1 - o.beta1;
  flatKernel(dev, "adamw", { decay: "f32", w1: "f32", b1: "f32", b2: "f32", w2: "f32", step: "f32", bc2s: "f32", eps: "f32", low: "u32" }, [["P", "rw"], ["G", "read"], ["M", "rw"], ["V", "rw"]],
    `  let g = G[i];
  let pd = P[i] * p.decay;
  let mi = M[i];
  var mn = g - (g - mi) * p.b1;
  if (p.low != 0u) { mn = mi + p.w1 * (g - mi); }
  M[i] = mn;
  let vn = V[i] * p.b2 + p.w2 * g * g;
  V[i] = vn;
  P[i] = pd - (p.step * mn) / (sqrt(vn) / p.bc2s + p.eps);`)(
    {
      n, decay: 1 - o.lr * o.weightDecay, w1, b1: o.beta1, b2: o.beta2, w2: 1 - o.beta2, step: o.lr / (1 - o.beta1 ** o.step),
      bc2s: Math.sqrt(1 - o.beta2 ** o.step), eps: o.eps, low: w1 < 0.5 ? 1 : 0,
    }, [param, grad, m, v]);
}

/** The strides and dims of a rank <= 6 view as padded uniforms. */
function viewParams(outShape: Shape, strides: readonly number[], offset: number): { spec: Record<string, "u32">; values: Record<string, number> } {
  if (outShape.length > MAX_RANK) throw new RangeError(`webgpu strided copy: rank ${outShape.length} > ${MAX_RANK}`);
  const pad = MAX_RANK - outShape.length;
  const dims = [...Array<number>(pad).fill(1), ...outShape], st = [...Array<number>(pad).fill(0), ...strides];
  const spec: Record<string, "u32"> = { offset: "u32" };
  const values: Record<string, number> = { n: outShape.reduce((s, d) => s * d, 1), offset };
  for (let d = 0; d < MAX_RANK; d++) {
    spec[`d${d}`] = spec[`s${d}`] = "u32";
    values[`d${d}`] = dims[d]!;
    values[`s${d}`] = st[d]!;
  }
  return { spec, values };
}

const VIEW_WALK = `  var rem = i; var src = p.offset;
${Array.from({ length: MAX_RANK }, (_, k) => MAX_RANK - 1 - k).map((d) => `  { let c = rem % p.d${d}; rem = rem / p.d${d}; src += c * p.s${d}; }`).join("\n")}`;

/** out (contiguous, outShape) = x viewed at offset with `strides` (the cpu stridedCopy). */
export function stridedCopy(dev: WebGpuDevice, x: WebGpuBuffer, offset: number, strides: readonly number[], out: WebGpuBuffer, outShape: Shape): void {
  const { spec, values } = viewParams(outShape, strides, offset);
  const int = x.dtype === "int32" ? "i32" : "f32";
  flatKernel(dev, `stridedCopy ${int}`, spec, [["X", "read", int], ["O", "rw", int]], `${VIEW_WALK}\n  O[i] = X[src];`)(values, [x, out]);
}

/**
 * dst viewed at offset with `strides` += src (contiguous, srcShape): the gradient of a strided view. The view
 * must not alias itself (no element reached twice), as for every view made by slicing, transposing or expanding a
 * contiguous tensor without broadcast (broadcast gradients are reductions).
 */
export function stridedAddInto(dev: WebGpuDevice, src: WebGpuBuffer, srcShape: Shape, dst: WebGpuBuffer, offset: number, strides: readonly number[]): void {
  const { spec, values } = viewParams(srcShape, strides, offset);
  flatKernel(dev, "stridedAddInto", spec, [["S", "read"], ["D", "rw"]], `${VIEW_WALK}\n  D[src] = D[src] + S[i];`)(values, [src, dst]);
}

/** out[r] = x[idx[r]] for rows of `cols`; an index outside [0, rows) writes NaN (the caller validates indices on the host). */
/** out[i, :] = x[idx[i], :]; x float32 (or int32, copied as bits) or a 16-bit table widened into a float32 out. */
export function gatherRows(dev: WebGpuDevice, x: WebGpuBuffer, rows: number, cols: number, idx: WebGpuBuffer, out: WebGpuBuffer): void {
  const t = operandType(dev, x.dtype);
  if (t !== "f32" && out.dtype !== "float32") throw new TypeError(`webgpu gatherRows: a ${x.dtype} table gathers into a float32 buffer, got ${out.dtype}`);
  const load = t === "f32" ? "X[j]" : "ldX(j)";
  flatKernel(dev, `gatherRows ${t}`, { rows: "u32", cols: "u32" }, [["X", "read", t], ["I", "read", "i32"], ["O", "rw"]],
    `  let r = i / p.cols; let id = I[r];\n  if (id < 0 || u32(id) >= p.rows) { O[i] = nanf(); return; }\n  let j = u32(id) * p.cols + i % p.cols;\n  O[i] = ${load};`)({ n: idx.length * cols, rows, cols }, [x, idx, out]);
}

/**
 * dx[idx[r]] += dy[r] for every row r (the embedding gradient). One invocation per column walks the rows in
 * order, so repeated indices add up without atomics and in the cpu kernel's order.
 */
export function scatterAddRows(dev: WebGpuDevice, dy: WebGpuBuffer, cols: number, idx: WebGpuBuffer, dx: WebGpuBuffer): void {
  flatKernel(dev, "scatterAddRows", { count: "u32", cols: "u32" }, [["DY", "read"], ["I", "read", "i32"], ["DX", "rw"]],
    "  for (var r = 0u; r < p.count; r++) {\n    let o = u32(I[r]) * p.cols + i;\n    DX[o] = DX[o] + DY[r * p.cols + i];\n  }")({ n: cols, count: idx.length, cols }, [dy, idx, dx]);
}
