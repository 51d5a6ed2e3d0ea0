/**
 * Batched matrix multiply, the one matmul kernel behind forward (A B) and backward (A^T B, A B^T):
 *
 *   C_i = alpha * op(A_i) @ op(B_i)  (+ C_i when accumulate)      for i < batch
 *
 * op(A) is [m, k] (A stored [k, m] when transA), op(B) is [k, n] (B stored [n, k] when transB), C_i is [m, n];
 * all row-major contiguous. strideX is the element distance between batch items (0 broadcasts one matrix over the
 * batch), offsetX the element offset of item 0. The blocked engine is gemm-runtime.ts.
 *
 * Parallelism: above `getParallelThreshold()` flops (and with more than one thread) output tiles are spread over
 * the worker pool, each thread taking the tiles of its own group of column blocks first (GemmJob.split), so each
 * block's B is packed by one thread, not by all. Operands that are not SharedArrayBuffer-backed are first COPIED into pooled shared scratch
 * (and C copied back), so any caller gets the parallel path; pass pool arrays (buffer-pool.ts) to skip the copies.
 * The result is bit-identical to the single-thread result (same blocking and summation order per element).
 * Matrix-vector shapes (m = 1 or n = 1: a decode step's LM head) always run on the calling thread: their work is one
 * pass over B, which the parallel path would first copy into shared memory (266 ms instead of 19 ms for
 * [1, 512] x [32000, 512]^T). They keep the blocked engine's summation order, so a decode step's logits are
 * bit-identical to the same row of a full forward. *
 * BF16: with a float32 C, A and / or B may be a Uint16Array of BF16 bit patterns (a frozen teacher weight kept in
 * its checkpoint dtype); the engine widens them to float32 while packing (exact), so C is bit-identical to the
 * gemm of the widened float32 operands. The parallel path copies a non-shared BF16 operand into a shared one
 * (half the bytes of a float32 copy). Without the WebAssembly engine (no SIMD, or LRC_NO_WASM=1) a BF16 operand
 * is first widened into pooled float32 scratch (exact, so C is the same). A Uint16Array whose buffer holds float16
 * bits (dtype.ts isFloat16Bits: a float16 tensor's) is widened from IEEE binary16 the same ways (job.f16A / f16B).
 */
import { isFloat16Bits, widenHalf } from "../../dtype.js";
import { acquireForWorkers, acquireShared, isShared, release } from "./buffer-pool.js";
import { createGemmRuntime, type Float, type GemmJob, type GemmRuntime, type Operand } from "./gemm-runtime.js";
import { getParallelThreshold, getThreadCount, poolAvailable, runParallel } from "./worker-pool.js";
import { gemmWasmBytes } from "./wasm-gemm.js";

/** Optional with a default: offsets 0, accumulate false, alpha 1. */
type GemmDefaults = "offsetA" | "offsetB" | "offsetC" | "accumulate" | "alpha";

/**
 * A gemm call (the file header says what each field means): the runtime's `GemmJob` with the defaulted fields
 * optional and the tile sizes (and the tail's pieces) left to `gemm`.
 */
export type GemmParams = Omit<GemmJob, GemmDefaults | "tileM" | "tileN" | "tail"> & Partial<Pick<GemmJob, GemmDefaults>>;

let runtime: GemmRuntime | null = null;

/** The calling thread's gemm engine (shared with the attention kernels). */
export function gemmRuntime(): GemmRuntime {
  if (runtime === null) runtime = createGemmRuntime(gemmWasmBytes());
  return runtime;
}

/** True when float32 gemm runs the WebAssembly SIMD micro-kernel on this runtime. */
export function gemmUsesWasm(): boolean {
  return gemmRuntime().wasm;
}

function checkDim(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`gemm: ${name} must be a non-negative integer, got ${v}`);
}

function span(batch: number, stride: number, size: number): number {
  return batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size;
}

function checkExtent(name: string, arr: Operand, offset: number, batch: number, stride: number, size: number): void {
  const end = offset + span(batch, stride, size);
  if (end > arr.length) {
    throw new RangeError(
      `gemm: ${name} needs ${end} elements (offset ${offset}, batch ${batch}, stride ${stride}, ` +
        `matrix ${size}) but has ${arr.length}`,
    );
  }
}

function overlaps(x: Operand, xOff: number, xLen: number, c: Float, cOff: number, cLen: number): boolean {
  if (x.buffer !== c.buffer || xLen === 0 || cLen === 0) return false;
  const xs = x.byteOffset + xOff * x.BYTES_PER_ELEMENT;
  const cs = c.byteOffset + cOff * c.BYTES_PER_ELEMENT;
  return xs < cs + cLen * c.BYTES_PER_ELEMENT && cs < xs + xLen * x.BYTES_PER_ELEMENT;
}

