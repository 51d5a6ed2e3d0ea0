// Tensor: an eager, contiguous, n-dimensional array with an optional tape node. Every op is a free
// function in ./ops (one definition with its VJP beside it); the methods here are thin aliases.

import type { DType, TypedArray } from "./dtype.js";
import { dtypeOf, isHalf, markFloat16, widenBF16, widenF16 } from "./dtype.js";
import type { HalfDType } from "./dtype.js";
import { SHARED_MIN_BYTES, isShared } from "./backend/cpu/buffer-pool.js";
import type { Node } from "./autodiff/tape.js";
import { backprop } from "./autodiff/tape.js";
import type { Shape } from "./shape.js";
import { checkShape, fmt, sizeOf } from "./shape.js";
import type { DeviceBuffer } from "./storage.js";
import { Storage, allocDirty, computable, dropDevice, releaseStorage, syncHost, syncHostAsync } from "./storage.js";
import * as ops from "./ops/index.js";
import type { Rng } from "./random.js";
import { float32BitsToBF16Bits, float32BitsToF16Bits } from "./safetensors.js";

let nextId = 0;

/** Scopes track tensors created inside `scope(fn)` and dispose the ones that do not escape. */
const scopes: Tensor[][] = [];

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** @internal */ storage: Storage | null;
  #requiresGrad = false;
  /** Accumulated gradient of a leaf after `backward()`. */
  grad: Tensor | null = null;
  /** @internal */ node: Node | null = null;
  /** @internal kept tensors are never disposed by a scope */
  kept = false;

  /** @internal Use `tensor()` and friends. */
  constructor(storage: Storage, shape: Shape, dtype: DType, requiresGrad = false) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.requiresGrad = requiresGrad;
    const top = scopes[scopes.length - 1];
    if (top !== undefined) top.push(this);
  }

  /**
   * @internal Wraps a fresh buffer (ownership passes to the tensor). A large buffer that is not in shared
   * memory (e.g. read from a file) is copied once into a pooled shared one, so the worker-thread kernels can
   * use it without copying it on every call.
   */
  static fromBuffer(buf: TypedArray, shape: Shape): Tensor {
    if (buf.length !== sizeOf(shape)) throw new RangeError(`internal: buffer of ${buf.length} for shape ${fmt(shape)}`);
    const dtype = dtypeOf(buf);
    if (buf.byteLength >= SHARED_MIN_BYTES && !isShared(buf)) {
      const shared = allocDirty(dtype, buf.length);
      shared.set(buf);
      return new Tensor(new Storage(shared), shape, dtype);
    }
    return new Tensor(new Storage(buf), shape, dtype);
  }

  /** @internal A tensor of the given shape whose buffer the caller fills completely. */
  static empty(shape: Shape, dtype: DType): Tensor {
    return new Tensor(new Storage(allocDirty(dtype, sizeOf(shape))), shape, dtype);
  }

  /**
   * @internal A bfloat16 or float16 tensor owning `bits` (16-bit bit patterns of that dtype; see dtype.ts). Use
   * `bfloat16Tensor()` / `float16Tensor()`, which copy into shared memory.
   */
  static fromHalfBits(bits: Uint16Array, shape: Shape, dtype: HalfDType): Tensor {
    if (bits.length !== sizeOf(shape)) throw new RangeError(`internal: ${bits.length} ${dtype} values for shape ${fmt(shape)}`);
    return new Tensor(new Storage(dtype === "float16" ? markFloat16(bits) : bits), shape, dtype);
  }

  /** Whether backward() accumulates a gradient into this tensor; a bfloat16 or float16 tensor (frozen storage) never does. */
  get requiresGrad(): boolean {
    return this.#requiresGrad;
  }

  set requiresGrad(flag: boolean) {
    if (flag && isHalf(this.dtype))
      throw new TypeError(`tensor ${this.id} ${fmt(this.shape)} is ${this.dtype}, a frozen storage dtype: it cannot require grad (train a float32 copy: astype("float32"))`);
    this.#requiresGrad = flag;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  /** Bytes of the values in memory: size x 4 (float32, int32), 8 (float64) or 2 (bfloat16, float16). */
  get nbytes(): number {
    return this.size * (this.dtype === "float64" ? 8 : isHalf(this.dtype) ? 2 : 4);
  }

  get rank(): number {
    return this.shape.length;
  }

  /** @internal A tensor whose values live on a device (the gpu backend); the host copy is made on demand. */
  static fromDevice(dev: DeviceBuffer, shape: Shape, dtype: DType): Tensor {
    const s = new Storage(null);
    s.device = dev;
    return new Tensor(s, shape, dtype);
  }

  get disposed(): boolean {
    return this.storage === null || (this.storage.data === null && this.storage.device === null);
  }

  /**
   * @internal The backing host buffer (length === size). For a device-resident tensor this downloads and
   * frees the device copy, since the caller may write the buffer in place.
   */
  get buf(): TypedArray {
    this.refuseHalf("reading its values");
    const s = this.storage;
    if (s !== null && s.device !== null) {
      syncHost(s, this.dtype, this.size);
      dropDevice(s);
    }
    const d = s?.data as TypedArray | null | undefined; // not 16-bit (refused above)
    if (d === null || d === undefined) throw new Error(`tensor ${this.id} ${fmt(this.shape)} was disposed`);
    return d.length === this.size ? d : d.subarray(0, this.size);
  }

  /** @internal The values for reading only: downloads a device tensor but keeps its device copy. */
  peek(): TypedArray {
    this.refuseHalf("reading its values");
    const s = this.storage;
    if (s === null || (s.data === null && s.device === null)) throw new Error(`tensor ${this.id} ${fmt(this.shape)} was disposed`);
    const d = syncHost(s, this.dtype, this.size);
    return d.length === this.size ? d : d.subarray(0, this.size);
  }

  /** @internal The bit patterns of a bfloat16 or float16 tensor (for the kernels that widen them; never written). */
  get bits(): Uint16Array {
    const d = this.storage?.data;
    if (!isHalf(this.dtype)) throw new TypeError(`internal: bits of a ${this.dtype} tensor`);
    if (!(d instanceof Uint16Array)) throw new Error(`tensor ${this.id} ${fmt(this.shape)} was disposed`);
    return d;
  }

  private refuseHalf(what: string): void {
    if (isHalf(this.dtype))
      throw new TypeError(`tensor ${this.id} ${fmt(this.shape)} is ${this.dtype} (frozen storage): ${what} needs astype("float32") first`);
  }

  /**
   * A copy of the values as a typed array (downloads from the device when the tensor lives there); a bfloat16 or float16
   * tensor's values widened (exactly) into a Float32Array.
   */
  data(): TypedArray {
    return isHalf(this.dtype) ? this.readable() : this.peek().slice();
  }

  /** The values for reading: peek(), or a bfloat16 / float16 tensor's widened into a new Float32Array. */
  private readable(): TypedArray {
    if (!isHalf(this.dtype)) return this.peek();
    const out = new Float32Array(this.size);
    (this.dtype === "float16" ? widenF16 : widenBF16)(this.bits, out);
    return out;
  }

  /** Nested JS arrays (a number for rank 0). */
  toArray(): unknown {
    const b = this.readable();
    const build = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return b[off];
      const n = this.shape[dim]!;
      const step = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: n }, (_, i) => build(dim + 1, off + i * step));
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new RangeError(`item(): tensor has ${this.size} elements, shape ${fmt(this.shape)}`);
    return this.readable()[0]!;
  }

  /**
   * Makes the values readable synchronously: where they live only on a device that reads back asynchronously
   * (the gpu backend's webgpu mode), downloads them into a host copy (the device copy is kept); elsewhere it
   * resolves at once. Afterwards data(), item() and ops that run on the cpu backend can read this tensor.
   */
  async toHostAsync(): Promise<void> {
    const s = this.storage;
    if (s === null || (s.data === null && s.device === null)) throw new Error(`tensor ${this.id} ${fmt(this.shape)} was disposed`);
    if (s.data === null && (await syncHostAsync(s, this.dtype, this.size)) === null)
      throw new Error(`tensor ${this.id} ${fmt(this.shape)} was disposed while its values were being read`);
  }

  /**
   * A copy of the values, like data(), awaiting the device's read where it is asynchronous (the gpu backend's
   * webgpu mode, whose data() throws); on every other backend it resolves to what data() returns.
   */
  async dataAsync(): Promise<TypedArray> {
    await this.toHostAsync();
    return this.data();
  }

  /** The single value of a one-element tensor, like item(), through dataAsync(). */
  async itemAsync(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`itemAsync(): tensor has ${this.size} elements, shape ${fmt(this.shape)}`);
    return (await this.dataAsync())[0]!;
  }

  /** Backpropagates from this tensor, accumulating `.grad` on every leaf that requires grad. */
  backward(grad?: Tensor): void {
    if (!this.requiresGrad) throw new Error("backward(): tensor does not require grad (no input required grad, or grad mode was off)");
    let seed = grad;
    if (seed === undefined) {
      if (this.size !== 1) throw new RangeError(`backward(): implicit gradient only for a scalar, got shape ${fmt(this.shape)}`);
      seed = full(this.shape, 1, { dtype: this.dtype });
    }
    backprop(this, seed, [], true, ops.add, keep);
  }

  /** @internal A tensor sharing this one's storage with another shape of the same size (no tape). */
  view(shape: Shape): Tensor {
    const s = this.storage;
    if (s === null || (s.data === null && s.device === null)) throw new Error(`tensor ${this.id} was disposed`);
    if (sizeOf(shape) !== this.size) throw new RangeError(`internal: view ${fmt(shape)} of ${fmt(this.shape)}`);
    s.refs++;
    return new Tensor(s, shape, this.dtype);
  }

  /** The same data, cut from the tape. */
  detach(): Tensor {
    return this.view(this.shape);
  }

  /** Frees the buffer now (returned to the pool); the tensor can no longer be used. Idempotent. */
  dispose(): void {
    if (this.storage !== null) {
      releaseStorage(this.storage);
      this.storage = null;
    }
    this.node = null;
  }

  toString(): string {
    return `Tensor(${this.dtype}${fmt(this.shape)})`;
  }

  astype(dtype: DType): Tensor { return ops.astype(this, dtype); }
  add(b: Tensor | number): Tensor { return ops.add(this, b); }
  sub(b: Tensor | number): Tensor { return ops.sub(this, b); }
  mul(b: Tensor | number): Tensor { return ops.mul(this, b); }
  div(b: Tensor | number): Tensor { return ops.div(this, b); }
  pow(p: number): Tensor { return ops.pow(this, p); }
  maximum(b: Tensor | number): Tensor { return ops.maximum(this, b); }
  minimum(b: Tensor | number): Tensor { return ops.minimum(this, b); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  rsqrt(): Tensor { return ops.rsqrt(this); }
  abs(): Tensor { return ops.abs(this); }
  tanh(): Tensor { return ops.tanh(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  silu(): Tensor { return ops.silu(this); }
  relu(): Tensor { return ops.relu(this); }
  square(): Tensor { return ops.square(this); }
  eq(b: Tensor | number): Tensor { return ops.eq(this, b); }
  ne(b: Tensor | number): Tensor { return ops.ne(this, b); }
  lt(b: Tensor | number): Tensor { return ops.lt(this, b); }
  le(b: Tensor | number): Tensor { return ops.le(this, b); }
  gt(b: Tensor | number): Tensor { return ops.gt(this, b); }
  ge(b: Tensor | number): Tensor { return ops.ge(this, b); }
  sum(axes?: number | readonly number[], keepdims = false): Tensor { return ops.sum(this, axes, keepdims); }
  mean(axes?: number | readonly number[], keepdims = false): Tensor { return ops.mean(this, axes, keepdims); }
  max(axes?: number | readonly number[], keepdims = false): Tensor { return ops.max(this, axes, keepdims); }
  min(axes?: number | readonly number[], keepdims = false): Tensor { return ops.min(this, axes, keepdims); }
  logsumexp(axes?: number | readonly number[], keepdims = false): Tensor { return ops.logsumexp(this, axes, keepdims); }
  argmax(axis = -1): Tensor { return ops.argmax(this, axis); }
  reshape(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  transpose(axis0 = -2, axis1 = -1): Tensor { return ops.transpose(this, axis0, axis1); }
  permute(perm: readonly number[]): Tensor { return ops.permute(this, perm); }
  expand(shape: readonly number[]): Tensor { return ops.broadcastTo(this, shape); }
  broadcastTo(shape: readonly number[]): Tensor { return ops.broadcastTo(this, shape); }
  slice(starts: readonly number[], ends?: readonly number[]): Tensor { return ops.slice(this, starts, ends); }
  squeeze(axis?: number): Tensor { return ops.squeeze(this, axis); }
  unsqueeze(axis: number): Tensor { return ops.unsqueeze(this, axis); }
  matmul(b: Tensor, opts?: ops.MatmulOptions): Tensor { return ops.matmul(this, b, opts); }
  softmax(axis = -1): Tensor { return ops.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return ops.logSoftmax(this, axis); }
}

/** Marks t so that no enclosing `scope` disposes it. Returns t. */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  return t;
}

/**
 * Runs fn and disposes every tensor created inside that is neither returned (tensors found in the result,
 * arrays and plain objects are searched) nor kept. Like TF.js `tidy`.
 */
export function scope<T>(fn: () => T): T {
  const mine: Tensor[] = [];
  scopes.push(mine);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const escaping = new Set<Tensor>();
  collect(result, escaping, 0);
  const parent = scopes[scopes.length - 1];
  for (const t of mine) {
    if (escaping.has(t) || t.kept) {
      if (parent !== undefined && !t.kept) parent.push(t);
    } else t.dispose();
  }
  return result;
}

function collect(v: unknown, out: Set<Tensor>, depth: number): void {
  if (depth > 6 || v === null || typeof v !== "object") return;
  if (v instanceof Tensor) {
    out.add(v);
    if (v.grad !== null) out.add(v.grad);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collect(x, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype || v instanceof Map)
    for (const x of v instanceof Map ? v.values() : Object.values(v)) collect(x, out, depth + 1);
}

// ---------------------------------------------------------------------------------------------------
// Creation

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

type Nested = number | readonly Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
  }
  return shape;
}

/**
 * Creates a tensor from a number, nested arrays or a typed array (copied). `shape` defaults to the nested
 * structure (or 1-D for a flat typed array); dtype defaults to the typed array's, else float32.
 */
export function tensor(data: Nested | TypedArray | readonly number[], shape?: readonly number[], opts: TensorOptions = {}): Tensor {
  const isTyped = ArrayBuffer.isView(data);
  const dtype = computable("tensor", opts.dtype ?? (isTyped ? dtypeOf(data as TypedArray) : "float32"));
  const flat: ArrayLike<number> = isTyped
    ? (data as TypedArray)
    : typeof data === "number"
      ? [data]
      : (data as readonly Nested[]).flat(Infinity as 1) as number[];
  const sh = shape ?? (isTyped ? [flat.length] : inferShape(data as Nested));
  checkShape("tensor", sh);
  if (sizeOf(sh) !== flat.length)
    throw new RangeError(`tensor: ${flat.length} values do not fit shape ${fmt(sh)}`);
  if (!isTyped && typeof data !== "number") {
    // ragged nested arrays are an error
    const expect = inferShape(data as Nested);
    if (shape === undefined && sizeOf(expect) !== flat.length) throw new RangeError("tensor: ragged nested array");
  }
  const buf = allocDirty(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) buf[i] = flat[i]!;
  const t = Tensor.fromBuffer(buf, sh);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

/**
 * A frozen bfloat16 tensor of BF16 bit patterns (a checkpoint's raw words), copied (into shared memory when large,
 * so the worker-thread kernels read it without copying). It holds half the bytes of float32; gemm (matmul),
 * gather (embedding), lmHeadLoss and astype read it, widening exactly; other ops refuse it (see dtype.ts).
 */
export function bfloat16Tensor(bits: Uint16Array, shape: readonly number[]): Tensor {
  return halfTensor("bfloat16Tensor", bits, shape, "bfloat16");
}

/**
 * A frozen float16 tensor of IEEE binary16 bit patterns (an F16 checkpoint's raw words), copied like
 * bfloat16Tensor's; the same kernels read it, widening exactly (dtype.ts float16Table).
 */
export function float16Tensor(bits: Uint16Array, shape: readonly number[]): Tensor {
  return halfTensor("float16Tensor", bits, shape, "float16");
}

function halfTensor(what: string, bits: Uint16Array, shape: readonly number[], dtype: HalfDType): Tensor {
  checkShape(what, shape);
  if (bits.length !== sizeOf(shape)) throw new RangeError(`${what}: ${bits.length} values do not fit shape ${fmt(shape)}`);
  const own = halfWords(bits.length);
  own.set(bits);
  return Tensor.fromHalfBits(own, shape, dtype);
}

/** n zero 16-bit words (+0.0 in both dtypes), in shared memory when large (see bfloat16Tensor). */
function halfWords(n: number): Uint16Array {
  const shared = 2 * n >= SHARED_MIN_BYTES && typeof SharedArrayBuffer === "function";
  return new Uint16Array(shared ? new SharedArrayBuffer(2 * n) : new ArrayBuffer(2 * n));
}

export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  checkShape("full", shape);
  if (opts.dtype !== undefined && isHalf(opts.dtype)) {
    // Frozen storage (e.g. weight matrices about to be loaded from a BF16 / F16 checkpoint): value rounded to the dtype.
    const bits = halfWords(sizeOf(shape));
    const round = opts.dtype === "float16" ? float32BitsToF16Bits : float32BitsToBF16Bits;
    if (value !== 0 || Object.is(value, -0)) bits.fill(round(new Uint32Array(Float32Array.of(value).buffer)[0]!));
    const t = Tensor.fromHalfBits(bits, shape, opts.dtype);
    t.requiresGrad = opts.requiresGrad ?? false;
    return t;
  }
  const t = Tensor.empty(shape, computable("full", opts.dtype ?? "float32"));
  t.buf.fill(value);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}

export function zerosLike(t: Tensor): Tensor {
  return full(t.shape, 0, { dtype: t.dtype });
}

export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, { dtype: t.dtype });
}

