// Batched matmul on the WebGPU backend: C_i = alpha op(A_i) op(B_i) (+ C_i), op = optional transpose, the same
// contract as the cpu gemm (strides and offsets in elements). Two kernel designs, chosen per adapter:
//
// - "tiled" (real GPUs): 64 x 64 output tiles per 16 x 16 workgroup, 4 x 4 outputs per invocation in registers,
//   A and B staged through workgroup memory in 16-deep k slabs, stored k-major as vec4 so the inner loop reads one
//   vec4 of A and one of B per k step; an operand whose rows are whole vec4s is loaded as vec4. The transposes only change how a slab is loaded (each load walks the
//   operand's contiguous axis), so the backward products run the same inner loop as the forward one.
// - "texture" (software adapters such as lavapipe): op(A) and op(B) are first packed into rgba32float textures
//   (zero-padded, one array layer per batch entry); each invocation then computes an 8 x 8 block from texel loads,
//   with no workgroup memory. lavapipe turns every buffer or workgroup-memory load with a computed address into a
//   per-lane scalar loop while texel loads stay vectorised (docs/webgpu-facts.md), so this one is ~3x faster there.
//
// WGSL is generated per (design, transposes, operand types); shapes are uniforms, so one pipeline serves every
// shape. A and B may be 16-bit buffers (bfloat16 or float16: a frozen teacher weight), widened to float32 as they
// are read (half16.ts); C and every sum are float32, so the result equals the float32 kernel's on the widened
// operands, bit for bit.

import type { WebGpuDevice, WebGpuBuffer } from "./device.js";
import { paramsWgsl } from "./device.js";
import { enableF16, operandType, operandWgsl, type OperandType } from "./half16.js";

export type MatmulVariant = "tiled" | "texture";

export interface MatmulParams {
  a: WebGpuBuffer; b: WebGpuBuffer; c: WebGpuBuffer;
  batch: number; m: number; n: number; k: number;
  transA: boolean; transB: boolean;
  strideA: number; strideB: number; strideC: number;
  offsetA?: number; offsetB?: number; offsetC?: number;
  accumulate?: boolean; alpha?: number;
}

const OUT_SPEC = { m: "u32", n: "u32", k: "u32", strideA: "u32", strideB: "u32", strideC: "u32", offsetA: "u32", offsetB: "u32", offsetC: "u32", accumulate: "u32", alpha: "f32" } as const;

/** The design `auto` takes on an adapter: texture tiles on software adapters, workgroup-memory tiles on GPUs. */
export function defaultMatmulVariant(dev: WebGpuDevice): MatmulVariant {
  return dev.adapter.software ? "texture" : "tiled";
}

const timedChoice = new Map<string, { choice: MatmulVariant; ms: Record<MatmulVariant, number> }>();

/**
 * Times both designs on an n x n x n product (each compiled and run once first, then the median of three runs)
 * and returns the faster, cached per adapter name and n for the life of the process: the choice tfjs-webgpu and
 * TVM make by measuring rather than by name.
 */
export async function timeMatmulDesigns(dev: WebGpuDevice, n = 512): Promise<{ choice: MatmulVariant; ms: Record<MatmulVariant, number> }> {
  const key = `${dev.adapter.name} ${n}`;
  const hit = timedChoice.get(key);
  if (hit !== undefined) return hit;
  const data = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const [a, b, c] = [dev.upload(data), dev.upload(data), dev.alloc(n * n)];
  const p = { a, b, c, batch: 1, m: n, n, k: n, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 };
  const ms = { tiled: 0, texture: 0 };
  try {
    for (const v of ["tiled", "texture"] as const) {
      matmul(dev, p, v);
      await dev.finish();
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        matmul(dev, p, v);
        await dev.finish();
        runs.push(performance.now() - t0);
      }
      ms[v] = runs.sort((x, y) => x - y)[1]!;
    }
  } finally {
    a.free(); b.free(); c.free();
  }
  const r = { choice: ms.texture < ms.tiled ? "texture" as const : "tiled" as const, ms };
  timedChoice.set(key, r);
  return r;
}

/** Whether the texture design can hold these operands within the device's texture limits. */
function textureFits(dev: WebGpuDevice, p: MatmulParams): boolean {
  const l = dev.limits;
  const kq = Math.ceil(p.k / 4);
  return Math.max(kq, roundUp(p.m, 8), 2 * Math.ceil(p.n / 8), roundUp(p.k, 4)) <= l.maxTextureDimension2D && p.batch <= l.maxTextureArrayLayers;
}

