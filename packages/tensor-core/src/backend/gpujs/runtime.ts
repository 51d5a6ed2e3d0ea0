// GPU.js runtime for the gpu backend: loads gpu.js lazily (dynamic import, only when the gpu backend is
// chosen), selects a mode explicitly and verifies it by running a probe kernel and checking the kernel class
// that actually ran, caches compiled kernels per (op, shape signature), and wraps pipeline outputs as
// DeviceBuffers whose lifetime is counted (`liveBuffers`) and ended deterministically (`texture.delete()`).
//
// Modes, in auto order: gl (GPU.js `headlessgl` in Node, which needs the native `gl` package and an X
// display; `webgl2` in a browser), webasm (GPU.js's WebAssembly backend: software). GPU.js's `cpu` mode is
// available only on explicit request (it accumulates in float64, unlike every other mode). `webgpu` (GPU.js's
// WGSL compute kernels over storage buffers) runs on explicit request: its kernels complete asynchronously
// and WebGPU reads values back only asynchronously, so a tensor's values are read with `await
// t.dataAsync()`, and a caller that reads synchronously (`t.data()`, `t.item()`, an op's cpu fallback)
// gets an error saying so. `auto` therefore picks only the synchronous modes, as GPU.js itself does, and
// lists the webgpu adapter it saw among the modes not used, unless the caller says it reads asynchronously
// (`asyncReads`): then auto takes WebGPU first when its adapter is a GPU (not a software one). In Node, `navigator.gpu` comes from the
// `webgpu` package (Dawn; an optional peer dependency, loaded only here). Precision is always 'single'.
//
// webgpu kernels are chained on promises: a kernel call waits for its input buffers (Promise.all), then
// calls the GPU.js kernel, whose queue.submit orders it after its inputs' kernels on the device queue. A
// buffer released while kernels that read it are still waiting is deleted once they have been submitted.
// A failed kernel rejects its output, and every kernel that reads it; the first failure is kept and thrown
// at the next read or `finish()`.
//
// After the probe, the runtime identifies the device (`GpuDeviceInfo`): the WebGL context's renderer strings
// (unmasked through WEBGL_debug_renderer_info where the context offers it; headless-gl says only "ANGLE")
// and, in Node on Linux, the GL driver library mapped into the process (/proc/self/maps, read through
// `process.getBuiltinModule("node:fs")` at run time, so this file imports no Node module and loads in a
// browser). `classifyGlDevice` tells a software rasteriser (Mesa swrast/llvmpipe/softpipe, SwiftShader) from
// a hardware driver; webasm and cpu are always software.

import type { DeviceStats } from "../kernels.js";
import type { TypedArray } from "../../dtype.js";
import type { DeviceBuffer } from "../../storage.js";
import { isSoftwareRenderer } from "./software.js";
import { ensureNavigatorGpu, isNode } from "../webgpu/navigator.js";

export type GpuMode = "webgpu" | "gl" | "webasm" | "cpu";

/** The slice of the GPU.js API this backend uses (gpu.js ships no types for its 2.24 additions). */
interface GpuJsKernel {
  (...args: unknown[]): unknown;
  kernel?: { constructor: { name: string }; fallbackReason?: string | null };
  destroy?(removeCanvasReferences?: boolean): void;
}
interface GpuJsInstance {
  createKernel(source: string, settings: Record<string, unknown>): GpuJsKernel;
  destroy(): void;
  /** gl modes: the WebGL context every kernel of this instance draws into (set by the first kernel). */
  context?: unknown;
}
interface GpuJsClass {
  new (settings: { mode: string }): GpuJsInstance;
  isWebGPUAvailable?: () => Promise<boolean>;
}
/** A GPU.js webgpu pipeline result (WebGPUBufferResult): a storage buffer with an async read. */
interface WebGpuResult {
  toArray(): Promise<unknown>;
  delete(): void;
}
/** The WebGPU adapter's identification (GPUAdapterInfo). */
export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for a fallback (software) adapter, where the implementation reports it. */
  isFallbackAdapter: boolean | null;
}
interface WebGpuDeviceLike {
  queue: { onSubmittedWorkDone(): Promise<void> };
  onuncapturederror: ((e: { error: { message: string } }) => void) | null;
}
interface TextureLike {
  toArray(): Float32Array;
  delete(): void;
}

