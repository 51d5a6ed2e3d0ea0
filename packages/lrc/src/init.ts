// Teacher-derived projection init (beyond the paper, whose init is N(0, 0.02²), docs/lrc-method.md §1.5).
//
// The student has one residual stream of width d, written by the embedding, every o_proj and every
// down_proj, and read by every q/k/v/gate/up (through a norm) and the LM head. Projections with unrelated
// bases (say each matrix's own principal directions) would make the student's residual coordinates mean
// different things to its writers and readers, so both inits pick ONE orthonormal residual basis U (D x d)
// and derive every projection from it:
//   writers  P_emb = P_o = P_down = U                 => the student's residual stream starts as x_T U
//   readers  P_q = P_k = P_v = diag(g_in) U,  P_gate = P_up = diag(g_post) U,  P_lm (untied) = diag(g_final) U
// i.e. the teacher's RMSNorm gains g are folded into the readers' projections (as SliceGPT folds them into the
// next linear layer), and the student's gains are a constant s = sqrt(E · D / d): RMSNorm over d dims of x_T U
// is sqrt(D/d) / ρ times the projection of RMSNorm over D dims of x_T, with ρ² = ||x_T U||² / ||x_T||² ≈ E, the
// fraction of the (unit-normalised) residual energy that U keeps. Then a_S P_mᵀ ≈ a_T up to the dropped
// directions, and the student's q/k/v/gate/up start near the teacher's. With a tied head projection
// (P_lm = P_emb = U) the final gain cannot be folded; it is the best diagonal approximation instead:
// g_S[j] = s · Σ_i U_ij² g_final[i].
//
// Where U comes from:
//   pca  the top-d eigenvectors of the teacher's residual-stream second moment, Σ x̂ x̂ᵀ over calibration tokens
//        and every residual position (the embedding output, each layer's mid-point x + attn and output), each
//        row x̂ = x / ||x|| (the norms make the scale irrelevant, and the deep layers' larger norms would
//        otherwise drown the early ones); uncentred, as the maps are linear.
//   svd  no data: the top-d right singular vectors of the stacked residual writers [E; W_o,iᵀ; W_down,iᵀ], each
//        block scaled to unit Frobenius norm (the top-d eigenvectors of Σ AᵀA / ||A||²).
// Second moments are accumulated in float64; the eigendecomposition is ./eigen.ts.

import type { Batch } from "@lrc-ts/data";
import { causalLMForward } from "@lrc-ts/nn";
import { Tensor, isHalf, noGrad, scope } from "@lrc-ts/tensor-core";
import type { LowRankClone } from "./clone.js";
import { batchIds } from "./losses.js";
import { symmetricEigen } from "./eigen.js";
import type { Projections } from "./projection.js";
import { projName } from "./projection.js";

export type InitMethod = "random" | "pca" | "svd";
export const INIT_METHODS: readonly InitMethod[] = ["random", "pca", "svd"];

export interface TeacherInitOptions {
  readonly method: "pca" | "svd";
  /** pca: calibration batches of int32 [B, T] token ids (from the training split). */
  readonly calibration?: readonly Tensor[];
}

export interface TeacherInitInfo {
  readonly method: "pca" | "svd";
  /** Calibration tokens used (pca), 0 for svd. */
  readonly tokens: number;
  /** Fraction of the second moment's trace the d kept directions hold (E). */
  readonly energy: number;
  /** The student's gain s = sqrt(E · D / d). */
  readonly gain: number;
}

/** C (n x n, lower triangle) += Σ over the rows of x (rows x n) of (w · row/||row||)(...)ᵀ; zero rows are skipped. */
function accumulateSecondMoment(C: Float64Array, x: Float32Array | Float64Array, n: number, normalise: boolean, weight = 1): void {
  const rows = x.length / n;
  const r = new Float64Array(n);
  for (let t = 0; t < rows; t++) {
    let ss = 0;
    for (let j = 0; j < n; j++) {
      const v = x[t * n + j]!;
      r[j] = v;
      ss += v * v;
    }
    if (ss === 0) continue;
    const f = normalise ? weight / ss : weight;
    for (let i = 0; i < n; i++) {
      const ri = r[i]! * f;
      if (ri === 0) continue;
      const o = i * n;
      for (let j = 0; j <= i; j++) C[o + j] += ri * r[j]!;
    }
  }
}

async function host(t: Tensor): Promise<Float32Array | Float64Array> {
  if (isHalf(t.dtype)) return t.data() as Float32Array; // a teacher matrix kept as BF16 / F16, widened
  await t.toHostAsync();
  return t.buf as Float32Array | Float64Array;
}

