/**
 * WebAssembly feature detection for the generated kernels: fixed-width SIMD and relaxed SIMD (`f32x4.relaxed_madd`,
 * a fused multiply-add on x64 with FMA3, which nearly doubles the gemm micro-kernel's throughput).
 *
 * Detection is `WebAssembly.validate` on a tiny module using the feature. Relaxed SIMD is on by default from V8 11.4
 * (Node 22); Node 20 ships the same implementation behind `--experimental-wasm-relaxed-simd`, so when validation
 * fails on Node this module turns that V8 flag on once (`v8.setFlagsFromString`, process-wide, so worker threads see
 * it too) and validates again. `LRC_RELAXED_SIMD=0` skips relaxed SIMD entirely; `LRC_NO_WASM=1` disables every
 * generated kernel (plain TypeScript everywhere).
 *
 * Relaxed madd may round once (fused) or twice depending on the hardware; on one machine it is always the same, so
 * results stay bit-identical run to run and across thread counts (all threads run the same instructions).
 */
import { wasmApi } from "./wasm-instance.js";

interface ProcessLike {
  env?: Record<string, string | undefined>;
  getBuiltinModule?: (id: string) => unknown;
}

function proc(): ProcessLike | undefined {
  return (globalThis as { process?: ProcessLike }).process;
}

export { wasmApi };

/** True unless LRC_NO_WASM=1. */
export function wasmAllowed(): boolean {
  return proc()?.env?.["LRC_NO_WASM"] !== "1";
}

/** A module with one function `() -> v128` whose body is `code` (no locals). */
function probe(code: number[]): Uint8Array {
  const body = [0, ...code, 11];
  const sec = [1, body.length, ...body];
  return new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, sec.length, ...sec]);
}

const ZERO_V128 = [253, 12, ...new Array<number>(16).fill(0)];
/** v128.const 0; v128.const 0; f32x4.add */
const SIMD_PROBE = probe([...ZERO_V128, ...ZERO_V128, 253, 228, 1]);
/** v128.const 0 (x3); f32x4.relaxed_madd */
const RELAXED_PROBE = probe([...ZERO_V128, ...ZERO_V128, ...ZERO_V128, 253, 133, 2]);

function validates(bytes: Uint8Array): boolean {
  const api = wasmApi();
  if (api === undefined) return false;
  try {
    return api.validate(bytes);
  } catch {
    return false;
  }
}

let simd: boolean | undefined;
let relaxed: boolean | undefined;

/** WebAssembly fixed-width SIMD is available (and allowed). */
export function hasSimd(): boolean {
  if (simd === undefined) simd = wasmAllowed() && validates(SIMD_PROBE);
  return simd;
}

/** Relaxed SIMD is available (enabling V8's flag on Node 20 if needed) and allowed. */
export function hasRelaxedSimd(): boolean {
  if (relaxed !== undefined) return relaxed;
  relaxed = false;
  if (!hasSimd() || proc()?.env?.["LRC_RELAXED_SIMD"] === "0") return relaxed;
  if (validates(RELAXED_PROBE)) return (relaxed = true);
  const v8 = proc()?.getBuiltinModule?.("node:v8") as { setFlagsFromString?: (flags: string) => void } | undefined;
  if (typeof v8?.setFlagsFromString !== "function") return relaxed;
  try {
    v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    return relaxed;
  }
  relaxed = validates(RELAXED_PROBE);
  return relaxed;
}