/** Records the matmul into the device's batch. */
export function matmul(dev: WebGpuDevice, p: MatmulParams, variant: MatmulVariant = defaultMatmulVariant(dev)): void {
  const { batch, m, n, k } = p;
  for (const [name, v] of Object.entries({ batch, m, n, k, strideA: p.strideA, strideB: p.strideB, strideC: p.strideC, offsetA: p.offsetA ?? 0, offsetB: p.offsetB ?? 0, offsetC: p.offsetC ?? 0 }))
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`webgpu matmul: ${name} must be a non-negative integer, got ${v}`);
  const need = (name: string, buf: WebGpuBuffer, offset: number, stride: number, size: number): void => {
    const end = batch === 0 || size === 0 ? 0 : offset + (batch - 1) * stride + size;
    if (end > buf.length) throw new RangeError(`webgpu matmul: ${name} needs ${end} elements, has ${buf.length}`);
  };
  need("a", p.a, p.offsetA ?? 0, p.strideA, m * k);
  need("b", p.b, p.offsetB ?? 0, p.strideB, k * n);
  need("c", p.c, p.offsetC ?? 0, p.strideC, m * n);
  if (p.c.dtype !== "float32") throw new TypeError(`webgpu matmul: c must be a float32 buffer, got ${p.c.dtype}`);
  if (batch > 1 && p.strideC < m * n) throw new RangeError(`webgpu matmul: strideC ${p.strideC} < m*n = ${m * n}; batch outputs would overlap`);
  if (batch === 0 || m === 0 || n === 0) return;
  const values = {
    m, n, k, strideA: p.strideA, strideB: p.strideB, strideC: p.strideC, offsetA: p.offsetA ?? 0, offsetB: p.offsetB ?? 0,
    offsetC: p.offsetC ?? 0, accumulate: p.accumulate === true ? 1 : 0, alpha: p.alpha ?? 1,
  };
  const ta = operandType(dev, p.a.dtype), tb = operandType(dev, p.b.dtype);
  if (variant === "texture" && textureFits(dev, p)) return matmulTexture(dev, p, values, ta, tb);
  dev.dispatch({
    source: tiledSource(p.transA, p.transB, vec4Ok(p.transA ? m : k, p.offsetA ?? 0, p.strideA), vec4Ok(p.transB ? k : n, p.offsetB ?? 0, p.strideB), ta, tb),
    params: { spec: OUT_SPEC, values },
    bindings: [p.a, p.b, p.c],
    groups: [Math.ceil(n / 64), Math.ceil(m / 64), batch],
  });
}

// ---- tiled: workgroup-memory tiles ----

const tiledSources = new Map<string, string>();

/**
 * Whether an operand can be read as vec4: its contiguous axis (k for A, n for B untransposed; m for A, k for B
 * transposed) a multiple of 4, and its offset and batch stride too, so every vec4 lies inside one row.
 */
function vec4Ok(contiguous: number, offset: number, stride: number): boolean {
  return contiguous % 4 === 0 && offset % 4 === 0 && stride % 4 === 0;
}