const kernelClassOf: Record<GpuMode, readonly string[]> = {
  webgpu: ["WebGPUKernel"],
  gl: ["HeadlessGLKernel", "WebGL2Kernel", "WebGLKernel"],
  webasm: ["WebAssemblyKernel"],
  cpu: ["CPUKernel"],
};

/** The slice of a WebGL context (headless-gl's or a browser's) used to identify the device and wait on it. */
interface GlContext {
  finish(): void;
  getParameter(p: number): unknown;
  getExtension(name: string): unknown;
  readonly RENDERER: number;
  readonly VENDOR: number;
  readonly VERSION: number;
}

/** A WebGL context's identification strings. */
export interface GlStrings {
  renderer: string;
  vendor: string;
  version: string;
  /** From WEBGL_debug_renderer_info; null where the context does not offer it (headless-gl, Firefox). */
  unmaskedRenderer: string | null;
  unmaskedVendor: string | null;
}

/** What the gpu backend's kernels run on. */
export interface GpuDeviceInfo {
  /** The GPU.js mode that runs. */
  readonly mode: GpuMode;
  /** One line naming the renderer and the GL driver, ending in what that is (e.g. "software rendering on the CPU"). */
  readonly device: string;
  /** True when the kernels run on the CPU: webasm, cpu, or gl on a software rasteriser (llvmpipe, SwiftShader). */
  readonly software: boolean;
  /** gl only: the WebGL context's strings; null in the other modes. */
  readonly gl: GlStrings | null;
  /** gl only: the GL driver libraries mapped into the process (file names); null where they cannot be read. */
  readonly driver: readonly string[] | null;
  /** webgpu only: the adapter's identification; null in the other modes. */
  readonly webgpu?: WebGpuAdapterInfo | null;
}

export class GpuRuntime {
  readonly stats: DeviceStats = { liveBuffers: 0, kernelsCompiled: 0, kernelCalls: 0, uploads: 0, uploadBytes: 0, downloads: 0, downloadBytes: 0 };
  private readonly kernels = new Map<string, GpuJsKernel>();
  /** Whether kernel outputs are textures (gl) or host typed arrays (webasm, cpu); webgpu: storage buffers. */
  readonly textures: boolean;
  /** webgpu: every kernel call so far, settled (for `finish()`). */
  private pending: Promise<void> = Promise.resolve();
  /** webgpu: every buffer deletion so far, done (for `finish()`). */
  private deletions: Promise<void> = Promise.resolve();
  /** webgpu: the first kernel failure not yet thrown (at the next read or `finish()`). */
  private failure: Error | null = null;

  /** The renderer and driver the kernels run on. */
  readonly device: GpuDeviceInfo;

  constructor(
    private readonly gpu: GpuJsInstance,
    readonly mode: GpuMode,
    readonly kernelClass: string,
    /** Every mode tried before this one and why it was not used. */
    readonly skipped: readonly string[],
    /** gl mode: the context the kernels draw into. */
    private readonly gl: GlContext | null = null,
    /** webgpu mode (its kernels complete asynchronously): the device and the adapter's identification. */
    private readonly wgpu: { device: WebGpuDeviceLike; info: WebGpuAdapterInfo } | null = null,
  ) {
    this.textures = mode === "gl";
    this.device = identifyDevice(mode, gl, wgpu?.info ?? null);
    if (wgpu !== null) {
      const prev = wgpu.device.onuncapturederror;
      wgpu.device.onuncapturederror = (e) => {
        this.fail(new Error(`gpu backend: WebGPU error: ${e.error.message}`));
        prev?.(e);
      };
    }
  }

  /** True when the kernels run on the CPU: webasm, cpu, or gl on a software rasteriser. */
  get software(): boolean {
    return this.device.software;
  }

  /**
   * Waits until every kernel queued so far has finished: gl.finish() in gl mode; in webgpu mode, until every
   * kernel call has been submitted and the device queue is idle (then throws the first kernel failure, if
   * any); the other modes are synchronous.
   */
  async finish(): Promise<void> {
    this.gl?.finish();
    if (this.wgpu !== null) {
      // until nothing new was queued while waiting (a deletion waits for the kernels reading its buffer)
      for (;;) {
        const p = this.pending, d = this.deletions;
        await p;
        await this.wgpu.device.queue.onSubmittedWorkDone();
        await d;
        if (p === this.pending && d === this.deletions) break;
      }
      this.throwFailure();
    }
  }

