// The native WebGPU backend's device: adapter and device setup (navigator.gpu; Dawn's `webgpu` package in Node),
// requested limits, optional features (shader-f16, subgroups) detected at run time, a pool of storage buffers in
// size classes with a limit on the bytes it keeps, pipelines cached by WGSL source, and one command encoder (with
// one open compute pass) shared by every kernel until something needs the results: a read, `flush()`,
// `finish()` or a full batch. Values come back only through `read()` (a mapAsync): WebGPU has no synchronous
// read.
//
// Ordering: queue.writeBuffer runs at the queue, before any encoder not yet submitted. So a buffer freed while
// the open encoder may still read it is not handed out again until that encoder is submitted (`pendingFree`),
// and an upload only ever writes a buffer no unsubmitted command uses. Device errors (uncaptured validation or
// out-of-memory errors) are kept and thrown at the next read or `finish()`.

import type {} from "webgpu"; // the GPU* types (@webgpu/types, through the package); erased
import { isSoftwareRenderer } from "../gpujs/software.js";
import { ensureNavigatorGpu } from "./navigator.js";

/** What the kernels run on. */
export interface WebGpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** One line naming the adapter (its description, else vendor / architecture / device). */
  name: string;
  /** A software rasteriser (lavapipe, SwiftShader, WARP) or a fallback adapter. */
  software: boolean;
}

export interface WebGpuDeviceOptions {
  /** Use `shader-f16` when the adapter has it (default true). */
  f16?: boolean;
  /** Use `subgroups` when the adapter has it (default true). */
  subgroups?: boolean;
  /** Bytes of free buffers the pool keeps for reuse (default 256 MiB); freed buffers beyond it are destroyed. */
  poolLimitBytes?: number;
  /** Kernels recorded into one command encoder before it is submitted on its own (default 512). */
  maxBatch?: number;
}

export interface WebGpuStats {
  liveBuffers: number;
  liveBytes: number;
  pooledBytes: number;
  buffersCreated: number;
  pipelines: number;
  dispatches: number;
  submits: number;
  uploads: number;
  uploadBytes: number;
  reads: number;
  readBytes: number;
}

/**
 * Element types of device buffers: 4-byte float32 and int32, and 16-bit storage of frozen weights (bfloat16 and
 * IEEE binary16 bit patterns, two per 32-bit word, element 2i in the low half) that kernels widen to float32 as
 * they read them (half16.ts).
 */
export type DeviceDtype = "float32" | "int32" | "bfloat16" | "float16";

/** The 16-bit storage types. */
export type Half16 = "bfloat16" | "float16";

/** Bytes per element of a device dtype. */
export function bytesPerElement(dtype: DeviceDtype): 2 | 4 {
  return dtype === "bfloat16" || dtype === "float16" ? 2 : 4;
}

/** A storage buffer from the pool holding `length` elements; `free()` returns it. */
export class WebGpuBuffer {
  private freed = false;
  constructor(
    private readonly owner: WebGpuDevice,
    readonly buffer: GPUBuffer,
    readonly length: number,
    readonly dtype: DeviceDtype,
    /** The size class (bytes) it was allocated in. */
    readonly capacity: number,
  ) {}

  get disposed(): boolean {
    return this.freed;
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.owner.release(this.buffer, this.capacity, "storage");
  }
}

/** Bytes of the size class holding `bytes`: steps of 1, 1.25, 1.5, 1.75 x a power of two (at most 25% unused), at least 256. */
function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  for (const f of [1, 1.25, 1.5, 1.75]) if (p * f >= bytes) return p * f;
  return 2 * p;
}

type PoolKind = "storage" | "uniform";

/** The uniform struct of a kernel's scalar parameters: its WGSL declaration and its packing. */
export type ParamType = "u32" | "i32" | "f32";
export type ParamSpec = Readonly<Record<string, ParamType>>;

