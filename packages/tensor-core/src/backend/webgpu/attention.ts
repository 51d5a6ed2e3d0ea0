// Causal GQA attention on the WebGPU backend, flash-style: scores are never written to global memory. Shapes
// and semantics are the cpu kernels' (backend/cpu/attention.ts): q, out, dout, dq [B, H, T, dh]; k, v, dk, dv
// [B, Hkv, S, dh]; lse [B, H, T]; query row t sits at position offset + t and sees keys j <= offset + t (keys past offset + T, if
// any, are seen by no query and get zero gradients).
//
// Forward: a workgroup takes 64 query rows of one (b, h), one row per invocation (q and the output accumulator
// in registers), and walks the key / value rows in tiles staged in workgroup memory, with the online softmax
// (running max and sum). Backward: one kernel recomputes each query row's probabilities tile by tile for dq
// (and saves D = rowsum(dout * out)); a second takes 64 key rows of one (b, kv head) per workgroup, walks the
// query rows of every head in the group that see them (tiles of q, dout, lse, D in workgroup memory) and
// accumulates dk and dv in registers, so no atomics are needed. dh is baked into the WGSL (register arrays).

import type { WebGpuBuffer, WebGpuDevice } from "./device.js";
import { paramsWgsl } from "./device.js";
import { SPECIAL_FLOATS } from "./elementwise.js";

export interface AttentionParams {
  q: WebGpuBuffer; k: WebGpuBuffer; v: WebGpuBuffer; out: WebGpuBuffer; lse: WebGpuBuffer;
  B: number; H: number; Hkv: number; T: number; S: number; dh: number; scale: number; offset: number;
}

export interface AttentionBackwardParams extends AttentionParams {
  dout: WebGpuBuffer; dq: WebGpuBuffer; dk: WebGpuBuffer; dv: WebGpuBuffer;
}

const SPEC = { T: "u32", S: "u32", H: "u32", Hkv: "u32", offset: "u32", scale: "f32" } as const;
const ROWS = 64;

function check(fn: string, p: AttentionParams, extra: Record<string, [WebGpuBuffer, number]> = {}): void {
  const { B, H, Hkv, T, S, dh, offset } = p;
  for (const [name, v] of Object.entries({ B, H, Hkv, T, S, dh, offset }))
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`webgpu ${fn}: ${name} must be a non-negative integer, got ${v}`);
  if (Hkv === 0 || H % Hkv !== 0) throw new RangeError(`webgpu ${fn}: H ${H} is not a multiple of Hkv ${Hkv}`);
  if (offset + T > S) throw new RangeError(`webgpu ${fn}: offset ${offset} + T ${T} is more than S ${S} keys`);
  const sizes: Record<string, [WebGpuBuffer, number]> = {
    q: [p.q, B * H * T * dh], k: [p.k, B * Hkv * S * dh], v: [p.v, B * Hkv * S * dh], out: [p.out, B * H * T * dh], lse: [p.lse, B * H * T], ...extra,
  };
  for (const [name, [b, n]] of Object.entries(sizes)) if (b.length < n) throw new RangeError(`webgpu ${fn}: ${name} needs ${n} elements, has ${b.length}`);
}

/** Key (or query) rows per workgroup-memory tile: two dh-wide tiles within the device's workgroup storage. */
function tileRows(dev: WebGpuDevice, dh: number): number {
  return Math.max(1, Math.min(32, Math.floor((dev.limits.maxComputeWorkgroupStorageSize - 1024) / (8 * dh))));
}

const sources = new Map<string, string>();
function cached(key: string, make: () => string): string {
  let s = sources.get(key);
  if (s === undefined) sources.set(key, (s = make()));
  return s;
}

const dot = (a: string, b: string, DH: number): string => `var s = 0.0; for (var d = 0u; d < ${DH}u; d++) { s += ${a} * ${b}; }`;

/** The workgroup-memory key and value tiles of `keyTiles`: BK rows of dh each. */
function keyTileDecls(DH: number, BK: number): string {
  return `var<workgroup> Ks: array<f32, ${BK * DH}>;
var<workgroup> Vs: array<f32, ${BK * DH}>;`;
}

/**
 * The forward's and dq's walk over the key / value rows that a workgroup's 64 query rows see, BK rows at a
 * time staged in workgroup memory (Ks, Vs; zeros past S): for each key jj <= offset + t of a valid row t,
 * `body` runs with s = q . k_jj (q the row's registers; the row scaled or not, as the kernel holds it).
 */
