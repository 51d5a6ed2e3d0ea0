// The teacher-derived init: the symmetric eigensolver against known decompositions and a fast-check property
// (A v = λ v, orthonormal vectors, descending values), and the pca / svd inits on a synthetic teacher whose
// residual stream lives in a known d-dimensional subspace: both recover that subspace, and the student they
// give reproduces the teacher (clone loss and KL ~ 0, CE = the teacher's), far below the random start.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Batch } from "@lrc-ts/data";
import { CausalLM, makeConfig } from "@lrc-ts/nn";
import { bufferPoolStats, crossEntropy, noGrad, rng, tensor } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { symmetricEigen } from "./eigen.js";
import { startLosses, teacherInit } from "./init.js";
import { LowRankClone } from "./clone.js";
import { batchIds } from "./losses.js";

/** A random n x k matrix with orthonormal columns (Gram-Schmidt), row-major. */
function orthonormal(n: number, k: number, seed: number): Float64Array {
  const r = rng(seed);
  const q = new Float64Array(n * k);
  for (let j = 0; j < k; j++) {
    const v = Array.from({ length: n }, () => r.normal());
    for (let pass = 0; pass < 2; pass++)
      for (let c = 0; c < j; c++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += q[i * k + c]! * v[i]!;
        for (let i = 0; i < n; i++) v[i] = v[i]! - dot * q[i * k + c]!;
      }
    const norm = Math.hypot(...v);
    for (let i = 0; i < n; i++) q[i * k + j] = v[i]! / norm;
  }
  return q;
}

/** Max |A v_j - λ_j v_j| and max |VᵀV - I|. */
function residuals(a: Float64Array, n: number, values: Float64Array, V: Float64Array): { eig: number; orth: number } {
  let eig = 0, orth = 0;
  for (let j = 0; j < n; j++) {
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += a[r * n + k]! * V[k * n + j]!;
      eig = Math.max(eig, Math.abs(s - values[j]! * V[r * n + j]!));
    }
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += V[k * n + j]! * V[k * n + c]!;
      orth = Math.max(orth, Math.abs(s - (j === c ? 1 : 0)));
    }
  }
  return { eig, orth };
}

describe("symmetricEigen", () => {
  it("a diagonal matrix: its entries, descending, and unit vectors", () => {
    const diag = [3, -1, 7, 0, 2];
    const n = diag.length;
    const a = new Float64Array(n * n);
    diag.forEach((v, i) => (a[i * n + i] = v));
    const { values, vectors } = symmetricEigen(a, n);
    expect([...values]).toEqual([7, 3, 2, 0, -1]);
    const at = [2, 0, 4, 3, 1]; // where each sorted value sat
    at.forEach((row, j) => expect(Math.abs(vectors[row * n + j]!)).toBeCloseTo(1, 12));
  });

  it("the 2 x 2 [[2, 1], [1, 2]]: 3 and 1 with (1, ±1)/√2", () => {
    const { values, vectors } = symmetricEigen(Float64Array.of(2, 1, 1, 2), 2);
    expect(values[0]).toBeCloseTo(3, 12);
    expect(values[1]).toBeCloseTo(1, 12);
    expect(Math.abs(vectors[0]!)).toBeCloseTo(Math.SQRT1_2, 12);
    expect(vectors[0]! * vectors[2]!).toBeCloseTo(0.5, 12); // same sign for λ = 3
    expect(vectors[1]! * vectors[3]!).toBeCloseTo(-0.5, 12);
  });

  it("Q diag(λ) Qᵀ for a random orthogonal Q: λ back and Q's columns up to sign", () => {
    const n = 40;
    const Q = orthonormal(n, n, 3);
    const lambda = Array.from({ length: n }, (_, i) => 1.5 * (n - i) + 0.3 * (i % 2)); // distinct, descending
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += Q[i * n + k]! * lambda[k]! * Q[j * n + k]!;
      a[i * n + j] = s;
    }
    const { values, vectors } = symmetricEigen(a, n);
    for (let j = 0; j < n; j++) {
      expect(values[j]).toBeCloseTo(lambda[j]!, 10);
      let dot = 0;
      for (let i = 0; i < n; i++) dot += Q[i * n + j]! * vectors[i * n + j]!;
      expect(Math.abs(dot)).toBeCloseTo(1, 9);
    }
  });

  it("repeated eigenvalues (the identity plus a rank-1 term) still give an orthonormal basis", () => {
    const n = 9;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = (i === j ? 1 : 0) + 1 / n;
    const { values, vectors } = symmetricEigen(a, n);
    expect(values[0]).toBeCloseTo(2, 12);
    for (let j = 1; j < n; j++) expect(values[j]).toBeCloseTo(1, 12);
    const r = residuals(a, n, values, vectors);
    expect(r.eig).toBeLessThan(1e-12);
    expect(r.orth).toBeLessThan(1e-12);
  });

  it("property: A v = λ v, VᵀV = I, values descending and summing to the trace", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 14 }).chain((n) =>
          fc.tuple(fc.constant(n), fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: n * n, maxLength: n * n })),
        ),
        ([n, raw]) => {
          const a = new Float64Array(n * n);
          for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = raw[i * n + j]!;
          const { values, vectors } = symmetricEigen(a, n);
          const scale = Math.max(1, ...raw.map(Math.abs)) * n;
          const r = residuals(a, n, values, vectors);
          let trace = 0;
          for (let i = 0; i < n; i++) trace += a[i * n + i]!;
          return (
            r.eig <= 1e-12 * scale && r.orth <= 1e-12 * n &&
            values.every((v, j) => j === 0 || v <= values[j - 1]!) &&
            Math.abs(values.reduce((s, v) => s + v, 0) - trace) <= 1e-12 * scale
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("entries spanning hundreds of orders of magnitude (subnormal off-diagonals) stay finite and exact", () => {
    // A fast-check counterexample: the lower triangle holds 1e-12 down to 9e-323.
    const a = Float64Array.of(-1.249197848428698e-12, 0, 0, -9e-323, -1.1060677285576496e-90, 0, -3.4476402080235022e-71, -2.879822169055953e-251, 4.1927600133377467e-250);
    for (const [i, j] of [[0, 1], [0, 2], [1, 2]] as const) a[i * 3 + j] = a[j * 3 + i]!;
    const { values, vectors } = symmetricEigen(a, 3);
    expect(values.every(Number.isFinite)).toBe(true);
    const r = residuals(a, 3, values, vectors);
    expect(r.eig).toBeLessThan(1e-26);
    expect(r.orth).toBeLessThan(1e-14);
    expect(values[2]).toBeCloseTo(-1.249197848428698e-12, 24);
  });

  it("rejects a wrong size and non-finite values", () => {
    expect(() => symmetricEigen(new Float64Array(5), 2)).toThrow(/5 values for an 2 x 2/);
    expect(() => symmetricEigen(Float64Array.of(1, NaN, NaN, 1), 2)).toThrow(/value 1 is NaN/);
  });
});