  /** webgpu: a buffer deletion in flight, awaited by `finish()`. */
  deleteLater(done: Promise<void>): void {
    this.deletions = Promise.all([this.deletions, done]).then(noop);
  }

  /** Records a webgpu kernel failure (the first is kept until thrown). */
  fail(e: Error): void {
    this.failure ??= e;
  }

  /** Throws (and clears) the first webgpu kernel failure not yet thrown. */
  throwFailure(): void {
    const f = this.failure;
    if (f !== null) {
      this.failure = null;
      throw f;
    }
  }

  /**
   * Runs the kernel `key` (compiled from `source()` on first use, then cached) over a flat output of n
   * values and returns the result as a device buffer. Arguments are device handles or numbers.
   */
  run(key: string, n: number, source: () => string, args: readonly unknown[]): GpuBuffer {
    return this.runShaped(key, [n], source, args);
  }

  /**
   * Like `run`, over a GPU.js output of 1 to 3 dimensions (x first). A kernel may return `Array(4)`; its
   * result then holds 4 values per thread (an `ArrayTexture(4)` in gl; in webasm and cpu the flat
   * Float32Array of the values, thread-major, which is how every other kernel here reads it).
   */
  runShaped(key: string, output: readonly number[], source: () => string, args: readonly unknown[]): GpuBuffer {
    let k = this.kernels.get(key);
    const fresh = k === undefined;
    if (k === undefined) {
      k = this.gpu.createKernel(source(), { output: [...output], pipeline: true, immutable: true, precision: "single", tactic: "precision" });
      this.kernels.set(key, k);
      this.stats.kernelsCompiled++;
    }
    if (this.wgpu !== null) return this.runChained(key, k, fresh, source, args);
    let out: unknown;
    try {
      out = k(...args);
    } catch (e) {
      this.kernels.delete(key);
      throw new Error(`gpu backend: kernel ${key} failed in GPU.js ${this.mode}: ${e instanceof Error ? e.message : String(e)}\n${source()}`);
    }
    this.stats.kernelCalls++;
    if (fresh) this.checkClass(key, k);
    return this.wrap(out);
  }

  /**
   * webgpu: calls kernel k once its input buffers exist (GPU.js submits it to the device queue in the call),
   * and returns its output buffer at once, as a promise of the GPU.js result.
   */
  private runChained(key: string, k: GpuJsKernel, fresh: boolean, source: () => string, args: readonly unknown[]): GpuBuffer {
    const inputs = args.filter((a): a is WebGpuRef => a instanceof WebGpuRef);
    const ready = Promise.all(args.map((a) => (a instanceof WebGpuRef ? a.ready : a))).then(async (vals) => {
      let out: unknown;
      try {
        out = await k(...vals);
      } catch (e) {
        this.kernels.delete(key);
        throw new Error(`gpu backend: kernel ${key} failed in GPU.js webgpu: ${e instanceof Error ? e.message : String(e)}\n${source()}`);
      }
      if (fresh) this.checkClass(key, k);
      return out as WebGpuResult;
    });
    this.stats.kernelCalls++;
    const settled = ready.then(noop, (e: unknown) => this.fail(e instanceof Error ? e : new Error(String(e))));
    for (const r of inputs) r.usedBy(settled);
    this.pending = Promise.all([this.pending, settled]).then(noop);
    return this.wrap(new WebGpuRef(ready));
  }

  /** Copies host values to the device (webgpu: queued; the values are copied from `host` now). */
  upload(host: ArrayLike<number>, n: number): GpuBuffer {
    this.stats.uploads++;
    this.stats.uploadBytes += 4 * n;
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = host[i]!;
    if (!this.textures && this.wgpu === null) return this.wrap(f); // webasm, cpu: kernels take host arrays
    return this.run(`upload:${n}`, n, () => "function (a) { return a[this.thread.x]; }", [f]);
  }

  private wrap(handle: unknown): GpuBuffer {
    this.stats.liveBuffers++;
    return new GpuBuffer(this, Array.isArray(handle) ? flatView(handle) : handle);
  }

