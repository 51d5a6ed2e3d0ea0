// Data types: float32 (training), float64 (gradient checks), int32 (indices), and bfloat16: storage only, for
// frozen weights kept in their checkpoint dtype (a BF16 teacher at half the bytes of float32). A bfloat16
// tensor (bfloat16Tensor from bits, zeros / full, or astype from float32) holds BF16 bit patterns in a Uint16Array; the kernels that read it (gemm, gather, lmHeadLoss, astype)
// widen each value to float32 exactly (the bits shifted left by 16) and compute in float32. Every other op
// refuses it, naming the op (backend/dispatch.ts); it never requires grad.

export type DType = "float32" | "float64" | "int32" | "bfloat16";

export type TypedArray = Float32Array | Float64Array | Int32Array;
export type FloatArray = Float32Array | Float64Array;

/** Writes the float32 values of BF16 bits into out (exact: each value is its bits shifted left by 16). */
export function widenBF16(bits: Uint16Array, out: Float32Array): void {
  const words = new Int32Array(out.buffer, out.byteOffset, bits.length);
  for (let i = 0; i < bits.length; i++) words[i] = bits[i]! << 16;
}

/** A dtype ops compute in: float32 or float64 (not int32, not the storage-only bfloat16). */
export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64";
}

/** Throws, naming the op, unless every tensor is float and all share one dtype. */
export function requireFloat(op: string, ...ts: ReadonlyArray<{ readonly dtype: DType }>): void {
  for (const t of ts) if (!isFloat(t.dtype)) throw new TypeError(`${op}: expects float tensors, got ${t.dtype}`);
  for (const t of ts) if (t.dtype !== ts[0]!.dtype) throw new TypeError(`${op}: dtype mismatch ${ts[0]!.dtype} vs ${t.dtype}`);
}

export function arrayFor(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "int32":
      return new Int32Array(n);
    case "bfloat16":
      throw new TypeError("arrayFor: bfloat16 is held as BF16 bits (bfloat16Tensor)");
    default:
      return dtype satisfies never;
  }
}

export function dtypeOf(a: TypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  return "int32";
}

/** The dtype of a binary op's result: equal dtypes only (no silent promotion), ints promote with floats. */
export function resultDType(op: string, a: DType, b: DType): DType {
  if (a === b) return a;
  if (a === "int32") return b;
  if (b === "int32") return a;
  throw new TypeError(`${op}: dtype mismatch ${a} vs ${b} (cast one with .astype())`);
}
