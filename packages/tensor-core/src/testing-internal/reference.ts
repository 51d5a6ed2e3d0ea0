/**
 * Naive reference implementations of the cpu kernels, in float64, written for obviousness rather than speed.
 * The fast kernels are tested against these (see *.test.ts beside this file).
 */
import type { Float } from "../backend/cpu/gemm-runtime.js";

export interface RefGemm {
  a: ArrayLike<number>; b: ArrayLike<number>; c: ArrayLike<number>;
  batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean;
  strideA: number; strideB: number; strideC: number;
  offsetA?: number; offsetB?: number; offsetC?: number; accumulate?: boolean; alpha?: number;
}

/** Returns a Float64Array copy of c after C_i = alpha op(A_i) op(B_i) (+ C_i). */
export function refGemm(p: RefGemm): Float64Array {
  const out = Float64Array.from(p.c);
  const oa = p.offsetA ?? 0, ob = p.offsetB ?? 0, oc = p.offsetC ?? 0, alpha = p.alpha ?? 1;
  for (let bi = 0; bi < p.batch; bi++) {
    for (let i = 0; i < p.m; i++) {
      for (let j = 0; j < p.n; j++) {
        let s = 0;
        for (let q = 0; q < p.k; q++) {
          const av = p.a[oa + bi * p.strideA + (p.transA ? q * p.m + i : i * p.k + q)]!;
          const bv = p.b[ob + bi * p.strideB + (p.transB ? j * p.k + q : q * p.n + j)]!;
          s += av * bv;
        }
        const idx = oc + bi * p.strideC + i * p.n + j;
        out[idx] = alpha * s + (p.accumulate ? out[idx]! : 0);
      }
    }
  }
  return out;
}

function lse(row: number[]): number {
  const max = Math.max(...row);
  return max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
}

function rowOf(x: ArrayLike<number>, r: number, cols: number, scale = 1): number[] {
  return Array.from({ length: cols }, (_, j) => x[r * cols + j]! * scale);
}

export function refSoftmax(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = rowOf(x, r, cols);
    const l = lse(row);
    row.forEach((v, j) => (out[r * cols + j] = Math.exp(v - l)));
  }
  return out;
}

export function refLogSoftmax(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = rowOf(x, r, cols);
    const l = lse(row);
    row.forEach((v, j) => (out[r * cols + j] = v - l));
  }
  return out;
}

/** Per-row cross-entropy (0 for ignored rows). */
export function refCrossEntropy(
  logits: ArrayLike<number>, targets: ArrayLike<number>, rows: number, vocab: number, ignoreIndex: number,
): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    if (targets[r] === ignoreIndex) continue;
    const row = rowOf(logits, r, vocab);
    out[r] = lse(row) - row[targets[r]!]!;
  }
  return out;
}

/** Per-row KL(pT || pS) at temperature tau. */
export function refKl(
  teacher: ArrayLike<number>, student: ArrayLike<number>, rows: number, vocab: number, tau: number,
): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const t = rowOf(teacher, r, vocab, 1 / tau);
    const s = rowOf(student, r, vocab, 1 / tau);
    const lt = lse(t), ls = lse(s);
    out[r] = t.reduce((acc, v, j) => acc + Math.exp(v - lt) * (v - lt - (s[j]! - ls)), 0);
  }
  return out;
}

export function refRmsNorm(
  x: ArrayLike<number>, w: ArrayLike<number>, rows: number, dim: number, eps: number,
): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const row = rowOf(x, r, dim);
    const rs = 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / dim + eps);
    row.forEach((v, j) => (out[r * dim + j] = w[j]! * v * rs));
  }
  return out;
}

export function refRope(
  x: ArrayLike<number>, cos: ArrayLike<number>, sin: ArrayLike<number>, outer: number, T: number, dh: number,
  posOffset = 0,
): Float64Array {
  const out = new Float64Array(outer * T * dh);
  const half = dh / 2;
  for (let o = 0; o < outer; o++) {
    for (let t = 0; t < T; t++) {
      const base = (o * T + t) * dh;
      for (let i = 0; i < dh; i++) {
        const rot = i < half ? -x[base + i + half]! : x[base + i - half]!;
        const c = (posOffset + t) * dh + i;
        out[base + i] = x[base + i]! * cos[c]! + rot * sin[c]!;
      }
    }
  }
  return out;
}

/** Causal GQA attention output and lse, materialising full score rows. */
export function refAttention(p: {
  q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number>;
  B: number; H: number; Hkv: number; T: number; S: number; dh: number; scale: number; offset: number;
}): { out: Float64Array; lse: Float64Array } {
  const { B, H, Hkv, T, S, dh, scale, offset } = p;
  const out = new Float64Array(B * H * T * dh);
  const lseOut = new Float64Array(B * H * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      for (let t = 0; t < T; t++) {
        const qo = ((b * H + h) * T + t) * dh;
        const scores: number[] = [];
        for (let j = 0; j <= offset + t; j++) {
          const ko = ((b * Hkv + g) * S + j) * dh;
          let s = 0;
          for (let d = 0; d < dh; d++) s += p.q[qo + d]! * p.k[ko + d]!;
          scores.push(s * scale);
        }
        const l = lse(scores);
        lseOut[(b * H + h) * T + t] = l;
        scores.forEach((s, j) => {
          const ko = ((b * Hkv + g) * S + j) * dh;
          for (let d = 0; d < dh; d++) out[qo + d]! += Math.exp(s - l) * p.v[ko + d]!;
        });
      }
    }
  }
  return { out, lse: lseOut };
}

/** AdamW step on copies; returns the new param, m, v. */
export function refAdamW(
  param: ArrayLike<number>, grad: ArrayLike<number>, m: ArrayLike<number>, v: ArrayLike<number>,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number },
): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const P = Float64Array.from(param), M = Float64Array.from(m), V = Float64Array.from(v);
  for (let i = 0; i < P.length; i++) {
    P[i] = P[i]! * (1 - o.lr * o.weightDecay);
    M[i] = o.beta1 * M[i]! + (1 - o.beta1) * grad[i]!;
    V[i] = o.beta2 * V[i]! + (1 - o.beta2) * grad[i]! * grad[i]!;
    const mhat = M[i]! / (1 - o.beta1 ** o.step);
    const vhat = V[i]! / (1 - o.beta2 ** o.step);
    P[i] = P[i]! - (o.lr * mhat) / (Math.sqrt(vhat) + o.eps);
  }
  return { param: P, m: M, v: V };
}

/** Central finite difference of sum(f(x) * w) with respect to x (float64). */
export function finiteDiff(f: (x: Float64Array) => Float64Array, x: Float64Array, w: ArrayLike<number>, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const old = x[i]!;
    x[i] = old + h;
    const fp = f(x);
    x[i] = old - h;
    const fm = f(x);
    x[i] = old;
    let s = 0;
    for (let j = 0; j < fp.length; j++) s += (fp[j]! - fm[j]!) * w[j]!;
    g[i] = s / (2 * h);
  }
  return g;
}

/** Max absolute difference. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`maxAbsDiff: lengths ${a.length} and ${b.length} differ`);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e;
}

export type { Float };
