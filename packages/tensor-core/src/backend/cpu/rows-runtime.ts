/**
 * The float32 row / elementwise kernels that run on the worker pool: log-sum-exp rows (log-softmax, cross-entropy),
 * softmax rows, the cross-entropy gradient rows exp(x - lse) g, the temperature-KL rows and their student
 * gradient, SwiGLU forward and backward, the MSE's sum of squared differences and its gradient, quadFormMse's dot and
 * scale-add, the gradient clip's sum of squares and scaling, and the AdamW update, on the WebAssembly vector module
 * (wasm-vector.ts). Every pool worker (worker-main.ts) instantiates the module with its own memory and the calling
 * thread runs the same code on its vector-module instance (wasm-vector.ts's, shared with the vector kernels), so
 * results do not depend on the thread count (every row and element is computed by the same instructions whichever
 * thread claims it).
 *
 * Work items are row chunks (about CHUNK floats of rows each) or element chunks (SwiGLU, AdamW: CHUNK elements; the
 * MSE's, quadFormMse's and the clip's: SUM_CHUNK). A thread claims an item, copies its rows into its module memory,
 * runs the kernels there and writes the results back. Rows holding a non-finite value are not computed here: they
 * are flagged in `bad`, and the caller runs its TypeScript reference on them (so -Infinity masking keeps its exact
 * semantics).
 */

import type { VectorKernels } from "./wasm-vector.js";
import { instantiate, PAGE, type WasmInstance } from "./wasm-instance.js";

/** The trailing arguments of the vector module's `adamw` (after p, g, m, v, n). */
export type AdamWHyper = VectorKernels["adamw"] extends (p: number, g: number, m: number, v: number, n: number, ...rest: infer R) => void
  ? R
  : never;

/** The rows of a temperature-KL job; bad[r] = 1 (row untouched) for a row with a non-finite value. */
interface KlRows {
  readonly teacher: Float32Array;
  readonly student: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly invT: number;
  readonly bad: Int32Array;
}

