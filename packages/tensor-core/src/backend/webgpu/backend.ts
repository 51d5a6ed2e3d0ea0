// The native WebGPU backend (`initBackend("webgpu")`): a `Partial<Kernels>` over a WebGpuDevice whose kernels are
// the WGSL generated in this folder. Inputs are uploaded once (the device copy is kept in the tensor's storage),
// outputs are device-resident tensors, and values come back only through `dataAsync()` / `toHostAsync()`
// (WebGPU has no synchronous read: `data()` on a device-only tensor throws saying so). Kernels it lacks or
// calls it refuses (float64, empty operands; `float32Operands`) run on cpu through the dispatcher. A bfloat16 or
// float16 tensor (a frozen teacher weight) is uploaded as its 16-bit bits and read, widened to float32, by the
// matmul and the embedding gather (half16.ts; float16 natively with shader-f16, else by unpack2x16float): a BF16
// or F16 teacher's linear layers run here, at half the device memory.
// Every kernel of the LRC step is here, the gradient clip's sumSquares and scale included (the trainer reads one
// number per step, `clipGradNormAsync`).

import type { DType, TypedArray } from "../../dtype.js";
import { isHalf } from "../../dtype.js";
import { broadcastStrides, sizeOf, stridesOf } from "../../shape.js";
import { Tensor } from "../../tensor.js";
import type { DeviceBuffer as StorageDevice } from "../../storage.js";
import { release } from "../cpu/buffer-pool.js";
import { float32Operands } from "../gpujs/backend.js";
import type { AdamWHyper, AttentionDims, Backend, BackendInfo, BinaryOp, DeviceStats, GemmDims, KernelName, KlForward, Kernels, ReduceOp, UnaryOp } from "../kernels.js";
import { attentionBackward, attentionForward } from "./attention.js";
import { WebGpuDevice, type WebGpuBuffer, type WebGpuDeviceOptions } from "./device.js";
import * as ew from "./elementwise.js";
import { defaultMatmulVariant, matmul, timeMatmulDesigns, type MatmulVariant } from "./matmul.js";
import * as rows from "./rows.js";

/** A tensor's device copy: a pooled storage buffer, read back asynchronously. */
class WebGpuStorage implements StorageDevice {
  constructor(readonly dev: WebGpuDevice, readonly buf: WebGpuBuffer) {}

  download(): void {
    throw new Error("webgpu backend: this tensor's values are on the GPU, and WebGPU reads them back only asynchronously: await tensor.dataAsync() (or toHostAsync()) first");
  }

  async downloadAsync(out: TypedArray, n: number): Promise<void> {
    const v = await this.dev.read(this.buf, n);
    for (let i = 0; i < n; i++) out[i] = v[i]!;
  }

  free(): void {
    this.buf.free();
  }
}

export class WebGpuKernels implements Partial<Kernels> {
  constructor(readonly dev: WebGpuDevice, readonly matmulVariant: MatmulVariant) {}

  /**
   * The device buffer of t, uploading its host values on first use (kept in its storage). A copy on another
   * WebGPU device (a backend started before this one, e.g. with other features) is replaced from the host values.
   */
  private buf(t: Tensor): WebGpuBuffer {
    const s = t.storage;
    if (s === null || (s.data === null && s.device === null)) throw new Error(`webgpu backend: tensor ${t.id} was disposed`);
    if (s.device instanceof WebGpuStorage) {
      if (s.device.dev === this.dev) return s.device.buf;
      if (s.data === null) throw new Error(`webgpu backend: tensor ${t.id} [${t.shape.join(", ")}] lives only on the device of a webgpu backend started before this one; read it (await toHostAsync()) before starting another`);
    }
    return this.upload(t);
  }

  /** Copies t's host values into a new device buffer now, replacing the device copy it had (kept in its storage). */
  upload(t: Tensor): WebGpuBuffer {
    const s = t.storage!;
    let buf: WebGpuBuffer;
    if (isHalf(t.dtype)) buf = this.dev.upload(t.bits, t.dtype);
    else {
      const host = t.peek();
      buf = this.dev.upload(host instanceof Int32Array || host instanceof Float32Array ? host : Float32Array.from(host));
    }
    const up = new WebGpuStorage(this.dev, buf);
    s.device?.free();
    s.device = up;
    return up.buf;
  }