/** [start, stop) with step, like numpy (one argument: [0, n)). */
export function arange(start: number, stop?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new RangeError("arange: step must not be 0");
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const t = Tensor.empty([n], computable("arange", opts.dtype ?? "float32"));
  const b = t.buf;
  for (let i = 0; i < n; i++) b[i] = start + i * step;
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

export interface RandomOptions extends TensorOptions {
  rng: Rng;
}

/** Normal(mean, std^2) samples from the given generator. */
export function randn(shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number }): Tensor {
  checkShape("randn", shape);
  const t = Tensor.empty(shape, computable("randn", opts.dtype ?? "float32"));
  const b = t.buf;
  const m = opts.mean ?? 0, s = opts.std ?? 1;
  for (let i = 0; i < b.length; i++) b[i] = m + s * opts.rng.normal();
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

/** Uniform [low, high) samples from the given generator. */
export function rand(shape: readonly number[], opts: RandomOptions & { low?: number; high?: number }): Tensor {
  checkShape("rand", shape);
  const t = Tensor.empty(shape, computable("rand", opts.dtype ?? "float32"));
  const b = t.buf;
  const lo = opts.low ?? 0, hi = opts.high ?? 1;
  for (let i = 0; i < b.length; i++) b[i] = lo + (hi - lo) * opts.rng.uniform();
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}