/**
 * A Qwen2 teacher (D = 16) whose residual stream lies in span(B) for an orthonormal B (D x d): the rows of E
 * and the columns of every W_o and W_down are projected onto span(B). Non-trivial norm gains.
 */
function lowRankTeacher(d: number, tied: boolean): { teacher: CausalLM; B: Float64Array } {
  const D = 16;
  const cfg = makeConfig({
    model_type: "qwen2", vocab_size: 64, hidden_size: D, intermediate_size: 24, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: tied, rms_norm_eps: 1e-6, max_position_embeddings: 64,
  });
  const m = new CausalLM(cfg, { seed: 5, std: 0.3 });
  const B = orthonormal(D, d, 11);
  const r = rng(13);
  /** Columns of w (D x k) onto span(B): w <- B Bᵀ w. */
  const projectColumns = (w: Tensor) => {
    const k = w.shape[1]!;
    const out = new Float64Array(D * k);
    for (let c = 0; c < k; c++)
      for (let j = 0; j < d; j++) {
        let dot = 0;
        for (let i = 0; i < D; i++) dot += B[i * d + j]! * w.buf[i * k + c]!;
        for (let i = 0; i < D; i++) out[i * k + c] += B[i * d + j]! * dot;
      }
    w.buf.set(out);
  };
  noGrad(() => {
    const w = m.weights();
    // Rows of E onto span(B): E <- E B Bᵀ, i.e. the columns of Eᵀ.
    const V = w.embed.shape[0]!;
    const et = tensor(new Float64Array(D * V).map((_, k) => w.embed.buf[(k % V) * D + Math.floor(k / V)]!), [D, V], { dtype: "float64" });
    projectColumns(et);
    for (let v = 0; v < V; v++) for (let i = 0; i < D; i++) w.embed.buf[v * D + i] = et.buf[i * V + v]!;
    for (const l of w.layers) {
      projectColumns(l.oW);
      projectColumns(l.downW);
      for (const g of [l.inputNorm, l.postNorm]) for (let i = 0; i < D; i++) g.buf[i] = 1 + 0.3 * r.normal();
    }
    for (let i = 0; i < D; i++) w.finalNorm.buf[i] = 1 + 0.3 * r.normal();
  });
  return { teacher: m, B };
}

function idsBatch(B: number, T: number, seed: number): Batch {
  const r = rng(seed);
  return { inputs: new Int32Array(B * T).map(() => r.int(64)), targets: new Int32Array(B * T).map(() => r.int(64)), shape: [B, T] };
}

/** ||Bᵀ U||²_F / d: 1 when span(U) = span(B). */
function subspaceOverlap(B: Float64Array, U: ArrayLike<number>, D: number, d: number): number {
  let s = 0;
  for (let a = 0; a < d; a++)
    for (let b = 0; b < d; b++) {
      let dot = 0;
      for (let i = 0; i < D; i++) dot += B[i * d + a]! * U[i * d + b]!;
      s += dot * dot;
    }
  return s / d;
}