/** `struct Params { ... }` bound at @group(0) @binding(0) as `p`. */
export function paramsWgsl(spec: ParamSpec): string {
  const fields = Object.entries(spec).map(([k, t]) => `  ${k}: ${t},`).join("\n");
  return `struct Params {\n${fields}\n}\n@group(0) @binding(0) var<uniform> p: Params;\n`;
}

function packParams(spec: ParamSpec, values: Readonly<Record<string, number>>): ArrayBuffer {
  const keys = Object.keys(spec);
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((keys.length * 4) / 16) * 16));
  const view = new DataView(buf);
  keys.forEach((k, i) => {
    const v = values[k];
    if (v === undefined || !Number.isFinite(v)) throw new Error(`webgpu kernel parameter ${k} is ${String(v)}`);
    if (spec[k] === "f32") view.setFloat32(i * 4, v, true);
    else if (spec[k] === "i32") view.setInt32(i * 4, v, true);
    else {
      if (v < 0 || v > 0xffffffff || !Number.isInteger(v)) throw new RangeError(`webgpu kernel parameter ${k} = ${v} is not a u32`);
      view.setUint32(i * 4, v, true);
    }
  });
  return buf;
}

/** A sampled rgba32float texture with array layers (the matmul's operand copies), pooled by size. */
export interface PooledTexture {
  texture: GPUTexture;
  key: string;
}

/** One kernel launch: a pipeline source, its bound buffers (binding 1, 2, ... in order) and its parameters (binding 0). */
export interface Dispatch {
  source: string;
  params?: { spec: ParamSpec; values: Readonly<Record<string, number>> };
  /** Bound in order from binding 1 (binding 0 when there are no params). */
  bindings: ReadonlyArray<WebGpuBuffer | GPUTextureView>;
  groups: readonly [number, number?, number?];
}

const GB = "WebGPU backend";

