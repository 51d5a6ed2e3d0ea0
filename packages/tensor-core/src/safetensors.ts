/**
 * safetensors read/write, pure TypeScript over byte arrays (no file system, no Tensor).
 *
 * Format (huggingface/safetensors): an unsigned 64-bit little-endian header length N, then N bytes of
 * UTF-8 JSON, then the data section. The JSON maps each tensor name to
 * `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to the first byte after the header)
 * plus an optional `__metadata__` object of string values. Data is little-endian, row-major.
 *
 * Validation follows the reference Rust crate: the header may be at most 100 MB, the tensors sorted by
 * offset must tile the data section exactly (no gaps, no overlaps, nothing after the last tensor), and
 * each tensor's byte length must equal product(shape) * dtype size. Every error is a `SafetensorsError`
 * whose message starts with the source (usually a file path) and says which field is wrong.
 *
 * Reading never copies the whole file: `parseSafetensors` keeps the caller's bytes and hands out views;
 * `readFloat32` / `readInt32` make one converted copy of the tensor asked for. Writing is split into a
 * plan (header bytes + per-tensor encoders) so the node helper can stream a checkpoint to disk without
 * materialising the whole file in memory.
 */

import { float16Table } from "./dtype.js";

/** The dtypes this reader understands (a subset of the format's; F8 and unsigned 16/32/64 are not read). */
export type SafetensorsDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Dtypes the writer can emit for float data. */
export type SafetensorsFloatDType = "F32" | "F16" | "BF16";

/** Bytes per element of each dtype. */
export const SAFETENSORS_DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Largest header accepted, as in the reference implementation (100 MB). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";
const DEFAULT_SOURCE = "<safetensors bytes>";

/** Any problem with a safetensors file or with tensors handed to the writer. */
export class SafetensorsError extends Error {
  override readonly name = "SafetensorsError";
}

/** Where a tensor lives. `begin`/`end` are the header's `data_offsets`, relative to the data section. */
export interface SafetensorsTensorInfo {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A parsed safetensors file: header information plus lazy, per-tensor decoding. */
export interface SafetensorsFile {
  /** The file path (or label) used in error messages. */
  readonly source: string;
  /** `__metadata__` string map; empty when the file has none. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Length of the JSON header in bytes (the N of the 8-byte prefix). */
  readonly headerLength: number;
  /** Absolute byte offset of the data section in the file (8 + N). */
  readonly dataOffset: number;
  /** Tensor names in data-offset order (zero-sized tensors sharing an offset: in header-object order). */
  names(): string[];
  has(name: string): boolean;
  info(name: string): SafetensorsTensorInfo;
  /** A zero-copy view of the tensor's raw little-endian bytes. */
  bytes(name: string): Uint8Array;
  /** F32, F16, BF16 and F64 tensors as a new Float32Array (F16/BF16 exact; F64 rounded to nearest). */
  readFloat32(name: string): Float32Array;
  /** A BF16 tensor's raw bit patterns (a view of the file's bytes where aligned, else a copy); other dtypes throw. */
  readBF16Bits(name: string): Uint16Array;
  /** An F16 tensor's raw binary16 bit patterns (a view of the file's bytes where aligned, else a copy); other dtypes throw. */
  readF16Bits(name: string): Uint16Array;
  /** I32, I64 (each value must fit in int32), I16, I8, U8 and BOOL tensors as a new Int32Array. */
  readInt32(name: string): Int32Array;
}

/** One tensor handed to the writer. Int32Array data is always written as I32. */
export interface SafetensorsTensorInput {
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
  /** Overrides `SerializeOptions.dtype` for this tensor (float data only). */
  readonly dtype?: SafetensorsFloatDType;
}

/**
 * A float tensor whose data is made only when the writer reaches it (and dropped after it is encoded), so a
 * file larger than memory can be streamed tensor by tensor (e.g. a freshly initialised checkpoint).
 */
export interface SafetensorsLazyTensorInput {
  readonly shape: readonly number[];
  /** Called once, when the tensor is encoded; must return shape-product values. */
  readonly produce: () => Float32Array;
  readonly dtype?: SafetensorsFloatDType;
}

export type SafetensorsTensorMap =
  | Readonly<Record<string, SafetensorsTensorInput | SafetensorsLazyTensorInput>>
  | ReadonlyArray<readonly [string, SafetensorsTensorInput | SafetensorsLazyTensorInput]>;

export interface SerializeOptions {
  /** On-disk dtype of float tensors: F32 (default), or BF16/F16 with round-to-nearest-even. */
  readonly dtype?: SafetensorsFloatDType;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(s: unknown): s is SafetensorsDType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_SIZE, s);
}

function isNonNegativeInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function fmtJson(x: unknown): string {
  const s = JSON.stringify(x);
  return s === undefined ? String(x) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions (bit-exact, tested exhaustively over all 65536 inputs).
// ---------------------------------------------------------------------------------------------

/** binary16 bits of a float32 bit pattern, rounded to nearest even; NaN stays a (quiet) NaN. */
export function float32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const e = exp - 112; // f16 biased exponent
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1; // a carry correctly bumps the exponent
  return sign | h;
}

/** bfloat16 bits of a float32 bit pattern, rounded to nearest even; NaN stays a (quiet) NaN. */
export function float32BitsToBF16Bits(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** float32 value of binary16 bits. */
export function f16BitsToFloat32(h: number): number {
  return bitsToF32(float16Table()[h & 0xffff]!);
}

/** float32 value of bfloat16 bits. */
export function bf16BitsToFloat32(b: number): number {
  return bitsToF32(((b & 0xffff) << 16) >>> 0);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
function bitsToF32(bits: number): number {
  scratchU32[0] = bits;
  return scratchF32[0]!;
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

interface Entry extends SafetensorsTensorInfo {
  readonly name: string;
}

/**
 * Parse and fully validate a safetensors file held in memory. The returned object keeps `bytes` and
 * decodes tensors on demand; `source` (a path, or any label) prefixes every error message.
 */
export function parseSafetensors(bytes: Uint8Array, source: string = DEFAULT_SOURCE): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length prefix`);
  }
  const prefix = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const lo = prefix.getUint32(0, true);
  const hi = prefix.getUint32(4, true);
  const headerLength = hi * 2 ** 32 + lo;
  if (hi !== 0 || headerLength > SAFETENSORS_MAX_HEADER_BYTES) {
    fail(`header length ${headerLength} is absurd (limit ${SAFETENSORS_MAX_HEADER_BYTES} bytes); not a safetensors file?`);
  }
  if (8 + headerLength > bytes.length) {
    fail(`header length ${headerLength} is larger than the file (${bytes.length} bytes, ${bytes.length - 8} after the prefix)`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    return fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(`header JSON is not an object (got ${Array.isArray(header) ? "an array" : fmtJson(header)})`);
  }
  const dataOffset = 8 + headerLength;
  const dataLength = bytes.length - dataOffset;

  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (raw === null) continue;
      if (typeof raw !== "object" || Array.isArray(raw)) fail(`${METADATA_KEY} is not an object of strings (got ${fmtJson(raw)})`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`${METADATA_KEY}.${k} is not a string (got ${fmtJson(v)})`);
        metadata[k] = v as string;
      }
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(`${where}: entry is not an object (got ${fmtJson(raw)})`);
    const obj = raw as Record<string, unknown>;
    for (const field of ["dtype", "shape", "data_offsets"]) {
      if (!(field in obj)) fail(`${where}: entry has no ${field}`);
    }
    const dtype = obj["dtype"];
    if (!isDType(dtype)) {
      fail(`${where}: unknown dtype ${fmtJson(dtype)} (supported: ${Object.keys(SAFETENSORS_DTYPE_SIZE).join(", ")})`);
    }
    const shape = obj["shape"];
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      fail(`${where}: shape must be an array of non-negative integers, got ${fmtJson(shape)}`);
    }
    const offs = obj["data_offsets"];
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegativeInt)) {
      fail(`${where}: data_offsets must be [begin, end] with non-negative integers, got ${fmtJson(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(`${where}: data_offsets [${begin}, ${end}] are not ordered (end < begin)`);
    if (end > dataLength) {
      fail(`${where}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes)`);
    }
    const dims = shape as number[];
    const count = dims.reduce((a, b) => a * b, 1);
    const size = SAFETENSORS_DTYPE_SIZE[dtype as SafetensorsDType];
    if (!Number.isSafeInteger(count * size) || count * size !== end - begin) {
      fail(
        `${where}: byte length ${end - begin} (data_offsets [${begin}, ${end}]) != ${count} elements x ${size} bytes ` +
          `(${String(dtype)}, shape [${dims.join(", ")}]) = ${count * size}`,
      );
    }
    entries.push({ name, dtype: dtype as SafetensorsDType, shape: Object.freeze(dims.slice()), begin, end });
  }

  // Sorted by offsets, tensors must tile the data section exactly.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: Entry | null = null;
  for (const e of entries) {
    if (e.begin < cursor && previous !== null) {
      fail(
        `tensor ${JSON.stringify(e.name)}: data_offsets [${e.begin}, ${e.end}] overlap tensor ` +
          `${JSON.stringify(previous.name)} [${previous.begin}, ${previous.end}]`,
      );
    }
    if (e.begin > cursor) {
      fail(`data section bytes [${cursor}, ${e.begin}) belong to no tensor (gap before tensor ${JSON.stringify(e.name)})`);
    }
    cursor = e.end;
    previous = e;
  }
  if (cursor !== dataLength) {
    fail(`data section is ${dataLength} bytes but the tensors cover only ${cursor} (trailing bytes after the last tensor)`);
  }

  const byName = new Map<string, Entry>();
  for (const e of entries) byName.set(e.name, e);
  Object.freeze(metadata);
  return new ParsedSafetensors(source, bytes, metadata, headerLength, dataOffset, entries, byName);
}

class ParsedSafetensors implements SafetensorsFile {
  constructor(
    readonly source: string,
    private readonly buf: Uint8Array,
    readonly metadata: Readonly<Record<string, string>>,
    readonly headerLength: number,
    readonly dataOffset: number,
    private readonly ordered: readonly Entry[],
    private readonly byName: ReadonlyMap<string, Entry>,
  ) {}

  names(): string[] {
    return this.ordered.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: e.shape, begin: e.begin, end: e.end };
  }

  bytes(name: string): Uint8Array {
    const e = this.entry(name);
    return this.buf.subarray(this.dataOffset + e.begin, this.dataOffset + e.end);
  }

  readFloat32(name: string): Float32Array {
    const e = this.entry(name);
    const raw = this.bytes(name);
    const n = raw.length / SAFETENSORS_DTYPE_SIZE[e.dtype];
    const out = new Float32Array(n);
    switch (e.dtype) {
      case "F32":
        if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(raw);
        else readLE(raw, (dv, i) => (out[i] = dv.getFloat32(4 * i, true)), n);
        return out;
      case "F64":
        if (LITTLE_ENDIAN) out.set(new Float64Array(copyAligned(raw).buffer));
        else readLE(raw, (dv, i) => (out[i] = dv.getFloat64(8 * i, true)), n);
        return out;
      case "BF16": {
        const src = halfWords(raw, n);
        const bits = new Int32Array(out.buffer); // int32 stores keep the shifted value a small integer
        for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
        return out;
      }
      case "F16": {
        const src = halfWords(raw, n);
        const bits = new Uint32Array(out.buffer);
        const table = float16Table();
        for (let i = 0; i < n; i++) bits[i] = table[src[i]!]!;
        return out;
      }
      default:
        return this.fail(name, `dtype ${e.dtype} is not a float type; readFloat32 reads F32, F16, BF16 and F64 (use readInt32)`);
    }
  }

  readBF16Bits(name: string): Uint16Array {
    return this.halfBits(name, "BF16");
  }

  readF16Bits(name: string): Uint16Array {
    return this.halfBits(name, "F16");
  }

  private halfBits(name: string, dtype: "BF16" | "F16"): Uint16Array {
    const e = this.entry(name);
    if (e.dtype !== dtype) return this.fail(name, `dtype ${e.dtype} is not ${dtype}; read${dtype}Bits reads ${dtype} tensors only (use readFloat32)`);
    const raw = this.bytes(name);
    return halfWords(raw, raw.length / 2);
  }

  readInt32(name: string): Int32Array {
    const e = this.entry(name);
    const raw = this.bytes(name);
    const n = raw.length / SAFETENSORS_DTYPE_SIZE[e.dtype];
    const out = new Int32Array(n);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    switch (e.dtype) {
      case "I32":
        if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(raw);
        else for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
        return out;
      case "I64":
        for (let i = 0; i < n; i++) {
          const lo = dv.getInt32(8 * i, true);
          const hi = dv.getInt32(8 * i + 4, true);
          if (hi !== lo >> 31) {
            const v = dv.getBigInt64(8 * i, true);
            this.fail(name, `I64 value ${v} at flat index ${i} does not fit in int32`);
          }
          out[i] = lo;
        }
        return out;
      case "I16":
        for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
        return out;
      case "I8":
        for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
        return out;
      case "U8":
      case "BOOL":
        out.set(raw);
        return out;
      default:
        return this.fail(name, `dtype ${e.dtype} is not an integer type; readInt32 reads I64, I32, I16, I8, U8 and BOOL (use readFloat32)`);
    }
  }

  private entry(name: string): Entry {
    const e = this.byName.get(name);
    if (e === undefined) {
      const known = this.ordered.length <= 8 ? ` (has: ${this.ordered.map((x) => x.name).join(", ")})` : ` (${this.ordered.length} tensors)`;
      return this.fail(name, `no such tensor${known}`);
    }
    return e;
  }

  private fail(name: string, msg: string): never {
    throw new SafetensorsError(`${this.source}: tensor ${JSON.stringify(name)}: ${msg}`);
  }
}

/** 16-bit words of `raw`, as a view when aligned (and little-endian), else a copy. */
function halfWords(raw: Uint8Array, n: number): Uint16Array {
  if (!LITTLE_ENDIAN) {
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const w = new Uint16Array(n);
    for (let i = 0; i < n; i++) w[i] = dv.getUint16(2 * i, true);
    return w;
  }
  if (raw.byteOffset % 2 === 0) return new Uint16Array(raw.buffer, raw.byteOffset, n);
  return new Uint16Array(copyAligned(raw).buffer);
}

function copyAligned(raw: Uint8Array): Uint8Array {
  return raw.slice();
}

function readLE(raw: Uint8Array, f: (dv: DataView, i: number) => void, n: number): void {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < n; i++) f(dv, i);
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** A serialization plan: the 8-byte prefix + padded header, then each tensor's bytes in order. */
export interface SafetensorsPlan {
  /** Prefix and header, padded with spaces so the data section starts at a multiple of 8. */
  readonly head: Uint8Array;
  /** Total file size in bytes. */
  readonly totalBytes: number;
  /** Tensor names in file order (= insertion order), with their data byte lengths. */
  readonly tensors: ReadonlyArray<{ readonly name: string; readonly byteLength: number }>;
  /** Encode tensor `i` (of `tensors`) into its little-endian bytes (a view for F32/I32 data). */
  encode(i: number): Uint8Array;
}

type AnyTensorInput = SafetensorsTensorInput | SafetensorsLazyTensorInput;

function tensorEntries(tensors: SafetensorsTensorMap): Array<readonly [string, AnyTensorInput]> {
  return Array.isArray(tensors)
    ? (tensors as ReadonlyArray<readonly [string, AnyTensorInput]>).slice()
    : Object.entries(tensors as Readonly<Record<string, AnyTensorInput>>);
}

/** Validate tensors and lay out the file; `serializeSafetensors` and the node writer both use this. */
export function planSafetensors(
  tensors: SafetensorsTensorMap,
  metadata?: Readonly<Record<string, string>>,
  options: SerializeOptions = {},
): SafetensorsPlan {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`serializeSafetensors: ${msg}`);
  };
  const entries = tensorEntries(tensors);
  const seen = new Set<string>();
  const parts: string[] = [];
  if (metadata !== undefined) {
    const m: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") fail(`metadata ${JSON.stringify(k)} is not a string (got ${fmtJson(v)})`);
      m.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"${METADATA_KEY}":{${m.join(",")}}`);
  }
  const layout: Array<{ name: string; byteLength: number; dtype: SafetensorsDType; input: AnyTensorInput }> = [];
  let offset = 0;
  for (const [name, t] of entries) {
    const where = `tensor ${JSON.stringify(name)}`;
    if (name === METADATA_KEY) fail(`${METADATA_KEY} is reserved and cannot be a tensor name`);
    if (seen.has(name)) fail(`${where} appears twice`);
    seen.add(name);
    if (!Array.isArray(t.shape) || !t.shape.every(isNonNegativeInt)) {
      fail(`${where}: shape must be an array of non-negative integers, got ${fmtJson(t.shape)}`);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    const isInt = "data" in t && t.data instanceof Int32Array;
    if ("data" in t && count !== t.data.length) fail(`${where}: shape [${t.shape.join(", ")}] has ${count} elements but data has ${t.data.length}`);
    const dtype: SafetensorsDType = isInt ? "I32" : (t.dtype ?? options.dtype ?? "F32");
    if (isInt && t.dtype !== undefined) fail(`${where}: Int32Array data is written as I32, not ${t.dtype}`);
    const byteLength = count * SAFETENSORS_DTYPE_SIZE[dtype];
    parts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${t.shape.join(",")}],"data_offsets":[${offset},${offset + byteLength}]}`);
    layout.push({ name, byteLength, dtype, input: t });
    offset += byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded);
  const dv = new DataView(head.buffer);
  dv.setUint32(0, padded % 2 ** 32, true);
  dv.setUint32(4, Math.floor(padded / 2 ** 32), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length);
  return {
    head,
    totalBytes: head.length + offset,
    tensors: layout.map(({ name, byteLength }) => ({ name, byteLength })),
    encode: (i: number) => {
      const item = layout[i];
      if (item === undefined) return fail(`no tensor at index ${i}`);
      const input = item.input;
      if ("data" in input) return encodeTensor(input.data, item.dtype);
      const data = input.produce();
      const count = item.byteLength / SAFETENSORS_DTYPE_SIZE[item.dtype];
      if (!(data instanceof Float32Array) || data.length !== count)
        fail(`tensor ${JSON.stringify(item.name)}: produce() must return a Float32Array of ${count} values for shape [${input.shape.join(", ")}]`);
      return encodeTensor(data, item.dtype);
    },
  };
}