function tiledSource(transA: boolean, transB: boolean, vecA: boolean, vecB: boolean, ta: OperandType, tb: OperandType): string {
  const key = `${transA}${transB}${vecA}${vecB}${ta}${tb}`;
  const cached = tiledSources.get(key);
  if (cached !== undefined) return cached;
  // A slab: 64 rows x 16 k, B slab: 16 k x 64 columns, 1024 elements each: 4 scalar loads per invocation walking
  // the operand's contiguous axis, or one vec4 load.
  const scalarA = transA
    ? "let i = e % 64u; let kk = e / 64u; let gk = k0 + kk; let gi = row0 + i;\n      var v = 0.0; if (gi < p.m && gk < p.k) { v = ldA(p.offsetA + bz * p.strideA + gk * p.m + gi); }\n      As[kk * 16u + i / 4u][i % 4u] = v;"
    : "let kk = e % 16u; let i = e / 16u; let gk = k0 + kk; let gi = row0 + i;\n      var v = 0.0; if (gi < p.m && gk < p.k) { v = ldA(p.offsetA + bz * p.strideA + gi * p.k + gk); }\n      As[kk * 16u + i / 4u][i % 4u] = v;";
  const scalarB = transB
    ? "let kk = e % 16u; let j = e / 16u; let gk = k0 + kk; let gj = col0 + j;\n      var v = 0.0; if (gj < p.n && gk < p.k) { v = ldB(p.offsetB + bz * p.strideB + gj * p.k + gk); }\n      Bs[kk * 16u + j / 4u][j % 4u] = v;"
    : "let j = e % 64u; let kk = e / 64u; let gk = k0 + kk; let gj = col0 + j;\n      var v = 0.0; if (gj < p.n && gk < p.k) { v = ldB(p.offsetB + bz * p.strideB + gk * p.n + gj); }\n      Bs[kk * 16u + j / 4u][j % 4u] = v;";
  // vec4: transposed A / untransposed B load a whole row quad of the slab; the others four k values of one row.
  const vecLoadA = transA
    ? "let kk = t / 16u; let iq = t % 16u; let gk = k0 + kk;\n    var v = vec4<f32>(0.0); if (row0 + iq * 4u < p.m && gk < p.k) { v = ldA((p.offsetA + bz * p.strideA + gk * p.m + row0 + iq * 4u) / 4u); }\n    As[kk * 16u + iq] = v;"
    : "let i = t / 4u; let kq = t % 4u; let gk = k0 + kq * 4u; let gi = row0 + i;\n    var v = vec4<f32>(0.0); if (gi < p.m && gk < p.k) { v = ldA((p.offsetA + bz * p.strideA + gi * p.k + gk) / 4u); }\n    for (var c = 0u; c < 4u; c++) { As[(kq * 4u + c) * 16u + i / 4u][i % 4u] = v[c]; }";
  const vecLoadB = transB
    ? "let j = t / 4u; let kq = t % 4u; let gk = k0 + kq * 4u; let gj = col0 + j;\n    var v = vec4<f32>(0.0); if (gj < p.n && gk < p.k) { v = ldB((p.offsetB + bz * p.strideB + gj * p.k + gk) / 4u); }\n    for (var c = 0u; c < 4u; c++) { Bs[(kq * 4u + c) * 16u + j / 4u][j % 4u] = v[c]; }"
    : "let kk = t / 16u; let jq = t % 16u; let gk = k0 + kk;\n    var v = vec4<f32>(0.0); if (col0 + jq * 4u < p.n && gk < p.k) { v = ldB((p.offsetB + bz * p.strideB + gk * p.n + col0 + jq * 4u) / 4u); }\n    Bs[kk * 16u + jq] = v;";
  const loadA = vecA ? `    { ${vecLoadA} }` : `    for (var q = 0u; q < 4u; q++) {\n      let e = t + q * 256u;\n      ${scalarA}\n    }`;
  const loadB = vecB ? `    { ${vecLoadB} }` : `    for (var q = 0u; q < 4u; q++) {\n      let e = t + q * 256u;\n      ${scalarB}\n    }`;
  const src = `${enableF16(ta, tb)}${paramsWgsl(OUT_SPEC)}${operandWgsl("A", 1, ta, vecA)}${operandWgsl("B", 2, tb, vecB)}@group(0) @binding(3) var<storage, read_write> C: array<f32>;
var<workgroup> As: array<vec4<f32>, 256>; // [16 k][16 row quads]
var<workgroup> Bs: array<vec4<f32>, 256>; // [16 k][16 col quads]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let bz = wg.z;
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.k; k0 += 16u) {
${loadA}
${loadB}
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = As[kk * 16u + lid.y];
      let b = Bs[kk * 16u + lid.x];
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  let cBase = p.offsetC + bz * p.strideC;
  for (var r = 0u; r < 4u; r++) {
    let gi = row0 + lid.y * 4u + r;
    if (gi >= p.m) { break; }
    for (var c = 0u; c < 4u; c++) {
      let gj = col0 + lid.x * 4u + c;
      if (gj < p.n) {
        let idx = cBase + gi * p.n + gj;
        var v = p.alpha * acc[r][c];
        if (p.accumulate != 0u) { v += C[idx]; }
        C[idx] = v;
      }
    }
  }
}
`;
  tiledSources.set(key, src);
  return src;
}

// ---- texture: operands packed into rgba32float textures, 8 x 8 register blocks ----

const PACK_SPEC = { rows: "u32", cols: "u32", offset: "u32", stride: "u32", trans: "u32" } as const;

/** Texel (x, y, layer) = M[y, 4x .. 4x+3] of M = op(src) (rows x cols), zero outside it; src of any operand type. */
const packSource = (t: OperandType): string => `${enableF16(t)}${paramsWgsl(PACK_SPEC)}${operandWgsl("S", 1, t, false)}@group(0) @binding(2) var T: texture_storage_2d_array<rgba32float, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let size = textureDimensions(T);
  if (g.x >= size.x || g.y >= size.y) { return; }
  var v = vec4<f32>(0.0);
  let r = g.y;
  for (var q = 0u; q < 4u; q++) {
    let c = g.x * 4u + q;
    if (r < p.rows && c < p.cols) {
      let base = p.offset + g.z * p.stride;
      if (p.trans != 0u) { v[q] = ldS(base + c * p.rows + r); } else { v[q] = ldS(base + r * p.cols + c); }
    }
  }
  textureStore(T, vec2<u32>(g.x, g.y), g.z, v);
}
`;

