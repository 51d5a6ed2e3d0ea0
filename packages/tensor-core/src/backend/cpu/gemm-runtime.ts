/**
 * The blocked gemm engine shared by the calling thread and the pool workers.
 *
 * The calling thread and every pool worker (worker-main.ts, bundled from the same modules) run this code with the
 * same blocking and summation order, so a parallel gemm is bit-identical to a serial one.
 *
 * Work is cut into output tiles (batch item, NC-wide column block, MC-tall row block), numbered so consecutive
 * tiles share a packed B panel; on the pool the last row tile of each thread's group of column blocks is cut into
 * shorter row pieces (GemmJob.tail), so both threads finish together. A thread repeatedly `claim()`s the next
 * tile number (a plain counter serially, an `Atomics.add` on a shared counter in parallel) and for each tile:
 *   1. packs op(B)[:, jc:jc+NC] for all of k into NR-wide panels (skipped when the previous tile used the same),
 *      unless k x NC is large (the LM head's k = 151936) or no other tile shares the column block: then each
 *      KC x NC slice is packed in step 2, right before its use, so it stays in cache,
 *   2. for each KC-deep slice: packs op(A)[ic:ic+MC, pc:pc+KC] into MR-tall panels and runs the MR x NR
 *      micro-kernel over every (row panel, column panel) pair, accumulating into a zeroed MC x NC tile; when A
 *      is small (up to 1M floats) and the job has several column blocks, the thread packs all of A once instead
 *      (before its first tile) and every tile runs on its rows' panels, so A is not packed again per column block
 *      (the LM head's logits: 297 column blocks); a small A stored [k, m] is copied whole, in one memcpy, not in
 *      one short strided copy per row of each tile's slice,
 *   3. writes alpha * tile (+ C when accumulating) back into C.
 * Packing reads A and B in whichever order is contiguous for the transpose flags, so the micro-kernel always
 * sees the same layout and all four transpose combinations run at the same speed. Per element, the sum over
 * each KC slice runs from zero in k order and the slices' sums are added to the tile in k order: that order,
 * not the tile sizes, the thread count or the packing strategy, fixes the result's bits.
 *
 * float32 runs the WebAssembly SIMD micro-kernel (f32 accumulation, wasm-gemm.ts) when the bytes are given;
 * float64 (and float32 without wasm) runs an unrolled 4 x 8 JavaScript micro-kernel over float64 panels.
 *
 * BF16 operands: with a float32 C and the WebAssembly path, A and / or B may be a `Uint16Array` of BF16 bit
 * patterns (the high half of a float32, as safetensors stores them). Their 16-bit words are copied into the raw
 * region and the module's pa16 / pb16 packers widen them (`bits << 16`, exact) while packing, so the product is
 * bit-identical to the one over the widened float32 operands and a frozen BF16 weight never exists as float32
 * beyond one packed panel block. Without the WebAssembly packers `runTiles` refuses them.
 * With `f16A` / `f16B` a Uint16Array operand holds IEEE binary16 bits instead: copied the same way, widened exactly
 * by the pah / pbh packers (normals, subnormals, infinities and NaN payloads; checked against dtype.ts's table).
 */

import { PAGE, instantiate } from "./wasm-instance.js";

export type Float = Float32Array | Float64Array;

/** What the raw A region holds before a slice is packed (see packAWasm). */
type Held = "none" | "tile" | "all";

/** An A or B operand: float storage, or BF16 bit patterns (float32 C only; see the file header). */
export type Operand = Float | Uint16Array;