  /** The device buffer of t for a kernel that writes it in place: its host copy, now stale, is dropped. */
  private mutable(t: Tensor): WebGpuBuffer {
    const b = this.buf(t);
    const s = t.storage!;
    if (s.data !== null) {
      release(s.data);
      s.data = null;
    }
    return b;
  }

  private out(shape: readonly number[], dtype: DType = "float32", zeroed = false): [Tensor, WebGpuBuffer] {
    const n = sizeOf(shape);
    const b = zeroed ? this.dev.zeros(n, dtype === "int32" ? "int32" : "float32") : this.dev.alloc(n, dtype === "int32" ? "int32" : "float32");
    return [Tensor.fromDevice(new WebGpuStorage(this.dev, b), shape, dtype), b];
  }

  unary(op: UnaryOp, x: Tensor): Tensor {
    const [o, ob] = this.out(x.shape);
    ew.unary(this.dev, op, this.buf(x), ob, x.size);
    return o;
  }

  pow(x: Tensor, p: number): Tensor {
    const [o, ob] = this.out(x.shape);
    ew.powScalar(this.dev, this.buf(x), p, ob, x.size);
    return o;
  }

  binary(op: BinaryOp, a: Tensor, b: Tensor, shape: readonly number[], dtype: DType): Tensor {
    const [o, ob] = this.out(shape, dtype);
    ew.binary(this.dev, op, this.buf(a), a.shape, this.buf(b), b.shape, ob, shape);
    return o;
  }

  where(cond: Tensor, a: Tensor, b: Tensor, dtype: DType): Tensor {
    const [o, ob] = this.out(a.shape, dtype);
    ew.where(this.dev, this.buf(cond), this.buf(a), this.buf(b), ob, a.size);
    return o;
  }

  permute(x: Tensor, perm: readonly number[]): Tensor {
    const st = stridesOf(x.shape);
    const shape = perm.map((a) => x.shape[a]!);
    const [o, ob] = this.out(shape, x.dtype);
    ew.stridedCopy(this.dev, this.buf(x), 0, perm.map((a) => st[a]!), ob, shape);
    return o;
  }

  broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
    const [o, ob] = this.out(shape, x.dtype);
    ew.stridedCopy(this.dev, this.buf(x), 0, broadcastStrides(x.shape, shape), ob, shape);
    return o;
  }

  slice(x: Tensor, starts: readonly number[], outShape: readonly number[]): Tensor {
    const st = stridesOf(x.shape);
    const [o, ob] = this.out(outShape, x.dtype);
    ew.stridedCopy(this.dev, this.buf(x), starts.reduce((acc, s, i) => acc + s * st[i]!, 0), st, ob, outShape);
    return o;
  }

  sliceBackward(dy: Tensor, xShape: readonly number[], starts: readonly number[]): Tensor {
    const st = stridesOf(xShape);
    const [o, ob] = this.out(xShape, "float32", true);
    ew.stridedAddInto(this.dev, this.buf(dy), dy.shape, ob, starts.reduce((acc, s, i) => acc + s * st[i]!, 0), st);
    return o;
  }

  concat(xs: readonly Tensor[], axis: number, outShape: readonly number[]): Tensor {
    const [o, ob] = this.out(outShape, "float32", true);
    const st = stridesOf(outShape);
    let col = 0;
    for (const t of xs) {
      ew.stridedAddInto(this.dev, this.buf(t), t.shape, ob, col * st[axis]!, st);
      col += t.shape[axis]!;
    }
    return o;
  }

  gather(x: Tensor, indices: Tensor, outShape: readonly number[]): Tensor {
    const [o, ob] = this.out(outShape, isHalf(x.dtype) ? "float32" : x.dtype);
    ew.gatherRows(this.dev, this.buf(x), x.shape[0]!, sizeOf(x.shape.slice(1)), this.buf(indices), ob);
    return o;
  }

  gatherBackward(dy: Tensor, indices: Tensor, xShape: readonly number[]): Tensor {
    const [o, ob] = this.out(xShape, "float32", true);
    ew.scatterAddRows(this.dev, this.buf(dy), sizeOf(xShape.slice(1)), this.buf(indices), ob);
    return o;
  }

  reduce(op: ReduceOp, x: Tensor, outer: number, r: number, inner: number, outShape: readonly number[]): Tensor {
    const [o, ob] = this.out(outShape);
    rows.reduce(this.dev, op, this.buf(x), ob, outer, r, inner);
    return o;
  }

  argmax(x: Tensor, outer: number, r: number, inner: number, outShape: readonly number[]): Tensor {
    const [o, ob] = this.out(outShape, "int32");
    ew.argmax(this.dev, this.buf(x), ob, outer, r, inner);
    return o;
  }

  astype(x: Tensor, dtype: DType): Tensor {
    const [o, ob] = this.out(x.shape, dtype);
    ew.astype(this.dev, this.buf(x), x.dtype === "int32" ? "i32" : "f32", ob, x.size);
    return o;
  }

  gemm(a: Tensor, b: Tensor, p: GemmDims, outShape: readonly number[]): Tensor {
    const [o, ob] = this.out(outShape);
    matmul(this.dev, { a: this.buf(a), b: this.buf(b), c: ob, ...p, strideC: p.m * p.n }, this.matmulVariant);
    return o;
  }

  softmax(x: Tensor, log: boolean): Tensor {
    const [r, c] = rowsOf(x);
    const [o, ob] = this.out(x.shape);
    (log ? rows.logSoftmaxRows : rows.softmaxRows)(this.dev, this.buf(x), ob, r, c);
    return o;
  }

  softmaxBackward(y: Tensor, dy: Tensor, log: boolean): Tensor {
    const [r, c] = rowsOf(y);
    const [o, ob] = this.out(y.shape);
    (log ? rows.logSoftmaxRowsBackward : rows.softmaxRowsBackward)(this.dev, this.buf(y), this.buf(dy), ob, r, c);
    return o;
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): [Tensor, Tensor] {
    const [r, d] = rowsOf(x);
    const [o, ob] = this.out(x.shape);
    const [rstd, rb] = this.out([r]);
    rows.rmsNormForward(this.dev, this.buf(x), this.buf(weight), ob, rb, r, d, eps);
    return [o, rstd];
  }

  rmsNormBackward(dy: Tensor, x: Tensor, weight: Tensor, rstd: Tensor): [Tensor, Tensor] {
    const [r, d] = rowsOf(x);
    const [dx, dxb] = this.out(x.shape);
    const [dw, dwb] = this.out(weight.shape);
    rows.rmsNormBackward(this.dev, this.buf(dy), this.buf(x), this.buf(weight), this.buf(rstd), dxb, dwb, r, d);
    return [dx, dw];
  }

  rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    return this.rotate(x, cos, sin, false);
  }

  ropeBackward(dy: Tensor, cos: Tensor, sin: Tensor): Tensor {
    return this.rotate(dy, cos, sin, true);
  }

  private rotate(x: Tensor, cos: Tensor, sin: Tensor, inverse: boolean): Tensor {
    const T = x.shape[x.rank - 2]!, dh = x.shape[x.rank - 1]!;
    const [o, ob] = this.out(x.shape);
    ew.ropeForward(this.dev, this.buf(x), this.buf(cos), this.buf(sin), ob, x.size / (T * dh), T, dh, inverse);
    return o;
  }

  attention(q: Tensor, k: Tensor, v: Tensor, d: AttentionDims): [Tensor, Tensor] {
    const [out, ob] = this.out(q.shape);
    const [lse, lb] = this.out([d.B, d.H, d.T]);
    attentionForward(this.dev, { q: this.buf(q), k: this.buf(k), v: this.buf(v), out: ob, lse: lb, ...d });
    return [out, lse];
  }

  attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dy: Tensor, d: AttentionDims): [Tensor, Tensor, Tensor] {
    const [dq, dqb] = this.out(q.shape);
    const [dk, dkb] = this.out(k.shape);
    const [dv, dvb] = this.out(v.shape);
    attentionBackward(this.dev, {
      q: this.buf(q), k: this.buf(k), v: this.buf(v), out: this.buf(out), lse: this.buf(lse), dout: this.buf(dy), dq: dqb, dk: dkb, dv: dvb, ...d,
    });
    return [dq, dk, dv];
  }

  crossEntropy(logits: Tensor, targets: Tensor, ignore: number): [Tensor, Tensor] {
    const r = targets.size, V = logits.shape[logits.rank - 1]!;
    const [loss, lb] = this.out(targets.shape);
    const [lse, sb] = this.out([r]);
    rows.crossEntropyForward(this.dev, this.buf(logits), this.buf(targets), r, V, ignore, lb, sb);
    return [loss, lse];
  }

  crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, dy: Tensor, ignore: number): Tensor {
    const r = targets.size, V = logits.shape[logits.rank - 1]!;
    const [dl, db] = this.out(logits.shape);
    rows.crossEntropyBackward(this.dev, this.buf(logits), this.buf(targets), this.buf(lse), this.buf(dy), db, r, V, ignore);
    return dl;
  }

  klDiv(teacher: Tensor, student: Tensor, tau: number): KlForward {
    const [r, V] = rowsOf(student);
    const [kl, kb] = this.out(student.shape.slice(0, -1));
    rows.klDivForward(this.dev, this.buf(teacher), this.buf(student), r, V, tau, kb);
    return { kl };
  }

  klDivBackward(teacher: Tensor, student: Tensor, _fwd: KlForward, dy: Tensor, tau: number, wantTeacher: boolean): [Tensor | null, Tensor] {
    const [r, V] = rowsOf(student);
    const [dS, dsb] = this.out(student.shape);
    const dT = wantTeacher ? this.out(teacher.shape) : null;
    rows.klDivBackward(this.dev, this.buf(teacher), this.buf(student), r, V, tau, this.buf(dy), dsb, dT === null ? null : dT[1]);
    return [dT === null ? null : dT[0], dS];
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    const [o, ob] = this.out(gate.shape);
    ew.swigluForward(this.dev, this.buf(gate), this.buf(up), ob, gate.size);
    return o;
  }

  swigluBackward(gate: Tensor, up: Tensor, dy: Tensor): [Tensor, Tensor] {
    const [dg, dgb] = this.out(gate.shape);
    const [du, dub] = this.out(up.shape);
    ew.swigluBackward(this.dev, this.buf(gate), this.buf(up), this.buf(dy), dgb, dub, gate.size);
    return [dg, du];
  }

  mse(a: Tensor, b: Tensor): Tensor {
    const [o, ob] = this.out([]);
    rows.sqDiffSum(this.dev, this.buf(a), this.buf(b), ob, a.size, 1 / a.size);
    return o;
  }

  mseBackward(a: Tensor, b: Tensor, dy: Tensor, wantA: boolean, wantB: boolean): [Tensor | null, Tensor | null] {
    const da = wantA ? this.out(a.shape) : null;
    const db = wantB ? this.out(b.shape) : null;
    ew.mseBackward(this.dev, this.buf(a), this.buf(b), this.buf(dy), da === null ? null : da[1], db === null ? null : db[1], a.size);
    return [da === null ? null : da[0], db === null ? null : db[0]];
  }

  accumulate(acc: Tensor, g: Tensor, divisor: number): void {
    ew.accumulate(this.dev, this.mutable(acc), this.buf(g), acc.size, 1 / divisor);
  }

  sumSquares(x: Tensor): Tensor {
    const [o, ob] = this.out([]);
    rows.sqDiffSum(this.dev, this.buf(x), null, ob, x.size, 1);
    return o;
  }

  scale(x: Tensor, c: number): void {
    ew.scaleInPlace(this.dev, this.mutable(x), x.size, c);
  }

  adamw(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: AdamWHyper): void {
    ew.adamwUpdate(this.dev, this.mutable(p), this.buf(g), this.mutable(m), this.mutable(v), p.size, h);
  }
}

