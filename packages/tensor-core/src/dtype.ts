// Data types: float32 (training), float64 (gradient checks), int32 (indices), and two 16-bit storage dtypes for
// frozen weights kept in their checkpoint dtype (a BF16 or F16 teacher at half the bytes of float32): bfloat16 and
// float16 (IEEE binary16). Such a tensor (bfloat16Tensor / float16Tensor from bits, zeros / full, or astype from
// float32) holds the bit patterns in a Uint16Array; the kernels that read it (gemm, gather, lmHeadLoss, astype)
// widen each value to float32 exactly (bfloat16: the bits shifted left by 16; float16: a 65,536-entry table) and
// compute in float32. Every other op refuses it, naming the op (backend/dispatch.ts); it never requires grad.

export type DType = "float32" | "float64" | "int32" | "bfloat16" | "float16";

/** The 16-bit storage dtypes of frozen weights. */
export type HalfDType = "bfloat16" | "float16";

export type TypedArray = Float32Array | Float64Array | Int32Array;
export type FloatArray = Float32Array | Float64Array;

/** Whether dtype is a 16-bit storage dtype (bfloat16, float16). */
export function isHalf(dtype: DType): dtype is HalfDType {
  return dtype === "bfloat16" || dtype === "float16";
}

/** Writes the float32 values of BF16 bits into out (exact: each value is its bits shifted left by 16). */
export function widenBF16(bits: Uint16Array, out: Float32Array): void {
  const words = new Int32Array(out.buffer, out.byteOffset, bits.length);
  for (let i = 0; i < bits.length; i++) words[i] = bits[i]! << 16;
}

let f16Table: Uint32Array | null = null;

/** float32 bit pattern of an IEEE binary16 bit pattern (exact: every f16 is representable in f32). */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, nan (payload kept)
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal f16: mant * 2^-24. Normalise into an f32 normal number.
  let e = 113; // exponent of 2^-14 in f32 bias, before shifting the mantissa up
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e -= 1;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** The float32 bit pattern of every binary16 bit pattern (built on first use; 256 KB). */
export function float16Table(): Uint32Array {
  if (f16Table === null) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

/** Writes the float32 values of binary16 bits into out (exact, by float16Table). */
export function widenF16(bits: Uint16Array, out: Float32Array): void {
  const words = new Uint32Array(out.buffer, out.byteOffset, bits.length);
  const table = float16Table();
  for (let i = 0; i < bits.length; i++) words[i] = table[bits[i]!]!;
}

/**
 * The buffers that hold float16 bits: the cpu kernels take a 16-bit operand as a Uint16Array, BF16 unless its
 * buffer is registered here (float16Tensor registers the buffers it makes; gemm passes the flag to its workers).
 */
const float16Buffers = new WeakSet<ArrayBufferLike>();

/** Registers bits' buffer as holding float16 bit patterns (see isFloat16Bits). */
export function markFloat16(bits: Uint16Array): Uint16Array {
  float16Buffers.add(bits.buffer);
  return bits;
}

/** Whether a 16-bit operand holds float16 bits (its buffer was registered by markFloat16), not BF16. */
export function isFloat16Bits(bits: Uint16Array): boolean {
  return float16Buffers.has(bits.buffer);
}

/** Writes the float32 values of a 16-bit operand into out: float16 bits when isFloat16Bits, else BF16. */
export function widenHalf(bits: Uint16Array, out: Float32Array): void {
  (isFloat16Bits(bits) ? widenF16 : widenBF16)(bits, out);
}

/** A dtype ops compute in: float32 or float64 (not int32, not the storage-only bfloat16 and float16). */
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
    case "float16":
      throw new TypeError(`arrayFor: ${dtype} is held as 16-bit bit patterns (bfloat16Tensor / float16Tensor)`);
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
