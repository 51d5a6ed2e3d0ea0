// Row kernels and reductions of the WebGPU backend: one 256-invocation workgroup per row (or per reduced output),
// each invocation striding over the row, the partial results combined by a tree in workgroup memory, or, where the
// device has subgroups (WebGpuDevice.features), by subgroupAdd / subgroupMax / subgroupMin within each subgroup
// and once more over the subgroups' partials: two barriers instead of the tree's nine. Softmax and
// log-softmax (forward, backward), cross-entropy, temperature KL, RMSNorm (forward, backward, and the weight
// gradient as a column sum) and sum / max / min over [outer, r, inner]. Same contracts as the cpu kernels of
// the same names (backend/cpu/rows.ts, reduce.ts), except that cross-entropy's count of non-ignored rows is the
// caller's (the targets are on the host where it needs it) and a target out of range gives NaN, not an error.

import type { ReduceKernel } from "../cpu/reduce.js";
import type { WebGpuBuffer, ParamSpec, WebGpuDevice } from "./device.js";
import { paramsWgsl } from "./device.js";
import { bufferDecls, bufferExtensions, SPECIAL_FLOATS, type BufferList } from "./elementwise.js";

const PLAIN_TREE = `var<workgroup> red: array<f32, 256>;
fn wgSum(v: f32, l: u32) -> f32 {
  red[l] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { red[l] = red[l] + red[l + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wgMax(v: f32, l: u32) -> f32 {
  red[l] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { red[l] = max(red[l], red[l + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wgMin(v: f32, l: u32) -> f32 {
  red[l] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { red[l] = min(red[l], red[l + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

/**
 * wgSum / wgMax / wgMin with subgroups: each subgroup reduces its lanes, its first lane writes the result to
 * red[subgroup_id]; then every subgroup reduces those partials (each lane takes every sgSize-th one) the same way,
 * so every lane of the workgroup gets the result. The sgLane, sgId, sgCount and sgSize privates are set by main().
 */
function subgroupTree(): string {
  const fn = (name: string, op: string, identity: string, combine: (a: string, b: string) => string): string => `fn ${name}(v: f32, l: u32) -> f32 {
  let s = ${op}(v);
  if (sgLane == 0u) { red[sgId] = s; }
  workgroupBarrier();
  var t = ${identity};
  for (var i = sgLane; i < sgCount; i += sgSize) { t = ${combine("t", "red[i]")}; }
  let r = ${op}(t);
  workgroupBarrier();
  return r;
}
`;
  return `var<workgroup> red: array<f32, 256>;
