/**
 * WebAssembly SIMD micro-kernel for float32 gemm, emitted as bytes at run time (no toolchain, no binary checked
 * in). The module imports one memory (`env.mem`) and exports `mk(a, b, c, kc, ldc)`:
 *
 *   C[MR x NR] += Apanel[kc][MR] * Bpanel[kc][NR]
 *
 * where `a`, `b`, `c` are byte offsets into the memory, `Apanel` holds MR rows interleaved per k step, `Bpanel`
 * NR columns per k step (both produced by the packing routines in gemm-runtime.ts), and `ldc` is the byte
 * distance between rows of the C tile. The accumulators live in v128 locals (MR x NR/4 of them), each k step
 * loads the NR-wide B row once and splats one A value per row. Summation over k is strictly sequential per
 * output element, so the result does not depend on how tiles are spread over threads.
 */

import type { WasmApiLike } from "./gemm-runtime.js";

/** Rows of the register tile. */
export const WASM_MR = 4;
/** Columns of the register tile (a multiple of 4: one f32x4 per 4 columns). */
export const WASM_NR = 8;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function section(id: number, bytes: number[]): number[] {
  return [id, ...uleb(bytes.length), ...bytes];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
}

const I32 = 0x7f;
const V128 = 0x7b;

/** Builds the micro-kernel module bytes for an `mr` x `nr` register tile. */
export function buildGemmWasm(mr: number = WASM_MR, nr: number = WASM_NR): Uint8Array {
  if (nr % 4 !== 0) throw new RangeError(`wasm-gemm: nr must be a multiple of 4, got ${nr}`);
  const nv = nr / 4;
  // params: 0 a, 1 b, 2 c, 3 kc, 4 ldc; then v128 locals: accumulators, B vectors, A splat.
  const acc = (i: number, j: number): number => 5 + i * nv + j;
  const bv = (j: number): number => 5 + mr * nv + j;
  const av = 5 + mr * nv + nv;
  const nLocals = mr * nv + nv + 1;
  const code: number[] = [];
  const get = (i: number): void => void code.push(0x20, ...uleb(i));
  const set = (i: number): void => void code.push(0x21, ...uleb(i));
  const simd = (op: number, ...imm: number[]): void => void code.push(0xfd, ...uleb(op), ...imm);
  const V128_LOAD = 0x00;
  const V128_STORE = 0x0b;
  const LOAD32_SPLAT = 0x09;
  const F32X4_ADD = 0xe4;
  const F32X4_MUL = 0xe6;

  code.push(0x02, 0x40, 0x03, 0x40); // block { loop {
  get(3);
  code.push(0x45, 0x0d, 1); // br_if (kc == 0) out of the block
  for (let j = 0; j < nv; j++) {
    get(1);
    simd(V128_LOAD, 4, ...uleb(16 * j));
    set(bv(j));
  }
  for (let i = 0; i < mr; i++) {
    get(0);
    simd(LOAD32_SPLAT, 2, ...uleb(4 * i));
    set(av);
    for (let j = 0; j < nv; j++) {
      get(acc(i, j));
      get(av);
      get(bv(j));
      simd(F32X4_MUL);
      simd(F32X4_ADD);
      set(acc(i, j));
    }
  }
  get(0);
  code.push(0x41, ...sleb(4 * mr), 0x6a);
  set(0);
  get(1);
  code.push(0x41, ...sleb(4 * nr), 0x6a);
  set(1);
  get(3);
  code.push(0x41, 1, 0x6b);
  set(3);
  code.push(0x0c, 0, 0x0b, 0x0b); // br loop; } }
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nv; j++) {
      get(2);
      get(2);
      simd(V128_LOAD, 4, ...uleb(16 * j));
      get(acc(i, j));
      simd(F32X4_ADD);
      simd(V128_STORE, 4, ...uleb(16 * j));
    }
    get(2);
    get(4);
    code.push(0x6a);
    set(2);
  }
  code.push(0x0b);
  const body = [...vec([[...uleb(nLocals), V128]]), ...code];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), 0]])),
    ...section(2, vec([[...name("env"), ...name("mem"), 0x02, 0x00, 1]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name("mk"), 0x00, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ];
  return new Uint8Array(bytes);
}

let cached: Uint8Array | null | undefined;

/** The module bytes if this runtime validates WebAssembly SIMD, else null (callers fall back to JS). */
export function gemmWasmBytes(): Uint8Array | null {
  if (cached !== undefined) return cached;
  cached = null;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (env?.["LRC_NO_WASM"] === "1") return cached;
  try {
    const bytes = buildGemmWasm();
    const api = (globalThis as unknown as { WebAssembly?: WasmApiLike }).WebAssembly;
    if (api !== undefined && api.validate(bytes)) cached = bytes;
  } catch {
    cached = null;
  }
  return cached;
}