const TEX_SPEC = { m: "u32", n: "u32", kq: "u32", strideC: "u32", offsetC: "u32", accumulate: "u32", alpha: "f32" } as const;

function textureSource(): string {
  const lines: string[] = [];
  for (let r = 0; r < 8; r++) lines.push(`    let a${r} = textureLoad(TA, vec2<u32>(q, row0 + ${r}u), bz, 0);`);
  for (let s = 0; s < 4; s++) for (let c = 0; c < 2; c++) lines.push(`    let b${s}${c} = textureLoad(TB, vec2<u32>(cq0 + ${c}u, q * 4u + ${s}u), bz, 0);`);
  for (let r = 0; r < 8; r++)
    for (let c = 0; c < 2; c++) lines.push(`    acc${r}${c} += a${r}.x * b0${c} + a${r}.y * b1${c} + a${r}.z * b2${c} + a${r}.w * b3${c};`);
  const decl = Array.from({ length: 16 }, (_, i) => `  var acc${Math.floor(i / 2)}${i % 2} = vec4<f32>(0.0);`).join("\n");
  const store: string[] = [];
  for (let r = 0; r < 8; r++) for (let c = 0; c < 2; c++) store.push(`  put(cBase, row0 + ${r}u, (cq0 + ${c}u) * 4u, acc${r}${c});`);
  return `${paramsWgsl(TEX_SPEC)}
@group(0) @binding(1) var TA: texture_2d_array<f32>;
@group(0) @binding(2) var TB: texture_2d_array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

fn put(cBase: u32, i: u32, j0: u32, v: vec4<f32>) {
  if (i >= p.m) { return; }
  for (var c = 0u; c < 4u; c++) {
    let j = j0 + c;
    if (j < p.n) {
      let idx = cBase + i * p.n + j;
      var o = p.alpha * v[c];
      if (p.accumulate != 0u) { o += C[idx]; }
      C[idx] = o;
    }
  }
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let bz = g.z;
  let row0 = g.y * 8u;
  let cq0 = g.x * 2u;
  if (row0 >= p.m || cq0 * 4u >= p.n) { return; }
${decl}
  for (var q = 0u; q < p.kq; q++) {
${lines.join("\n")}
  }
  let cBase = p.offsetC + bz * p.strideC;
${store.join("\n")}
}
`;
}

let textureSourceCached: string | null = null;
const packSources = new Map<OperandType, string>();

function matmulTexture(dev: WebGpuDevice, p: MatmulParams, values: Record<string, number>, ta: OperandType, tb: OperandType): void {
  const { batch, m, n, k } = p;
  const kq = Math.ceil(k / 4);
  const texA = dev.texture(Math.max(1, kq), roundUp(m, 8), batch);
  const texB = dev.texture(2 * Math.ceil(n / 8), Math.max(4, roundUp(k, 4)), batch);
  const pack = (src: WebGpuBuffer, ty: OperandType, t: GPUTexture, rows: number, cols: number, offset: number, stride: number, trans: boolean): void => {
    let source = packSources.get(ty);
    if (source === undefined) packSources.set(ty, (source = packSource(ty)));
    dev.dispatch({
      source,
      params: { spec: PACK_SPEC, values: { rows, cols, offset, stride, trans: trans ? 1 : 0 } },
      bindings: [src, t.createView({ dimension: "2d-array" })],
      groups: [Math.ceil(t.width / 8), Math.ceil(t.height / 8), batch],
    });
  };
  pack(p.a, ta, texA.texture, m, k, p.offsetA ?? 0, p.strideA, p.transA);
  pack(p.b, tb, texB.texture, k, n, p.offsetB ?? 0, p.strideB, p.transB);
  dev.dispatch({
    source: (textureSourceCached ??= textureSource()),
    params: { spec: TEX_SPEC, values: { m, n, kq, strideC: values.strideC!, offsetC: values.offsetC!, accumulate: values.accumulate!, alpha: values.alpha! } },
    bindings: [texA.texture.createView({ dimension: "2d-array" }), texB.texture.createView({ dimension: "2d-array" }), p.c],
    groups: [Math.ceil(n / 64), Math.ceil(m / 64), batch],
  });
  dev.releaseTexture(texA);
  dev.releaseTexture(texB);
}

function roundUp(x: number, q: number): number {
  return Math.ceil(x / q) * q;
}