  private checkClass(key: string, k: GpuJsKernel): void {
    const ran = k.kernel?.constructor.name ?? "unknown";
    if (!kernelClassOf[this.mode].includes(ran))
      throw new Error(`gpu backend: kernel ${key} ran as ${ran}, not the ${this.mode} mode's ${kernelClassOf[this.mode].join("/")}` +
        (k.kernel?.fallbackReason ? ` (GPU.js: ${k.kernel.fallbackReason})` : ""));
  }

  /** Number of compiled kernels in the cache. */
  get cachedKernels(): number {
    return this.kernels.size;
  }

  destroy(): void {
    for (const k of this.kernels.values()) k.destroy?.();
    this.kernels.clear();
    this.gpu.destroy();
  }
}

/**
 * The flat Float32Array behind a webasm/cpu result of several dimensions or of `Array(n)` values. GPU.js's
 * webasm backend returns nested arrays of subarrays of one row-major buffer, so this is then a view; results
 * whose leaves are separate arrays (GPU.js's cpu mode) are copied in order.
 */
function flatView(nested: unknown[]): Float32Array {
  const leaves: Float32Array[] = [];
  const walk = (a: unknown): void => {
    if (Array.isArray(a)) for (const x of a) walk(x);
    else if (a instanceof Float32Array) leaves.push(a);
    else throw new Error(`internal: a GPU.js result holds a ${typeof a}, not a Float32Array`);
  };
  walk(nested);
  const first = leaves[0]!, last = leaves[leaves.length - 1]!;
  const count = leaves.reduce((s, l) => s + l.length, 0);
  if (last.buffer === first.buffer && last.byteOffset + last.byteLength === first.byteOffset + 4 * count)
    return new Float32Array(first.buffer, first.byteOffset, count);
  const out = new Float32Array(count);
  let o = 0;
  for (const l of leaves) { out.set(l, o); o += l.length; }
  return out;
}

const noop = (): void => {};

/**
 * webgpu: a kernel output that may not exist yet. `ready` resolves to the GPU.js result once the kernel has
 * been submitted (rejects when it failed); `uses` settles once every kernel reading it has been submitted,
 * so that deleting the buffer never races a kernel still waiting for its other inputs.
 */
export class WebGpuRef {
  private uses: Promise<void> = Promise.resolve();
  constructor(readonly ready: Promise<WebGpuResult>) {}

  usedBy(call: Promise<void>): void {
    this.uses = Promise.all([this.uses, call]).then(noop);
  }

  /** Deletes the buffer once it exists and every kernel reading it has been submitted; resolves after. */
  release(): Promise<void> {
    return Promise.all([this.ready, this.uses]).then(([r]) => r.delete(), noop);
  }
}

/** A pipeline output: a GPU.js texture (gl), a Float32Array (webasm, cpu) or a WebGpuRef (webgpu). */
export class GpuBuffer implements DeviceBuffer {
  private freed = false;
  constructor(private readonly rt: GpuRuntime, readonly handle: unknown) {}

  download(out: TypedArray, n: number): void {
    if (this.freed) throw new Error("internal: download of a freed device buffer");
    if (this.handle instanceof WebGpuRef)
      throw new Error("gpu backend (webgpu): this tensor's values are on the GPU, and WebGPU reads them back only asynchronously: " +
        "use `await tensor.dataAsync()` (or itemAsync()). Reading them synchronously (data(), item(), or an op that runs on the " +
        "cpu backend, listed by backendReport()) needs a synchronous mode: gl or webasm");
    const h = this.handle;
    const vals = h instanceof Float32Array ? h : (h as TextureLike).toArray();
    this.count(n);
    copyOut(vals, out, n);
  }

  async downloadAsync(out: TypedArray, n: number): Promise<void> {
    if (this.freed) throw new Error("internal: download of a freed device buffer");
    const h = this.handle;
    if (!(h instanceof WebGpuRef)) return this.download(out, n);
    let vals: Float32Array;
    try {
      const r = await h.ready;
      const raw = await r.toArray();
      vals = raw instanceof Float32Array ? raw : flatView(raw as unknown[]);
    } catch (e) {
      this.rt.throwFailure();
      throw e;
    }
    this.rt.throwFailure();
    this.count(n);
    copyOut(vals, out, n);
  }

