/**
 * Float32 add / sub / mul / div on the WebAssembly SIMD vector kernels (wasm-vector.ts), for elementwise.ts's
 * fast paths: equal shapes, a scalar operand, and a broadcast row (one operand repeats every `row` elements, the
 * bias / gain pattern; `row` a multiple of 4). Operands stream through the module's memory in L2-sized chunks.
 * Results equal the TypeScript loop's bit for bit (one float32 rounding per element either way).
 */
import { DATA, type BinaryWasmOp, type VectorKernels } from "./wasm-vector.js";

/** Floats per chunk (per operand region). */
const CHUNK = 1 << 14;

/** The kernel function for op. */
function kernel(k: VectorKernels, op: BinaryWasmOp): (a: number, b: number, out: number, n: number, mode: number) => void {
  switch (op) {
    case "add": return k.badd;
    case "sub": return k.bsub;
    case "mul": return k.bmul;
    case "div": return k.bdiv;
  }
}

/**
 * out[i] = a[i] op b[i] for i < n, where `which` says which operand is full: "both", "a" (b is a row of `row`
 * floats repeating; row = 1 is a scalar), or "b" (a repeats). out may alias a full operand.
 */
export function binaryWasm(
  k: VectorKernels, op: BinaryWasmOp, a: Float32Array, b: Float32Array, out: Float32Array, n: number,
  which: "both" | "a" | "b", row: number,
): void {
  const run = kernel(k, op);
  const small = which === "both" ? 0 : row;
  const chunk = small > 1 ? Math.max(small, Math.floor(CHUNK / small) * small) : CHUNK;
  const pa = DATA, pb = pa + chunk * 4, po = pb + chunk * 4, ps = po + chunk * 4;
  k.ensure(ps + Math.max(small, 4) * 4);
  const h = k.heap;
  const full = which === "b" ? b : a;
  const rep = which === "b" ? a : b;
  if (which !== "both") h.set(rep.subarray(0, small), ps >> 2);
  for (let i0 = 0; i0 < n; i0 += chunk) {
    const len = Math.min(chunk, n - i0);
    if (which === "both") {
      h.set(a.subarray(i0, i0 + len), pa >> 2);
      h.set(b.subarray(i0, i0 + len), pb >> 2);
      run(pa, pb, po, len, 0);
    } else {
      h.set(full.subarray(i0, i0 + len), pa >> 2);
      const mode = which === "a" ? 1 : 2;
      if (small === 1) run(which === "a" ? pa : ps, which === "a" ? ps : pa, po, len, mode);
      else for (let o = 0; o < len; o += small) run(which === "a" ? pa + o * 4 : ps, which === "a" ? ps : pa + o * 4, po + o * 4, small, 0);
    }
    out.set(h.subarray(po >> 2, (po >> 2) + len), i0);
  }
}