function keyTiles(DH: number, BK: number, body: string): string {
  return `let last = p.offset + min(t0 + ${ROWS - 1}u, p.T - 1u);
  let kv = (b * p.Hkv + g) * p.S * ${DH}u;
  for (var j0 = 0u; j0 <= last; j0 += ${BK}u) {
    workgroupBarrier();
    for (var e = l; e < ${BK * DH}u; e += ${ROWS}u) {
      let j = j0 + e / ${DH}u;
      var kv_k = 0.0; var kv_v = 0.0;
      if (j < p.S) { kv_k = K[kv + j0 * ${DH}u + e]; kv_v = V[kv + j0 * ${DH}u + e]; }
      Ks[e] = kv_k; Vs[e] = kv_v;
    }
    workgroupBarrier();
    if (valid) {
      let lim = p.offset + t;
      for (var jj = 0u; jj < ${BK}u; jj++) {
        if (j0 + jj > lim) { break; }
        ${dot("q[d]", `Ks[jj * ${DH}u + d]`, DH)}${body}
      }
    }
  }`;
}

function forwardSource(DH: number, BK: number): string {
  return `${paramsWgsl(SPEC)}
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<storage, read_write> LSE: array<f32>;
${SPECIAL_FLOATS}
${keyTileDecls(DH, BK)}

@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let t0 = wg.x * ${ROWS}u; let h = wg.y; let b = wg.z;
  let g = h / (p.H / p.Hkv);
  let t = t0 + l;
  let valid = t < p.T;
  let qo = ((b * p.H + h) * p.T + t) * ${DH}u;
  var q: array<f32, ${DH}>;
  var acc: array<f32, ${DH}>;
  if (valid) { for (var d = 0u; d < ${DH}u; d++) { q[d] = Q[qo + d] * p.scale; } }
  var m = -inff();
  var sum = 0.0;
  ${keyTiles(DH, BK, `
        let mn = max(m, s);
        let corr = exp(m - mn);
        let pj = exp(s - mn);
        sum = sum * corr + pj;
        for (var d = 0u; d < ${DH}u; d++) { acc[d] = acc[d] * corr + pj * Vs[jj * ${DH}u + d]; }
        m = mn;`)}
  if (valid) {
    for (var d = 0u; d < ${DH}u; d++) { O[qo + d] = acc[d] / sum; }
    LSE[(b * p.H + h) * p.T + t] = m + log(sum);
  }
}
`;
}

/** out and lse (the log-sum-exp of each row's scaled scores). */
export function attentionForward(dev: WebGpuDevice, p: AttentionParams): void {
  check("attentionForward", p);
  if (p.B * p.H * p.T === 0) return;
  if (p.dh === 0) throw new RangeError("webgpu attentionForward: dh must be positive");
  const BK = tileRows(dev, p.dh);
  dev.dispatch({
    source: cached(`fwd ${p.dh} ${BK}`, () => forwardSource(p.dh, BK)),
    params: { spec: SPEC, values: { T: p.T, S: p.S, H: p.H, Hkv: p.Hkv, offset: p.offset, scale: p.scale } },
    bindings: [p.q, p.k, p.v, p.out, p.lse],
    groups: [Math.ceil(p.T / ROWS), p.H, p.B],
  });
}

function dqSource(DH: number, BK: number): string {
  return `${paramsWgsl(SPEC)}
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> O: array<f32>;
@group(0) @binding(5) var<storage, read> LSE: array<f32>;
@group(0) @binding(6) var<storage, read> DO: array<f32>;
@group(0) @binding(7) var<storage, read_write> DQ: array<f32>;
@group(0) @binding(8) var<storage, read_write> Dr: array<f32>;
${keyTileDecls(DH, BK)}

@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let t0 = wg.x * ${ROWS}u; let h = wg.y; let b = wg.z;
  let g = h / (p.H / p.Hkv);
  let t = t0 + l;
  let valid = t < p.T;
  let row = (b * p.H + h) * p.T + t;
  let qo = row * ${DH}u;
  var q: array<f32, ${DH}>;
  var dout: array<f32, ${DH}>;
  var dq: array<f32, ${DH}>;
  var Dt = 0.0;
  var lse = 0.0;
  if (valid) {
    for (var d = 0u; d < ${DH}u; d++) { q[d] = Q[qo + d]; dout[d] = DO[qo + d]; Dt += dout[d] * O[qo + d]; }
    lse = LSE[row];
    Dr[row] = Dt;
  }
  ${keyTiles(DH, BK, `
        let pr = exp(s * p.scale - lse);
        var dp = 0.0;
        for (var d = 0u; d < ${DH}u; d++) { dp += dout[d] * Vs[jj * ${DH}u + d]; }
        let ds = pr * (dp - Dt);
        for (var d = 0u; d < ${DH}u; d++) { dq[d] += ds * Ks[jj * ${DH}u + d]; }`)}
  if (valid) { for (var d = 0u; d < ${DH}u; d++) { DQ[qo + d] = dq[d] * p.scale; } }
}
`;
}