/** One parallel row job (all typed arrays SharedArrayBuffer-backed when it runs on the pool). */
export type RowsJob =
  | {
      /** lse[r] = logsumexp(x[r] invT) for rows [0, rows); bad[r] = 1 for a row with a non-finite value. */
      readonly kind: "lse";
      readonly x: Float32Array;
      readonly rows: number;
      readonly cols: number;
      readonly invT: number;
      readonly lse: Float64Array;
      readonly bad: Int32Array;
    }
  | {
      /** out[r] = softmax(x[r]) (out may alias x); bad[r] = 1 (out row untouched) for a row with a non-finite value. */
      readonly kind: "softmax";
      readonly x: Float32Array;
      readonly out: Float32Array;
      readonly rows: number;
      readonly cols: number;
      readonly bad: Int32Array;
    }
  | {
      /**
       * dx[r] = exp(x[r] - lse[r]) g[r] for rows with use[r] = 1 (computed as exp(x - max) (g exp(max - lse)), the
       * row's own max keeping float32 precision), zero for use[r] = 0; bad[r] = 1 (dx row untouched) for a row
       * with a non-finite value or lse.
       */
      readonly kind: "ceGrad";
      readonly x: Float32Array;
      readonly dx: Float32Array;
      readonly rows: number;
      readonly cols: number;
      readonly lse: Float64Array;
      readonly g: Float64Array;
      readonly use: Int32Array;
      readonly bad: Int32Array;
    }
  | (KlRows & {
      /** kl[r] = KL(softmax(teacher[r] invT) || softmax(student[r] invT)). */
      readonly kind: "kl";
      readonly kl: Float64Array;
    })
  | (KlRows & {
      /** dStudent[r] = g[r] invT (pS - pT). */
      readonly kind: "klGrad";
      readonly g: Float64Array;
      readonly dStudent: Float32Array;
    })
  | {
      /**
       * The fused LM-head rows (rows.ts's lmHeadRows): per row r, with used = targets[r] != ignore,
       * ce[r] = lse(student[r]) - student[r, target] (0 unused) and, with a teacher, kl[r] = KL(pT || pS) (the "kl"
       * job's value, summed in another order: Σ eT (t - s) invT / Σ eT - (lseT - lseS), see lmsums); with
       * grad, student[r] is overwritten by ceScale (softmax(student[r]) - onehot) (zero unused) + klScale invT
       * (pS - pT). bad[r] = 1 (row untouched) for a row with a non-finite value.
       */
      readonly kind: "lmHead";
      readonly student: Float32Array;
      readonly teacher: Float32Array | null;
      /** Targets of the rows (int32), or null for no CE. */
      readonly targets: Int32Array | null;
      readonly rows: number;
      readonly cols: number;
      readonly invT: number;
      readonly ignore: number;
      readonly ceScale: number;
      readonly klScale: number;
      readonly grad: boolean;
      readonly ce: Float64Array;
      readonly kl: Float64Array;
      readonly bad: Int32Array;
    }
  | {
      /** out = silu(gate) * up over n elements. */
      readonly kind: "swiglu";
      readonly gate: Float32Array;
      readonly up: Float32Array;
      readonly out: Float32Array;
      readonly n: number;
    }
  | {
      /** The AdamW update of adamw.ts in place over n elements of param, m, v (grad read only). */
      readonly kind: "adamw";
      readonly param: Float32Array;
      readonly grad: Float32Array;
      readonly m: Float32Array;
      readonly v: Float32Array;
      readonly n: number;
      /** decay, w1, beta1, beta2, w2, stepSize, bc2Sqrt, eps, lowWeight (the vector module's `adamw` arguments). */
      readonly hyper: AdamWHyper;
    }
  | {
      /**
       * parts[t] = the float64 sum of (a - b)^2 over elements [t SUM_CHUNK, (t + 1) SUM_CHUNK) (the caller adds the
       * parts in order, so the total does not depend on the threads).
       */
      readonly kind: "sqdiff";
      readonly a: Float32Array;
      readonly b: Float32Array;
      readonly n: number;
      readonly parts: Float64Array;
    }
  | {
      /**
       * parts[t] = the float64 sum of a b over elements [t SUM_CHUNK, (t + 1) SUM_CHUNK) (as "sqdiff"; each product
       * exact, summed in the vector module's `dot` order).
       */
      readonly kind: "dot";
      readonly a: Float32Array;
      readonly b: Float32Array;
      readonly n: number;
      readonly parts: Float64Array;
    }
  | {
      /** parts[t] = the float64 sum of x^2 over elements [t SUM_CHUNK, (t + 1) SUM_CHUNK) (as "sqdiff"). */
      readonly kind: "sumsq";
      readonly x: Float32Array;
      readonly n: number;
      readonly parts: Float64Array;
    }
  | {
      /**
       * out = c x, or out += c x with `add` (float32, c rounded to float32, the product rounded before the add: a
       * scale then an add); out may be x (in place).
       */
      readonly kind: "scale";
      readonly x: Float32Array;
      readonly c: number;
      readonly out: Float32Array;
      readonly add: boolean;
      readonly n: number;
    }
  | {
      /** With d = c (a - b): da = d, db = -d (either null to skip it). */
      readonly kind: "diffscale";
      readonly a: Float32Array;
      readonly b: Float32Array;
      readonly c: number;
      readonly da: Float32Array | null;
      readonly db: Float32Array | null;
      readonly n: number;
    }
  | {
      /**
       * With s = sigmoid(gate): dUp = dy gate s, dGate = dy up s (1 + gate (1 - s)); with addGate / addUp, added
       * (float32) into what dGate / dUp hold; `product` (unless null) gets the forward's silu(gate) up, bit for bit.
       */
      readonly kind: "swigluGrad";
      readonly gate: Float32Array;
      readonly up: Float32Array;
      readonly dy: Float32Array;
      readonly dGate: Float32Array;
      readonly dUp: Float32Array;
      readonly n: number;
      readonly addGate: boolean;
      readonly addUp: boolean;
      readonly product: Float32Array | null;
    };