function encodeTensor(data: Float32Array | Int32Array, dtype: SafetensorsDType): Uint8Array {
  const n = data.length;
  if (dtype === "F32" || dtype === "I32") {
    if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const out = new Uint8Array(4 * n);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) {
      if (dtype === "F32") dv.setFloat32(4 * i, data[i]!, true);
      else dv.setInt32(4 * i, data[i]!, true);
    }
    return out;
  }
  // F16 / BF16 from float32 data.
  const bits = new Uint32Array(data.buffer, data.byteOffset, n);
  const out = new Uint8Array(2 * n);
  const convert = dtype === "BF16" ? float32BitsToBF16Bits : float32BitsToF16Bits;
  if (LITTLE_ENDIAN && dtype === "BF16") {
    // Inlined float32BitsToBF16Bits over int32 words: the hot path when saving bf16 checkpoints.
    const words = new Uint16Array(out.buffer);
    const ib = new Int32Array(data.buffer, data.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const b = ib[i]!;
      words[i] =
        (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  } else if (LITTLE_ENDIAN) {
    const words = new Uint16Array(out.buffer);
    for (let i = 0; i < n; i++) words[i] = convert(bits[i]!);
  } else {
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) dv.setUint16(2 * i, convert(bits[i]!), true);
  }
  return out;
}

/**
 * Serialize tensors to safetensors bytes. Tensors are laid out in insertion order; the header JSON is
 * compact and padded with spaces to a multiple of 8 bytes. Float32 data is written as F32, or as
 * BF16/F16 (round-to-nearest-even) when `options.dtype` or a tensor's own `dtype` says so; Int32Array
 * data is written as I32.
 */
export function serializeSafetensors(
  tensors: SafetensorsTensorMap,
  metadata?: Readonly<Record<string, string>>,
  options: SerializeOptions = {},
): Uint8Array {
  const plan = planSafetensors(tensors, metadata, options);
  const out = new Uint8Array(plan.totalBytes);
  out.set(plan.head, 0);
  let pos = plan.head.length;
  for (let i = 0; i < plan.tensors.length; i++) {
    const b = plan.encode(i);
    out.set(b, pos);
    pos += b.length;
  }
  return out;
}