export class WebGpuDevice {
  readonly stats: WebGpuStats = {
    liveBuffers: 0, liveBytes: 0, pooledBytes: 0, buffersCreated: 0, pipelines: 0, dispatches: 0, submits: 0,
    uploads: 0, uploadBytes: 0, reads: 0, readBytes: 0,
  };
  private readonly pool = new Map<string, GPUBuffer[]>();
  private readonly texturePool = new Map<string, GPUTexture[]>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private pendingFree: Array<{ buffer: GPUBuffer; capacity: number; kind: PoolKind }> = [];
  private pendingTextures: PooledTexture[] = [];
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private batched = 0;
  private error: Error | null = null;
  private destroyed = false;
  readonly poolLimitBytes: number;
  readonly maxBatch: number;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: WebGpuAdapterSummary,
    /**
     * Optional features in use. `subgroups`: the `subgroups` feature together with WGSL's `subgroup_id` builtin
     * (the row reductions need each subgroup's index; WGSL leaves local_invocation_index's mapping to subgroups open).
     */
    readonly features: { f16: boolean; subgroups: boolean },
    readonly limits: GPUSupportedLimits,
    opts: WebGpuDeviceOptions,
  ) {
    this.poolLimitBytes = opts.poolLimitBytes ?? 256 * 2 ** 20;
    this.maxBatch = opts.maxBatch ?? 512;
    device.addEventListener("uncapturederror", (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.error ??= new Error(`${GB}: ${e.constructor.name}: ${e.message}`);
    });
    void device.lost.then((info) => {
      if (!this.destroyed) this.error ??= new Error(`${GB}: device lost (${info.reason}): ${info.message}`);
    });
  }

  /** Requests an adapter (high-performance) and a device with the adapter's compute limits and the optional features asked for. */
  static async create(opts: WebGpuDeviceOptions = {}): Promise<WebGpuDevice> {
    await ensureNavigatorGpu();
    const gpu = (globalThis as unknown as { navigator: { gpu: GPU } }).navigator.gpu;
    const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
    if (adapter === null) throw new Error(`${GB}: no WebGPU adapter (navigator.gpu.requestAdapter() gave none)`);
    const info = adapter.info;
    const str = (v: unknown): string => (typeof v === "string" ? v : "");
    const [vendor, architecture, device, description] = [str(info.vendor), str(info.architecture), str(info.device), str(info.description)];
    const name = description !== "" ? description : [vendor, architecture, device].filter((s) => s !== "").join(" ") || "unnamed adapter";
    const fallback = (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
    const summary: WebGpuAdapterSummary = {
      vendor, architecture, device, description, name,
      software: fallback || [name, vendor, architecture, device].some(isSoftwareRenderer),
    };
    const f16 = (opts.f16 ?? true) && adapter.features.has("shader-f16");
    const wgsl = (gpu as { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures;
    const subgroups = (opts.subgroups ?? true) && adapter.features.has("subgroups") && wgsl?.has("subgroup_id") === true;
    const want = [
      "maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupSizeY", "maxComputeWorkgroupsPerDimension", "maxStorageBufferBindingSize", "maxBufferSize",
      "maxTextureDimension2D", "maxTextureArrayLayers", "maxStorageBuffersPerShaderStage",
    ] as const;
    const requiredLimits: Record<string, number> = {};
    for (const k of want) requiredLimits[k] = adapter.limits[k];
    const requiredFeatures: GPUFeatureName[] = [];
    if (f16) requiredFeatures.push("shader-f16");
    if (subgroups) requiredFeatures.push("subgroups" as GPUFeatureName);
    const dev = await adapter.requestDevice({ requiredLimits, requiredFeatures });
    return new WebGpuDevice(dev, summary, { f16, subgroups }, dev.limits, opts);
  }

  /** A buffer of n elements (contents undefined until a kernel or upload writes it). */
  alloc(n: number, dtype: DeviceDtype = "float32"): WebGpuBuffer {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`${GB}: alloc of ${n} elements`);
    const bytes = Math.max(4, Math.ceil((n * bytesPerElement(dtype)) / 4) * 4);
    if (bytes > this.limits.maxStorageBufferBindingSize)
      throw new RangeError(`${GB}: a buffer of ${n} elements (${bytes} bytes) is over the device's maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize})`);
    const cap = sizeClass(bytes);
    return new WebGpuBuffer(this, this.take(cap, "storage"), n, dtype, cap);
  }

  /**
   * A buffer holding a copy of `data` (queued: `data` may be changed once this returns). A Uint16Array holds
   * 16-bit bit patterns and needs `half` to say which ones.
   */
  upload(data: Float32Array | Int32Array | Uint16Array, half?: Half16): WebGpuBuffer {
    if ((data instanceof Uint16Array) !== (half !== undefined))
      throw new TypeError(`${GB}: upload of a ${data.constructor.name}${half === undefined ? "" : ` as ${half}`}: 16-bit bit patterns come as a Uint16Array with their dtype (bfloat16 or float16)`);
    const b = this.alloc(data.length, half ?? (data instanceof Int32Array ? "int32" : "float32"));
    // Dawn takes no SharedArrayBuffer (the cpu backend's worker-shared buffers), nor a write of a size that is not
    // a whole number of 4-byte words (an odd count of 16-bit values): those are copied first.
    let src: Float32Array | Int32Array | Uint16Array = data;
    if (data instanceof Uint16Array && data.length % 2 === 1) {
      src = new Uint16Array(data.length + 1);
      src.set(data);
    } else if (!(data.buffer instanceof ArrayBuffer)) src = data.slice();
    if (data.length > 0) this.device.queue.writeBuffer(b.buffer, 0, src.buffer as ArrayBuffer, src.byteOffset, src.byteLength);
    this.stats.uploads++;
    this.stats.uploadBytes += data.byteLength;
    return b;
  }

  /** A buffer of n zeros. */
  zeros(n: number, dtype: DeviceDtype = "float32"): WebGpuBuffer {
    const b = this.alloc(n, dtype);
    this.endPass();
    this.commandEncoder().clearBuffer(b.buffer, 0, b.capacity);
    return b;
  }

  /** Copies `src` into a new buffer (in the batch). */
  copy(src: WebGpuBuffer): WebGpuBuffer {
    const b = this.alloc(src.length, src.dtype);
    this.copyInto(src, 0, b, 0, src.length);
    return b;
  }

  /** Copies n elements of src from srcOffset into dst at dstOffset (in the batch); 16-bit ones in whole words. */
  copyInto(src: WebGpuBuffer, srcOffset: number, dst: WebGpuBuffer, dstOffset: number, n: number): void {
    if (n === 0) return;
    if (src.dtype !== dst.dtype) throw new TypeError(`${GB}: copy from a ${src.dtype} buffer into a ${dst.dtype} one`);
    const e = bytesPerElement(src.dtype);
    if (e === 2 && (srcOffset % 2 !== 0 || dstOffset % 2 !== 0 || (n % 2 !== 0 && srcOffset + n !== src.length)))
      throw new RangeError(`${GB}: a copy of ${src.dtype} values must start at even elements and cover whole 32-bit words (offsets ${srcOffset}, ${dstOffset}, count ${n})`);
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(src.buffer, srcOffset * e, dst.buffer, dstOffset * e, Math.ceil((n * e) / 4) * 4);
  }

  /** Reads n elements from `offset` (default: all), submitting the batch; 16-bit buffers as their bit patterns, from an even offset. */
  async read(b: WebGpuBuffer, n = b.length, offset = 0): Promise<Float32Array | Int32Array | Uint16Array> {
    if (b.disposed) throw new Error(`${GB}: read of a freed buffer`);
    if (offset + n > b.length) throw new RangeError(`${GB}: read of [${offset}, ${offset + n}) from a buffer of ${b.length}`);
    const e = bytesPerElement(b.dtype);
    if (e === 2 && offset % 2 !== 0) throw new RangeError(`${GB}: a read of ${b.dtype} values must start at an even element, not ${offset}`);
    const out = b.dtype === "int32" ? new Int32Array(n) : e === 2 ? new Uint16Array(n) : new Float32Array(n);
    if (n === 0) return out;
    const bytes = Math.ceil((n * e) / 4) * 4;
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(b.buffer, offset * e, staging, 0, bytes);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
      const r = staging.getMappedRange();
      out.set(b.dtype === "int32" ? new Int32Array(r) : e === 2 ? new Uint16Array(r, 0, n) : new Float32Array(r));
      staging.unmap();
    } finally {
      staging.destroy();
    }
    this.stats.reads++;
    this.stats.readBytes += n * e;
    this.throwError();
    return out;
  }

  /** The pipeline of a WGSL source with entry point `main`, compiled once per source. */
  pipeline(source: string): GPUComputePipeline {
    let p = this.pipelines.get(source);
    if (p === undefined) {
      const module = this.device.createShaderModule({ code: source });
      p = this.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
      this.pipelines.set(source, p);
      this.stats.pipelines++;
    }
    return p;
  }

  /** Records one kernel launch into the open batch. */
  dispatch(d: Dispatch): void {
    this.alive();
    const [x, y = 1, z = 1] = d.groups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) throw new RangeError(`${GB}: a dispatch of ${x} x ${y} x ${z} workgroups is over the device's ${max} per dimension`);
    const pipeline = this.pipeline(d.source);
    const entries: GPUBindGroupEntry[] = [];
    let uniform: { buffer: GPUBuffer; capacity: number } | null = null;
    if (d.params !== undefined) {
      const data = packParams(d.params.spec, d.params.values);
      const cap = sizeClass(data.byteLength);
      uniform = { buffer: this.take(cap, "uniform"), capacity: cap };
      this.device.queue.writeBuffer(uniform.buffer, 0, data);
      entries.push({ binding: 0, resource: { buffer: uniform.buffer } });
    }
    const first = d.params !== undefined ? 1 : 0;
    d.bindings.forEach((b, i) => {
      if (b instanceof WebGpuBuffer) {
        if (b.disposed) throw new Error(`${GB}: a kernel was given a freed buffer (binding ${first + i})`);
        // Whole 16-byte units (a kernel may read the buffer as vec4), within the size class.
        entries.push({ binding: first + i, resource: { buffer: b.buffer, size: Math.min(b.capacity, Math.max(16, Math.ceil((b.length * bytesPerElement(b.dtype)) / 16) * 16)) } });
      } else entries.push({ binding: first + i, resource: b });
    });
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (this.pass === null) this.pass = this.commandEncoder().beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(x, y, z);
    if (uniform !== null) this.pendingFree.push({ ...uniform, kind: "uniform" });
    this.stats.dispatches++;
    if (++this.batched >= this.maxBatch) this.flush();
  }

  /** A pooled 2-D array texture (rgba32float, storage-writable and sampled) of width x height x layers texels. */
  texture(width: number, height: number, layers: number): PooledTexture {
    const key = `${width}x${height}x${layers}`;
    const texture = this.texturePool.get(key)?.pop() ?? this.device.createTexture({
      size: [width, height, layers], format: "rgba32float", dimension: "2d",
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING,
    });
    return { texture, key };
  }

  /** Returns a texture to the pool once the batch that uses it is submitted. */
  releaseTexture(t: PooledTexture): void {
    this.pendingTextures.push(t);
  }

  /** Submits the open batch (no wait). */
  flush(): void {
    this.endPass();
    if (this.encoder !== null) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
      this.stats.submits++;
    }
    this.batched = 0;
    for (const f of this.pendingFree) this.recycle(f.buffer, f.capacity, f.kind);
    this.pendingFree = [];
    for (const t of this.pendingTextures) {
      const list = this.texturePool.get(t.key) ?? [];
      list.push(t.texture);
      this.texturePool.set(t.key, list);
    }
    this.pendingTextures = [];
  }

  /** Submits the batch and waits until the device has run everything submitted; throws the first device error. */
  async finish(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.throwError();
  }

  /** Waits for outstanding work, then destroys the pooled buffers and the device (idempotent). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.destroyed = true;
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    for (const list of this.texturePool.values()) for (const t of list) t.destroy();
    this.pool.clear();
    this.texturePool.clear();
    this.pipelines.clear();
    this.stats.pooledBytes = 0;
    this.device.destroy();
  }

  /** @internal WebGpuBuffer.free(): back to the pool once no unsubmitted command can read it. */
  release(buffer: GPUBuffer, capacity: number, kind: PoolKind): void {
    this.stats.liveBuffers--;
    this.stats.liveBytes -= capacity;
    if (this.destroyed) return buffer.destroy();
    if (this.encoder === null) this.recycle(buffer, capacity, kind);
    else this.pendingFree.push({ buffer, capacity, kind });
  }

  private take(capacity: number, kind: PoolKind): GPUBuffer {
    this.alive();
    const key = `${kind}${capacity}`;
    let b = this.pool.get(key)?.pop();
    if (b !== undefined) this.stats.pooledBytes -= capacity;
    else {
      const usage = kind === "uniform" ? GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
        : GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
      b = this.device.createBuffer({ size: capacity, usage });
      this.stats.buffersCreated++;
    }
    if (kind === "storage") {
      this.stats.liveBuffers++;
      this.stats.liveBytes += capacity;
    }
    return b;
  }

  private recycle(buffer: GPUBuffer, capacity: number, kind: PoolKind): void {
    if (this.stats.pooledBytes + capacity > this.poolLimitBytes) return buffer.destroy();
    const key = `${kind}${capacity}`;
    const list = this.pool.get(key) ?? [];
    list.push(buffer);
    this.pool.set(key, list);
    this.stats.pooledBytes += capacity;
  }

  private commandEncoder(): GPUCommandEncoder {
    this.alive();
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private endPass(): void {
    if (this.pass !== null) {
      this.pass.end();
      this.pass = null;
    }
  }

  private alive(): void {
    if (this.destroyed) throw new Error(`${GB}: the device was destroyed`);
  }

  private throwError(): void {
    const e = this.error;
    if (e !== null) {
      this.error = null;
      throw e;
    }
  }
}