/** Byte offsets of the vector module's memory layout (wasm-vector.ts's MASKS, SCRATCH and DATA). */
export interface VectorLayout {
  readonly masks: number;
  readonly scratch: number;
  readonly data: number;
}

export interface RowsRuntime {
  /** False when the module could not be instantiated (no WebAssembly SIMD): callers use their TypeScript paths. */
  readonly wasm: boolean;
  /** Work items of `job`. */
  itemCount(job: RowsJob): number;
  /** Runs items while `claim()` returns a number below `itemCount(job)`. */
  runItems(job: RowsJob, claim: () => number): void;
}

type RowsExports = Pick<
  VectorKernels,
  "maxmin" | "sumexp" | "expaff" | "swiglu" | "swiglub" | "adamw" | "klrow" | "klgrad" | "lmsums" | "lmdz" | "badd" | "bmul" | "sqdiff" | "diffscale" | "sumsq" | "dot"
>;

/** Floats per operand region of a rows item. */
const CHUNK = 1 << 15;

/**
 * Elements per item of the streaming jobs (STREAMING_KINDS; and per partial sum: the sums' fixed order).
 */
export const SUM_CHUNK = 1 << 14;

/**
 * The streaming jobs: a copy in, a few flops an element, bound by memory (the MSE's, quadFormMse's and the gradient
 * clip's). Their items are SUM_CHUNK elements, and rows-dispatch.ts counts fewer flops an element for them.
 */
export const STREAMING_KINDS: ReadonlySet<RowsJob["kind"]> = new Set(["sqdiff", "diffscale", "dot", "sumsq", "scale"]);

/** A vector-module instance for a worker's row runtime (its masks written, memory for five CHUNK regions). */
export function rowsInstance(vectorBytes: Uint8Array | null, layout: VectorLayout): WasmInstance<RowsExports> | null {
  const inst = instantiate<RowsExports>(vectorBytes, Math.ceil((layout.data + 5 * CHUNK * 4) / PAGE) + 1);
  if (inst === null) return null;
  const masks = new Int32Array(inst.memory.buffer, layout.masks, 16);
  for (let r = 0; r < 4; r++) for (let l = 0; l < 4; l++) masks[r * 4 + l] = l < r ? -1 : 0;
  return inst;
}

