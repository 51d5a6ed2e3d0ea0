// The gpu backend's op implementations: each takes Tensors, makes sure the inputs are on the device
// (`dev`, the one place that uploads), runs a GPU.js kernel generated for this op and shape signature
// (constants baked into the source, compiled once and cached by the runtime) and returns a device-resident
// Tensor. `GpuOps` is the backend's kernel table (a `Partial<Kernels>`); the cases it does not take (float64,
// int operands, empty tensors) are refused by `gpujsAccepts` (backend.ts), and `dispatch` runs those on cpu,
// whose `.buf` reads download the inputs (the one place that downloads).
//
// Numerics: kernels read and write float32 (GL textures with precision 'single', WebAssembly f32).
// Reductions use blocked sums (blocks of 64 summed separately, then combined); softmax, log-softmax,
// cross-entropy, KL and attention subtract the row max before exponentiating.
//
// Work layout: a statistic of a row (log-sum-exp, rmsNorm's mean(w dy x), softmax's sum(dy y)) is computed
// once by a row kernel (one thread per row) and read by the elementwise kernel that follows, never
// recomputed per element. Matmuls from `tileMinWork` on compute a 2x2 tile of outputs per thread
// (`gemmTiled`), summing in the same order as the one-output kernel. Attention's products (q k^T, P v,
// dy v^T, dS k, dS^T q, P^T dy) are such matmuls over the kv heads, with the causal mask, scale and
// exponential fused into the output kernel (`GemmEpilogue`). The embedding gradient sums, per vocabulary
// row, only the positions that hit it (a CSR of the ids built on the host): O(V cols + N cols) work.

import type { DType } from "../../dtype.js";
import { release } from "../cpu/buffer-pool.js";
import { broadcastStrides } from "../../shape.js";
import { Tensor } from "../../tensor.js";
import type { AdamWHyper, AttentionDims, BinaryOp, GemmDims, KlForward, Kernels, ReduceOp, UnaryOp } from "../kernels.js";
import type { GpuBuffer, GpuRuntime } from "./runtime.js";

/** A float literal for generated kernel source. */
function lit(v: number): string {
  if (Number.isNaN(v)) return "(0.0 / 0.0)";
  if (!Number.isFinite(v)) return v > 0 ? "1e38" : "-1e38";
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** Source lines splitting flat index `v` into coordinates `c0..` of `shape` (floats, exact below 2^24). */
function coords(v: string, shape: readonly number[], prefix: string): string {
  const lines: string[] = [`let ${prefix}r = ${v};`];
  let stride = shape.reduce((a, b) => a * b, 1);
  shape.forEach((d, i) => {
    stride /= d;
    lines.push(`const ${prefix}${i} = Math.floor((${prefix}r + 0.5) / ${lit(stride)});`, `${prefix}r = ${prefix}r - ${prefix}${i} * ${lit(stride)};`);
  });
  return lines.join("\n");
}

function dot(prefix: string, strides: readonly number[]): string {
  const terms = strides.map((s, i) => (s === 0 ? null : `${prefix}${i} * ${lit(s)}`)).filter((t) => t !== null);
  // A constant index has no GPU.js GL overload; keep the thread index in it.
  return terms.length === 0 ? "(i * 0.0)" : terms.join(" + ");
}

function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
}

/**
 * Kernel source decoding the flat output index of a batched [batch, m, n] product into batch item `bi`, `row`,
 * `col` and the global row `gr` = bi * m + row (the gemm output and untile kernels share it).
 */
function outputIndex(m: number, n: number): string {
  return `const i = this.thread.x + 0.0;
      const bi = Math.floor((i + 0.5) / ${lit(m * n)});
      const rem = i - bi * ${lit(m * n)};
      const row = Math.floor((rem + 0.5) / ${lit(n)});
      const col = rem - row * ${lit(n)};
      const gr = bi * ${lit(m)} + row;`;
}

/**
 * Blocked sum over j in [0, n): `term` is an expression in j, after the statements `pre` (locals for it).
 * `end` (optional, an expression <= n) stops the sum early: the terms from `end` on must be exactly zero,
 * so skipping them leaves the result unchanged. `acc` must not be `part` (the block partial).
 */
function blockedSum(acc: string, n: number, term: string, pre = "", end: string | null = null): string {
  const stop = end === null ? "" : `if (j >= ${end}) { break; }`;
  if (n <= 64) return `let ${acc} = 0.0;\nfor (let jj = 0; jj < ${n}; jj++) { const j = jj + 0.0; ${stop} ${pre} ${acc} = ${acc} + (${term}); }`;
  const blocks = Math.ceil(n / 64);
  return `let ${acc} = 0.0;
for (let bb = 0; bb < ${blocks}; bb++) {
  ${end === null ? "" : `if (bb * 64.0 >= ${end}) { break; }`}
  let part = 0.0;
  for (let jj = 0; jj < 64; jj++) {
    const j = bb * 64.0 + jj;
    if (j < ${end ?? lit(n)}) { ${pre} part = part + (${term}); }
  }
  ${acc} = ${acc} + part;
}`;
}

/**
 * Blocked sums of several accumulators over j in [0, n), blocks of `block` steps: `body` (statements in
 * `j`) adds into the block partials `p<acc>`. With one step per k index and blocks of 64 this sums in the
 * same order as `blockedSum`; the last block is guarded only when n is not a multiple of the block.
 * `end` (optional, an expression <= n) stops early, as in `blockedSum`.
 */
function blockedSums(accs: readonly string[], n: number, block: number, j: string, body: string, end: string | null = null): string {
  const blocks = Math.ceil(n / block);
  const guarded = n % block === 0 && end === null ? body : `if (${j} < ${end ?? lit(n)}) {\n      ${body}\n    }`;
  return `${accs.map((a) => `let ${a} = 0.0;`).join(" ")}
for (let bb = 0; bb < ${blocks}; bb++) {
  ${end === null ? "" : `if (bb * ${lit(block)} >= ${end}) { break; }`}
  ${accs.map((a) => `let p${a} = 0.0;`).join(" ")}
  for (let jj = 0; jj < ${block}; jj++) {
    const ${j} = bb * ${lit(block)} + jj;
    ${guarded}
  }
  ${accs.map((a) => `${a} = ${a} + p${a};`).join(" ")}
}`;
}

/** Max over j in [0, n) of an expression in j. */
function rowMax(acc: string, n: number, term: string): string {
  return `let ${acc} = -1e38;\nfor (let jj = 0; jj < ${n}; jj++) { const j = jj + 0.0; ${acc} = Math.max(${acc}, ${term}); }`;
}

const unarySrc: Record<string, string> = {
  neg: "-x", exp: "Math.exp(x)", log: "Math.log(x)", sqrt: "Math.sqrt(x)", rsqrt: "1.0 / Math.sqrt(x)",
  abs: "Math.abs(x)", tanh: "Math.tanh(x)", sigmoid: "1.0 / (1.0 + Math.exp(-x))", silu: "x / (1.0 + Math.exp(-x))",
  relu: "Math.max(x, 0.0)", sign: "(x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0))", square: "x * x", reciprocal: "1.0 / x",
};