function dkvSource(DH: number, BQ: number): string {
  return `${paramsWgsl(SPEC)}
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> LSE: array<f32>;
@group(0) @binding(5) var<storage, read> DO: array<f32>;
@group(0) @binding(6) var<storage, read> Dr: array<f32>;
@group(0) @binding(7) var<storage, read_write> DK: array<f32>;
@group(0) @binding(8) var<storage, read_write> DV: array<f32>;
var<workgroup> Qs: array<f32, ${BQ * DH}>;
var<workgroup> DOs: array<f32, ${BQ * DH}>;
var<workgroup> Ls: array<f32, ${BQ}>;
var<workgroup> Ds: array<f32, ${BQ}>;

@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let j0 = wg.x * ${ROWS}u; let g = wg.y; let b = wg.z;
  let group = p.H / p.Hkv;
  let j = j0 + l;
  let valid = j < p.S;
  let ko = ((b * p.Hkv + g) * p.S + j) * ${DH}u;
  var k: array<f32, ${DH}>;
  var v: array<f32, ${DH}>;
  var dk: array<f32, ${DH}>;
  var dv: array<f32, ${DH}>;
  if (valid) { for (var d = 0u; d < ${DH}u; d++) { k[d] = K[ko + d]; v[d] = V[ko + d]; } }
  // The first query row that sees key j0: t >= j0 - offset.
  var tStart = 0u;
  if (j0 > p.offset) { tStart = ((j0 - p.offset) / ${BQ}u) * ${BQ}u; }
  for (var hh = 0u; hh < group; hh++) {
    let h = g * group + hh;
    let rowBase = (b * p.H + h) * p.T;
    for (var t0 = tStart; t0 < p.T; t0 += ${BQ}u) {
      workgroupBarrier();
      for (var e = l; e < ${BQ * DH}u; e += ${ROWS}u) {
        let t = t0 + e / ${DH}u;
        var qv = 0.0; var dov = 0.0;
        if (t < p.T) { qv = Q[(rowBase + t0) * ${DH}u + e]; dov = DO[(rowBase + t0) * ${DH}u + e]; }
        Qs[e] = qv; DOs[e] = dov;
      }
      for (var e = l; e < ${BQ}u; e += ${ROWS}u) {
        var lv = 0.0; var dv0 = 0.0;
        if (t0 + e < p.T) { lv = LSE[rowBase + t0 + e]; dv0 = Dr[rowBase + t0 + e]; }
        Ls[e] = lv; Ds[e] = dv0;
      }
      workgroupBarrier();
      if (valid) {
        for (var tt = 0u; tt < ${BQ}u; tt++) {
          let t = t0 + tt;
          if (t >= p.T) { break; }
          if (p.offset + t < j) { continue; }
          ${dot(`Qs[tt * ${DH}u + d]`, "k[d]", DH)}
          let pr = exp(s * p.scale - Ls[tt]);
          var dp = 0.0;
          for (var d = 0u; d < ${DH}u; d++) { dp += DOs[tt * ${DH}u + d] * v[d]; }
          let ds = pr * (dp - Ds[tt]);
          for (var d = 0u; d < ${DH}u; d++) {
            dv[d] += pr * DOs[tt * ${DH}u + d];
            dk[d] += ds * Qs[tt * ${DH}u + d];
          }
        }
      }
    }
  }
  if (valid) {
    for (var d = 0u; d < ${DH}u; d++) { DK[ko + d] = dk[d] * p.scale; DV[ko + d] = dv[d]; }
  }
}
`;
}

/** dq, dk, dv (overwritten) from dout and the forward's out and lse. */
export function attentionBackward(dev: WebGpuDevice, p: AttentionBackwardParams): void {
  const { B, H, Hkv, T, S, dh } = p;
  check("attentionBackward", p, { dout: [p.dout, B * H * T * dh], dq: [p.dq, B * H * T * dh], dk: [p.dk, B * Hkv * S * dh], dv: [p.dv, B * Hkv * S * dh] });
  if (B * Hkv * S * dh === 0) return;
  const tile = tileRows(dev, dh);
  const params = { spec: SPEC, values: { T, S, H, Hkv, offset: p.offset, scale: p.scale } };
  const D = dev.alloc(B * H * T);
  dev.dispatch({
    source: cached(`dq ${dh} ${tile}`, () => dqSource(dh, tile)),
    params, bindings: [p.q, p.k, p.v, p.out, p.lse, p.dout, p.dq, D], groups: [Math.ceil(T / ROWS), H, B],
  });
  dev.dispatch({
    source: cached(`dkv ${dh} ${tile}`, () => dkvSource(dh, tile)),
    params, bindings: [p.q, p.k, p.v, p.lse, p.dout, D, p.dk, p.dv], groups: [Math.ceil(S / ROWS), Hkv, B],
  });
  D.free();
}