function sharedCopy(src: Operand, offset: number, len: number): Operand {
  const dst =
    src instanceof Uint16Array ? new Uint16Array(new SharedArrayBuffer(2 * len)) :
    src instanceof Float32Array ? acquireShared("float32", len) : acquireShared("float64", len);
  dst.set(src.subarray(offset, offset + len));
  return dst;
}

/** BF16 / float16 bits [offset, offset + len) widened exactly into pooled float32 scratch (pushed on `scratch`). */
function widened(x: Uint16Array, offset: number, len: number, scratch: Operand[]): Float32Array {
  const out = acquireForWorkers("float32", len) as Float32Array;
  widenHalf(x.subarray(offset, offset + len), out);
  scratch.push(out);
  return out;
}

/** C = alpha * op(A) @ op(B) (+ C), batched; see the file header. */
export function gemm(p: GemmParams): void {
  const { a, b, c, batch, m, n, k } = p;
  checkDim("batch", batch);
  checkDim("m", m);
  checkDim("n", n);
  checkDim("k", k);
  checkDim("strideA", p.strideA);
  checkDim("strideB", p.strideB);
  checkDim("strideC", p.strideC);
  const offsetA = p.offsetA ?? 0;
  const offsetB = p.offsetB ?? 0;
  const offsetC = p.offsetC ?? 0;
  checkDim("offsetA", offsetA);
  checkDim("offsetB", offsetB);
  checkDim("offsetC", offsetC);
  const isF32 = c instanceof Float32Array;
  const f32In = (x: Operand): boolean => x instanceof Float32Array || x instanceof Uint16Array;
  if (isF32 ? !f32In(a) || !f32In(b) : !(a instanceof Float64Array && b instanceof Float64Array)) {
    throw new TypeError(
      "gemm: a, b and c must all be Float32Array or all be Float64Array (a and b may be BF16 Uint16Array with a Float32Array c)",
    );
  }
  if (batch > 1 && p.strideC < m * n) {
    throw new RangeError(`gemm: strideC ${p.strideC} < m*n = ${m * n}; batch outputs would overlap`);
  }
  checkExtent("a", a, offsetA, batch, p.strideA, m * k);
  checkExtent("b", b, offsetB, batch, p.strideB, k * n);
  checkExtent("c", c, offsetC, batch, p.strideC, m * n);
  const lenA = span(batch, p.strideA, m * k);
  const lenB = span(batch, p.strideB, k * n);
  const lenC = span(batch, p.strideC, m * n);
  if (overlaps(a, offsetA, lenA, c, offsetC, lenC) || overlaps(b, offsetB, lenB, c, offsetC, lenC)) {
    throw new RangeError("gemm: c must not overlap a or b");
  }
  const alpha = p.alpha ?? 1;
  const accumulate = p.accumulate ?? false;
  if (batch === 0 || m === 0 || n === 0) return;

  const rt = gemmRuntime();
  const job: GemmJob = {
    a, b, c, batch, m, n, k,
    transA: p.transA,
    transB: p.transB,
    strideA: p.strideA,
    strideB: p.strideB,
    strideC: p.strideC,
    offsetA, offsetB, offsetC, accumulate, alpha,
  };
  if (p.trace !== undefined) job.trace = p.trace;
  if (a instanceof Uint16Array && isFloat16Bits(a)) job.f16A = true;
  if (b instanceof Uint16Array && isFloat16Bits(b)) job.f16B = true;
  const scratch: Operand[] = [];
  try {
    if (!rt.wasm) {
      // The TypeScript engine packs float32 / float64 only.
      if (a instanceof Uint16Array) [job.a, job.offsetA] = [widened(a, offsetA, lenA, scratch), 0];
      if (b instanceof Uint16Array) [job.b, job.offsetB] = [widened(b, offsetB, lenB, scratch), 0];
    }
    run(job, rt, lenA, lenB, lenC, scratch);
  } finally {
    for (const s of scratch) if (!(s instanceof Uint16Array)) release(s);
  }
}