const binarySrc: Record<string, string> = {
  add: "a + b", sub: "a - b", mul: "a * b", div: "a / b", maximum: "Math.max(a, b)", minimum: "Math.min(a, b)",
  eq: "(a == b ? 1.0 : 0.0)", ne: "(a != b ? 1.0 : 0.0)", lt: "(a < b ? 1.0 : 0.0)", le: "(a <= b ? 1.0 : 0.0)",
  gt: "(a > b ? 1.0 : 0.0)", ge: "(a >= b ? 1.0 : 0.0)",
};

/** Entries summed by one thread of `sumSquares`'s first kernel. */
const SUMSQ_BLOCK = 4096;

export class GpuOps implements Partial<Kernels> {
  constructor(readonly rt: GpuRuntime) {}

  /** The device handle of t, uploading its host values on first use (kept until the host copy is taken). */
  private dev(t: Tensor): unknown {
    const s = t.storage;
    if (s === null || (s.data === null && s.device === null)) throw new Error(`tensor ${t.id} was disposed`);
    if (s.device === null) s.device = this.rt.upload(s.data!, t.size);
    return (s.device as GpuBuffer).handle;
  }

  private out(key: string, shape: readonly number[], dtype: DType, src: () => string, args: readonly unknown[]): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return Tensor.fromDevice(this.rt.run(`${key}|${n}`, n, src, args), shape, dtype);
  }

  unary(op: UnaryOp, x: Tensor): Tensor {
    const e = unarySrc[op]!;
    return this.out(`unary:${op}`, x.shape, "float32", () => `function (a) { const x = a[this.thread.x]; return ${e}; }`, [this.dev(x)]);
  }

  pow(x: Tensor, p: number): Tensor {
    const body = p === 2 ? "x * x" : p === 1 ? "x" : p === 0.5 ? "Math.sqrt(x)" : `Math.pow(x, ${lit(p)})`;
    return this.out(`pow:${p}`, x.shape, "float32", () => `function (a) { const x = a[this.thread.x]; return ${body}; }`, [this.dev(x)]);
  }

  binary(op: BinaryOp, a: Tensor, b: Tensor, shape: readonly number[]): Tensor {
    const e = binarySrc[op]!;
    const R = shape.length;
    const st = (t: Tensor): number[] => {
      const pad = [...new Array<number>(R - t.rank).fill(1), ...t.shape];
      const s = stridesOf(pad);
      return pad.map((d, i) => (d === 1 && shape[i] !== 1 ? 0 : s[i]!));
    };
    const sa = st(a), sb = st(b);
    const key = `binary:${op}:${shape.join(",")}:${sa.join(",")}:${sb.join(",")}`;
    const same = (t: Tensor): boolean => t.size === shape.reduce((p, q) => p * q, 1);
    const src = (): string => {
      const ia = same(a) ? "i" : a.size === 1 ? "(i * 0.0)" : dot("c", sa);
      const ib = same(b) ? "i" : b.size === 1 ? "(i * 0.0)" : dot("c", sb);
      return `function (A, B) {
        const i = this.thread.x + 0.0;
        ${same(a) && same(b) ? "" : coords("i", shape, "c")}
        const a = A[${ia}]; const b = B[${ib}];
        return ${e};
      }`;
    };
    return this.out(key, shape, "float32", src, [this.dev(a), this.dev(b)]);
  }

  /** cond ? a : b, all three of the result's shape (cond float32 or int32, nonzero = true). */
  where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
    return this.out("where", a.shape, "float32", () => `function (C, A, B) {
      const i = this.thread.x;
      if (C[i] != 0.0) { return A[i]; }
      return B[i];
    }`, [this.dev(cond), this.dev(a), this.dev(b)]);
  }

  permute(x: Tensor, perm: readonly number[]): Tensor {
    const xs = stridesOf(x.shape);
    return this.strided(x, 0, perm.map((a) => xs[a]!), perm.map((a) => x.shape[a]!));
  }

  broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
    return this.strided(x, 0, broadcastStrides(x.shape, shape), shape);
  }

  slice(x: Tensor, starts: readonly number[], outShape: readonly number[]): Tensor {
    const xs = stridesOf(x.shape);
    return this.strided(x, starts.reduce((acc, s, i) => acc + s * xs[i]!, 0), xs, outShape);
  }

  /** Gathers x at offset + sum(c_d * srcStrides_d) for each coordinate c of outShape (permute, broadcast, slice). */
  private strided(x: Tensor, offset: number, srcStrides: readonly number[], outShape: readonly number[]): Tensor {
    const key = `strided:${outShape.join(",")}:${srcStrides.join(",")}:${offset}`;
    return this.out(key, outShape, x.dtype, () => `function (X) {
      const i = this.thread.x + 0.0;
      ${coords("i", outShape, "c")}
      return X[${lit(offset)} + ${dot("c", srcStrides)}];
    }`, [this.dev(x)]);
  }

  /**
   * xs joined along axis a (float32): each output element reads the input whose span of the axis holds it.
   * The KV cache of generation grows by one such concat per layer and token.
   */
  concat(xs: readonly Tensor[], a: number, outShape: readonly number[]): Tensor {
    const inner = outShape.slice(a + 1).reduce((p, q) => p * q, 1);
    const rowOut = outShape[a]! * inner;
    const key = `concat:${a}:${xs.map((t) => t.shape.join("x")).join(",")}`;
    const src = (): string => {
      let off = 0;
      const reads = xs.map((t, k) => {
        const lo = off, w = t.shape[a]! * inner;
        off += t.shape[a]!;
        const read = `X${k}[o * ${lit(w)} + (c - ${lit(lo)}) * ${lit(inner)} + q]`;
        return k === xs.length - 1 ? `return ${read};` : `if (c < ${lit(off)}) { return ${read}; }`;
      });
      return `function (${xs.map((_, k) => `X${k}`).join(", ")}) {
        const i = this.thread.x + 0.0;
        const o = Math.floor((i + 0.5) / ${lit(rowOut)});
        const r = i - o * ${lit(rowOut)};
        const c = Math.floor((r + 0.5) / ${lit(inner)});
        const q = r - c * ${lit(inner)};
        ${reads.join("\n        ")}
      }`;
    };
    return this.out(key, outShape, "float32", src, xs.map((t) => this.dev(t)));
  }

  /** dy (the slice of x at starts) placed into zeros of x's shape: the VJP of slice. */
  sliceBackward(dy: Tensor, xShape: readonly number[], starts: readonly number[]): Tensor {
    const ds = stridesOf(dy.shape);
    const key = `slicePad:${xShape.join(",")}:${dy.shape.join(",")}:${starts.join(",")}`;
    const inside = dy.shape.map((d, i) => `c${i} >= ${lit(starts[i]!)} && c${i} < ${lit(starts[i]! + d)}`).join(" && ");
    const src = dy.shape.map((_, i) => `(c${i} - ${lit(starts[i]!)}) * ${lit(ds[i]!)}`).join(" + ");
    return this.out(key, xShape, "float32", () => `function (D) {
      const i = this.thread.x + 0.0;
      ${coords("i", xShape, "c")}
      if (${inside}) { return D[${src}]; }
      return 0.0;
    }`, [this.dev(dy)]);
  }

  reduce(op: ReduceOp, x: Tensor, outer: number, r: number, inner: number, outShape: readonly number[]): Tensor {
    const term = `X[(o * ${lit(r)} + j) * ${lit(inner)} + q]`;
    const body = op === "sum" ? blockedSum("acc", r, term)
      : `let acc = X[o * ${lit(r * inner)} + q];\nfor (let jj = 1; jj < ${r}; jj++) { const j = jj + 0.0; acc = Math.${op}(acc, ${term}); }`;
    return this.out(`reduce:${op}:${outer}:${r}:${inner}`, outShape, "float32", () => `function (X) {
      const i = this.thread.x + 0.0;
      const o = Math.floor((i + 0.5) / ${lit(inner)});
      const q = i - o * ${lit(inner)};
      ${body}
      return acc;
    }`, [this.dev(x)]);
  }

  /**
   * Work (batch * m * n * k) from which a matmul runs the tiled kernels; smaller ones run one output per
   * thread in a single kernel (fewer launches). Tests set 0 to drive the tiled path on small shapes.
   */
  tileMinWork = 1 << 15;

  gemm(a: Tensor, b: Tensor, p: GemmDims, outShape: readonly number[]): Tensor {
    return this.matmul(a, b, p, outShape, null, this.tiles(p));
  }

  /**
   * Whether a matmul of these dimensions runs the tiled kernels. Not in webgpu: GPU.js 2.24 cannot pass a
   * kernel's Array(4) results to another kernel there, and the tiles need that.
   */
  private tiles(p: GemmDims): boolean {
    return this.rt.mode !== "webgpu" && p.batch * p.m * p.n * p.k >= this.tileMinWork && p.m * p.n > 1;
  }

  /**
   * C = A B (dims p) through the one-output-per-thread kernel or, when `tiled`, `gemmTiled`; `epi` (optional)
   * turns each sum into the output value (see `GemmEpilogue`).
   */
  private matmul(a: Tensor, b: Tensor, p: GemmDims, outShape: readonly number[], epi: GemmEpilogue | null, tiled: boolean): Tensor {
    if (epi?.causal && p.m % epi.causal.T !== 0) throw new Error(`internal: a causal matmul's rows (${p.m}) are not whole sequences of ${epi.causal.T}`);
    if (tiled) return this.gemmTiled(a, b, p, outShape, epi);
    const { m, n, k, transA, transB, strideA, strideB } = p;
    const aIdx = transA ? `aoff + j * ${lit(m)} + row` : `aoff + row * ${lit(k)} + j`;
    const bIdx = transB ? `boff + col * ${lit(k)} + j` : `boff + j * ${lit(n)} + col`;
    const causalK = epi?.causal?.on === "k";
    const key = `gemm:${p.batch}:${m}:${n}:${k}:${transA}:${transB}:${strideA}:${strideB}${epiKey(epi)}`;
    return this.out(key, outShape, "float32", () => `function (A, B${epiParams(epi)}) {
      ${outputIndex(m, n)}
      ${epi?.pre ?? ""}
      const aoff = bi * ${lit(strideA)};
      const boff = bi * ${lit(strideB)};
      ${causalK ? `const kEnd = Math.min(${lit(k)}, ${causalLim(epi!, "row")} + 1.0);` : ""}
      ${blockedSum("acc", k, `A[${aIdx}] * B[${bIdx}]`, "", causalK ? "kEnd" : null)}
      ${epi === null ? "return acc;" : epi.post("acc")}
    }`, [this.dev(a), this.dev(b), ...(epi?.args ?? [])]);
  }

  private gemmTiled(a: Tensor, b: Tensor, p: GemmDims, outShape: readonly number[], epi: GemmEpilogue | null): Tensor {
    const { batch, m, n, k, transA, transB, strideA, strideB } = p;
    const m2 = Math.ceil(m / 2), n2 = Math.ceil(n / 2);
    const sig = `${batch}:${m}:${n}:${k}:${transA}:${transB}:${strideA}:${strideB}${epi?.causal ? `:${epi.causal.on}:${epi.causal.T}:${epi.causal.offset}` : ""}`;
    const aAt = (off: string, r: string, j: string): string => (transA ? `${off} + ${j} * ${lit(m)} + ${r}` : `${off} + ${r} * ${lit(k)} + ${j}`);
    const bAt = (off: string, j: string, c: string): string => (transB ? `${off} + ${c} * ${lit(k)} + ${j}` : `${off} + ${j} * ${lit(n)} + ${c}`);
    const accs = ["s00", "s01", "s10", "s11"];
    const causal = epi?.causal ?? null;
    // The causal limit of the tile's two rows (they may be the last and first rows of two sequences).
    const edges = `const r1 = Math.min(r0 + 1.0, ${lit(m - 1)});
      const c1 = Math.min(c0 + 1.0, ${lit(n - 1)});
      ${causal === null ? "" : `const lim = Math.max(${causalLim(epi!, "r0")}, ${causalLim(epi!, "r1")});`}
      ${causal?.on === "cols" && this.rt.textures ? "if (c0 > lim) { return [0.0, 0.0, 0.0, 0.0]; }" : ""}`;
    // webasm: an early return under a lane-varying condition still runs the loops for the quad, so a masked
    // tile skips its sums through a zero trip count instead (a loop ends once no lane is live).
    const kEnd = causal?.on === "k" ? `Math.min(${lit(k)}, lim + 1.0)`
      : causal?.on === "cols" && !this.rt.textures ? `(c0 > lim ? 0.0 : ${lit(k)})` : null;
    let tiles: GpuBuffer;
    if (!this.rt.textures) {
      tiles = this.rt.runShaped(`gemmTile:${sig}`, [n2, m2, batch], () => `function (A, B) {
        const c0 = this.thread.x * 2.0;
        const r0 = this.thread.y * 2.0;
        const bi = this.thread.z + 0.0;
        ${edges}
        const aoff = bi * ${lit(strideA)};
        const boff = bi * ${lit(strideB)};
        ${kEnd === null ? "" : `const kEnd = ${kEnd};`}
        ${blockedSums(accs, k, 64, "j", `const a0 = A[${aAt("aoff", "r0", "j")}]; const a1 = A[${aAt("aoff", "r1", "j")}];
          const b0 = B[${bAt("boff", "j", "c0")}]; const b1 = B[${bAt("boff", "j", "c1")}];
          ps00 = ps00 + a0 * b0; ps01 = ps01 + a0 * b1; ps10 = ps10 + a1 * b0; ps11 = ps11 + a1 * b1;`, kEnd === null ? null : "kEnd")}
        return [s00, s01, s10, s11];
      }`, [this.dev(a), this.dev(b)]);
    } else {
      const k4 = Math.ceil(k / 4);
      const batchA = strideA === 0 ? 1 : batch, batchB = strideB === 0 ? 1 : batch;
      const pack = (X: string, rows: number, stride: number, at: (off: string, r: string, j: string) => string): string => `function (${X}) {
        const i = this.thread.x + 0.0;
        const bi = Math.floor((i + 0.5) / ${lit(rows * k4)});
        const rem = i - bi * ${lit(rows * k4)};
        const r = Math.floor((rem + 0.5) / ${lit(k4)});
        const j = (rem - r * ${lit(k4)}) * 4.0;
        const off = bi * ${lit(stride)};
        ${[0, 1, 2, 3].map((q) => `let v${q} = 0.0; if (j + ${q}.0 < ${lit(k)}) { v${q} = ${X}[${at("off", "r", `(j + ${q}.0)`)}]; }`).join("\n        ")}
        return [v0, v1, v2, v3];
      }`;
      const pa = this.rt.runShaped(`gemmPackA:${batchA}:${m}:${k}:${transA}:${strideA}`, [batchA * m * k4], () => pack("A", m, strideA, aAt), [this.dev(a)]);
      const pb = this.rt.runShaped(`gemmPackB:${batchB}:${n}:${k}:${transB}:${strideB}`, [batchB * n * k4], () => pack("B", n, strideB, (off, c, j) => bAt(off, j, c)), [this.dev(b)]);
      const mads = (x: string, y: string, acc: string): string => [0, 1, 2, 3].map((q) => `p${acc} = p${acc} + ${x}[${q}] * ${y}[${q}];`).join(" ");
      tiles = this.rt.runShaped(`gemmTile:${sig}`, [batch * m2 * n2], () => `function (A4, B4) {
        const i = this.thread.x + 0.0;
        const bi = Math.floor((i + 0.5) / ${lit(m2 * n2)});
        const rem = i - bi * ${lit(m2 * n2)};
        const rb = Math.floor((rem + 0.5) / ${lit(n2)});
        const r0 = rb * 2.0;
        const c0 = (rem - rb * ${lit(n2)}) * 2.0;
        ${edges}
        const abase = ${batchA === 1 ? "0.0" : `bi * ${lit(m)}`};
        const bbase = ${batchB === 1 ? "0.0" : `bi * ${lit(n)}`};
        const a0o = (abase + r0) * ${lit(k4)};
        const a1o = (abase + r1) * ${lit(k4)};
        const b0o = (bbase + c0) * ${lit(k4)};
        const b1o = (bbase + c1) * ${lit(k4)};
        ${kEnd === null ? "" : `const k4End = Math.floor((${kEnd} + 3.0) / 4.0);`}
        ${blockedSums(accs, k4, 16, "j4", `const a0 = A4[a0o + j4]; const a1 = A4[a1o + j4]; const b0 = B4[b0o + j4]; const b1 = B4[b1o + j4];
          ${mads("a0", "b0", "s00")} ${mads("a0", "b1", "s01")} ${mads("a1", "b0", "s10")} ${mads("a1", "b1", "s11")}`, kEnd === null ? null : "k4End")}
        return [s00, s01, s10, s11];
      }`, [pa.handle, pb.handle]);
      pa.free(); pb.free();
    }
    const pick = this.rt.textures
      ? "const tv = T[q];\n      let v = tv[3];\n      if (c < 0.5) { v = tv[0]; } else if (c < 1.5) { v = tv[1]; } else if (c < 2.5) { v = tv[2]; }"
      : "const v = T[q * 4.0 + c];";
    const out = this.out(`gemmUntile:${batch}:${m}:${n}${epiKey(epi)}`, outShape, "float32", () => `function (T${epiParams(epi)}) {
      ${outputIndex(m, n)}
      ${epi?.pre ?? ""}
      const rb = Math.floor((row + 0.5) / 2.0);
      const cb = Math.floor((col + 0.5) / 2.0);
      const q = (bi * ${lit(m2)} + rb) * ${lit(n2)} + cb;
      const c = (row - rb * 2.0) * 2.0 + (col - cb * 2.0);
      ${pick}
      ${epi === null ? "return v;" : epi.post("v")}
    }`, [tiles.handle, ...(epi?.args ?? [])]);
    tiles.free();
    return out;
  }

  /** Row statistics first (one thread per row), then one thread per element: O(cols) work per element. */
  softmax(x: Tensor, log: boolean): Tensor {
    const cols = x.shape[x.rank - 1]!, rows = x.size / cols;
    const lse = this.rowLse("softmax", x, rows, cols, 1);
    const ret = log ? "X[i] - L[r]" : "Math.exp(X[i] - L[r])";
    const out = this.out(`softmax:${log}:${cols}`, x.shape, "float32", () => `function (X, L) {
      const i = this.thread.x + 0.0;
      const r = Math.floor((i + 0.5) / ${lit(cols)});
      return ${ret};
    }`, [this.dev(x), this.dev(lse)]);
    lse.dispose();
    return out;
  }

  /** softmax: dx = y (dy - sum(dy y)); logSoftmax: dx = dy - exp(y) sum(dy). */
  softmaxBackward(y: Tensor, dy: Tensor, log: boolean): Tensor {
    const cols = y.shape[y.rank - 1]!, rows = y.size / cols;
    const term = log ? "D[base + j]" : "D[base + j] * Y[base + j]";
    const rowSum = this.out(`softmaxBwdRow:${log}:${cols}`, [rows], "float32", () => `function (Y, D) {
      const base = (this.thread.x + 0.0) * ${lit(cols)};
      ${blockedSum("s", cols, term)}
      return s;
    }`, [this.dev(y), this.dev(dy)]);
    const ret = log ? "D[i] - Math.exp(Y[i]) * S[r]" : "Y[i] * (D[i] - S[r])";
    const dx = this.out(`softmaxBwd:${log}:${cols}`, y.shape, "float32", () => `function (Y, D, S) {
      const i = this.thread.x + 0.0;
      const r = Math.floor((i + 0.5) / ${lit(cols)});
      return ${ret};
    }`, [this.dev(y), this.dev(dy), this.dev(rowSum)]);
    rowSum.dispose();
    return dx;
  }

  rmsNorm(x: Tensor, w: Tensor, eps: number): [Tensor, Tensor] {
    const dim = x.shape[x.rank - 1]!, rows = x.size / dim;
    const rstd = this.out(`rmsRstd:${dim}:${eps}`, [rows], "float32", () => `function (X) {
      const base = (this.thread.x + 0.0) * ${lit(dim)};
      ${blockedSum("ss", dim, "X[base + j] * X[base + j]")}
      return 1.0 / Math.sqrt(ss / ${lit(dim)} + ${lit(eps)});
    }`, [this.dev(x)]);
    const out = this.out(`rmsOut:${dim}`, x.shape, "float32", () => `function (X, W, R) {
      const i = this.thread.x + 0.0;
      const r = Math.floor((i + 0.5) / ${lit(dim)});
      const c = i - r * ${lit(dim)};
      return W[c] * (X[i] * R[r]);
    }`, [this.dev(x), this.dev(w), this.dev(rstd)]);
    return [out, rstd];
  }

  /**
   * dx = rstd (w dy - x rstd^2 mean(w dy x)), dw = sum_rows(dy x rstd). The row statistic mean(w dy x) is
   * computed once per row (one thread per row), then read by the one-thread-per-element dx kernel.
   */
  rmsNormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): [Tensor, Tensor] {
    const dim = x.shape[x.rank - 1]!, rows = x.size / dim;
    const rowDot = this.out(`rmsRowDot:${dim}`, [rows], "float32", () => `function (D, X, W) {
      const base = (this.thread.x + 0.0) * ${lit(dim)};
      ${blockedSum("s", dim, "W[j] * D[base + j] * X[base + j]")}
      return s / ${lit(dim)};
    }`, [this.dev(dy), this.dev(x), this.dev(w)]);
    const dx = this.out(`rmsDx:${dim}`, x.shape, "float32", () => `function (D, X, W, R, M) {
      const i = this.thread.x + 0.0;
      const r = Math.floor((i + 0.5) / ${lit(dim)});
      const c = i - r * ${lit(dim)};
      const rs = R[r];
      return rs * (W[c] * D[i] - X[i] * rs * rs * M[r]);
    }`, [this.dev(dy), this.dev(x), this.dev(w), this.dev(rstd), this.dev(rowDot)]);
    rowDot.dispose();
    const dw = this.out(`rmsDw:${rows}:${dim}`, w.shape, "float32", () => `function (D, X, R) {
      const c = this.thread.x + 0.0;
      ${blockedSum("s", rows, `D[j * ${lit(dim)} + c] * X[j * ${lit(dim)} + c] * R[j]`)}
      return s;
    }`, [this.dev(dy), this.dev(x), this.dev(rstd)]);
    return [dx, dw];
  }

  rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    return this.rotate(x, cos, sin, false);
  }

  ropeBackward(dy: Tensor, cos: Tensor, sin: Tensor): Tensor {
    return this.rotate(dy, cos, sin, true);
  }

  /** Rotate-half rope of x [..., T, dh] (the inverse rotation when `inverse`). */
  private rotate(x: Tensor, cos: Tensor, sin: Tensor, inverse: boolean): Tensor {
    const T = x.shape[x.rank - 2]!, dh = x.shape[x.rank - 1]!;
    const half = dh / 2, sg = inverse ? "-" : "";
    return this.out(`rope:${T}:${dh}:${inverse}`, x.shape, "float32", () => `function (X, C, S) {
      const i = this.thread.x + 0.0;
      const row = Math.floor((i + 0.5) / ${lit(dh)});
      const c = i - row * ${lit(dh)};
      const t = row - Math.floor((row + 0.5) / ${lit(T)}) * ${lit(T)};
      const ci = t * ${lit(dh)} + c;
      let rot = 0.0;
      if (c < ${lit(half)}) { rot = -X[i + ${lit(half)}]; } else { rot = X[i - ${lit(half)}]; }
      return X[i] * C[ci] + rot * (${sg}S[ci]);
    }`, [this.dev(x), this.dev(cos), this.dev(sin)]);
  }

  /**
   * Whether attention's matmuls run the tiled kernels when their work reaches `tileMinWork` (otherwise one
   * output per thread, the same sums with the same epilogues). Tiled pays in both modes: at B 2, H 4,
   * Hkv 2, T 128, dh 32 forward + backward take about 20 + 40 ms tiled vs 28 + 80 ms untiled in webasm,
   * and 12 + 22 ms vs 30 + 87 ms in gl (Mesa llvmpipe, 2 cores).
   */
  attnTiles = true;

  /**
   * The dims of attention's matmuls as batched gemms over the B * Hkv kv heads: the G query heads sharing
   * a kv head are consecutive in [B, H, T, ...], so their G * T rows form one matrix per kv head and k, v
   * are read in place (no broadcast, no copy). The output of a [G T, ...] product is then laid out as
   * [B, H, T, ...], and `gr` (the row over all batches) is the query row b * H T + h T + t.
   * - rows: [G T, x] (q, dy, P, dS rows) times [y, x]^T (k, v): scores q k^T and dy v^T;
   * - mix: [G T, S] (P, dS) times [S, dh] (v, k): P v and dS k;
   * - back: [G T, S]^T (P, dS) times [G T, dh] (dy, q): P^T dy and dS^T q, summed over the group's G T rows.
   */
  private attnGemms(d: AttnDims): { rows: GemmDims; mix: GemmDims; back: GemmDims } {
    const { B, Hkv, G, T, S, dh } = d;
    const batch = B * Hkv, GT = G * T;
    return {
      rows: { batch, m: GT, n: S, k: dh, transA: false, transB: true, strideA: GT * dh, strideB: S * dh },
      mix: { batch, m: GT, n: dh, k: S, transA: false, transB: false, strideA: GT * S, strideB: S * dh },
      back: { batch, m: S, n: dh, k: GT, transA: true, transB: false, strideA: GT * S, strideB: GT * dh },
    };
  }

  /** The causal mask as an epilogue `pre`: returns `masked` for key positions s (= col) past offset + t. */
  private attnMask(d: AttnDims, masked: string): string {
    return `const tq = gr - Math.floor((gr + 0.5) / ${lit(d.T)}) * ${lit(d.T)};
      if (col > ${lit(d.offset)} + tq) { return ${masked}; }`;
  }

  private attnGemm(a: Tensor, b: Tensor, p: GemmDims, shape: readonly number[], epi: GemmEpilogue | null): Tensor {
    return this.matmul(a, b, p, shape, epi, this.attnTiles && this.tiles(p));
  }

  /** The epilogue multiplying by the softmax scale (dq, dk). */
  private scaled(d: AttnDims): GemmEpilogue {
    return { key: `scale:${d.scale}`, params: [], args: [], pre: "", post: (v) => `return ${lit(d.scale)} * ${v};` };
  }

  /**
   * Forward: the scores S = scale q k^T (masked ones -1e38, whose exp is 0), the row statistic lse once per
   * query row (a row kernel: max, then a blocked sum of exp), P = exp(scores - lse) elementwise (masked
   * ones exactly 0), then out = P v.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, dims: AttentionDims): [Tensor, Tensor] {
    const d: AttnDims = { ...dims, G: dims.H / dims.Hkv };
    const { B, H, T, S, scale, offset } = d;
    const g = this.attnGemms(d);
    const scores = this.attnGemm(q, k, g.rows, [B, H, T, S], {
      key: `attnScores:${T}:${scale}:${offset}`, params: [], args: [], pre: this.attnMask(d, "-1e38"), post: (x) => `return ${x} * ${lit(scale)};`,
      causal: { on: "cols", T, offset },
    });
    const lse = this.rowLse("attn", scores, B * H * T, S, 1, [B, H, T]);
    const p = this.out(`attnPfromScores:${T * S}:${S}:${T}:${offset}`, scores.shape, "float32", () => `function (Sc, L) {
      const i = this.thread.x + 0.0;
      const row = Math.floor((i + 0.5) / ${lit(S)});
      const s = i - row * ${lit(S)};
      const t = row - Math.floor((row + 0.5) / ${lit(T)}) * ${lit(T)};
      if (s > ${lit(offset)} + t) { return 0.0; }
      return Math.exp(Sc[i] - L[row]);
    }`, [this.dev(scores), this.dev(lse)]);
    scores.dispose();
    const out = this.attnGemm(p, v, g.mix, q.shape, { key: "", params: [], args: [], pre: "", post: (x) => `return ${x};`, causal: { on: "k", T, offset } });
    p.dispose();
    return [out, lse];
  }

  /**
   * Backward: P = exp(scale q k^T - lse) recomputed (masked ones exactly 0), Dt = rowsum(dy out),
   * dS = P (dy v^T - Dt), dq = scale dS k, dk = scale dS^T q, dv = P^T dy (the last two summed over the
   * G query heads of each kv head).
   */
  attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dy: Tensor, dims: AttentionDims): [Tensor, Tensor, Tensor] {
    const d: AttnDims = { ...dims, G: dims.H / dims.Hkv };
    const { B, H, T, S, dh, scale, offset } = d;
    const g = this.attnGemms(d);
    const p = this.attnGemm(q, k, g.rows, [B, H, T, S], {
      key: `attnP:${T}:${scale}:${offset}`, params: ["L"], args: [this.dev(lse)], pre: this.attnMask(d, "0.0"),
      post: (x) => `return Math.exp(${x} * ${lit(scale)} - L[gr]);`, causal: { on: "cols", T, offset },
    });
    // Dt[b, h, t] = sum_e dy * out
    const Dt = this.out(`attnD:${dh}`, [B, H, T], "float32", () => `function (Y, O) {
      const base = (this.thread.x + 0.0) * ${lit(dh)};
      ${blockedSum("acc", dh, "Y[base + j] * O[base + j]")}
      return acc;
    }`, [this.dev(dy), this.dev(out)]);
    const dS = this.attnGemm(dy, v, g.rows, [B, H, T, S], {
      key: `attnDS:${T}:${offset}`, params: ["P", "Dt"], args: [this.dev(p), this.dev(Dt)], pre: this.attnMask(d, "0.0"),
      post: (x) => `return P[i] * (${x} - Dt[gr]);`, causal: { on: "cols", T, offset },
    });
    Dt.dispose();
    const dq = this.attnGemm(dS, k, g.mix, q.shape, { ...this.scaled(d), causal: { on: "k", T, offset } });
    const dk = this.attnGemm(dS, q, g.back, k.shape, this.scaled(d));
    dS.dispose();
    const dv = this.attnGemm(p, dy, g.back, v.shape, null);
    p.dispose();
    return [dq, dk, dv];
  }

  /** Per row of V values: max + log(blocked sum of exp(x invT - max)), as a tensor of `shape` (rows values). */
  private rowLse(key: string, x: Tensor, rows: number, V: number, invT: number, shape: readonly number[] = [rows]): Tensor {
    return this.out(`rowLse:${key}:${V}:${invT}`, shape, "float32", () => `function (X) {
      const base = (this.thread.x + 0.0) * ${lit(V)};
      ${rowMax("mx", V, `X[base + j] * ${lit(invT)}`)}
      ${blockedSum("s", V, `Math.exp(X[base + j] * ${lit(invT)} - mx)`)}
      return mx + Math.log(s);
    }`, [this.dev(x)]);
  }

  crossEntropy(logits: Tensor, targets: Tensor, ignore: number): [Tensor, Tensor] {
    const rows = targets.size, V = logits.shape[logits.rank - 1]!;
    const lse = this.rowLse("ce", logits, rows, V, 1);
    const per = this.out(`ceRow:${V}:${ignore}`, targets.shape, "float32", () => `function (X, Tg, L) {
      const r = this.thread.x + 0.0;
      const t = Tg[r];
      if (t == ${lit(ignore)}) { return 0.0; }
      return L[r] - X[r * ${lit(V)} + t];
    }`, [this.dev(logits), this.dev(targets), this.dev(lse)]);
    return [per, lse];
  }

  crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, dy: Tensor, ignore: number): Tensor {
    const V = logits.shape[logits.rank - 1]!;
    return this.out(`ceBwd:${V}:${ignore}`, logits.shape, "float32", () => `function (X, Tg, L, D) {
      const i = this.thread.x + 0.0;
      const r = Math.floor((i + 0.5) / ${lit(V)});
      const c = i - r * ${lit(V)};
      const t = Tg[r];
      if (t == ${lit(ignore)}) { return 0.0; }
      let p = Math.exp(X[i] - L[r]);
      if (c == t) { p = p - 1.0; }
      return p * D[r];
    }`, [this.dev(logits), this.dev(targets), this.dev(lse), this.dev(dy)]);
  }

  klDiv(teacher: Tensor, student: Tensor, tau: number): Required<KlForward> {
    const V = student.shape[student.rank - 1]!, rows = student.size / V, rowShape = student.shape.slice(0, -1);
    const invT = 1 / tau;
    const lseT = this.rowLse("klT", teacher, rows, V, invT);
    const lseS = this.rowLse("klS", student, rows, V, invT);
    const kl = this.out(`klRow:${V}:${invT}`, rowShape, "float32", () => `function (Tt, Ss, LT, LS) {
      const r = this.thread.x + 0.0;
      const base = r * ${lit(V)};
      const lt = LT[r];
      const ls = LS[r];
      ${blockedSum("acc", V, "(pt > 0.0 ? pt * (lpt - (Ss[base + j] * " + lit(invT) + " - ls)) : 0.0)", `const lpt = Tt[base + j] * ${lit(invT)} - lt; const pt = Math.exp(lpt);`)}
      return acc;
    }`, [this.dev(teacher), this.dev(student), this.dev(lseT), this.dev(lseS)]);
    return { kl, lseT, lseS };
  }

  /** dS = g/tau (pS - pT); dT = g/tau pT ((log pT - log pS) - kl_row). */
  klDivBackward(teacher: Tensor, student: Tensor, fwd: KlForward, dy: Tensor, tau: number, wantTeacher: boolean): [Tensor | null, Tensor] {
    const { kl, lseT, lseS } = fwd as Required<KlForward>;
    const V = student.shape[student.rank - 1]!;
    const invT = 1 / tau;
    const pre = `const i = this.thread.x + 0.0;
      const r = Math.floor((i + 0.5) / ${lit(V)});
      const lpt = Tt[i] * ${lit(invT)} - LT[r];
      const lps = Ss[i] * ${lit(invT)} - LS[r];
      const pt = Math.exp(lpt);
      const g = D[r] * ${lit(invT)};`;
    const args = [this.dev(teacher), this.dev(student), this.dev(lseT), this.dev(lseS), this.dev(kl), this.dev(dy)];
    const dS = this.out(`klDS:${V}:${invT}`, student.shape, "float32", () => `function (Tt, Ss, LT, LS, KL, D) {
      ${pre}
      return g * (Math.exp(lps) - pt);
    }`, args);
    const dT = wantTeacher ? this.out(`klDT:${V}:${invT}`, teacher.shape, "float32", () => `function (Tt, Ss, LT, LS, KL, D) {
      ${pre}
      if (pt > 0.0) { return g * pt * (lpt - lps - KL[r]); }
      return 0.0;
    }`, args) : null;
    return [dT, dS];
  }

  gather(x: Tensor, idx: Tensor, outShape: readonly number[]): Tensor {
    const cols = x.size / x.shape[0]!;
    return this.out(`gather:${cols}`, outShape, "float32", () => `function (X, I) {
      const i = this.thread.x + 0.0;
      const r = Math.floor((i + 0.5) / ${lit(cols)});
      const c = i - r * ${lit(cols)};
      return X[I[r] * ${lit(cols)} + c];
    }`, [this.dev(x), this.dev(idx)]);
  }

  /**
   * dx[v, c] = sum over positions i with idx[i] = v of dy[i, c], in ascending i (the cpu kernel's order).
   * The ids are read on the host (they are small: one per token) and sorted by row with a stable counting
   * sort into a CSR: `pos` lists the positions row by row, ascending within a row, and row v's positions are
   * pos[off[v] .. off[v + 1]). Each output thread (v, c) then sums only its own range, so the work is
   * V * cols reads of the offsets plus N * cols additions, instead of V * cols * N tests. The loop's bound is
   * the largest row count rounded up to a power of two (fewer kernel variants); it stops at the row's count.
   */
  gatherBackward(dy: Tensor, idx: Tensor, xShape: readonly number[]): Tensor {
    const cols = xShape.slice(1).reduce((a, b) => a * b, 1);
    const { off, pos, maxCount } = rowIndex(idx.peek(), xShape[0]!);
    const V = off.length - 1;
    const loop = 2 ** Math.ceil(Math.log2(maxCount));
    const O = this.rt.upload(off, V + 1), P = this.rt.upload(pos, pos.length);
    const sum = `const start = O[v];
        const count = O[v + 1.0] - start;
        let acc = 0.0;
        for (let jj = 0; jj < ${loop}; jj++) {
          const j = jj + 0.0;
          if (j >= count) { break; }
          acc = acc + D[P[start + j] * ${lit(cols)} + c];
        }
        return acc;`;
    const args = [this.dev(dy), O.handle, P.handle];
    try {
      // webasm: output [cols, V], so a SIMD quad's 4 columns share the row v (its range is read once and
      // its loop runs uniformly); gl: a flat output (a [cols, V] texture would exceed the texture size limit).
      if (!this.rt.textures)
        return Tensor.fromDevice(this.rt.runShaped(`scatterAddCsr2:${cols}:${V}:${loop}`, [cols, V], () => `function (D, O, P) {
        const c = this.thread.x + 0.0;
        const v = this.thread.y + 0.0;
        ${sum}
      }`, args), xShape, "float32");
      return this.out(`scatterAddCsr:${cols}:${loop}`, xShape, "float32", () => `function (D, O, P) {
        const i = this.thread.x + 0.0;
        const v = Math.floor((i + 0.5) / ${lit(cols)});
        const c = i - v * ${lit(cols)};
        ${sum}
      }`, args);
    } finally {
      O.free(); P.free();
    }
  }

  /** sum(x^2) as a float32 scalar: blocked sums of SUMSQ_BLOCK entries, one thread each, then their sum in one thread. */
  sumSquares(x: Tensor): Tensor {
    const n = x.size, blocks = Math.ceil(n / SUMSQ_BLOCK);
    const part = this.out(`sumSqBlocks:${n}`, [blocks], "float32", () => `function (X) {
      const base = (this.thread.x + 0.0) * ${lit(SUMSQ_BLOCK)};
      const end = Math.min(${lit(n)} - base, ${lit(SUMSQ_BLOCK)});
      ${blockedSum("acc", SUMSQ_BLOCK, "x * x", "const x = X[base + j];", "end")}
      return acc;
    }`, [this.dev(x)]);
    const out = this.out(`sumSqTotal:${blocks}`, [], "float32", () => `function (P) {
      ${blockedSum("acc", blocks, "P[j]")}
      return acc + this.thread.x * 0.0;
    }`, [this.dev(part)]);
    part.dispose();
    return out;
  }

  /** x *= c on the device, in float32 (x gets a new device buffer). */
  scale(x: Tensor, c: number): void {
    const n = x.size;
    replaceDevice(x, this.rt.run(`scale:${n}`, n, () => "function (X, c) { return X[this.thread.x] * c; }", [this.dev(x), Math.fround(c)]));
  }

  /**
   * The index of the first largest entry along r, as the cpu kernel picks it (entries at or below -1e38 are
   * never picked over index 0). int32 tensors are float32 on this device: indices are exact below 2^24.
   */
  argmax(x: Tensor, outer: number, r: number, inner: number, outShape: readonly number[]): Tensor {
    return this.out(`argmax:${outer}:${r}:${inner}`, outShape, "int32", () => `function (X) {
      const i = this.thread.x + 0.0;
      const o = Math.floor((i + 0.5) / ${lit(inner)});
      const q = i - o * ${lit(inner)};
      let best = 0.0;
      let bv = ${lit(-Infinity)};
      for (let jj = 0; jj < ${r}; jj++) {
        const j = jj + 0.0;
        const v = X[(o * ${lit(r)} + j) * ${lit(inner)} + q];
        if (v > bv) { bv = v; best = j; }
      }
      return best;
    }`, [this.dev(x)]);
  }

  /**
   * float32 <-> int32 (float -> int truncates toward zero; int32 values are held as float32 on this device, so
   * an infinity or NaN stays one where the cpu kernel gives 0).
   */
  astype(x: Tensor, dtype: DType): Tensor {
    // (-1, 1) gives an explicit 0.0: Math.ceil(-0.5) is -0, and compilers drop a "+ 0.0" that would fix it.
    const body = x.dtype === "float32" && dtype === "int32" ? "(x <= -1.0 ? Math.ceil(x) : (x < 1.0 ? 0.0 : Math.floor(x)))" : "x";
    return this.out(`astype:${x.dtype}:${dtype}`, x.shape, dtype, () => `function (a) { const x = a[this.thread.x]; return ${body}; }`, [this.dev(x)]);
  }

  /** One AdamW step on the device (torch.optim.AdamW order of operations): p, m and v get new device buffers. */
  adamw(p: Tensor, g: Tensor, m: Tensor, v: Tensor, o: AdamWHyper): void {
    const n = p.size;
    const w1 = 1 - o.beta1, w2 = 1 - o.beta2;
    const decay = 1 - o.lr * o.weightDecay;
    const stepSize = o.lr / (1 - o.beta1 ** o.step);
    const bc2Sqrt = Math.sqrt(1 - o.beta2 ** o.step);
    const mExpr = w1 < 0.5 ? `mi + ${lit(w1)} * (gi - mi)` : `gi - (gi - mi) * ${lit(o.beta1)}`;
    const gh = this.dev(g);
    const m2 = this.rt.run(`adamM:${n}:${o.beta1}`, n, () => `function (M, G) { const mi = M[this.thread.x]; const gi = G[this.thread.x]; return ${mExpr}; }`, [this.dev(m), gh]);
    const v2 = this.rt.run(`adamV:${n}:${o.beta2}`, n, () => `function (V, G) { const gi = G[this.thread.x]; return V[this.thread.x] * ${lit(o.beta2)} + ${lit(w2)} * gi * gi; }`, [this.dev(v), gh]);
    const p2 = this.rt.run(`adamP:${n}:${o.eps}`, n, () => `function (P, M, V, decay, stepSize, bc2Sqrt) {
      const pi = P[this.thread.x] * decay;
      return pi - (stepSize * M[this.thread.x]) / (Math.sqrt(V[this.thread.x]) / bc2Sqrt + ${lit(o.eps)});
    }`, [this.dev(p), m2.handle, v2.handle, decay, stepSize, bc2Sqrt]);
    replaceDevice(m, m2);
    replaceDevice(v, v2);
    replaceDevice(p, p2);
  }

  /** acc += g / divisor on the device (acc gets a new device buffer). */
  accumulate(acc: Tensor, g: Tensor, divisor: number): void {
    const n = acc.size;
    replaceDevice(acc, this.rt.run(`accumulate:${n}:${divisor}`, n, () => `function (A, G) {
      return A[this.thread.x] + G[this.thread.x] / ${lit(divisor)};
    }`, [this.dev(acc), this.dev(g)]));
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    return this.out("swiglu", gate.shape, "float32", () => `function (Gt, U) {
      const x = Gt[this.thread.x];
      return x / (1.0 + Math.exp(-x)) * U[this.thread.x];
    }`, [this.dev(gate), this.dev(up)]);
  }

  /** With s = sigmoid(gate): dgate = dy up s (1 + gate (1 - s)), dup = dy gate s. */
  swigluBackward(gate: Tensor, up: Tensor, dy: Tensor): [Tensor, Tensor] {
    const args = [this.dev(gate), this.dev(up), this.dev(dy)];
    const pre = "const x = Gt[this.thread.x]; const s = 1.0 / (1.0 + Math.exp(-x)); const d = D[this.thread.x];";
    const dg = this.out("swigluDg", gate.shape, "float32", () => `function (Gt, U, D) { ${pre} return d * U[this.thread.x] * s * (1.0 + x * (1.0 - s)); }`, args);
    const du = this.out("swigluDu", up.shape, "float32", () => `function (Gt, U, D) { ${pre} return d * x * s; }`, args);
    return [dg, du];
  }

  /** The blocked sum of (a - b)^2 over all elements (one row), divided by the count. */
  mse(a: Tensor, b: Tensor): Tensor {
    const n = a.size;
    const sq = this.out("sqDiff", [n], "float32", () => `function (A, B) { const d = A[this.thread.x] - B[this.thread.x]; return d * d; }`, [this.dev(a), this.dev(b)]);
    const out = this.out(`mseSum:${n}`, [], "float32", () => `function (X) {
      ${blockedSum("acc", n, "X[j]")}
      return acc / ${lit(n)} + this.thread.x * 0.0;
    }`, [this.dev(sq)]);
    sq.dispose();
    return out;
  }

  /** da = (a - b) 2 dy / N, db = -da. */
  mseBackward(a: Tensor, b: Tensor, dy: Tensor, wantA: boolean, wantB: boolean): [Tensor | null, Tensor | null] {
    const n = a.size;
    const args = [this.dev(a), this.dev(b), this.dev(dy)];
    const grad = (sign: string): Tensor => this.out(`mseBwd:${sign}:${n}`, a.shape, "float32", () => `function (A, B, D) {
      return ${sign}(A[this.thread.x] - B[this.thread.x]) * (2.0 * D[0] / ${lit(n)});
    }`, args);
    return [wantA ? grad("") : null, wantB ? grad("-") : null];
  }
}