/** A fully-resolved gemm description (see `gemm` in gemm.ts for the meaning of each field). */
export interface GemmJob {
  a: Operand;
  b: Operand;
  c: Float;
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  strideA: number;
  strideB: number;
  strideC: number;
  offsetA: number;
  offsetB: number;
  offsetC: number;
  accumulate: boolean;
  alpha: number;
  /**
   * Rows per output tile (a multiple of 4, at most 128; default 128). Smaller tiles give the worker pool more
   * pieces; the result does not depend on it (per-element summation order is fixed by the k blocking).
   */
  tileM?: number;
  /** Columns per output tile (a multiple of 8, at most 512; default 512); like tileM, no effect on the result. */
  tileN?: number;
  /**
   * Diagnostics only (scripts/gemm-scaling.ts): when set, every tile t writes TRACE_FIELDS floats at t * 5:
   * thread id, start, after the all-k B pack (packed per slice: after its raw copy; both after the pack of all of
   * A, when done), end (ms since the time origin, comparable across threads), A-pack ms.
   */
  trace?: Float64Array;
  /**
   * Column-block affinity on the pool (set by gemm.ts; absent serially): shared counters, [0] the threads that
   * joined, [1 + g] the tiles taken from group g. The job's column blocks (batch item by column block) are cut
   * into `length - 1` contiguous groups, a thread's home group is its arrival number, and each claim takes the
   * next tile of the home group, then of the following groups once it is empty. So a thread packs (mostly) only
   * its own column blocks' B instead of every thread packing every block's B. `claim()` still counts the tiles and
   * stops everyone after a failure; the tile order does not change the result.
   */
  split?: Int32Array;
  /**
   * Guided tail (set by gemm.ts for the pool; absent: none): the last row tile of each column-block group (the
   * whole job without `split`) is cut into row pieces of decreasing height, half of what is left each, at least
   * `tail` rows (rounded up to 4; a tile under twice that is not cut), so the tiles a thread runs while the other runs its last are short and both
   * finish together (the end of a call otherwise waits up to one whole tile). Only that tile is cut: each row
   * piece streams its column block's packed B again. `tileCount` counts the pieces; the result does not change.
   */
  tail?: number;
  /** A (B) is a Uint16Array of float16 bits, not BF16 (set by gemm.ts: the workers cannot tell). */
  f16A?: boolean;
  f16B?: boolean;
}

/** Floats per tile in `GemmJob.trace`. */
export const TRACE_FIELDS = 5;

export interface GemmRuntime {
  /** Number of tiles `runTiles` will hand out for this job. */
  tileCount(job: GemmJob): number;
  /** Runs tiles while `claim()` returns a number below `tileCount(job)`. */
  runTiles(job: GemmJob, claim: () => number): void;
  /** True when float32 uses the WebAssembly SIMD micro-kernel. */
  readonly wasm: boolean;
}

/**
 * Size limits of the WebAssembly path's packing strategies (see runTiles), in elements; tests lower them to run
 * every strategy on small shapes. None changes the result's bits.
 */
export interface GemmLimits {
  /**
   * Largest raw block copied whole (an A [m, k] tile's rows, all of a small A, a B [n, k] block's rows for all of k
   * when B is packed one slice at a time).
   */
  wholeMax: number;
  /**
   * Largest B pack (k x tile columns) kept for all of k; above it B is packed one KC slice at a time. A B [n, k]
   * block packed for all of k is also copied whole up to this size.
   */
  bAllMax: number;
  /**
   * Largest A (m x k, rows padded to MR) packed once for every tile of a job with several column blocks, instead
   * of once per tile; it also needs A's raw copy whole (wholeMax).
   */
  aAllMax: number;
  /**
   * Largest A stored [k, m] (transA) copied whole, in one memcpy per thread, for all its tiles: its tiles' rows are
   * short strided pieces, one copy call each per slice otherwise.
   */
  aTransMax: number;
}

/**
 * Defaults: whole-block copies up to 1M elements (4 MB of float32; one memcpy instead of one per row per slice,
 * whose call overhead dominated small-m tiles), B kept packed for all of k up to 8M floats (32 MB; beyond, e.g. the
 * LM head's k = 151936, a per-slice pack stays in cache and keeps the heap small), A packed once for all tiles up
 * to 1M floats (4 MB), a transposed A copied whole up to 8M elements (32 MB of float32; the step's dW = dYᵀ·X,
 * [1024, 4864], and the teacher's W_tᵀ·dY, BF16 [4864, 896]: ~9% less time on one thread, ~3% on two, each
 * copying all of A).
 */
export const GEMM_LIMITS: GemmLimits = { wholeMax: 1 << 20, bAllMax: 1 << 23, aAllMax: 1 << 20, aTransMax: 1 << 23 };

