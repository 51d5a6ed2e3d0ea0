/**
 * Fused row kernels: softmax / log-softmax (and backward), softmax cross-entropy, temperature KL divergence,
 * RMSNorm (HF semantics), and rotary position embedding (HF rotate-half layout).
 *
 * Every kernel takes row-major contiguous Float32Array or Float64Array buffers and loops over rows of length
 * `cols` / `vocab` / `dim`. Sums run in float64 (JavaScript numbers) whatever the storage, with max-subtraction
 * before every exp. Inputs and outputs may alias (in-place) where noted. Errors name the kernel and the field.
 *
 * Float32 softmax, log-sum-exp, cross-entropy and KL rows run on the row runtime (rows-runtime.ts: WebAssembly SIMD,
 * on the worker pool when large), RMSNorm and rope on the vector kernels of rows-wasm.ts (rope when dh / 2 is a
 * multiple of 4); the loops here are the reference and the fallback (float64, rows with non-finite values, no wasm).
 */
import type { Float } from "./gemm-runtime.js";
import { acquireForWorkers, release } from "./buffer-pool.js";
import { rowsRuntime, runRows } from "./rows-dispatch.js";
import type { RowsJob, RowsRuntime } from "./rows-runtime.js";
import { rmsNormBackwardWasm, rmsNormForwardWasm, ropeWasm } from "./rows-wasm.js";
import { vectorKernels, type VectorKernels } from "./wasm-vector.js";

/** The wasm vector kernels when every array is float32 and they are available. */
function f32Kernels(...arrays: (Float | null)[]): VectorKernels | null {
  for (const a of arrays) if (a !== null && !(a instanceof Float32Array)) return null;
  return vectorKernels();
}

/** The row runtime when every array is float32 and rows are non-empty, else null (the TypeScript loops run). */
function f32Rows(cols: number, ...arrays: (Float | null)[]): RowsRuntime | null {
  if (cols === 0) return null;
  for (const a of arrays) if (a !== null && !(a instanceof Float32Array)) return null;
  return rowsRuntime();
}

/**
 * Runs the row-runtime job `job(bad)` (on the worker pool when large; `bad` zeroed here) and then `fallback(r)` on
 * the calling thread for every row the job flagged (non-finite values: the TypeScript reference keeps their exact
 * semantics).
 */
function runFlagged(rt: RowsRuntime, rows: number, elements: number, job: (bad: Int32Array) => RowsJob, fallback: (r: number) => void): void {
  const bad = acquireForWorkers("int32", rows).fill(0);
  try {
    runRows(rt, job(bad), elements);
    for (let r = 0; r < rows; r++) if (bad[r] === 1) fallback(r);
  } finally {
    release(bad);
  }
}

function need(fn: string, name: string, arr: { length: number }, n: number): void {
  if (arr.length < n) throw new RangeError(`${fn}: ${name} needs ${n} elements, has ${arr.length}`);
}