/** Gives t the device buffer `dev` as its only copy (its old device buffer and host buffer released). */
function replaceDevice(t: Tensor, dev: GpuBuffer): void {
  const st = t.storage!;
  const old = st.device;
  st.device = dev;
  old?.free();
  if (st.data !== null) { release(st.data); st.data = null; }
}

/**
 * The positions of `ids` grouped by row (a stable counting sort): row v's positions, ascending, are
 * pos[off[v] .. off[v + 1]); `maxCount` is the largest number of positions of one row.
 */
export function rowIndex(ids: ArrayLike<number>, rows: number): { off: Int32Array; pos: Int32Array; maxCount: number } {
  const off = new Int32Array(rows + 1);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (!(v >= 0 && v < rows && Number.isInteger(v))) throw new RangeError(`gather.vjp: index ${v} at position ${i} is out of range [0, ${rows})`);
    off[v + 1] = off[v + 1]! + 1;
  }
  let maxCount = 0;
  for (let v = 0; v < rows; v++) {
    maxCount = Math.max(maxCount, off[v + 1]!);
    off[v + 1] = off[v + 1]! + off[v]!;
  }
  const next = off.slice(0, rows);
  const pos = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    pos[next[v]!] = i;
    next[v] = next[v]! + 1;
  }
  return { off, pos, maxCount };
}

