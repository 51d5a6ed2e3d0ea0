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