/** The row runtime over a vector-module instance (null: no WebAssembly SIMD; `wasm` is then false). */
export function createRowsRuntime(inst: WasmInstance<RowsExports> | null, layout: VectorLayout): RowsRuntime {
  const k = inst?.exports ?? null;
  let heap = inst?.heap ?? new Float32Array(0);

  /** Grows the memory to `bytes` and refreshes the view (another user of a shared instance may have grown it). */
  function ensure(bytes: number): void {
    if (inst === null) return;
    inst.ensure(bytes);
    heap = inst.heap;
  }

  /** Rows per item for rows of `cols` floats (a row is padded to a multiple of 4 floats). */
  function rowsPerItem(cols: number): number {
    return Math.max(1, Math.floor(CHUNK / (Math.ceil(cols / 4) * 4)));
  }

  function itemCount(job: RowsJob): number {
    if (job.kind === "lse" || job.kind === "softmax" || job.kind === "ceGrad" || job.kind === "kl" || job.kind === "klGrad" || job.kind === "lmHead") {
      return Math.ceil(job.rows / rowsPerItem(job.cols));
    }
    return Math.ceil(job.n / (STREAMING_KINDS.has(job.kind) ? SUM_CHUNK : CHUNK));
  }

  /** Copies rows [r0, r1) of x into the data region at byte offset `at` (row stride `stride` floats). */
  function rowsIn(x: Float32Array, r0: number, r1: number, cols: number, stride: number, at = layout.data): void {
    const base = at >> 2;
    if (stride === cols) heap.set(x.subarray(r0 * cols, r1 * cols), base);
    else for (let r = r0; r < r1; r++) heap.set(x.subarray(r * cols, (r + 1) * cols), base + (r - r0) * stride);
  }

  /** The row's max when the row at byte offset p is finite (max and min finite), else null. */
  function finiteMax(kk: RowsExports, p: number, cols: number): number | null {
    const max = kk.maxmin(p, cols);
    const min = heap[layout.scratch >> 2]!;
    return Number.isFinite(max) && Number.isFinite(min) ? max : null;
  }

  /** Shift (max invT rounded to float32) and log-sum-exp of a finite row at byte offset p. */
  function lseOf(kk: RowsExports, p: number, cols: number, invT: number, max: number): { sh: number; lse: number } {
    const sh = Math.fround(max * invT);
    return { sh, lse: sh + Math.log(kk.sumexp(p, cols, invT, sh)) };
  }

  function runItems(job: RowsJob, claim: () => number): void {
    const kk = k;
    if (kk === null) throw new Error("rows runtime: the WebAssembly vector module is not available");
    const total = itemCount(job);
    if (job.kind === "lmHead") {
      // regions: teacher rows, student rows (the gradient written over them), each `per` rows of `stride` floats,
      // and with a teacher one row of exp(student invT - shS) (lmsums keeps each exp it computes for lmdz)
      const { rows, cols, invT, teacher, targets, grad, ceScale } = job;
      const stride = Math.ceil(cols / 4) * 4;
      const per = rowsPerItem(cols);
      const region = per * stride * 4;
      ensure(layout.data + 2 * region + (teacher === null ? 0 : stride * 4) + 64);
      const sums = new Float64Array(heap.buffer, layout.scratch, 8);
      const sum = (k: number): number => sums[2 * k]! + sums[2 * k + 1]!;
      const gk = job.klScale * invT;
      for (let t = claim(); t < total; t = claim()) {
        const r0 = t * per, r1 = Math.min(rows, r0 + per);
        if (teacher !== null) rowsIn(teacher, r0, r1, cols, stride, layout.data);
        rowsIn(job.student, r0, r1, cols, stride, layout.data + region);
        for (let r = r0; r < r1; r++) {
          const pt = layout.data + (r - r0) * stride * 4, ps = pt + region;
          const ms = finiteMax(kk, ps, cols);
          const mt = ms === null || teacher === null ? null : finiteMax(kk, pt, cols);
          if (ms === null || (teacher !== null && mt === null)) {
            job.bad[r] = 1;
            continue;
          }
          const target = targets === null ? job.ignore : targets[r]!;
          const used = target !== job.ignore;
          const zTarget = used ? heap[(ps >> 2) + target]! : 0;
          if (teacher !== null) {
            // one pass of three exps (stored) and four sums, then dz from the stored exps: 3 exps per logit pair
            const pe = layout.data + 2 * region, shT = Math.fround(mt! * invT), shS = Math.fround(ms * invT);
            kk.lmsums(pt, ps, pe, cols, invT, shT, shS, ms);
            const lseT = shT + Math.log(sum(0)), lseS = shS + Math.log(sum(2)), lse1 = ms + Math.log(sum(3));
            job.ce[r] = used ? lse1 - zTarget : 0;
            job.kl[r] = sum(1) / sum(0) - (lseT - lseS);
            if (grad) kk.lmdz(pt, pe, ps, cols, Math.exp(shT - lseT), gk * Math.exp(shS - lseS), gk, used ? ceScale * Math.exp(ms - lse1) : 0);
          } else {
            const S1 = used ? lseOf(kk, ps, cols, 1, ms) : null;
            job.ce[r] = S1 === null ? 0 : S1.lse - zTarget;
            if (grad) {
              if (S1 === null) heap.fill(0, ps >> 2, (ps >> 2) + cols);
              else kk.expaff(ps, ps, cols, 1, S1.sh, ceScale * Math.exp(S1.sh - S1.lse));
            }
          }
          if (grad && used) heap[(ps >> 2) + target] -= ceScale;
          if (grad) job.student.set(heap.subarray(ps >> 2, (ps >> 2) + cols), r * cols);
        }
      }
      return;
    }
    if (job.kind === "kl" || job.kind === "klGrad") {
      // regions: teacher rows, student rows, gradient rows (klGrad), each `per` rows of `stride` floats
      const { rows, cols, invT } = job;
      const stride = Math.ceil(cols / 4) * 4;
      const per = rowsPerItem(cols);
      const region = per * stride * 4;
      ensure(layout.data + 3 * region + 64);
      for (let t = claim(); t < total; t = claim()) {
        const r0 = t * per, r1 = Math.min(rows, r0 + per);
        rowsIn(job.teacher, r0, r1, cols, stride, layout.data);
        rowsIn(job.student, r0, r1, cols, stride, layout.data + region);
        for (let r = r0; r < r1; r++) {
          const pt = layout.data + (r - r0) * stride * 4, ps = pt + region, pd = ps + region;
          const mt = finiteMax(kk, pt, cols);
          const ms = mt === null ? null : finiteMax(kk, ps, cols);
          if (mt === null || ms === null) {
            job.bad[r] = 1;
            continue;
          }
          const T = lseOf(kk, pt, cols, invT, mt), S = lseOf(kk, ps, cols, invT, ms);
          if (job.kind === "kl") job.kl[r] = kk.klrow(pt, ps, cols, invT, T.sh, Math.exp(T.sh - T.lse), T.lse - S.lse);
          else {
            const gs = job.g[r]! * invT;
            kk.klgrad(pt, ps, pd, cols, invT, T.sh, gs * Math.exp(T.sh - T.lse), S.sh, gs * Math.exp(S.sh - S.lse));
            job.dStudent.set(heap.subarray(pd >> 2, (pd >> 2) + cols), r * cols);
          }
        }
      }
      return;
    }
    if (job.kind === "lse" || job.kind === "softmax" || job.kind === "ceGrad") {
      const { x, rows, cols } = job;
      const stride = Math.ceil(cols / 4) * 4;
      const per = rowsPerItem(cols);
      ensure(layout.data + per * stride * 4 + 64);
      for (let t = claim(); t < total; t = claim()) {
        const r0 = t * per, r1 = Math.min(rows, r0 + per);
        rowsIn(x, r0, r1, cols, stride);
        for (let r = r0; r < r1; r++) {
          const p = layout.data + (r - r0) * stride * 4;
          if (job.kind === "ceGrad" && job.use[r] === 0) {
            heap.fill(0, p >> 2, (p >> 2) + cols);
            continue;
          }
          const max = job.kind !== "ceGrad" || Number.isFinite(job.lse[r]) ? finiteMax(kk, p, cols) : null;
          if (max === null) job.bad[r] = 1;
          else if (job.kind === "lse") job.lse[r] = lseOf(kk, p, cols, job.invT, max).lse;
          else if (job.kind === "softmax") kk.expaff(p, p, cols, 1, max, 1 / kk.sumexp(p, cols, 1, max));
          else kk.expaff(p, p, cols, 1, max, job.g[r]! * Math.exp(max - job.lse[r]!));
        }
        if (job.kind === "lse") continue;
        const out = job.kind === "softmax" ? job.out : job.dx;
        const base = layout.data >> 2;
        for (let r = r0; r < r1; r++) {
          if (job.bad[r] === 1) continue;
          const o = base + (r - r0) * stride;
          out.set(heap.subarray(o, o + cols), r * cols);
        }
      }
      return;
    }
    ensure(layout.data + 5 * CHUNK * 4 + 64);
    const reg = (j: number): number => layout.data + j * CHUNK * 4;
    if (job.kind === "sumsq" || job.kind === "scale") {
      const scalar = layout.scratch + 16;
      for (let t = claim(); t < total; t = claim()) {
        const j0 = t * SUM_CHUNK, len = Math.min(SUM_CHUNK, job.n - j0);
        heap.set(job.x.subarray(j0, j0 + len), reg(0) >> 2);
        if (job.kind === "sumsq") job.parts[t] = kk.sumsq(reg(0), len);
        else {
          heap[scalar >> 2] = job.c;
          kk.bmul(reg(0), scalar, reg(0), len, 1);
          if (job.add) {
            heap.set(job.out.subarray(j0, j0 + len), reg(1) >> 2);
            kk.badd(reg(0), reg(1), reg(0), len, 0);
          }
          job.out.set(heap.subarray(reg(0) >> 2, (reg(0) >> 2) + len), j0);
        }
      }
      return;
    }
    if (job.kind === "sqdiff" || job.kind === "diffscale" || job.kind === "dot") {
      for (let t = claim(); t < total; t = claim()) {
        const j0 = t * SUM_CHUNK, len = Math.min(SUM_CHUNK, job.n - j0);
        heap.set(job.a.subarray(j0, j0 + len), reg(0) >> 2);
        heap.set(job.b.subarray(j0, j0 + len), reg(1) >> 2);
        if (job.kind === "sqdiff") job.parts[t] = kk.sqdiff(reg(0), reg(1), len);
        else if (job.kind === "dot") job.parts[t] = kk.dot(reg(0), reg(1), len);
        else {
          kk.diffscale(reg(0), reg(1), len, job.c);
          job.da?.set(heap.subarray(reg(0) >> 2, (reg(0) >> 2) + len), j0);
          job.db?.set(heap.subarray(reg(1) >> 2, (reg(1) >> 2) + len), j0);
        }
      }
      return;
    }
    for (let t = claim(); t < total; t = claim()) {
      const j0 = t * CHUNK, len = Math.min(CHUNK, job.n - j0);
      if (job.kind === "adamw") {
        const arrays = [job.param, job.grad, job.m, job.v];
        for (let j = 0; j < 4; j++) heap.set(arrays[j]!.subarray(j0, j0 + len), reg(j) >> 2);
        kk.adamw(reg(0), reg(1), reg(2), reg(3), len, ...job.hyper);
        for (const j of [0, 2, 3]) arrays[j]!.set(heap.subarray(reg(j) >> 2, (reg(j) >> 2) + len), j0);
        continue;
      }
      heap.set(job.gate.subarray(j0, j0 + len), reg(0) >> 2);
      heap.set(job.up.subarray(j0, j0 + len), reg(1) >> 2);
      if (job.kind === "swiglu") {
        kk.swiglu(reg(0), reg(1), reg(2), len);
        job.out.set(heap.subarray(reg(2) >> 2, (reg(2) >> 2) + len), j0);
      } else {
        heap.set(job.dy.subarray(j0, j0 + len), reg(2) >> 2);
        kk.swiglub(reg(0), reg(1), reg(2), len);
        job.product?.set(heap.subarray(reg(2) >> 2, (reg(2) >> 2) + len), j0);
        // regions 0 and 1 now hold dGate and dUp; add what the outputs hold (regions 3 and 4) where asked
        for (const [j, out, add] of [[0, job.dGate, job.addGate], [1, job.dUp, job.addUp]] as const) {
          if (add) {
            heap.set(out.subarray(j0, j0 + len), reg(j + 3) >> 2);
            kk.badd(reg(j), reg(j + 3), reg(j), len, 0);
          }
          out.set(heap.subarray(reg(j) >> 2, (reg(j) >> 2) + len), j0);
        }
      }
    }
  }

  return { wasm: k !== null, itemCount, runItems };
}