export function createGemmRuntime(wasmBytes: Uint8Array | null, limits: GemmLimits = GEMM_LIMITS): GemmRuntime {
  const MR = 4;
  const NR = 8;
  const KC = 256;
  const MC = 128;
  const NC = 512;

  // ---- WebAssembly float32 path, floats in linear memory (offsets per job, see runTiles):
  //   [A pack MC*KC][C tile MC*NC][B pack][raw A][C rows (accumulating)][raw B][A packed for all tiles]
  // Operands are copied (memcpy; BF16 as their 16-bit patterns) into the raw regions and packed by the module's
  // pa / pb (pa16 / pb16 widen BF16 while packing); ROOM floats after each region take the packers' overrun.
  const A0 = 0;
  /**
   * Floats of room after every region: a packer may read and write up to 3 k steps (3 NR floats) past a slice
   * (wasm-gemm.ts), and a region written before its neighbour's pack (all of A's raw copy before B's) must survive.
   * After the A panels 3 MR floats suffice, so the C tile and the B panels keep the offsets the kernel was timed at.
   */
  const ROOM = 3 * NR + 8;
  const C0 = MC * KC + 4 * MR;
  const B0 = C0 + MC * NC;
  const inst = instantiate<Record<string, unknown>>(wasmBytes, Math.ceil(((B0 + 2 * KC * NC + 1024 * NC) * 4) / PAGE));
  const mk = inst?.exports["mk"] ?? null;
  type MacroKernel = (a: number, b: number, c: number, kc: number, mcPad: number, ncPad: number) => void;
  const mb = (inst?.exports["mb"] as MacroKernel | undefined) ?? null;
  type Pack = (raw: number, dst: number, pad: number, kc: number, trans: number, ld: number) => void;
  const pa = (inst?.exports["pa"] as Pack | undefined) ?? null;
  const pb = (inst?.exports["pb"] as Pack | undefined) ?? null;
  const pa16 = (inst?.exports["pa16"] as Pack | undefined) ?? null;
  const pb16 = (inst?.exports["pb16"] as Pack | undefined) ?? null;
  const pah = (inst?.exports["pah"] as Pack | undefined) ?? null;
  const pbh = (inst?.exports["pbh"] as Pack | undefined) ?? null;
  const scale = (inst?.exports["scale"] as ((p: number, n: number, alpha: number) => void) | undefined) ?? null;
  const axpy = (inst?.exports["axpy"] as ((x: number, y: number, n: number, alpha: number) => void) | undefined) ?? null;
  /** The float32 engine runs in WebAssembly when the module has every kernel and packer. */
  const wasm = mk !== null && mb !== null && pa !== null && pb !== null && pa16 !== null && pb16 !== null && pah !== null && pbh !== null && scale !== null && axpy !== null;
  let heap = inst?.heap ?? new Float32Array(0);
  /** The heap as 16-bit words, for the raw copies of BF16 and float16 operands. */
  let heap16 = new Uint16Array(heap.buffer, heap.byteOffset, heap.length * 2);

  function ensureHeap(floats: number): void {
    if (inst === null) return;
    inst.ensure(floats * 4);
    if (inst.heap !== heap) {
      heap = inst.heap;
      heap16 = new Uint16Array(heap.buffer, heap.byteOffset, heap.length * 2);
    }
  }

  /**
   * Raw copy: src[start .. end) to the raw region at byte `at` + element `e` (4 or 2 bytes per element).
   */
  function copyRaw(src: Float32Array | Uint16Array, start: number, end: number, at: number, e: number): void {
    if (src instanceof Float32Array) heap.set(src.subarray(start, end), (at >> 2) + e);
    else heap16.set(src.subarray(start, end), (at >> 1) + e);
  }

  /**
   * Packs op(A)[ic:ic+mc, pc:pc+kc] into MR-tall panels at byte `dst` from the raw region at byte `raw`, which
   * already holds the tile's rows for all of k (`held` "tile", A [m, k] only) or all of A as stored ("all"), else
   * ("none") gets the slice copied here.
   */
  function packAWasm(
    a: Float32Array | Uint16Array, aBase: number, transA: boolean, m: number, k: number,
    ic: number, mc: number, mcPad: number, pc: number, kc: number, dst: number, raw: number, held: Held, f16: boolean,
  ): void {
    const es = a instanceof Float32Array ? 4 : 2;
    const run = (es === 4 ? pa : f16 ? pah : pa16) as Pack;
    if (!transA) {
      // A [m, k]: raw rows along k, ld = k (held) or kcPad
      if (held !== "none") return run(raw + es * ((held === "all" ? ic * k : 0) + pc), dst, mcPad, kc, 0, k);
      const kcPad = Math.ceil(kc / 4) * 4;
      if (kc === k && kcPad === k) copyRaw(a, aBase + ic * k, aBase + (ic + mc) * k, raw, 0);
      else for (let r = 0; r < mc; r++) {
        const src = aBase + (ic + r) * k + pc;
        copyRaw(a, src, src + kc, raw, r * kcPad);
      }
      run(raw, dst, mcPad, kc, 0, kcPad);
    } else {
      // A [k, m]: raw k-major rows, ld = m (all of A held: one memcpy per job instead of one per row per slice,
      // whose call overhead and strided reads cost ~10% of a tall transposed product) or mcPad
      if (held === "all") return run(raw + es * (pc * m + ic), dst, mcPad, kc, 1, m);
      if (mc === m && mcPad === m) copyRaw(a, aBase + pc * m, aBase + (pc + kc) * m, raw, 0);
      else for (let p = 0; p < kc; p++) {
        const src = aBase + (pc + p) * m + ic;
        copyRaw(a, src, src + mc, raw, p * mcPad);
      }
      run(raw, dst, mcPad, kc, 1, mcPad);
    }
  }

  /**
   * Packs op(B)[pc:pc+kc, jc:jc+nc] into NR-wide panels at dst (floats) from the raw region at byte `raw`: already
   * holding the block's columns for all of k when `whole` (B [n, k] only), else copied here.
   */
  function packBWasm(
    b: Float32Array | Uint16Array, bBase: number, transB: boolean, n: number, k: number,
    jc: number, nc: number, ncPad: number, pc: number, kc: number, dst: number, raw: number, whole: boolean, f16: boolean,
  ): void {
    const es = b instanceof Float32Array ? 4 : 2;
    const run = (es === 4 ? pb : f16 ? pbh : pb16) as Pack;
    if (!transB) {
      // B [k, n]: raw k-major rows. When the block spans at least half of B's columns, the slice's full rows in one
      // memcpy (ld = n; the LM head's dz·W over 2 column blocks made 256 copy calls a slice), else the block's
      // rows one by one (ld = ncPad).
      if (2 * nc >= n) {
        copyRaw(b, bBase + pc * n, bBase + (pc + kc) * n, raw, 0);
        return run(raw + es * jc, dst * 4, ncPad, kc, 1, n);
      }
      for (let p = 0; p < kc; p++) {
        const src = bBase + (pc + p) * n + jc;
        copyRaw(b, src, src + nc, raw, p * ncPad);
      }
      run(raw, dst * 4, ncPad, kc, 1, ncPad);
    } else {
      // B [n, k]: raw rows along k, ld = k (whole) or kcPad
      if (whole) return run(raw + es * pc, dst * 4, ncPad, kc, 0, k);
      const kcPad = Math.ceil(kc / 4) * 4;
      if (kc === k && kcPad === k) copyRaw(b, bBase + jc * k, bBase + (jc + nc) * k, raw, 0);
      else for (let c = 0; c < nc; c++) {
        const src = bBase + (jc + c) * k + pc;
        copyRaw(b, src, src + kc, raw, c * kcPad);
      }
      run(raw, dst * 4, ncPad, kc, 0, kcPad);
    }
  }

  // ---- JavaScript float64 path scratch.
  const packA64 = new Float64Array(MC * KC);
  let packB64 = new Float64Array(1024 * NC);
  const tile64 = new Float64Array(MC * NC);

  /** Packs op(A)[ic:ic+mc, pc:pc+kc] into MR-tall panels at dst[d0], zero-padding rows past mc. */
  function packA(
    a: Float, aBase: number, transA: boolean, m: number, k: number,
    ic: number, mc: number, pc: number, kc: number, dst: Float, d0: number,
  ): void {
    const panels = Math.ceil(mc / MR);
    for (let q = 0; q < panels; q++) {
      const base = d0 + q * kc * MR;
      const i0 = ic + q * MR;
      const rows = Math.min(MR, ic + mc - i0);
      if (transA) {
        // A stored [k, m]: element (i, p) at p*m + i, so the MR rows of one k step are contiguous.
        for (let p = 0; p < kc; p++) {
          const src = aBase + (pc + p) * m + i0;
          const d = base + p * MR;
          if (rows === MR) {
            dst[d] = a[src];
            dst[d + 1] = a[src + 1];
            dst[d + 2] = a[src + 2];
            dst[d + 3] = a[src + 3];
          } else {
            for (let r = 0; r < MR; r++) dst[d + r] = r < rows ? a[src + r] : 0;
          }
        }
      } else {
        // A stored [m, k]: each row is contiguous along k.
        for (let r = 0; r < MR; r++) {
          if (r < rows) {
            const src = aBase + (i0 + r) * k + pc;
            for (let p = 0; p < kc; p++) dst[base + p * MR + r] = a[src + p];
          } else {
            for (let p = 0; p < kc; p++) dst[base + p * MR + r] = 0;
          }
        }
      }
    }
  }

  /** Packs op(B)[pc:pc+kc, jc:jc+nc] into NR-wide panels at dst[d0], zero-padding columns past nc. */
  function packB(
    b: Float, bBase: number, transB: boolean, n: number, k: number,
    jc: number, nc: number, pc: number, kc: number, dst: Float, d0: number,
  ): void {
    const panels = Math.ceil(nc / NR);
    for (let q = 0; q < panels; q++) {
      const base = d0 + q * kc * NR;
      const j0 = jc + q * NR;
      const cols = Math.min(NR, jc + nc - j0);
      if (transB) {
        // B stored [n, k]: each column of op(B) is contiguous along k.
        for (let r = 0; r < NR; r++) {
          if (r < cols) {
            const src = bBase + (j0 + r) * k + pc;
            for (let p = 0; p < kc; p++) dst[base + p * NR + r] = b[src + p];
          } else {
            for (let p = 0; p < kc; p++) dst[base + p * NR + r] = 0;
          }
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const src = bBase + (pc + p) * n + j0;
          const d = base + p * NR;
          if (cols === NR) {
            dst[d] = b[src];
            dst[d + 1] = b[src + 1];
            dst[d + 2] = b[src + 2];
            dst[d + 3] = b[src + 3];
            dst[d + 4] = b[src + 4];
            dst[d + 5] = b[src + 5];
            dst[d + 6] = b[src + 6];
            dst[d + 7] = b[src + 7];
          } else {
            for (let r = 0; r < NR; r++) dst[d + r] = r < cols ? b[src + r] : 0;
          }
        }
      }
    }
  }

  /** JavaScript 4 x 8 micro-kernel: C[4 x 8] (row stride ldc, at co) += Ap[kc][4] * Bp[kc][8]. */
  function microJs(
    ap: Float64Array, ao: number, bp: Float64Array, bo: number, kc: number,
    c: Float64Array, co: number, ldc: number,
  ): void {
    let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c04 = 0, c05 = 0, c06 = 0, c07 = 0;
    let c10 = 0, c11 = 0, c12 = 0, c13 = 0, c14 = 0, c15 = 0, c16 = 0, c17 = 0;
    let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c24 = 0, c25 = 0, c26 = 0, c27 = 0;
    let c30 = 0, c31 = 0, c32 = 0, c33 = 0, c34 = 0, c35 = 0, c36 = 0, c37 = 0;
    for (let p = 0; p < kc; p++) {
      const a0 = ap[ao], a1 = ap[ao + 1], a2 = ap[ao + 2], a3 = ap[ao + 3];
      const b0 = bp[bo], b1 = bp[bo + 1], b2 = bp[bo + 2], b3 = bp[bo + 3];
      const b4 = bp[bo + 4], b5 = bp[bo + 5], b6 = bp[bo + 6], b7 = bp[bo + 7];
      c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
      c04 += a0 * b4; c05 += a0 * b5; c06 += a0 * b6; c07 += a0 * b7;
      c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
      c14 += a1 * b4; c15 += a1 * b5; c16 += a1 * b6; c17 += a1 * b7;
      c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
      c24 += a2 * b4; c25 += a2 * b5; c26 += a2 * b6; c27 += a2 * b7;
      c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
      c34 += a3 * b4; c35 += a3 * b5; c36 += a3 * b6; c37 += a3 * b7;
      ao += 4;
      bo += 8;
    }
    c[co] += c00; c[co + 1] += c01; c[co + 2] += c02; c[co + 3] += c03;
    c[co + 4] += c04; c[co + 5] += c05; c[co + 6] += c06; c[co + 7] += c07;
    co += ldc;
    c[co] += c10; c[co + 1] += c11; c[co + 2] += c12; c[co + 3] += c13;
    c[co + 4] += c14; c[co + 5] += c15; c[co + 6] += c16; c[co + 7] += c17;
    co += ldc;
    c[co] += c20; c[co + 1] += c21; c[co + 2] += c22; c[co + 3] += c23;
    c[co + 4] += c24; c[co + 5] += c25; c[co + 6] += c26; c[co + 7] += c27;
    co += ldc;
    c[co] += c30; c[co + 1] += c31; c[co + 2] += c32; c[co + 3] += c33;
    c[co + 4] += c34; c[co + 5] += c35; c[co + 6] += c36; c[co + 7] += c37;
  }

  /** Writes alpha * tile (+ C when accumulating) into C rows [ic, ic+mc), columns [jc, jc+nc). */
  function writeBack(
    tile: Float, t0: number, ld: number, c: Float, cBase: number, n: number,
    ic: number, mc: number, jc: number, nc: number, alpha: number, accumulate: boolean,
  ): void {
    for (let i = 0; i < mc; i++) {
      const src = t0 + i * ld;
      const dst = cBase + (ic + i) * n + jc;
      if (accumulate) {
        if (alpha === 1) for (let j = 0; j < nc; j++) c[dst + j] = tile[src + j] + c[dst + j];
        else for (let j = 0; j < nc; j++) c[dst + j] = alpha * tile[src + j] + c[dst + j];
      } else if (alpha === 1) {
        for (let j = 0; j < nc; j++) c[dst + j] = tile[src + j];
      } else {
        for (let j = 0; j < nc; j++) c[dst + j] = alpha * tile[src + j];
      }
    }
  }

  function tileRows(job: GemmJob): number {
    const t = job.tileM;
    return t !== undefined && t > 0 && t < MC ? Math.ceil(t / MR) * MR : MC;
  }

  function tileCols(job: GemmJob): number {
    const t = job.tileN;
    return t !== undefined && t > 0 && t < NC ? Math.ceil(t / NR) * NR : NC;
  }

  /**
   * How a job's work items are laid out. Panels (batch item by column block, `nJc` a batch item) are cut into
   * `groups` contiguous groups (GemmJob.split; one without it): group g holds panels [panelStart[g],
   * panelStart[g + 1]) and items [itemStart[g], itemStart[g + 1]): its panels' row tiles in order (`nIc` a panel,
   * TM rows each), the last of them cut at `cuts` (row offsets from its first row, ascending, ending at its height;
   * [0, height] when not cut, see GemmJob.tail).
   */
  interface Schedule {
    total: number;
    TM: number;
    nIc: number;
    nJc: number;
    panelStart: number[];
    itemStart: number[];
    cuts: number[];
  }

  function schedule(job: GemmJob): Schedule {
    const TM = tileRows(job);
    const nIc = Math.ceil(job.m / TM);
    const nJc = Math.ceil(job.n / tileCols(job));
    const panels = job.batch * nJc;
    const last = job.m - (nIc - 1) * TM;
    const cuts = [0];
    const piece = job.tail !== undefined && job.tail > 0 ? Math.ceil(job.tail / MR) * MR : last;
    const floor = last >= 2 * piece ? piece : last;
    for (let at = 0; at < last; cuts.push(at)) {
      at += Math.min(last - at, Math.max(floor, Math.ceil((last - at) / 2 / MR) * MR));
    }
    const groups = job.split !== undefined && job.split.length >= 2 ? job.split.length - 1 : 1;
    const panelStart: number[] = [];
    const itemStart: number[] = [];
    for (let g = 0, items = 0; g <= groups; g++) {
      const p = Math.floor((g * panels) / groups);
      if (g > 0 && p > panelStart[g - 1]!) items += (p - panelStart[g - 1]!) * nIc + cuts.length - 2;
      panelStart.push(p);
      itemStart.push(items);
    }
    const empty = job.batch === 0 || job.m === 0 || job.n === 0;
    return { total: empty ? 0 : itemStart[groups]!, TM, nIc, nJc, panelStart, itemStart, cuts };
  }

  function tileCount(job: GemmJob): number {
    return schedule(job).total;
  }

  /**
   * The item numbers this thread runs, `total` when done: `claim()`'s own without `job.split`, else the next item
   * of this thread's group of column blocks, then of the following groups (see GemmJob.split).
   */
  function itemOrder(job: GemmJob, claim: () => number, s: Schedule): () => number {
    const split = job.split;
    if (split === undefined || split.length < 2) return claim;
    const groups = split.length - 1;
    const home = Atomics.add(split, 0, 1) % groups;
    const { total, itemStart } = s;
    return () => {
      if (claim() >= total) return total;
      // a claim below total guarantees an untaken item in some group
      for (let i = 0; i < groups; i++) {
        const g = (home + i) % groups;
        const t = itemStart[g]! + Atomics.add(split, 1 + g, 1);
        if (t < itemStart[g + 1]!) return t;
      }
      throw new Error("gemm: a claimed tile was not found in any column-block group");
    };
  }

  function runTiles(job: GemmJob, claim: () => number): void {
    const { a, b, c, m, n, k, transA, transB } = job;
    const TN = tileCols(job);
    const sched = schedule(job);
    const { total, TM, nIc, nJc, panelStart, itemStart, cuts } = sched;
    const useWasm = wasm && c instanceof Float32Array;
    if ((a instanceof Uint16Array || b instanceof Uint16Array) && !useWasm) {
      throw new TypeError("gemm: BF16 (Uint16Array) operands need a float32 C and the WebAssembly packers");
    }
    // WebAssembly layout for this job (floats): B packed for all of k (reused by the next tile of the same column
    // block) or, when k is large or no other tile shares the block, one KC slice at a time; the raw regions hold a
    // whole block (A [m, k] rows, B [n, k] rows) when it is contiguous and small enough, else one slice.
    // BF16 and float16 operands are copied raw (2 bytes an element) and widened by the packers.
    const f16A = job.f16A === true, f16B = job.f16B === true;
    const esA = a instanceof Uint16Array ? 2 : 4;
    const esB = b instanceof Uint16Array ? 2 : 4;
    const mPad = Math.ceil(m / MR) * MR;
    const tm = Math.min(TM, mPad), tn = Math.min(TN, Math.ceil(n / NR) * NR);
    // A's raw region holds all of A when it is small and either packed once for every tile (several column
    // blocks) or stored [k, m] (whose tile rows are short strided pieces); else a tile's rows, else one slice.
    const rawAll = mPad * k <= (transA ? limits.aTransMax : limits.wholeMax);
    const allA = rawAll && nJc > 1 && mPad * k <= limits.aAllMax;
    const heldA: Held = rawAll && (allA || transA) ? "all" : !transA && tm * k <= limits.wholeMax ? "tile" : "none";
    const sliceB = k * tn > limits.bAllMax || (nIc === 1 && (job.strideB !== 0 || job.batch === 1));
    // B [n, k]'s block rows copied in one call: up to the all-of-k pack's own size when B is packed for all of k
    // (its raw copy then costs what the packed block does), else up to wholeMax
    const wholeB = transB && tn * k <= (sliceB ? limits.wholeMax : limits.bAllMax);
    const RA = B0 + (sliceB ? Math.min(KC, k) : k) * tn + ROOM;
    const rawA = heldA === "all" ? mPad * k : heldA === "tile" ? tm * k : 0;
    // C's rows when accumulating (not in the raw A region, which may hold all of A across tiles)
    const RC = RA + Math.max(Math.ceil((rawA * esA) / 4), MC * KC) + ROOM;
    const RB = RC + (job.accumulate ? MC * NC + ROOM : 0);
    // A packed for every tile: slice pc's panels at PA + pc * mPad, row ic's panel at + ic * kc
    const PA = RB + (wholeB ? Math.ceil((tn * k * esB) / 4) : 2 * KC * NC) + ROOM;
    if (useWasm) ensureHeap(PA + (allA ? mPad * k + ROOM : 0));
    let packedKey = -1, aKey = -1;
    const trace = job.trace;
    const clock = (globalThis as unknown as { performance: { now(): number; timeOrigin: number } }).performance;
    const tid = trace === undefined ? 0 :
      ((globalThis as unknown as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
        ?.getBuiltinModule?.("node:worker_threads") as { threadId?: number } | undefined)?.threadId ?? 0;
    let aPackMs = 0;
    const next = itemOrder(job, claim, sched);
    for (let t = next(); t < total; t = next()) {
      if (trace !== undefined) {
        trace[t * 5] = tid;
        trace[t * 5 + 1] = clock.timeOrigin + clock.now();
        aPackMs = 0;
      }
      // item t: its group, then a whole row tile of one of the group's panels or a piece of its last one
      let g = 0;
      while (t >= itemStart[g + 1]!) g++;
      const idx = t - itemStart[g]!;
      const whole = (panelStart[g + 1]! - panelStart[g]!) * nIc - 1;
      const panel = idx < whole ? panelStart[g]! + Math.floor(idx / nIc) : panelStart[g + 1]! - 1;
      const piece = idx - whole;
      const ic = idx < whole ? (idx % nIc) * TM : (nIc - 1) * TM + cuts[piece]!;
      const mc = idx < whole ? Math.min(TM, m - ic) : cuts[piece + 1]! - cuts[piece]!;
      const bi = Math.floor(panel / nJc);
      const jcI = panel - bi * nJc;
      const jc = jcI * TN;
      const nc = Math.min(TN, n - jc);
      const ncPad = Math.ceil(nc / NR) * NR;
      const mcPad = Math.ceil(mc / MR) * MR;
      const aBase = job.offsetA + bi * job.strideA;
      const bBase = job.offsetB + bi * job.strideB;
      const cBase = job.offsetC + bi * job.strideC;
      const key = (job.strideB === 0 ? 0 : bi) * nJc + jcI;
      if (useWasm) {
        const a32 = a as Float32Array | Uint16Array, b32 = b as Float32Array | Uint16Array;
        const keyA = job.strideA === 0 ? 0 : bi;
        if (heldA === "all" && keyA !== aKey) {
          copyRaw(a32, aBase, aBase + m * k, RA * 4, 0);
          if (allA) {
            for (let pc = 0; pc < k; pc += KC) {
              packAWasm(a32, aBase, transA, m, k, 0, m, mPad, pc, Math.min(KC, k - pc), (PA + pc * mPad) * 4, RA * 4, "all", f16A);
            }
          }
          aKey = keyA;
        }
        if (key !== packedKey) {
          if (wholeB) copyRaw(b32, bBase + jc * k, bBase + (jc + nc) * k, RB * 4, 0);
          if (!sliceB) {
            for (let pc = 0; pc < k; pc += KC) {
              packBWasm(b32, bBase, transB, n, k, jc, nc, ncPad, pc, Math.min(KC, k - pc), B0 + pc * ncPad, RB * 4, wholeB, f16B);
            }
          }
          packedKey = key;
        }
        if (trace !== undefined) trace[t * 5 + 2] = clock.timeOrigin + clock.now();
        const h = heap;
        h.fill(0, C0, C0 + mcPad * ncPad);
        if (heldA === "tile") copyRaw(a32, aBase + ic * k, aBase + (ic + mc) * k, RA * 4, 0);
        for (let pc = 0; pc < k; pc += KC) {
          const kc = Math.min(KC, k - pc);
          const pa0 = trace !== undefined ? clock.now() : 0;
          if (!allA) packAWasm(a32, aBase, transA, m, k, ic, mc, mcPad, pc, kc, A0 * 4, RA * 4, heldA, f16A);
          if (trace !== undefined) aPackMs += clock.now() - pa0;
          if (sliceB) packBWasm(b32, bBase, transB, n, k, jc, nc, ncPad, pc, kc, B0, RB * 4, wholeB, f16B);
          const aAt = allA ? PA + pc * mPad + ic * kc : A0;
          (mb as MacroKernel)(aAt * 4, (sliceB ? B0 : B0 + pc * ncPad) * 4, C0 * 4, kc, mcPad, ncPad);
        }
        // C's rows of the tile are one contiguous block when the tile spans every column: one memcpy, not mc
        const rowsOne = ncPad === n;
        const c32 = c as Float32Array;
        const cAt = cBase + ic * n + jc;
        if (!job.accumulate) {
          // alpha in the module, then one memcpy per row
          if (job.alpha !== 1) (scale as (p: number, n: number, alpha: number) => void)(C0 * 4, mcPad * ncPad, job.alpha);
          if (rowsOne) c32.set(h.subarray(C0, C0 + mc * n), cAt);
          else for (let i = 0; i < mc; i++) c32.set(h.subarray(C0 + i * ncPad, C0 + i * ncPad + nc), cAt + i * n);
        } else {
          // C rows into their region, rows = alpha * tile + rows in the module, then back (one memcpy per row)
          if (rowsOne) h.set(c32.subarray(cAt, cAt + mc * n), RC);
          else for (let i = 0; i < mc; i++) h.set(c32.subarray(cAt + i * n, cAt + i * n + nc), RC + i * ncPad);
          (axpy as (x: number, y: number, n: number, alpha: number) => void)(C0 * 4, RC * 4, mcPad * ncPad, job.alpha);
          if (rowsOne) c32.set(h.subarray(RC, RC + mc * n), cAt);
          else for (let i = 0; i < mc; i++) c32.set(h.subarray(RC + i * ncPad, RC + i * ncPad + nc), cAt + i * n);
        }
        if (trace !== undefined) {
          trace[t * 5 + 3] = clock.timeOrigin + clock.now();
          trace[t * 5 + 4] = aPackMs;
        }
      } else {
        if (key !== packedKey) {
          if (packB64.length < k * ncPad) packB64 = new Float64Array(k * ncPad);
          for (let pc = 0; pc < k; pc += KC) {
            packB(b as Float, bBase, transB, n, k, jc, nc, pc, Math.min(KC, k - pc), packB64, pc * ncPad);
          }
          packedKey = key;
        }
        tile64.fill(0, 0, mcPad * ncPad);
        for (let pc = 0; pc < k; pc += KC) {
          const kc = Math.min(KC, k - pc);
          packA(a as Float, aBase, transA, m, k, ic, mc, pc, kc, packA64, 0);
          const bSlice = pc * ncPad;
          for (let jr = 0; jr < ncPad; jr += NR) {
            const bo = bSlice + jr * kc;
            for (let ir = 0; ir < mcPad; ir += MR) {
              microJs(packA64, ir * kc, packB64, bo, kc, tile64, ir * ncPad + jr, ncPad);
            }
          }
        }
        writeBack(tile64, 0, ncPad, c, cBase, n, ic, mc, jc, nc, job.alpha, job.accumulate);
      }
    }
  }

  return { tileCount, runTiles, wasm };
}