describe("teacherInit", () => {
  const d = 6;
  for (const method of ["pca", "svd"] as const) {
    it(`${method}: recovers the teacher's d-dimensional residual subspace and starts the student at the teacher`, async () => {
      const { teacher, B } = lowRankTeacher(d, true);
      const clone = new LowRankClone(teacher, { hiddenSize: d, tieLmHeadProjection: false, seed: 1 });
      const batch = idsBatch(2, 12, 21);
      const before = noGrad(() => clone.forward(batch));
      const random = { clone: before.clone!.item(), kl: before.kl!.item() };
      const calibration = [batchIds(idsBatch(4, 16, 3), "inputs"), batchIds(idsBatch(4, 16, 4), "inputs")];
      const info = await teacherInit(clone.projections, method === "pca" ? { method, calibration } : { method });
      expect(info.tokens).toBe(method === "pca" ? 128 : 0);
      expect(info.energy).toBeCloseTo(1, 10);
      expect(info.gain).toBeCloseTo(Math.sqrt(16 / d), 8);
      expect(subspaceOverlap(B, clone.params.embed!.buf, 16, d)).toBeCloseTo(1, 5);
      const after = noGrad(() => clone.forward(batch));
      const teacherCe = noGrad(() => crossEntropy(after.logits().teacher, batchIds(batch, "targets"))).item();
      expect(after.clone!.item()).toBeLessThan(1e-6);
      expect(Math.abs(after.ce!.item() - teacherCe)).toBeLessThan(1e-4);
      expect(after.clone!.item()).toBeLessThan(1e-6 * random.clone);
      expect(after.kl!.item()).toBeLessThan(1e-3 * random.kl);
    });
  }

  it("a tied head projection: the final gain is the diagonal approximation, the start still far below random", async () => {
    const { teacher } = lowRankTeacher(d, true);
    const clone = new LowRankClone(teacher, { hiddenSize: d, seed: 1 });
    expect(clone.projections.tieLmHeadProjection).toBe(true);
    const batch = idsBatch(2, 12, 21);
    const random = noGrad(() => clone.forward(batch)).clone!.item();
    await teacherInit(clone.projections, { method: "pca", calibration: [batchIds(idsBatch(4, 16, 3), "inputs")] });
    expect(clone.params.lm_head).toBeUndefined();
    // Every clone term is exact: the final norm only reaches the logits.
    expect(noGrad(() => clone.forward(batch)).clone!.item()).toBeLessThan(1e-6 * random);
  });

  it("pca without calibration tokens, or with float ids, is an error", async () => {
    const { teacher } = lowRankTeacher(d, true);
    const clone = new LowRankClone(teacher, { hiddenSize: d });
    await expect(teacherInit(clone.projections, { method: "pca" })).rejects.toThrow(/needs calibration tokens/);
    await expect(teacherInit(clone.projections, { method: "pca", calibration: [tensor([1, 2], [1, 2])] })).rejects.toThrow(/int32 \[B, T\]/);
  });
});

describe("forwards and folds outside training return their buffers to the pool", () => {
  // The start losses and the pca calibration run a whole forward without a tape; its temporaries must be
  // released at once (a scope), not left to the garbage collector: a second call then takes every buffer from
  // the pool's free lists and allocates nothing fresh (with the temporaries leaked, it allocates them again).
  it("startLosses and pca's calibration forward, called again, allocate no fresh buffers", async () => {
    const { teacher } = lowRankTeacher(6, true);
    const clone = new LowRankClone(teacher, { hiddenSize: 6, seed: 1 });
    const batch = idsBatch(2, 12, 21);
    const fresh = async (f: () => Promise<unknown>) => {
      const before = bufferPoolStats().freshBytes;
      await f();
      return bufferPoolStats().freshBytes - before;
    };
    const start = () => startLosses(clone, batch);
    const pca = () => teacherInit(clone.projections, { method: "pca", calibration: [batchIds(idsBatch(4, 16, 3), "inputs")] });
    // two calls fill the free lists (the second still found one bucket empty); from then on nothing is fresh
    // (before the scope: 82,496 bytes every call)
    await start();
    await start();
    expect(await fresh(start)).toBe(0);
    await pca();
    expect(await fresh(pca)).toBe(0); // before the scope: 103,424 bytes every call
  });

  it("folding the student (withStudent: the export's fold) returns the generated weights to the pool", async () => {
    const { teacher } = lowRankTeacher(6, true);
    const clone = new LowRankClone(teacher, { hiddenSize: 6, seed: 1 });
    const fold = async () => {
      const before = bufferPoolStats().freshBytes;
      await clone.withStudent(() => {});
      return bufferPoolStats().freshBytes - before;
    };
    await fold();
    await fold();
    expect(await fold()).toBe(0); // with the generated weights left to the garbage collector: 11,264 bytes every fold
    // the trainable gains and the teacher's tensors are still there
    expect(() => clone.forward(idsBatch(2, 12, 21))).not.toThrow();
  });
});
