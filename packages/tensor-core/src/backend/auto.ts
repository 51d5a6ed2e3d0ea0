// The "auto" backend choice (`initBackend("auto")`, `--backend auto`, `LRC_BACKEND=auto`): the native WebGPU
// backend when the WebGPU adapter is a hardware GPU; else GPU.js (its own "auto" mode) when what it starts runs
// on a GPU; else cpu. A software adapter or rasteriser (lavapipe, SwiftShader, llvmpipe, WARP, a fallback
// adapter) is never taken automatically: the cpu kernels beat it; ask for it by name to use it anyway.

import type {} from "webgpu"; // the GPU* types; erased
import { classifyWebGpuAdapter, type WebGpuAdapterInfo } from "./gpujs/runtime.js";
import { ensureNavigatorGpu } from "./webgpu/navigator.js";

/** Whether auto takes the native WebGPU backend on this adapter (null: none answered), and why in one line. */
export function autoTakesWebGpu(adapter: WebGpuAdapterInfo | null): { take: boolean; why: string } {
  if (adapter === null) return { take: false, why: "no WebGPU adapter" };
  const c = classifyWebGpuAdapter(adapter);
  return c.software ? { take: false, why: `${c.device}, not taken automatically` } : { take: true, why: c.device };
}

/**
 * The WebGPU adapter's identification (the high-performance one, as the webgpu backend requests it), without
 * creating a device; null when navigator.gpu gives none. Throws when there is no navigator.gpu at all.
 */
export async function webGpuAdapterInfo(): Promise<WebGpuAdapterInfo | null> {
  await ensureNavigatorGpu();
  const gpu = (globalThis as unknown as { navigator: { gpu: GPU } }).navigator.gpu;
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (adapter === null) return null;
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const str = (v: unknown): string => (typeof v === "string" ? v : "");
  const fallback = info.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return {
    vendor: str(info.vendor), architecture: str(info.architecture), device: str(info.device), description: str(info.description),
    isFallbackAdapter: typeof fallback === "boolean" ? fallback : null,
  };
}

/** What missingVulkanLoader looks at (Node's, by default; a test passes its own). */
export interface LoaderSearch {
  readonly platform: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Whether a file exists. */
  exists(file: string): boolean;
  /** The dynamic linker's cache (/etc/ld.so.cache) as text, or null when unreadable. */
  linkerCache(): string | null;
}

/** The directories the dynamic linker searches without a cache entry (glibc's defaults, and the multiarch ones). */
const LIB_DIRS = ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];
const VULKAN_LOADER = "libvulkan.so.1";

function nodeLoaderSearch(): LoaderSearch | null {
  // Node's fs through process.getBuiltinModule, as buffer-pool.ts reads the cgroup: no import, since this module
  // is in the browser build too.
  const proc = (globalThis as { process?: { platform: string; env: Record<string, string | undefined>; getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.("node:fs") as { existsSync(f: string): boolean; readFileSync(f: string, encoding: "latin1"): string } | undefined;
  if (proc === undefined || fs === undefined) return null;
  return {
    platform: proc.platform, env: proc.env, exists: (f) => fs.existsSync(f),
    linkerCache: () => {
      try {
        return fs.readFileSync("/etc/ld.so.cache", "latin1");
      } catch {
        return null;
      }
    },
  };
}

/**
 * On Linux, Dawn (the `webgpu` package) reaches a GPU only through the Vulkan loader, libvulkan.so.1. Without it,
 * asking for an adapter prints Dawn's "Warning: Couldn't load Vulkan" with a C++ source location on stderr, which
 * reads like a crash, in every command that chooses a backend with auto. This looks where the dynamic linker
 * would find it (LD_LIBRARY_PATH, its cache, the default directories) and returns why webgpu is passed over when
 * it is nowhere, else null (also off Linux and in browsers: ask Dawn).
 */
export function missingVulkanLoader(search?: LoaderSearch | null): string | null {
  const s = search === undefined ? nodeLoaderSearch() : search;
  if (s === null || s.platform !== "linux") return null;
  const dirs = [...(s.env.LD_LIBRARY_PATH ?? "").split(":").filter((d) => d !== ""), ...LIB_DIRS];
  if (dirs.some((d) => s.exists(`${d}/${VULKAN_LOADER}`))) return null;
  const cache = s.linkerCache();
  if (cache === null || cache.includes(VULKAN_LOADER)) return null;
  return `no Vulkan loader (${VULKAN_LOADER}), which Dawn needs for a WebGPU adapter on Linux`;
}