/**
 * What a matmul's output kernel does with each sum, fused into it (the attention kernels' masks, scales
 * and exponentials). In scope: `i` (the flat output index), `bi` (the batch), `row`, `col`, and
 * `gr` = bi * m + row (the row over all batches). `pre` runs before the sum is computed or read and may
 * return early (a masked output); `post(v)` returns the output from the sum `v`. `params` name the extra
 * kernel arguments `args` (device handles); `key` tells the variants apart in the kernel cache.
 *
 * `causal` (attention's mask; m must be whole sequences of T rows, row r being query position t = r mod T):
 * - on "cols": the outputs with col > offset + t are masked (`pre` returns their value); the tiled kernel
 *   skips tiles whose outputs are all masked;
 * - on "k": the terms with k index > offset + t are exactly zero (A holds masked probabilities), so the
 *   sums stop there; the result is the same as the full sum.
 */
interface GemmEpilogue {
  key: string;
  params: readonly string[];
  args: readonly unknown[];
  pre: string;
  post: (v: string) => string;
  causal?: { on: "cols" | "k"; T: number; offset: number };
}

function epiParams(epi: GemmEpilogue | null): string {
  return epi === null ? "" : epi.params.map((q) => `, ${q}`).join("");
}

function epiKey(epi: GemmEpilogue | null): string {
  if (epi === null) return "";
  const c = epi.causal;
  return `:${epi.key}${c === undefined ? "" : `:${c.on}:${c.T}:${c.offset}`}`;
}

/** The causal limit offset + (r mod T) of a row expression r, as kernel source. */
function causalLim(epi: GemmEpilogue, r: string): string {
  const { T, offset } = epi.causal!;
  return `(${lit(offset)} + ${r} - Math.floor((${r} + 0.5) / ${lit(T)}) * ${lit(T)})`;
}

/** Attention's dims with G = H / Hkv, the query heads per kv head. */
interface AttnDims extends AttentionDims { G: number }