  private count(n: number): void {
    this.rt.stats.downloads++;
    this.rt.stats.downloadBytes += 4 * n;
  }

  /** Releases the device memory; webgpu: once the kernels reading it have been submitted (liveBuffers counts it until then). */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    const h = this.handle;
    if (h instanceof WebGpuRef) {
      this.rt.deleteLater(h.release().then(() => void this.rt.stats.liveBuffers--));
      return;
    }
    this.rt.stats.liveBuffers--;
    if (!(h instanceof Float32Array)) (h as TextureLike).delete();
  }
}

function copyOut(vals: Float32Array, out: TypedArray, n: number): void {
  if (out instanceof Int32Array) for (let i = 0; i < n; i++) out[i] = Math.round(vals[i]!);
  else for (let i = 0; i < n; i++) out[i] = vals[i]!;
}

/** A probe that exercises loops, Math functions and indexing, checked against float64 maths. */
const probeSource = `function (a) {
  let s = 0.0;
  for (let j = 0; j < 4; j++) { s = s + a[Math.floor((this.thread.x + 0.5) / 2.0)] * j; }
  return Math.exp(s * 0.25) + Math.floor(2.5);
}`;

/** Checks the probe kernel's six values against float64 maths. */
function checkProbe(input: Float32Array, vals: ArrayLike<number>): void {
  for (let i = 0; i < 6; i++) {
    const want = Math.exp(input[Math.floor(i / 2)]! * 6 * 0.25) + 2;
    if (!(Math.abs(vals[i]! - want) <= 1e-4 * Math.abs(want))) throw new Error(`the probe kernel computed ${vals[i]} instead of ${want}`);
  }
}

function probeClass(mode: GpuMode, k: GpuJsKernel): string {
  const ran = k.kernel?.constructor.name ?? "unknown";
  if (!kernelClassOf[mode].includes(ran))
    throw new Error(`the probe kernel ran as ${ran}${k.kernel?.fallbackReason ? ` (${k.kernel.fallbackReason})` : ""}`);
  return ran;
}

function runProbe(GPU: GpuJsClass, gpuMode: string, mode: Exclude<GpuMode, "webgpu">, skipped: string[]): GpuRuntime {
  const gpu = new GPU({ mode: gpuMode });
  try {
    const k = gpu.createKernel(probeSource, { output: [6], pipeline: true, immutable: true, precision: "single" });
    const input = new Float32Array([0.5, -1, 0.25]);
    const raw = k(input);
    const vals = raw instanceof Float32Array ? raw : (raw as TextureLike).toArray();
    const ran = probeClass(mode, k);
    checkProbe(input, vals);
    if (!(raw instanceof Float32Array)) (raw as TextureLike).delete();
    k.destroy?.();
    return new GpuRuntime(gpu, mode, ran, skipped, mode === "gl" ? glContextOf(gpu) : null);
  } catch (e) {
    gpu.destroy();
    throw e;
  }
}

/** webgpu: the probe, awaited; then the device and adapter GPU.js acquired for it. */
async function runProbeWebGpu(GPU: GpuJsClass, skipped: string[]): Promise<GpuRuntime> {
  const gpu = new GPU({ mode: "webgpu" });
  try {
    const k = gpu.createKernel(probeSource, { output: [6], pipeline: true, immutable: true, precision: "single" });
    const input = new Float32Array([0.5, -1, 0.25]);
    const raw = (await k(input)) as WebGpuResult;
    const ran = probeClass("webgpu", k);
    const vals = await raw.toArray();
    checkProbe(input, vals as Float32Array);
    raw.delete();
    const ctx = (k.kernel as { context?: { device?: WebGpuDeviceLike; adapter?: { info?: Partial<WebGpuAdapterInfo>; isFallbackAdapter?: boolean } } }).context;
    if (ctx?.device === undefined || ctx.adapter === undefined) throw new Error("GPU.js gave no WebGPU device after the probe kernel");
    const a = ctx.adapter.info ?? {};
    const info: WebGpuAdapterInfo = {
      vendor: a.vendor ?? "", architecture: a.architecture ?? "", device: a.device ?? "", description: a.description ?? "",
      isFallbackAdapter: a.isFallbackAdapter ?? ctx.adapter.isFallbackAdapter ?? null,
    };
    k.destroy?.();
    return new GpuRuntime(gpu, "webgpu", ran, skipped, null, { device: ctx.device, info });
  } catch (e) {
    gpu.destroy();
    throw e;
  }
}