/** The teacher's residual-stream second moment over the calibration batches (unit rows), and the token count. */
async function residualMoment(p: Projections, batches: readonly Tensor[]): Promise<{ C: Float64Array; tokens: number }> {
  const D = p.teacherConfig.hidden_size;
  const C = new Float64Array(D * D);
  let tokens = 0;
  for (const ids of batches) {
    if (ids.dtype !== "int32" || ids.rank !== 2) throw new TypeError(`teacherInit: calibration batches must be int32 [B, T], got ${ids.dtype}[${ids.shape.join(", ")}]`);
    const idv = await host(ids);
    tokens += ids.size;
    // The embedding output, gathered on the host (rows of E).
    const E = await host(p.teacher.embed);
    const x0 = new Float64Array(ids.size * D);
    for (let t = 0; t < ids.size; t++) x0.set(E.subarray(idv[t]! * D, idv[t]! * D + D), t * D);
    accumulateSecondMoment(C, x0, D, true);
    // In a scope, so the forward's temporaries return to the buffer pool at once; the captures escape it.
    const captures = noGrad(() => scope(() => causalLMForward(p.teacher, p.teacherConfig, ids, { capture: true, logits: "none" }).captures!));
    let xin: Float32Array | Float64Array = x0;
    try {
      for (const c of captures) {
        const attnOut = await host(c.attnOut);
        const mid = new Float64Array(xin.length);
        for (let k = 0; k < mid.length; k++) mid[k] = xin[k]! + attnOut[k]!;
        accumulateSecondMoment(C, mid, D, true);
        xin = await host(c.hidden);
        accumulateSecondMoment(C, xin, D, true);
      }
    } finally {
      for (const c of captures) for (const t of Object.values(c)) if (t instanceof Tensor) t.dispose();
    }
  }
  if (tokens === 0) throw new RangeError("teacherInit: pca needs calibration tokens (none given)");
  return { C, tokens };
}

/** Σ AᵀA / ||A||²_F over the residual writers E, W_oᵀ and W_downᵀ of every layer. */
async function writerMoment(p: Projections): Promise<Float64Array> {
  const D = p.teacherConfig.hidden_size;
  const C = new Float64Array(D * D);
  const addRows = (a: Float32Array | Float64Array) => {
    let ss = 0;
    for (let k = 0; k < a.length; k++) ss += a[k]! * a[k]!;
    if (ss > 0) accumulateSecondMoment(C, a, D, false, 1 / ss);
  };
  /** Rows of Wᵀ for W (D x m): the columns of W. */
  const columns = (w: Float32Array | Float64Array, m: number) => {
    const out = new Float64Array(w.length);
    for (let i = 0; i < D; i++) for (let j = 0; j < m; j++) out[j * D + i] = w[i * m + j]!;
    return out;
  };
  addRows(await host(p.teacher.embed));
  for (const l of p.teacher.layers) {
    addRows(columns(await host(l.oW), l.oW.shape[1]!));
    addRows(columns(await host(l.downW), l.downW.shape[1]!));
  }
  return C;
}

/**
 * Sets every projection and student gain of `p` from the teacher (see the header). Returns what was kept.
 * Replaces the current values (the random init the constructor made).
 */
