// Data types: float32 (training), float64 (gradient checks), int32 (indices).

export type DType = "float32" | "float64" | "int32";

export type TypedArray = Float32Array | Float64Array | Int32Array;
export type FloatArray = Float32Array | Float64Array;

export function isFloat(dtype: DType): boolean {
  return dtype !== "int32";
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