/**
 * Why auto does not pick webgpu: its values are read back asynchronously, and auto picks a mode where data()
 * and item() work. Says whether an adapter answers where navigator.gpu already exists (browsers); in Node
 * it does not load the `webgpu` package for this.
 */
async function whyNotAutoWebGpu(GPU: GpuJsClass): Promise<string> {
  const rule = 'used only on request (mode "webgpu"): its values are read back asynchronously (await tensor.dataAsync()), and auto picks a mode where data() and item() work unless the caller passes asyncReads: true';
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator?.gpu === undefined) return `${rule}${isNode ? " (in Node, navigator.gpu comes from the `webgpu` package)" : "; no navigator.gpu here"}`;
  return (await adapterAnswers(GPU)) ? `a WebGPU adapter answers, but webgpu is ${rule}` : NO_ADAPTER;
}

/** Whether a WebGPU adapter answers here (after making navigator.gpu available); the reason when not. */
async function webGpuAdapter(GPU: GpuJsClass): Promise<string | null> {
  try {
    await ensureNavigatorGpu();
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return (await adapterAnswers(GPU)) ? null : NO_ADAPTER;
}

const NO_ADAPTER = "no WebGPU adapter (navigator.gpu.requestAdapter() gave none)";

/** Whether navigator.gpu (which must exist) hands out an adapter. */
async function adapterAnswers(GPU: GpuJsClass): Promise<boolean> {
  return GPU.isWebGPUAvailable !== undefined && (await GPU.isWebGPUAvailable().catch(() => false));
}

/** The WebGL context of a gl-mode GPU.js instance that has run a kernel. */
function glContextOf(gpu: GpuJsInstance): GlContext {
  const ctx = gpu.context as Partial<GlContext> | null | undefined;
  if (ctx === null || ctx === undefined || typeof ctx.finish !== "function" || typeof ctx.getParameter !== "function" || typeof ctx.getExtension !== "function")
    throw new Error(`GPU.js gave no WebGL context after the probe kernel (context: ${String(ctx)})`);
  return ctx as GlContext;
}

function glStrings(gl: GlContext): GlStrings {
  const str = (v: unknown): string => (v === null || v === undefined ? "" : String(v));
  const dbg = gl.getExtension("WEBGL_debug_renderer_info") as { UNMASKED_RENDERER_WEBGL: number; UNMASKED_VENDOR_WEBGL: number } | null;
  return {
    renderer: str(gl.getParameter(gl.RENDERER)),
    vendor: str(gl.getParameter(gl.VENDOR)),
    version: str(gl.getParameter(gl.VERSION)),
    unmaskedRenderer: dbg ? str(gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL)) : null,
    unmaskedVendor: dbg ? str(gl.getParameter(dbg.UNMASKED_VENDOR_WEBGL)) : null,
  };
}

interface NodeProcessLike {
  platform?: string;
  getBuiltinModule?: (id: string) => unknown;
}

/**
 * The shared objects mapped into this process (Linux /proc/self/maps, read through node:fs found at run time);
 * null outside Node, off Linux, or where the file cannot be read.
 */
function mappedLibraries(): string[] | null {
  const proc = (globalThis as { process?: NodeProcessLike }).process;
  if (proc?.platform !== "linux") return null;
  const fs = proc.getBuiltinModule?.("node:fs") as { readFileSync?: (path: string, enc: "utf8") => string } | undefined;
  if (typeof fs?.readFileSync !== "function") return null;
  let maps: string;
  try {
    maps = fs.readFileSync("/proc/self/maps", "utf8");
  } catch {
    return null;
  }
  const paths = maps.split("\n").map((l) => l.trim().split(/\s+/)[5] ?? "");
  return [...new Set(paths.filter((p) => /\.so(\.|$)/.test(p)))];
}

const SOFTWARE_DRI = /^(kms_)?swrast_dri\.so/;