export async function teacherInit(p: Projections, opts: TeacherInitOptions): Promise<TeacherInitInfo> {
  const D = p.teacherConfig.hidden_size, d = p.hiddenSize;
  if (d > D) throw new RangeError(`teacherInit: the student hidden size ${d} exceeds the teacher's ${D}`);
  let C: Float64Array, tokens = 0;
  if (opts.method === "pca") ({ C, tokens } = await residualMoment(p, opts.calibration ?? []));
  else if (opts.method === "svd") C = await writerMoment(p);
  else throw new RangeError(`teacherInit: unknown method "${String(opts.method)}" (known: pca, svd)`);
  const { values, vectors } = symmetricEigen(C, D);
  let trace = 0, kept = 0;
  for (let j = 0; j < D; j++) {
    const v = Math.max(0, values[j]!);
    trace += v;
    if (j < d) kept += v;
  }
  const energy = trace > 0 ? kept / trace : 0;
  const s = Math.sqrt((energy * D) / d);
  // U (D x d): the first d eigenvector columns.
  const U = new Float64Array(D * d);
  for (let i = 0; i < D; i++) for (let j = 0; j < d; j++) U[i * d + j] = vectors[i * D + j]!;
  const scaled = async (g: Tensor): Promise<Float64Array> => {
    const gv = await host(g);
    const out = new Float64Array(D * d);
    for (let i = 0; i < D; i++) for (let j = 0; j < d; j++) out[i * d + j] = gv[i]! * U[i * d + j]!;
    return out;
  };
  const vals: Record<string, Float64Array> = {};
  const constant = new Float64Array(d).fill(s);
  const T = p.teacher;
  vals.embed = U;
  for (let i = 0; i < T.layers.length; i++) {
    const l = T.layers[i]!;
    const gin = await scaled(l.inputNorm), gpost = await scaled(l.postNorm);
    for (const m of ["q", "k", "v"] as const) vals[projName(i, m)] = gin;
    for (const m of ["gate", "up"] as const) vals[projName(i, m)] = gpost;
    vals[projName(i, "o")] = U;
    vals[projName(i, "down")] = U;
    vals[`layers.${i}.input_layernorm`] = constant;
    vals[`layers.${i}.post_attention_layernorm`] = constant;
  }
  if (p.tieLmHeadProjection) {
    const g = await host(T.finalNorm);
    const norm = new Float64Array(d);
    for (let j = 0; j < d; j++) {
      let a = 0;
      for (let i = 0; i < D; i++) a += U[i * d + j]! * U[i * d + j]! * g[i]!;
      norm[j] = s * a;
    }
    vals.norm = norm;
  } else {
    vals.lm_head = await scaled(T.finalNorm);
    vals.norm = constant;
  }
  p.load(vals, `${opts.method} init`);
  return { method: opts.method, tokens, energy, gain: s };
}

/** The student's CE, clone loss (before α) and total on one batch, without grad: the start-of-run sanity check. */
export interface StartLosses {
  readonly ce: number | null;
  readonly clone: number | null;
  readonly total: number;
}

export async function startLosses(clone: LowRankClone, batch: Batch): Promise<StartLosses> {
  // In a scope: the forward's temporaries (teacher captures, generated weights, activations) go back to the
  // buffer pool at once instead of waiting for the garbage collector (at the Qwen2.5-0.5B shape they were
  // ~2 GB still resident under the first training step); only the three scalars escape.
  const l = noGrad(() => scope(() => {
    const r = clone.forward(batch);
    return { ce: r.ce, clone: r.clone, total: r.total };
  }));
  const read = async (t: Tensor | null) => (t === null ? null : await t.itemAsync());
  try {
    return { ce: await read(l.ce), clone: await read(l.clone), total: (await read(l.total))! };
  } finally {
    for (const t of [l.ce, l.clone, l.total]) t?.dispose();
  }
}

export interface CloneInitReport {
  readonly method: InitMethod;
  /** null for random. */
  readonly info: TeacherInitInfo | null;
  /** The losses at the random init the clone was built with, and after `method` (the same for random). */
  readonly random: StartLosses;
  readonly start: StartLosses;
}

/**
 * Initialises a freshly built clone's projections with `method` (random keeps the constructor's draw) from
 * the calibration batches (pca), and measures the start losses on `check` under random init and under the
 * chosen one.
 */
export async function initClone(clone: LowRankClone, opts: { method: InitMethod; calibration: readonly Batch[]; check: Batch }): Promise<CloneInitReport> {
  if (!INIT_METHODS.includes(opts.method)) throw new RangeError(`init: unknown method "${String(opts.method)}" (known: ${INIT_METHODS.join(", ")})`);
  const random = await startLosses(clone, opts.check);
  if (opts.method === "random") return { method: "random", info: null, random, start: random };
  const calibration = opts.calibration.map((b) => batchIds(b, "inputs"));
  const info = await teacherInit(clone.projections, { method: opts.method, calibration });
  return { method: opts.method, info, random, start: await startLosses(clone, opts.check) };
}

/** One line for the log: the chosen init, what it kept, its start losses and random's. */
export function initLine(r: CloneInitReport): string {
  const f = (x: number | null) => (x === null ? "-" : x.toFixed(4));
  const what =
    r.info === null
      ? "random N(0, std^2)"
      : `${r.method} (${r.info.method === "pca" ? `${r.info.tokens.toLocaleString("en-US")} calibration tokens, ` : ""}${(100 * r.info.energy).toFixed(1)}% of the residual energy kept, student gains ${r.info.gain.toFixed(3)})`;
  const start = `start: CE ${f(r.start.ce)}, clone ${f(r.start.clone)}, total ${f(r.start.total)}`;
  return r.info === null ? `init ${what}; ${start}` : `init ${what}; ${start} (random init: CE ${f(r.random.ce)}, clone ${f(r.random.clone)}, total ${f(r.random.total)})`;
}