function dims(fn: string, values: Record<string, number>): void {
  for (const [name, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${fn}: ${name} must be a non-negative integer, got ${v}`);
  }
}

/** out[r] = softmax(x[r]); out may alias x. */
export function softmaxRows(x: Float, out: Float, rows: number, cols: number): void {
  dims("softmaxRows", { rows, cols });
  need("softmaxRows", "x", x, rows * cols);
  need("softmaxRows", "out", out, rows * cols);
  const rt = f32Rows(cols, x, out);
  if (rt !== null) {
    const [xf, of] = [x as Float32Array, out as Float32Array];
    runFlagged(rt, rows, rows * cols, (bad) => ({ kind: "softmax", x: xf, out: of, rows, cols, bad }), (r) => softmaxRow(x, out, r * cols, cols));
    return;
  }
  for (let r = 0; r < rows; r++) softmaxRow(x, out, r * cols, cols);
}

function softmaxRow(x: Float, out: Float, o: number, cols: number): void {
  let max = -Infinity;
  for (let j = 0; j < cols; j++) if (x[o + j] > max) max = x[o + j];
  let sum = 0;
  for (let j = 0; j < cols; j++) {
    const e = Math.exp(x[o + j] - max);
    out[o + j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = 0; j < cols; j++) out[o + j] *= inv;
}

/** out[r] = log_softmax(x[r]) = x - logsumexp(x); out may alias x. */
export function logSoftmaxRows(x: Float, out: Float, rows: number, cols: number): void {
  dims("logSoftmaxRows", { rows, cols });
  need("logSoftmaxRows", "x", x, rows * cols);
  need("logSoftmaxRows", "out", out, rows * cols);
  const lse = lseRows(x, rows, cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const l = lse[r]!;
    for (let j = 0; j < cols; j++) out[o + j] = x[o + j] - l;
  }
  release(lse);
}

/** logsumexp(x[r]) of every row, in a pooled array the caller releases (the row runtime for float32). */
function lseRows(x: Float, rows: number, cols: number): Float64Array {
  const lse = acquireForWorkers("float64", rows);
  const rt = f32Rows(cols, x);
  if (rt !== null) {
    const xf = x as Float32Array;
    runFlagged(rt, rows, rows * cols, (bad) => ({ kind: "lse", x: xf, rows, cols, invT: 1, lse, bad }), (r) => (lse[r] = rowLse(x, r * cols, cols, 1)));
  } else for (let r = 0; r < rows; r++) lse[r] = rowLse(x, r * cols, cols, 1);
  return lse;
}

/** dx = y * (dy - sum(dy * y)) per row, y = softmax output; dx may alias dy. */
export function softmaxRowsBackward(y: Float, dy: Float, dx: Float, rows: number, cols: number): void {
  dims("softmaxRowsBackward", { rows, cols });
  need("softmaxRowsBackward", "y", y, rows * cols);
  need("softmaxRowsBackward", "dy", dy, rows * cols);
  need("softmaxRowsBackward", "dx", dx, rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += dy[o + j] * y[o + j];
    for (let j = 0; j < cols; j++) dx[o + j] = y[o + j] * (dy[o + j] - dot);
  }
}

/** dx = dy - exp(y) * sum(dy) per row, y = log-softmax output; dx may alias dy. */
export function logSoftmaxRowsBackward(y: Float, dy: Float, dx: Float, rows: number, cols: number): void {
  dims("logSoftmaxRowsBackward", { rows, cols });
  need("logSoftmaxRowsBackward", "y", y, rows * cols);
  need("logSoftmaxRowsBackward", "dy", dy, rows * cols);
  need("logSoftmaxRowsBackward", "dx", dx, rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += dy[o + j];
    for (let j = 0; j < cols; j++) dx[o + j] = dy[o + j] - Math.exp(y[o + j]) * sum;
  }
}

/** log(sum_j exp(x[o + j] * invT)), max-subtracted. */
function rowLse(x: Float, o: number, cols: number, invT: number): number {
  let max = -Infinity;
  for (let j = 0; j < cols; j++) {
    const z = x[o + j] * invT;
    if (z > max) max = z;
  }
  if (max === -Infinity || max === Infinity) return max;
  let sum = 0;
  for (let j = 0; j < cols; j++) sum += Math.exp(x[o + j] * invT - max);
  return max + Math.log(sum);
}

function checkTarget(fn: string, targets: Int32Array, r: number, vocab: number, ignoreIndex: number): boolean {
  const t = targets[r];
  if (t === ignoreIndex) return false;
  if (!(t >= 0 && t < vocab)) {
    throw new RangeError(`${fn}: target at row ${r} is ${t}, outside [0, ${vocab}) and not ignoreIndex ${ignoreIndex}`);
  }
  return true;
}

/**
 * Softmax cross-entropy per row: lossPerRow[r] = logsumexp(logits[r]) - logits[r, targets[r]] (0 for rows whose
 * target is ignoreIndex), lse[r] = logsumexp(logits[r]) for every row. Returns the number of non-ignored rows.
 * Throws a RangeError naming the row for a target outside [0, vocab) that is not ignoreIndex.
 */
export function crossEntropyForward(
  logits: Float, targets: Int32Array, rows: number, vocab: number, ignoreIndex: number,
  lossPerRow: Float, lse: Float,
): number {
  const fn = "crossEntropyForward";
  dims(fn, { rows, vocab });
  need(fn, "logits", logits, rows * vocab);
  need(fn, "targets", targets, rows);
  need(fn, "lossPerRow", lossPerRow, rows);
  need(fn, "lse", lse, rows);
  let count = 0;
  for (let r = 0; r < rows; r++) checkTarget(fn, targets, r, vocab, ignoreIndex);
  const rowLses = lseRows(logits, rows, vocab);
  for (let r = 0; r < rows; r++) {
    const used = targets[r] !== ignoreIndex;
    const l = rowLses[r]!;
    lse[r] = l;
    if (used) {
      lossPerRow[r] = l - logits[r * vocab + targets[r]];
      count++;
    } else {
      lossPerRow[r] = 0;
    }
  }
  release(rowLses);
  return count;
}

/** dlogits[r] = (softmax(logits[r]) - onehot(targets[r])) * gradPerRow[r]; zero for ignored rows. */
export function crossEntropyBackward(
  logits: Float, targets: Int32Array, lse: Float, gradPerRow: Float, dlogits: Float,
  rows: number, vocab: number, ignoreIndex: number,
): void {
  const fn = "crossEntropyBackward";
  dims(fn, { rows, vocab });
  need(fn, "logits", logits, rows * vocab);
  need(fn, "targets", targets, rows);
  need(fn, "lse", lse, rows);
  need(fn, "gradPerRow", gradPerRow, rows);
  need(fn, "dlogits", dlogits, rows * vocab);
  const used = acquireForWorkers("int32", rows);
  try {
    for (let r = 0; r < rows; r++) used[r] = checkTarget(fn, targets, r, vocab, ignoreIndex) ? 1 : 0;
    const row = (r: number): void => {
      const o = r * vocab;
      const g = gradPerRow[r];
      const l = lse[r];
      for (let j = 0; j < vocab; j++) dlogits[o + j] = Math.exp(logits[o + j] - l) * g;
    };
    const rt = f32Rows(vocab, logits, dlogits);
    if (rt !== null) {
      const lse64 = acquireForWorkers("float64", rows), g64 = acquireForWorkers("float64", rows);
      for (let r = 0; r < rows; r++) {
        lse64[r] = lse[r]!;
        g64[r] = gradPerRow[r]!;
      }
      const [x, dx] = [logits as Float32Array, dlogits as Float32Array];
      try {
        runFlagged(rt, rows, rows * vocab, (bad) => ({ kind: "ceGrad", x, dx, rows, cols: vocab, lse: lse64, g: g64, use: used, bad }), row);
      } finally {
        release(lse64);
        release(g64);
      }
    } else {
      for (let r = 0; r < rows; r++) {
        if (used[r] === 1) row(r);
        else dlogits.fill(0, r * vocab, (r + 1) * vocab);
      }
    }
    for (let r = 0; r < rows; r++) if (used[r] === 1) dlogits[r * vocab + targets[r]] -= gradPerRow[r];
  } finally {
    release(used);
  }
}

function checkTemperature(fn: string, temperature: number): void {
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`${fn}: temperature must be a positive finite number, got ${temperature}`);
  }
}

/** klPerRow[r] = sum_v pT (log pT - log pS), p = softmax(z / temperature), T = teacher, S = student. */
export function klDivForward(
  teacher: Float, student: Float, rows: number, vocab: number, temperature: number, klPerRow: Float,
): void {
  const fn = "klDivForward";
  dims(fn, { rows, vocab });
  checkTemperature(fn, temperature);
  need(fn, "teacher", teacher, rows * vocab);
  need(fn, "student", student, rows * vocab);
  need(fn, "klPerRow", klPerRow, rows);
  const invT = 1 / temperature;
  const row = (r: number): number => {
    const o = r * vocab;
    const lseT = rowLse(teacher, o, vocab, invT);
    const lseS = rowLse(student, o, vocab, invT);
    let kl = 0;
    for (let j = 0; j < vocab; j++) {
      const logPT = teacher[o + j] * invT - lseT;
      const logPS = student[o + j] * invT - lseS;
      const pT = Math.exp(logPT);
      if (pT > 0) kl += pT * (logPT - logPS);
    }
    return kl;
  };
  const rt = f32Rows(vocab, teacher, student);
  if (rt === null) {
    for (let r = 0; r < rows; r++) klPerRow[r] = row(r);
    return;
  }
  const kl = acquireForWorkers("float64", rows);
  const [t, st] = [teacher as Float32Array, student as Float32Array];
  try {
    runFlagged(rt, rows, 2 * rows * vocab, (bad) => ({ kind: "kl", teacher: t, student: st, rows, cols: vocab, invT, kl, bad }), (r) => (kl[r] = row(r)));
    for (let r = 0; r < rows; r++) klPerRow[r] = kl[r]!;
  } finally {
    release(kl);
  }
}

/**
 * Gradients of klPerRow (see klDivForward) scaled by gradPerRow[r]:
 *   dStudent = g / temperature * (pS - pT)
 *   dTeacher = g / temperature * pT * ((log pT - log pS) - KL_row)        (skipped when dTeacher is null)
 */
export function klDivBackward(
  teacher: Float, student: Float, rows: number, vocab: number, temperature: number, gradPerRow: Float,
  dStudent: Float | null, dTeacher: Float | null,
): void {
  const fn = "klDivBackward";
  dims(fn, { rows, vocab });
  checkTemperature(fn, temperature);
  need(fn, "teacher", teacher, rows * vocab);
  need(fn, "student", student, rows * vocab);
  need(fn, "gradPerRow", gradPerRow, rows);
  if (dStudent !== null) need(fn, "dStudent", dStudent, rows * vocab);
  if (dTeacher !== null) need(fn, "dTeacher", dTeacher, rows * vocab);
  const invT = 1 / temperature;
  const row = (r: number): void => {
    const o = r * vocab;
    const lseT = rowLse(teacher, o, vocab, invT);
    const lseS = rowLse(student, o, vocab, invT);
    const gs = gradPerRow[r] * invT;
    if (dTeacher !== null) {
      let kl = 0;
      for (let j = 0; j < vocab; j++) {
        const logPT = teacher[o + j] * invT - lseT;
        const pT = Math.exp(logPT);
        if (pT > 0) kl += pT * (logPT - (student[o + j] * invT - lseS));
      }
      for (let j = 0; j < vocab; j++) {
        const logPT = teacher[o + j] * invT - lseT;
        const pT = Math.exp(logPT);
        dTeacher[o + j] = pT > 0 ? gs * pT * (logPT - (student[o + j] * invT - lseS) - kl) : 0;
      }
    }
    if (dStudent !== null) {
      for (let j = 0; j < vocab; j++) {
        const pT = Math.exp(teacher[o + j] * invT - lseT);
        const pS = Math.exp(student[o + j] * invT - lseS);
        dStudent[o + j] = gs * (pS - pT);
      }
    }
  };
  const rt = dTeacher === null && dStudent !== null ? f32Rows(vocab, teacher, student, dStudent) : null;
  if (rt === null) {
    for (let r = 0; r < rows; r++) row(r);
    return;
  }
  const g = acquireForWorkers("float64", rows);
  for (let r = 0; r < rows; r++) g[r] = gradPerRow[r]!;
  const [t, st, ds] = [teacher as Float32Array, student as Float32Array, dStudent as Float32Array];
  try {
    runFlagged(rt, rows, 2 * rows * vocab, (bad) => ({ kind: "klGrad", teacher: t, student: st, rows, cols: vocab, invT, g, dStudent: ds, bad }), row);
  } finally {
    release(g);
  }
}

/**
 * The LM head's losses and their gradient in one pass over each row (lmHeadLoss's row work, cpu/lm-head.ts), for
 * rows of student logits and optionally the teacher's and the targets:
 *   ceRow[r] = logsumexp(student[r]) - student[r, target]           (0 when the target is ignoreIndex)
 *   klRow[r] = sum_v pT (log pT - log pS),  p = softmax(z / temperature)  (with a teacher, else untouched)
 * and with `grad` the gradient of ceScale Σ ceRow + klScale Σ klRow written over the student's logits:
 *   student[r] <- ceScale (softmax(student[r]) - onehot(target)) + klScale / temperature (pS - pT)
 * The same numbers as crossEntropyForward / crossEntropyBackward / klDivForward / klDivBackward. The float32 row
 * runtime (rows-runtime.ts's lmHead job) computes each of exp(teacher / T), exp(student / T) and exp(student) once
 * per logit (three exps, against nine for the four kernels) in one pass that also sums them and the KL, keeps them
 * in its memory and forms dz from them; the KL is summed as Σ eT (t - s) / T / Σ eT - (lseT - lseS) there, a
 * reassociation of this loop's Σ pT (log pT - log pS).
 */
export function lmHeadRows(
  student: Float, teacher: Float | null, targets: Int32Array | null, rows: number, vocab: number, ignoreIndex: number,
  temperature: number, ceScale: number, klScale: number, grad: boolean, ceRow: Float, klRow: Float,
): void {
  const fn = "lmHeadRows";
  dims(fn, { rows, vocab });
  checkTemperature(fn, temperature);
  need(fn, "student", student, rows * vocab);
  if (teacher !== null) need(fn, "teacher", teacher, rows * vocab);
  if (targets !== null) {
    need(fn, "targets", targets, rows);
    for (let r = 0; r < rows; r++) checkTarget(fn, targets, r, vocab, ignoreIndex);
  }
  need(fn, "ceRow", ceRow, rows);
  need(fn, "klRow", klRow, rows);
  const invT = 1 / temperature;
  const row = (r: number): void => {
    const o = r * vocab;
    const target = targets === null ? ignoreIndex : targets[r]!;
    const used = target !== ignoreIndex;
    const lse1 = used ? rowLse(student, o, vocab, 1) : 0;
    ceRow[r] = used ? lse1 - student[o + target]! : 0;
    const lseT = teacher === null ? 0 : rowLse(teacher, o, vocab, invT);
    const lseS = teacher === null ? 0 : rowLse(student, o, vocab, invT);
    if (teacher !== null) {
      let kl = 0;
      for (let j = 0; j < vocab; j++) {
        const logPT = teacher[o + j]! * invT - lseT;
        const pT = Math.exp(logPT);
        if (pT > 0) kl += pT * (logPT - (student[o + j]! * invT - lseS));
      }
      klRow[r] = kl;
    }
    if (!grad) return;
    const gs = klScale * invT;
    for (let j = 0; j < vocab; j++) {
      const z = student[o + j]!;
      let g = used ? ceScale * Math.exp(z - lse1) : 0;
      if (teacher !== null) g += gs * (Math.exp(z * invT - lseS) - Math.exp(teacher[o + j]! * invT - lseT));
      student[o + j] = g;
    }
    if (used) student[o + target] -= ceScale;
  };
  const rt = f32Rows(vocab, student, teacher);
  if (rt === null) {
    for (let r = 0; r < rows; r++) row(r);
    return;
  }
  const ce = acquireForWorkers("float64", rows), kl = acquireForWorkers("float64", rows);
  const tg = targets === null ? null : acquireForWorkers("int32", rows);
  if (tg !== null) tg.set(targets!.subarray(0, rows));
  const [st, te] = [student as Float32Array, teacher as Float32Array | null];
  try {
    runFlagged(rt, rows, (teacher === null ? 1 : 2) * rows * vocab, (bad) => ({
      kind: "lmHead", student: st, teacher: te, targets: tg, rows, cols: vocab, invT, ignore: ignoreIndex, ceScale, klScale, grad, ce, kl, bad,
    }), (r) => {
      row(r);
      ce[r] = ceRow[r]!;
      if (teacher !== null) kl[r] = klRow[r]!;
    });
    for (let r = 0; r < rows; r++) {
      ceRow[r] = ce[r]!;
      if (teacher !== null) klRow[r] = kl[r]!;
    }
  } finally {
    release(ce);
    release(kl);
    if (tg !== null) release(tg);
  }
}

/**
 * RMSNorm as HF transformers computes it: variance = mean(x^2); n = x * rsqrt(variance + eps); out = w * n,
 * with float32 rounding at each of those steps when the storage is float32. Saves rstd[r] = rsqrt(var + eps).
 * out may alias x.
 */
export function rmsNormForward(
  x: Float, w: Float, out: Float, rstd: Float, rows: number, dim: number, eps: number,
): void {
  const fn = "rmsNormForward";
  dims(fn, { rows, dim });
  need(fn, "x", x, rows * dim);
  need(fn, "w", w, dim);
  need(fn, "out", out, rows * dim);
  need(fn, "rstd", rstd, rows);
  const k = dim > 0 ? f32Kernels(x, w, out, rstd) : null;
  if (k !== null) {
    rmsNormForwardWasm(k, x as Float32Array, w as Float32Array, out as Float32Array, rstd as Float32Array, rows, dim, eps);
    return;
  }
  const f32 = x instanceof Float32Array;
  const fr = Math.fround;
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
    if (f32) {
      const rs = fr(1 / Math.sqrt(fr(fr(ss / dim) + eps)));
      rstd[r] = rs;
      for (let j = 0; j < dim; j++) out[o + j] = w[j] * fr(x[o + j] * rs);
    } else {
      const rs = 1 / Math.sqrt(ss / dim + eps);
      rstd[r] = rs;
      for (let j = 0; j < dim; j++) out[o + j] = w[j] * (x[o + j] * rs);
    }
  }
}

/**
 * RMSNorm backward. With g = w * dy and r = rstd[row]:
 *   dx = r * g - r^3 * x * sum(g * x) / dim     (added into what dx holds when `addDx`: the float32 / float64 sum)
 *   dw = sum over rows of dy * (x * r)          (OVERWRITES dw; skipped when dw is null)
 */
export function rmsNormBackward(
  dy: Float, x: Float, w: Float, rstd: Float, dx: Float, dw: Float | null, rows: number, dim: number, addDx = false,
): void {
  const fn = "rmsNormBackward";
  dims(fn, { rows, dim });
  need(fn, "dy", dy, rows * dim);
  need(fn, "x", x, rows * dim);
  need(fn, "w", w, dim);
  need(fn, "rstd", rstd, rows);
  need(fn, "dx", dx, rows * dim);
  if (dw !== null) need(fn, "dw", dw, dim);
  const k = dim > 0 ? f32Kernels(dy, x, w, rstd, dx, dw) : null;
  if (k !== null) {
    rmsNormBackwardWasm(
      k, dy as Float32Array, x as Float32Array, w as Float32Array, rstd as Float32Array, dx as Float32Array,
      dw as Float32Array | null, rows, dim, addDx,
    );
    return;
  }
  const acc = dw !== null ? new Float64Array(dim) : null;
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const rs = rstd[r];
    let sgx = 0;
    for (let j = 0; j < dim; j++) sgx += w[j] * dy[o + j] * x[o + j];
    const c = (rs * rs * rs * sgx) / dim;
    if (acc !== null) for (let j = 0; j < dim; j++) acc[j] += dy[o + j] * (x[o + j] * rs);
    if (!addDx) for (let j = 0; j < dim; j++) dx[o + j] = rs * w[j] * dy[o + j] - c * x[o + j];
    else if (dx instanceof Float32Array) for (let j = 0; j < dim; j++) dx[o + j] += Math.fround(rs * w[j] * dy[o + j] - c * x[o + j]);
    else for (let j = 0; j < dim; j++) dx[o + j] += rs * w[j] * dy[o + j] - c * x[o + j];
  }
  if (dw !== null && acc !== null) for (let j = 0; j < dim; j++) dw[j] = acc[j];
}

/**
 * Rotary embedding in HF's rotate-half layout: x [outer, T, dh], cos/sin [*, dh] indexed by position
 * posOffset + t, out = x * cos + rotate_half(x) * sin with rotate_half(x) = concat(-x[dh/2:], x[:dh/2]).
 * inverse = true rotates by -sin, which is also the backward (dx from dy), given HF's cos/sin whose two halves are
 * equal. out may alias x.
 */
export function ropeForward(
  x: Float, cos: Float, sin: Float, out: Float, outer: number, T: number, dh: number, inverse: boolean,
  posOffset = 0,
): void {
  const fn = "ropeForward";
  dims(fn, { outer, T, dh, posOffset });
  if (dh % 2 !== 0) throw new RangeError(`${fn}: dh must be even, got ${dh}`);
  need(fn, "x", x, outer * T * dh);
  need(fn, "out", out, outer * T * dh);
  need(fn, "cos", cos, (posOffset + T) * dh);
  need(fn, "sin", sin, (posOffset + T) * dh);
  const half = dh / 2;
  const sign = inverse ? -1 : 1;
  const k = half % 4 === 0 ? f32Kernels(x, cos, sin, out) : null;
  if (k !== null) {
    ropeWasm(k, x as Float32Array, cos as Float32Array, sin as Float32Array, out as Float32Array, outer, T, dh, sign, posOffset);
    return;
  }
  for (let o = 0; o < outer; o++) {
    for (let t = 0; t < T; t++) {
      const base = (o * T + t) * dh;
      const cb = (posOffset + t) * dh;
      for (let i = 0; i < half; i++) {
        const x1 = x[base + i];
        const x2 = x[base + i + half];
        out[base + i] = x1 * cos[cb + i] - x2 * (sign * sin[cb + i]);
        out[base + i + half] = x2 * cos[cb + i + half] + x1 * (sign * sin[cb + i + half]);
      }
    }
  }
}
