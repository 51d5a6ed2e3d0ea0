// GPU.js runtime for the gpu backend: loads gpu.js lazily (dynamic import, only when the gpu backend is
// chosen), selects a mode explicitly and verifies it by running a probe kernel and checking the kernel class
// that actually ran, caches compiled kernels per (op, shape signature), and wraps pipeline outputs as
// DeviceBuffers whose lifetime is counted (`liveBuffers`) and ended deterministically (`texture.delete()`).
//
// Modes, in auto order: webgpu (needs a real adapter AND synchronous kernels, which GPU.js's WebGPU
// backend cannot give an eager engine, so it is reported and skipped), gl (GPU.js `headlessgl` in Node,
// which needs the native `gl` package and an X display; `webgl2` in a browser), webasm (GPU.js's
// WebAssembly backend: software). GPU.js's `cpu` mode is available only on explicit request (it accumulates
// in float64, unlike every other mode). Precision is always 'single'.

import type { TypedArray } from "../../dtype.js";
import type { DeviceBuffer } from "../../storage.js";

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
}
interface GpuJsClass {
  new (settings: { mode: string }): GpuJsInstance;
  isWebGPUAvailable?: () => Promise<boolean>;
}
interface TextureLike {
  toArray(): Float32Array;
  delete(): void;
}

const kernelClassOf: Record<Exclude<GpuMode, "webgpu">, readonly string[]> = {
  gl: ["HeadlessGLKernel", "WebGL2Kernel", "WebGLKernel"],
  webasm: ["WebAssemblyKernel"],
  cpu: ["CPUKernel"],
};

const isNode = typeof process !== "undefined" && typeof process.versions?.node === "string";

export interface RuntimeStats {
  liveBuffers: number;
  kernelsCompiled: number;
  kernelCalls: number;
  uploads: number;
  uploadBytes: number;
  downloads: number;
  downloadBytes: number;
}

export class GpuRuntime {
  readonly stats: RuntimeStats = { liveBuffers: 0, kernelsCompiled: 0, kernelCalls: 0, uploads: 0, uploadBytes: 0, downloads: 0, downloadBytes: 0 };
  private readonly kernels = new Map<string, GpuJsKernel>();
  /** Whether kernel outputs are textures (gl) or host typed arrays (webasm, cpu). */
  readonly textures: boolean;

  constructor(
    private readonly gpu: GpuJsInstance,
    readonly mode: Exclude<GpuMode, "webgpu">,
    readonly kernelClass: string,
    /** Every mode tried before this one and why it was not used. */
    readonly skipped: readonly string[],
  ) {
    this.textures = mode === "gl";
  }

  /** True when the kernels run on the CPU (webasm, cpu) or on Mesa's software rasteriser cannot be told apart. */
  get software(): boolean {
    return this.mode !== "gl";
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

  /** Copies host values to the device. */
  upload(host: ArrayLike<number>, n: number): GpuBuffer {
    this.stats.uploads++;
    this.stats.uploadBytes += 4 * n;
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = host[i]!;
    if (!this.textures) return this.wrap(f);
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

/** A pipeline output: a GPU.js texture (gl) or a Float32Array (webasm, cpu). */
export class GpuBuffer implements DeviceBuffer {
  private freed = false;
  constructor(private readonly rt: GpuRuntime, readonly handle: unknown) {}

  download(out: TypedArray, n: number): void {
    if (this.freed) throw new Error("internal: download of a freed device buffer");
    const h = this.handle;
    const vals = h instanceof Float32Array ? h : (h as TextureLike).toArray();
    this.rt.stats.downloads++;
    this.rt.stats.downloadBytes += 4 * n;
    if (out instanceof Int32Array) for (let i = 0; i < n; i++) out[i] = Math.round(vals[i]!);
    else for (let i = 0; i < n; i++) out[i] = vals[i]!;
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.rt.stats.liveBuffers--;
    if (!(this.handle instanceof Float32Array)) (this.handle as TextureLike).delete();
  }
}

/** A probe that exercises loops, Math functions and indexing, checked against float64 maths. */
const probeSource = `function (a) {
  let s = 0.0;
  for (let j = 0; j < 4; j++) { s = s + a[Math.floor((this.thread.x + 0.5) / 2.0)] * j; }
  return Math.exp(s * 0.25) + Math.floor(2.5);
}`;

function runProbe(GPU: GpuJsClass, gpuMode: string, mode: Exclude<GpuMode, "webgpu">, skipped: string[]): GpuRuntime {
  const gpu = new GPU({ mode: gpuMode });
  try {
    const k = gpu.createKernel(probeSource, { output: [6], pipeline: true, immutable: true, precision: "single" });
    const input = new Float32Array([0.5, -1, 0.25]);
    const raw = k(input);
    const vals = raw instanceof Float32Array ? raw : (raw as TextureLike).toArray();
    const ran = k.kernel?.constructor.name ?? "unknown";
    if (!kernelClassOf[mode].includes(ran))
      throw new Error(`the probe kernel ran as ${ran}${k.kernel?.fallbackReason ? ` (${k.kernel.fallbackReason})` : ""}`);
    for (let i = 0; i < 6; i++) {
      const want = Math.exp(input[Math.floor(i / 2)]! * 6 * 0.25) + 2;
      if (!(Math.abs(vals[i]! - want) <= 1e-4 * Math.abs(want))) throw new Error(`the probe kernel computed ${vals[i]} instead of ${want}`);
    }
    if (!(raw instanceof Float32Array)) (raw as TextureLike).delete();
    k.destroy?.();
    return new GpuRuntime(gpu, mode, ran, skipped);
  } catch (e) {
    gpu.destroy();
    throw e;
  }
}

async function loadGpuJs(): Promise<GpuJsClass> {
  const mod = (await import("gpu.js")) as unknown as { GPU?: GpuJsClass; default?: { GPU?: GpuJsClass } };
  const GPU = mod.GPU ?? mod.default?.GPU;
  if (GPU === undefined) throw new Error("gpu backend: the gpu.js module has no GPU export");
  return GPU;
}

/**
 * Starts GPU.js in the requested mode ("auto": the first of webgpu, gl, webasm that really works). Every
 * mode that was tried and not used is listed, with the reason, in `runtime.skipped`; an explicit mode that
 * cannot start throws with the reason.
 */
export async function createRuntime(want: GpuMode | "auto"): Promise<GpuRuntime> {
  const GPU = await loadGpuJs();
  const order: GpuMode[] = want === "auto" ? ["webgpu", "gl", "webasm"] : [want];
  const skipped: string[] = [];
  for (const mode of order) {
    try {
      if (mode === "webgpu") {
        const has = GPU.isWebGPUAvailable !== undefined && (await GPU.isWebGPUAvailable().catch(() => false));
        throw new Error(has
          ? "a WebGPU adapter exists, but GPU.js WebGPU kernels are asynchronous and this eager engine runs kernels synchronously"
          : "no WebGPU adapter");
      }
      if (mode === "gl") {
        if (isNode && (process.env.DISPLAY ?? "") === "") throw new Error("no X display (DISPLAY is unset; run under `xvfb-run -a`)");
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