/** [rows, cols] of a tensor read as rows of its last axis. */
function rowsOf(t: Tensor): [number, number] {
  const cols = t.shape[t.rank - 1]!;
  return [t.size / Math.max(cols, 1), cols];
}

/**
 * A gemm or gather that reads a bfloat16 or float16 tensor (a frozen weight) the backend runs: the other operand
 * float32 or 16-bit (gemm) or the indices int32 (gather), nothing empty.
 */
function halfOperands(op: KernelName, args: readonly unknown[]): boolean {
  const HALF: DType[] = ["bfloat16", "float16"];
  const ok = (a: unknown, ...dtypes: DType[]): boolean => a instanceof Tensor && a.size > 0 && dtypes.includes(a.dtype);
  if (op === "gemm") return (ok(args[0], ...HALF) || ok(args[1], ...HALF)) && ok(args[0], "float32", ...HALF) && ok(args[1], "float32", ...HALF) && sizeOf(args[3] as readonly number[]) > 0;
  if (op === "gather") return ok(args[0], ...HALF) && ok(args[1], "int32") && sizeOf(args[2] as readonly number[]) > 0;
  return false;
}

export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  constructor(
    readonly kernels: WebGpuKernels,
    /** The optional features asked for (each used where the adapter has it: `device.features`). */
    readonly asked: { f16: boolean; subgroups: boolean } = { f16: true, subgroups: true },
  ) {}

  get device(): WebGpuDevice {
    return this.kernels.dev;
  }

  accepts(op: KernelName, args: readonly unknown[]): boolean {
    return float32Operands(op, args) || halfOperands(op, args);
  }

  info(): BackendInfo {
    const d = this.device;
    const a = d.adapter;
    const features = [d.features.f16 ? "shader-f16" : "", d.features.subgroups ? "subgroups" : ""].filter((f) => f !== "").join(", ") || "none";
    return {
      name: "webgpu",
      software: a.software,
      device: a.name,
      description: `webgpu: WGSL kernels on ${a.name} (${a.software ? "software adapter: kernels run on the CPU" : "hardware GPU"}); matmul ${this.kernels.matmulVariant}; optional features: ${features}`,
    };
  }

  stats(): DeviceStats {
    const s = this.device.stats;
    return {
      liveBuffers: s.liveBuffers, kernelsCompiled: s.pipelines, kernelCalls: s.dispatches, uploads: s.uploads, uploadBytes: s.uploadBytes,
      downloads: s.reads, downloadBytes: s.readBytes,
    };
  }

  finish(): Promise<void> {
    return this.device.finish();
  }

  upload(t: Tensor): void {
    if (t.dtype !== "float32" && t.dtype !== "int32" && !isHalf(t.dtype))
      throw new Error(`backendUpload: tensor ${t.id} [${t.shape.join(", ")}] is ${t.dtype}; the webgpu backend keeps only float32, int32, bfloat16 and float16 tensors on the device`);
    this.kernels.upload(t);
  }

  dispose(): void {
    void this.device.destroy();
  }
}