/**
 * Classifies a WebGL device from its strings and the libraries mapped into the process (full paths or file
 * names; null where they cannot be read): software when a renderer string names a software rasteriser
 * (llvmpipe, softpipe, lavapipe, SwiftShader, swrast, Microsoft Basic Render Driver) or when Mesa's
 * swrast_dri.so is the only GL driver loaded; hardware when a Mesa hardware DRI driver (radeonsi_dri.so,
 * iris_dri.so, ...) or NVIDIA's GL libraries are loaded, or when an unmasked renderer names another device;
 * otherwise unidentified (software false, and the device line says it is not verified to be a GPU).
 */
export function classifyGlDevice(gl: GlStrings, libs: readonly string[] | null): { device: string; software: boolean; driver: string[] | null } {
  const names = (libs ?? []).map((p) => p.slice(p.lastIndexOf("/") + 1));
  const dri = names.filter((n) => /_dri\.so/.test(n));
  const swDri = dri.filter((n) => SOFTWARE_DRI.test(n));
  const hwDri = dri.filter((n) => !SOFTWARE_DRI.test(n));
  const nvidia = names.filter((n) => /^lib(GLX|EGL|GLESv2)_nvidia\.so|^libnvidia-(glcore|eglcore|glsi)\.so/.test(n));
  const llvm = names.some((n) => /^libLLVM/.test(n));
  const driver = libs === null ? null : [...hwDri, ...nvidia, ...swDri];
  const r = gl.unmaskedRenderer ?? gl.renderer;
  const v = gl.unmaskedVendor ?? gl.vendor;
  const what = `WebGL "${r}" (${[v, gl.version].filter((x) => x !== "").join(", ")})`;
  const sw = (how: string): { device: string; software: boolean; driver: string[] | null } =>
    ({ device: `${what}${how}: software rendering on the CPU`, software: true, driver });
  const swrast = swDri.length > 0 ? ` via Mesa ${swDri.join(", ")}${llvm ? " with LLVM (llvmpipe)" : ""}` : "";
  if ([gl.renderer, gl.vendor, gl.unmaskedRenderer ?? "", gl.unmaskedVendor ?? ""].some(isSoftwareRenderer)) return sw(swrast);
  if (hwDri.length > 0 || nvidia.length > 0)
    return { device: `${what} via ${[...hwDri, ...nvidia].join(", ")}: hardware GPU driver`, software: false, driver };
  if (swDri.length > 0) return sw(swrast);
  if (gl.unmaskedRenderer !== null && gl.unmaskedRenderer !== "")
    return { device: `${what}: a hardware renderer by its name (GL driver library not identified)`, software: false, driver };
  const why = libs === null ? "no /proc/self/maps to read" : "no known GL driver library is loaded";
  return { device: `${what} (GL driver not identified: ${why}; not verified to be a GPU)`, software: false, driver };
}

/**
 * Classifies a WebGPU adapter: software when it says it is a fallback adapter or when its strings name a
 * software implementation (lavapipe/llvmpipe, SwiftShader, WARP); otherwise a GPU by the adapter's word.
 */
export function classifyWebGpuAdapter(a: WebGpuAdapterInfo): { device: string; software: boolean } {
  const name = [a.description, a.device, a.vendor, a.architecture].filter((x) => x !== "").join(", ") || "an unnamed adapter";
  const what = `WebGPU adapter ${name}`;
  if (a.isFallbackAdapter === true || [a.description, a.device, a.vendor, a.architecture].some((x) => isSoftwareRenderer(x) || /\bwarp\b/i.test(x)))
    return { device: `${what}: software rendering on the CPU`, software: true };
  return { device: `${what}: a hardware GPU by the adapter's report`, software: false };
}

/** Identifies what a runtime's kernels run on (gl: from its context and the loaded driver; webgpu: the adapter). */
function identifyDevice(mode: GpuMode, gl: GlContext | null, adapter: WebGpuAdapterInfo | null): GpuDeviceInfo {
  if (mode === "webgpu") {
    if (adapter === null) throw new Error("internal: a webgpu runtime without its adapter");
    return { mode, ...classifyWebGpuAdapter(adapter), gl: null, driver: null, webgpu: adapter };
  }
  if (mode === "webasm")
    return { mode, device: "the CPU (GPU.js WebAssembly kernels, one thread): software, not a GPU", software: true, gl: null, driver: null };
  if (mode === "cpu")
    return { mode, device: "the CPU (GPU.js JavaScript kernels, float64 accumulation): software, not a GPU", software: true, gl: null, driver: null };
  if (gl === null) throw new Error("internal: a gl-mode runtime without its WebGL context");
  const strings = glStrings(gl);
  return { mode, gl: strings, ...classifyGlDevice(strings, mappedLibraries()) };
}