var<private> sgLane: u32;
var<private> sgId: u32;
var<private> sgCount: u32;
var<private> sgSize: u32;
${fn("wgSum", "subgroupAdd", "0.0", (a, b) => `${a} + ${b}`)}${fn("wgMax", "subgroupMax", "-inff()", (a, b) => `max(${a}, ${b})`)}${fn("wgMin", "subgroupMin", "inff()", (a, b) => `min(${a}, ${b})`)}`;
}

const SUBGROUP_MAIN = `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) l: u32,
        @builtin(subgroup_invocation_id) sgl: u32, @builtin(subgroup_id) sgi: u32, @builtin(num_subgroups) sgn: u32, @builtin(subgroup_size) sgs: u32) {
  sgLane = sgl; sgId = sgi; sgCount = sgn; sgSize = sgs;`;

const PLAIN_MAIN = `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) l: u32) {`;

/** The row helpers shared by every kernel of the file (after the tree). */
const ROW_HELPERS = `/** max over x[o + j * scale] for j < n (scale: 1 / temperature). */
fn rowMax(o: u32, n: u32, scale: f32, l: u32) -> f32 {
  var m = -0x1.fffffep+127f;
  for (var j = l; j < n; j += 256u) { m = max(m, X[o + j] * scale); }
  return wgMax(m, l);
}
`;

const sources = new Map<string, string>();

/** A kernel run by one workgroup per row (p.rows rows); `body` sees row `r` and lane `l`. */
function rowKernel(dev: WebGpuDevice, name: string, spec: ParamSpec, bufs: BufferList, body: string, helpers = ""): (values: Record<string, number>, bindings: WebGpuBuffer[]) => void {
  const full = { rows: "u32", ...spec } as const;
  const sg = dev.features.subgroups;
  const key = `${name} ${sg ? "subgroups" : "plain"}`;
  let source = sources.get(key);
  if (source === undefined) {
    source = `${sg ? "enable subgroups;\n" : ""}${bufferExtensions(bufs)}// ${key}\n${paramsWgsl(full)}${bufferDecls(bufs)}\n${SPECIAL_FLOATS}${sg ? subgroupTree() : PLAIN_TREE}${ROW_HELPERS}${helpers}
${sg ? SUBGROUP_MAIN : PLAIN_MAIN}
  let r = wg.x + wg.y * nwg.x;
  if (r >= p.rows) { return; }
${body}
}
`;
    sources.set(key, source);
  }
  const src = source;
  return (values, bindings) => {
    const rows = values["rows"]!;
    if (rows === 0) return;
    dev.dispatch({ source: src, params: { spec: full, values }, bindings, groups: rows <= 65535 ? [rows, 1] : [65535, Math.ceil(rows / 65535)] });
  };
}

function need(fn: string, list: ReadonlyArray<readonly [string, WebGpuBuffer | null, number]>): void {
  for (const [name, b, n] of list) if (b !== null && b.length < n) throw new RangeError(`webgpu ${fn}: ${name} needs ${n} elements, has ${b.length}`);
}

export function softmaxRows(dev: WebGpuDevice, x: WebGpuBuffer, out: WebGpuBuffer, rows: number, cols: number): void {
  need("softmaxRows", [["x", x, rows * cols], ["out", out, rows * cols]]);
  rowKernel(dev, "softmax", { cols: "u32" }, [["X", "read"], ["O", "rw"]], `  let o = r * p.cols;
  let m = rowMax(o, p.cols, 1.0, l);
  var s = 0.0;
  for (var j = l; j < p.cols; j += 256u) { s += exp(X[o + j] - m); }
  let lse = m + log(wgSum(s, l));
  for (var j = l; j < p.cols; j += 256u) { O[o + j] = exp(X[o + j] - lse); }`)({ rows, cols }, [x, out]);
}

export function logSoftmaxRows(dev: WebGpuDevice, x: WebGpuBuffer, out: WebGpuBuffer, rows: number, cols: number): void {
  need("logSoftmaxRows", [["x", x, rows * cols], ["out", out, rows * cols]]);
  rowKernel(dev, "logSoftmax", { cols: "u32" }, [["X", "read"], ["O", "rw"]], `  let o = r * p.cols;
  let m = rowMax(o, p.cols, 1.0, l);
  var s = 0.0;
  for (var j = l; j < p.cols; j += 256u) { s += exp(X[o + j] - m); }
  let lse = m + log(wgSum(s, l));
  for (var j = l; j < p.cols; j += 256u) { O[o + j] = X[o + j] - lse; }`)({ rows, cols }, [x, out]);
}

/** dx = y * (dy - sum(dy * y)) with y = softmax(x). */
export function softmaxRowsBackward(dev: WebGpuDevice, y: WebGpuBuffer, dy: WebGpuBuffer, dx: WebGpuBuffer, rows: number, cols: number): void {
  need("softmaxRowsBackward", [["y", y, rows * cols], ["dy", dy, rows * cols], ["dx", dx, rows * cols]]);
  rowKernel(dev, "softmaxBackward", { cols: "u32" }, [["X", "read"], ["DY", "read"], ["DX", "rw"]], `  let o = r * p.cols;
  var s = 0.0;
  for (var j = l; j < p.cols; j += 256u) { s += DY[o + j] * X[o + j]; }
  let d = wgSum(s, l);
  for (var j = l; j < p.cols; j += 256u) { DX[o + j] = X[o + j] * (DY[o + j] - d); }`)({ rows, cols }, [y, dy, dx]);
}

/** dx = dy - exp(y) * sum(dy) with y = log_softmax(x). */
export function logSoftmaxRowsBackward(dev: WebGpuDevice, y: WebGpuBuffer, dy: WebGpuBuffer, dx: WebGpuBuffer, rows: number, cols: number): void {
  need("logSoftmaxRowsBackward", [["y", y, rows * cols], ["dy", dy, rows * cols], ["dx", dx, rows * cols]]);
  rowKernel(dev, "logSoftmaxBackward", { cols: "u32" }, [["X", "read"], ["DY", "read"], ["DX", "rw"]], `  let o = r * p.cols;
  var s = 0.0;
  for (var j = l; j < p.cols; j += 256u) { s += DY[o + j]; }
  let d = wgSum(s, l);
  for (var j = l; j < p.cols; j += 256u) { DX[o + j] = DY[o + j] - exp(X[o + j]) * d; }`)({ rows, cols }, [y, dy, dx]);
}

/** lossPerRow[r] = lse(logits[r]) - logits[r, t] (0 where t = ignoreIndex), lse[r] for every row. */
export function crossEntropyForward(dev: WebGpuDevice, logits: WebGpuBuffer, targets: WebGpuBuffer, rows: number, vocab: number, ignoreIndex: number, lossPerRow: WebGpuBuffer, lse: WebGpuBuffer): void {
  need("crossEntropyForward", [["logits", logits, rows * vocab], ["targets", targets, rows], ["lossPerRow", lossPerRow, rows], ["lse", lse, rows]]);
  rowKernel(dev, "crossEntropy", { vocab: "u32", ignore: "i32" }, [["X", "read"], ["Tg", "read", "i32"], ["L", "rw"], ["LSE", "rw"]], `  let o = r * p.vocab;
  let m = rowMax(o, p.vocab, 1.0, l);
  var s = 0.0;
  for (var j = l; j < p.vocab; j += 256u) { s += exp(X[o + j] - m); }
  let lse = m + log(wgSum(s, l));
  if (l == 0u) {
    LSE[r] = lse;
    let t = Tg[r];
    if (t == p.ignore) { L[r] = 0.0; }
    else if (t < 0 || u32(t) >= p.vocab) { L[r] = nanf(); }
    else { L[r] = lse - X[o + u32(t)]; }
  }`)({ rows, vocab, ignore: ignoreIndex }, [logits, targets, lossPerRow, lse]);
}

/** dlogits[r] = (softmax(logits[r]) - onehot(t)) * gradPerRow[r]; zero for ignored rows. */
export function crossEntropyBackward(dev: WebGpuDevice, logits: WebGpuBuffer, targets: WebGpuBuffer, lse: WebGpuBuffer, gradPerRow: WebGpuBuffer, dlogits: WebGpuBuffer, rows: number, vocab: number, ignoreIndex: number): void {
  need("crossEntropyBackward", [["logits", logits, rows * vocab], ["targets", targets, rows], ["lse", lse, rows], ["gradPerRow", gradPerRow, rows], ["dlogits", dlogits, rows * vocab]]);
  rowKernel(dev, "crossEntropyBackward", { vocab: "u32", ignore: "i32" }, [["X", "read"], ["Tg", "read", "i32"], ["LSE", "read"], ["G", "read"], ["DX", "rw"]], `  let o = r * p.vocab;
  let t = Tg[r];
  let g = select(G[r], 0.0, t == p.ignore);
  let lse = LSE[r];
  for (var j = l; j < p.vocab; j += 256u) {
    DX[o + j] = (exp(X[o + j] - lse) - select(0.0, 1.0, i32(j) == t)) * g;
  }`)({ rows, vocab, ignore: ignoreIndex }, [logits, targets, lse, gradPerRow, dlogits]);
}

/** The two row log-sum-exps of teacher (X) and student (S) at temperature 1 / p.invT. */
const KL_LSE = `  let o = r * p.vocab;
  let mt = rowMax(o, p.vocab, p.invT, l);
  var ms = -0x1.fffffep+127f;
  for (var j = l; j < p.vocab; j += 256u) { ms = max(ms, S[o + j] * p.invT); }
  ms = wgMax(ms, l);
  var st = 0.0; var ss = 0.0;
  for (var j = l; j < p.vocab; j += 256u) { st += exp(X[o + j] * p.invT - mt); ss += exp(S[o + j] * p.invT - ms); }
  let lt = mt + log(wgSum(st, l));
  let ls = ms + log(wgSum(ss, l));
  var kl = 0.0;
  for (var j = l; j < p.vocab; j += 256u) {
    let lpt = X[o + j] * p.invT - lt;
    let pt = exp(lpt);
    if (pt > 0.0) { kl += pt * (lpt - (S[o + j] * p.invT - ls)); }
  }
  kl = wgSum(kl, l);`;

function checkTemperature(fn: string, t: number): void {
  if (!(t > 0) || !Number.isFinite(t)) throw new RangeError(`webgpu ${fn}: temperature must be a positive finite number, got ${t}`);
}

/** klPerRow[r] = sum_v pT (log pT - log pS), p = softmax(z / temperature). */
export function klDivForward(dev: WebGpuDevice, teacher: WebGpuBuffer, student: WebGpuBuffer, rows: number, vocab: number, temperature: number, klPerRow: WebGpuBuffer): void {
  checkTemperature("klDivForward", temperature);
  need("klDivForward", [["teacher", teacher, rows * vocab], ["student", student, rows * vocab], ["klPerRow", klPerRow, rows]]);
  rowKernel(dev, "kl", { vocab: "u32", invT: "f32" }, [["X", "read"], ["S", "read"], ["K", "rw"]], `${KL_LSE}
  if (l == 0u) { K[r] = kl; }`)({ rows, vocab, invT: 1 / temperature }, [teacher, student, klPerRow]);
}

/**
 * dStudent = g / T * (pS - pT); dTeacher = g / T * pT * ((log pT - log pS) - KL_row), skipped when null
 * (g = gradPerRow[r], T the temperature).
 */
export function klDivBackward(dev: WebGpuDevice, teacher: WebGpuBuffer, student: WebGpuBuffer, rows: number, vocab: number, temperature: number, gradPerRow: WebGpuBuffer, dStudent: WebGpuBuffer | null, dTeacher: WebGpuBuffer | null): void {
  checkTemperature("klDivBackward", temperature);
  need("klDivBackward", [["teacher", teacher, rows * vocab], ["student", student, rows * vocab], ["gradPerRow", gradPerRow, rows], ["dStudent", dStudent, rows * vocab], ["dTeacher", dTeacher, rows * vocab]]);
  const outs: Array<readonly [string, "rw"]> = [];
  const binds: WebGpuBuffer[] = [teacher, student, gradPerRow];
  let write = "";
  if (dStudent !== null) {
    outs.push(["DS", "rw"]);
    binds.push(dStudent);
    write += "    DS[o + j] = c * (ps - pt);\n";
  }
  if (dTeacher !== null) {
    outs.push(["DT", "rw"]);
    binds.push(dTeacher);
    write += "    DT[o + j] = c * pt * ((lpt - lps) - kl);\n";
  }
  if (write === "") return;
  const name = `klBackward ${dStudent !== null} ${dTeacher !== null}`;
  rowKernel(dev, name, { vocab: "u32", invT: "f32" }, [["X", "read"], ["S", "read"], ["G", "read"], ...outs], `${KL_LSE}
  let c = G[r] * p.invT;
  for (var j = l; j < p.vocab; j += 256u) {
    let lpt = X[o + j] * p.invT - lt;
    let lps = S[o + j] * p.invT - ls;
    let pt = exp(lpt);
    let ps = exp(lps);
${write}  }`)({ rows, vocab, invT: 1 / temperature }, binds);
}

/** HF RMSNorm: out = w * (x * rsqrt(mean(x^2) + eps)), rstd[r] saved. */
export function rmsNormForward(dev: WebGpuDevice, x: WebGpuBuffer, w: WebGpuBuffer, out: WebGpuBuffer, rstd: WebGpuBuffer, rows: number, dim: number, eps: number): void {
  need("rmsNormForward", [["x", x, rows * dim], ["w", w, dim], ["out", out, rows * dim], ["rstd", rstd, rows]]);
  rowKernel(dev, "rmsNorm", { dim: "u32", eps: "f32" }, [["X", "read"], ["W", "read"], ["O", "rw"], ["R", "rw"]], `  let o = r * p.dim;
  var s = 0.0;
  for (var j = l; j < p.dim; j += 256u) { let v = X[o + j]; s += v * v; }
  let rs = 1.0 / sqrt(wgSum(s, l) / f32(p.dim) + p.eps);
  if (l == 0u) { R[r] = rs; }
  for (var j = l; j < p.dim; j += 256u) { O[o + j] = W[j] * (X[o + j] * rs); }`)({ rows, dim, eps }, [x, w, out, rstd]);
}

/** dx = r * w * dy - r^3 * x * sum(w * dy * x) / dim; dw = sum over rows of dy * x * r (overwritten; skipped when null). */
export function rmsNormBackward(dev: WebGpuDevice, dy: WebGpuBuffer, x: WebGpuBuffer, w: WebGpuBuffer, rstd: WebGpuBuffer, dx: WebGpuBuffer, dw: WebGpuBuffer | null, rows: number, dim: number): void {
  need("rmsNormBackward", [["dy", dy, rows * dim], ["x", x, rows * dim], ["w", w, dim], ["rstd", rstd, rows], ["dx", dx, rows * dim], ["dw", dw, dim]]);
  rowKernel(dev, "rmsNormBackward", { dim: "u32" }, [["DY", "read"], ["X", "read"], ["W", "read"], ["R", "read"], ["DX", "rw"]], `  let o = r * p.dim;
  let rs = R[r];
  var s = 0.0;
  for (var j = l; j < p.dim; j += 256u) { s += W[j] * DY[o + j] * X[o + j]; }
  let c = rs * rs * rs * wgSum(s, l) / f32(p.dim);
  for (var j = l; j < p.dim; j += 256u) { DX[o + j] = rs * W[j] * DY[o + j] - c * X[o + j]; }`)({ rows, dim }, [dy, x, w, rstd, dx]);
  if (dw === null || dim === 0) return;
  // dw[j]: one workgroup per column, the rows split over its lanes and combined by the tree.
  rowKernel(dev, "rmsNormWeightGrad", { count: "u32" }, [["DY", "read"], ["X", "read"], ["R", "read"], ["DW", "rw"]], `  var s = 0.0;
  for (var i = l; i < p.count; i += 256u) { let o = i * p.rows + r; s += DY[o] * (X[o] * R[i]); }
  s = wgSum(s, l);
  if (l == 0u) { DW[r] = s; }`)({ rows: dim, count: rows }, [dy, x, rstd, dw]);
}

/** out[o, i] = op over j of x[o, j, i] for x viewed as [outer, r, inner]. */
export function reduce(dev: WebGpuDevice, op: ReduceKernel, x: WebGpuBuffer, out: WebGpuBuffer, outer: number, r: number, inner: number): void {
  need("reduce", [["x", x, outer * r * inner], ["out", out, outer * inner]]);
  const init = { sum: "0.0", max: "-inff()", min: "inff()" }[op];
  const step = { sum: "a + v", max: "max(a, v)", min: "min(a, v)" }[op];
  const tree = { sum: "wgSum", max: "wgMax", min: "wgMin" }[op];
  rowKernel(dev, `reduce ${op}`, { r: "u32", inner: "u32" }, [["X", "read"], ["O", "rw"]], `  let oo = r / p.inner; let ii = r % p.inner;
  var a = ${init};
  for (var j = l; j < p.r; j += 256u) { let v = X[(oo * p.r + j) * p.inner + ii]; a = ${step}; }
  a = ${tree}(a, l);
  if (l == 0u) { O[r] = a; }`)({ rows: outer * inner, r, inner }, [x, out]);
}

const CHUNK = 8192;

/**
 * out[0] = scale * sum((a - b)^2) over n elements (b null: sum(a^2)): per-chunk sums by workgroup trees, then
 * their sum.
 */
export function sqDiffSum(dev: WebGpuDevice, a: WebGpuBuffer, b: WebGpuBuffer | null, out: WebGpuBuffer, n: number, scale: number): void {
  need("sqDiffSum", [["a", a, n], ["b", b, n], ["out", out, 1]]);
  const chunks = Math.max(1, Math.ceil(n / CHUNK));
  const part = dev.alloc(chunks);
  const [name, inputs, d] = b === null ? ["sqChunks", [a], "X[j]"] : ["sqDiffChunks", [a, b], "X[j] - B[j]"];
  rowKernel(dev, name, { n: "u32" }, [["X", "read"], ...(b === null ? [] : [["B", "read"] as const]), ["P", "rw"]], `  var s = 0.0;
  let end = min(p.n, (r + 1u) * ${CHUNK}u);
  for (var j = r * ${CHUNK}u + l; j < end; j += 256u) { let d = ${d}; s += d * d; }
  s = wgSum(s, l);
  if (l == 0u) { P[r] = s; }`)({ rows: chunks, n }, [...inputs, part]);
  rowKernel(dev, "sumScaled", { n: "u32", scale: "f32" }, [["X", "read"], ["O", "rw"]], `  var s = 0.0;
  for (var j = l; j < p.n; j += 256u) { s += X[j]; }
  s = wgSum(s, l);
  if (l == 0u) { O[0] = p.scale * s; }`)({ rows: 1, n: chunks, scale }, [part, out]);
  part.free();
}