export interface WebGpuBackendOptions extends WebGpuDeviceOptions {
  /**
   * The matmul design: "auto" (by adapter kind: texture-packed register blocks on software adapters,
   * workgroup-memory tiles on GPUs), "timed" (both timed on a 512³ product at start-up, the faster kept;
   * cached per adapter), or one of them.
   */
  matmul?: MatmulVariant | "auto" | "timed";
}

/** Starts the WebGPU backend (or keeps `current`, a started one, unless another matmul design or other features are asked for). */
export async function loadWebGpu(opts: WebGpuBackendOptions, current: Backend | null): Promise<WebGpuBackend> {
  const want = opts.matmul ?? "auto";
  if (!["auto", "timed", "tiled", "texture"].includes(want)) throw new Error(`initBackend("webgpu"): unknown matmul design '${String(want)}' (known: auto, timed, tiled, texture)`);
  const features = { f16: opts.f16 ?? true, subgroups: opts.subgroups ?? true };
  if (current instanceof WebGpuBackend && (want === "auto" || want === "timed" || want === current.kernels.matmulVariant)
    && features.f16 === current.asked.f16 && features.subgroups === current.asked.subgroups) return current;
  const dev = await WebGpuDevice.create(opts);
  const variant = want === "auto" ? defaultMatmulVariant(dev) : want === "timed" ? (await timeMatmulDesigns(dev)).choice : want;
  return new WebGpuBackend(new WebGpuKernels(dev, variant), features);
}