/** gpu.js is an optional peer dependency (it pulls ~270 MB and a native `gl` build): loaded here, on first use only. */
async function loadGpuJs(): Promise<GpuJsClass> {
  let mod: { GPU?: GpuJsClass; default?: { GPU?: GpuJsClass } };
  try {
    mod = (await import("gpu.js")) as unknown as typeof mod;
  } catch (e) {
    throw new Error(
      `gpu backend: the gpu.js package does not load (${e instanceof Error ? e.message.split("\n")[0] : String(e)}); ` +
        "it is an optional peer dependency of @lrc-ts/tensor-core: install it with npm i gpu.js@2.24.1 (and webgpu@0.6.2 for WebGPU in Node)",
    );
  }
  const GPU = mod.GPU ?? mod.default?.GPU;
  if (GPU === undefined) throw new Error("gpu backend: the gpu.js module has no GPU export");
  return GPU;
}

/** Why the gl mode cannot start here without trying it (Node without an X display), or null. */
function glUnavailable(): string | null {
  return isNode && (process.env.DISPLAY ?? "") === "" ? "no X display (DISPLAY is unset; run under `xvfb-run -a`)" : null;
}

/**
 * What `createRuntime("auto", ...)` would run on, told without loading gpu.js (about 0.2 s with its native
 * `gl`), for a caller that found no hardware WebGPU adapter, so that the webgpu mode cannot give a GPU: in Node
 * without an X display the gl mode cannot start either, which leaves webasm, on the CPU. Null where GPU.js must
 * be started to tell: an X display or a browser (gl may work), or gpu.js not resolving (its error is the news).
 */
export function autoDeviceWithoutLoading(): GpuDeviceInfo | null {
  if (glUnavailable() === null) return null;
  const resolve = (import.meta as { resolve?: (specifier: string) => string }).resolve;
  if (typeof resolve !== "function") return null;
  const name = "gpu.js"; // a variable, so that bundlers do not follow it
  try {
    resolve(name);
  } catch {
    return null;
  }
  return identifyDevice("webasm", null, null);
}

/**
 * Starts GPU.js in the requested mode ("auto": the first of gl, webasm that really works; webgpu only on
 * request, see the top of this file, or in auto when the caller reads asynchronously (`asyncReads`) and the
 * adapter is hardware). Every mode that was tried and not used is listed, with the reason, in
 * `runtime.skipped`; an explicit mode that cannot start throws with the reason.
 */
export async function createRuntime(want: GpuMode | "auto", opts: { asyncReads?: boolean } = {}): Promise<GpuRuntime> {
  const GPU = await loadGpuJs();
  const order: GpuMode[] = want === "auto" ? ["webgpu", "gl", "webasm"] : [want];
  const skipped: string[] = [];
  for (const mode of order) {
    try {
      if (mode === "webgpu") {
        if (want === "auto" && opts.asyncReads !== true) throw new Error(await whyNotAutoWebGpu(GPU));
        const why = await webGpuAdapter(GPU);
        if (why !== null) throw new Error(why);
        const rt = await runProbeWebGpu(GPU, skipped);
        if (want === "auto" && rt.software) {
          rt.destroy();
          throw new Error(`its adapter is software (${rt.device.device}), and auto takes WebGPU only on a GPU`);
        }
        return rt;
      }
      if (mode === "gl") {
        const noGl = glUnavailable();
        if (noGl !== null) throw new Error(noGl);
        return runProbe(GPU, isNode ? "headlessgl" : "webgl2", mode, skipped);
      }
      return runProbe(GPU, mode, mode, skipped);
    } catch (e) {
      const why = `${mode}: ${e instanceof Error ? e.message : String(e)}`;
      if (want !== "auto") throw new Error(`gpu backend: mode ${why}`);
      skipped.push(why);
    }
  }
  throw new Error(`gpu backend: no GPU.js mode works here (${skipped.join("; ")})`);
}