/**
 * Tile sizes for a parallel job (the result does not depend on them). Equal-width column blocks (704 columns:
 * 2 x 352 instead of 512 + 192) and equal-height row blocks, so tiles cost the same and the last tiles claimed do
 * not leave one thread finishing a big tile while the other idles. With fewer tiles than threads, rows are cut
 * finer, then columns, down to 16 rows or 64 columns; columns first when m < n and B is stored [n, k] (each column
 * block's B is then packed once and A, the smaller operand, once per block; cutting the columns of a B stored
 * [k, n] copies it in short strided rows, measured 1.3x slower per flop than packing it twice). One tile per thread
 * is the aim, not more: every row tile packs B again, so [256 x 151936] x [151936 x 448] ran 1.1x slower per flop
 * in four 64-row tiles than in two 128-row ones. With few tiles their count is made a multiple of the thread
 * count where the cuts allow (7 tiles on 2 threads idle one thread for an eighth of the call). The last row tile
 * of each thread's group is cut into pieces of half what is left, at least TAIL_ROWS rows (GemmJob.tail: 128 =
 * 64 + 32 + 32), so the pieces fill the time while the other thread runs its last whole tile and the call does not
 * end with one thread waiting a whole tile (1.5-8 ms of a 50-100 ms k = 4864 product in the step, under load);
 * only the tail is cut, as 64-row tiles throughout measured slower (each streams its block's packed B again).
 */
export function splitTiles(job: GemmJob, threads: number): void {
  const { batch, m, n } = job;
  let rows = Math.ceil(m / 128), cols = Math.ceil(n / 512);
  const maxRows = Math.ceil(m / 16), maxCols = Math.ceil(n / 64);
  const count = (): number => batch * Math.ceil(m / (Math.ceil(m / rows / 4) * 4)) * Math.ceil(n / (Math.ceil(n / cols / 8) * 8));
  const want = threads;
  const byCols = m < n && job.transB;
  for (let pass = 0; pass < 2 && count() < want; pass++) {
    if (byCols === (pass === 0)) cols = Math.max(cols, Math.min(maxCols, Math.ceil(want / (batch * rows))));
    else rows = Math.max(rows, Math.min(maxRows, Math.ceil(want / (batch * cols))));
  }
  for (let i = 0; i < threads && count() < 8 * threads && count() % threads !== 0; i++) {
    if (cols < maxCols && (byCols || rows >= maxRows)) cols++;
    else if (rows < maxRows) rows++;
    else break;
  }
  job.tileM = Math.ceil(m / rows / 4) * 4;
  job.tileN = Math.ceil(n / cols / 8) * 8;
  job.tail = TAIL_ROWS;
}

/** The smallest row piece of a parallel job's tail (GemmJob.tail; see splitTiles). */
const TAIL_ROWS = 32;

let splitCounters: Int32Array | null = null;

/** Zeroed shared counters for a parallel job's column-block affinity on `threads` threads (GemmJob.split). */
function affinity(threads: number): Int32Array {
  if (splitCounters === null || splitCounters.length !== threads + 1) {
    splitCounters = new Int32Array(new SharedArrayBuffer(4 * (threads + 1)));
  }
  splitCounters.fill(0);
  return splitCounters;
}

/** Runs a checked job serially or on the pool; operands copied to shared memory go on `scratch`. */
function run(job: GemmJob, rt: GemmRuntime, lenA: number, lenB: number, lenC: number, scratch: Operand[]): void {
  const { a, b, c, batch, m, n, k, accumulate } = job;
  const { offsetA, offsetB, offsetC } = job;
  const isF32 = c instanceof Float32Array;
  const flops = 2 * batch * m * n * k;
  const threads = getThreadCount();
  const parallel = threads > 1 && flops >= getParallelThreshold() && m > 1 && n > 1;
  if (parallel) splitTiles(job, threads);
  if (!parallel || rt.tileCount(job) < 2 || !poolAvailable()) {
    let next = 0;
    rt.runTiles(job, () => next++);
    return;
  }
  // Parallel: make every operand shared (copying the used range when it is not).
  if (!isShared(a)) {
    job.a = sharedCopy(a, offsetA, lenA);
    job.offsetA = 0;
    scratch.push(job.a);
  }
  if (!isShared(b)) {
    job.b = sharedCopy(b, offsetB, lenB);
    job.offsetB = 0;
    scratch.push(job.b);
  }
  const copyC = !isShared(c);
  if (copyC) {
    job.c = accumulate ? (sharedCopy(c, offsetC, lenC) as Float) : isF32 ? acquireShared("float32", lenC) : acquireShared("float64", lenC);
    job.offsetC = 0;
  }
  job.split = affinity(threads);
  try {
    runParallel("gemm", job, rt.tileCount(job), (claim) => rt.runTiles(job, claim));
    if (copyC) {
      // Copy back only the m*n blocks: gaps between batch items (strideC > m*n) are not ours to touch.
      if (batch === 1 || job.strideC === m * n) c.set(job.c.subarray(0, lenC), offsetC);
      else {
        for (let i = 0; i < batch; i++) {
          const o = i * job.strideC;
          c.set(job.c.subarray(o, o + m * n), offsetC + o);
        }
      }
    }
  } finally {
    if (copyC) release(job.c);
  }
}
