// What the lrc-ts-gpu benchmarks need from the gpu backend beyond its public API, in one place: the
// runtime's own upload (the copy `Tensor` ops make when a host tensor first reaches a kernel), a wait for
// queued GL work (`gl.finish()`), the device copy of a result (to download it without changing the
// tensor), and what the device is: the WebGL renderer strings and, on Linux, the GL driver library the
// process loaded, which tells Mesa's software rasteriser (swrast_dri.so, llvmpipe) from a real GPU driver.
//
// The backend's live `gpuOps` binding is imported from tensor-core's source by path: the package exports
// no device handles, and these are timing hooks, not an API. Every shape assumed here is checked, so a
// change inside tensor-core fails loudly, naming this file.

import { existsSync, readFileSync } from "node:fs";
import type { Tensor } from "@lrc-ts/tensor-core";
import { gpuOps } from "../../../packages/tensor-core/src/backend/backend.js";
import type { GpuRuntime } from "../../../packages/tensor-core/src/backend/gpujs/runtime.js";

type DeviceBuffer = NonNullable<NonNullable<Tensor["storage"]>["device"]>;

/** The slice of a WebGL context used here (headless-gl's or a browser's). */
interface GlContext {
  finish(): void;
  getParameter(p: number): unknown;
  getExtension(name: string): unknown;
  readonly RENDERER: number;
  readonly VENDOR: number;
  readonly VERSION: number;
}

const where = "benchmarks/src/lrcts-gpu/device.ts";

/** The started gpu backend's runtime; throws when the gpu backend is not the active one. */
export function runtime(): GpuRuntime {
  const ops = gpuOps;
  if (ops === null) throw new Error(`${where}: the gpu backend is not active (await initBackend("gpu") first, and in the same copy of tensor-core)`);
  if (typeof ops.rt?.upload !== "function") throw new Error(`${where}: tensor-core's gpu runtime has no upload(host, n) any more; update this file`);
  return ops.rt;
}

/** The device copy of a tensor's values, or null when it lives on the host only. */
export function deviceBuffer(t: Tensor): DeviceBuffer | null {
  const s = t.storage;
  if (s === null) throw new Error(`${where}: tensor ${t.id} was disposed`);
  return s.device;
}

/** The WebGL context behind a gl-mode device buffer (a GPU.js texture keeps its context). */
function glContextOf(buf: DeviceBuffer): GlContext {
  const handle = (buf as { handle?: unknown }).handle as { context?: Partial<GlContext> } | undefined;
  const ctx = handle?.context;
  if (ctx === undefined || typeof ctx.finish !== "function" || typeof ctx.getParameter !== "function")
    throw new Error(`${where}: a gl-mode device buffer is not a GPU.js texture with a WebGL context (handle: ${String(handle)})`);
  return ctx as GlContext;
}

export interface DeviceInfo {
  /** The GPU.js mode that runs: "gl" or "webasm" (or "cpu" when asked for explicitly). */
  mode: string;
  /** One line: renderer and driver, and why it is (not) software. */
  device: string;
  /** The kernels run on the CPU: webasm, or gl on a software rasteriser. */
  software: boolean;
  /** Waits until every kernel queued so far has finished (gl.finish(); a no-op in the synchronous modes). */
  finish: () => void;
}

/** Shared objects mapped into this process (Linux /proc/self/maps); null where that file does not exist. */
function mappedLibraries(): string[] | null {
  if (!existsSync("/proc/self/maps")) return null;
  const paths = readFileSync("/proc/self/maps", "utf8").split("\n").map((l) => l.trim().split(/\s+/)[5] ?? "");
  return [...new Set(paths.filter((p) => /\.so(\.|$)/.test(p)))];
}

/**
 * Classifies the GL driver from the renderer strings and the loaded libraries: a software rasteriser
 * (Mesa swrast/llvmpipe/softpipe, SwiftShader) or a hardware driver (a Mesa DRI driver other than swrast,
 * NVIDIA's GL libraries). Exported for the unit test.
 */
export function classifyGlDriver(renderer: string, libs: readonly string[] | null, underXvfb: boolean): { device: string; software: boolean } {
  const base = (p: string): string => p.slice(p.lastIndexOf("/") + 1);
  const names = (libs ?? []).map(base);
  const dri = names.filter((n) => /_dri\.so/.test(n));
  const swDri = dri.filter((n) => /^(kms_)?swrast_dri\.so/.test(n));
  const hwDri = dri.filter((n) => !/^(kms_)?swrast_dri\.so/.test(n));
  const nvidia = names.filter((n) => /nvidia/i.test(n));
  const llvm = names.some((n) => /^libLLVM/.test(n));
  const xvfb = underXvfb ? "; X display from xvfb-run (Xvfb offers only Mesa's software GLX)" : "";
  if (/llvmpipe|softpipe|swiftshader|swrast|software/i.test(renderer) || (swDri.length > 0 && hwDri.length === 0 && nvidia.length === 0)) {
    const lib = swDri.length > 0 ? `Mesa ${swDri.join(", ")}${llvm ? " with LLVM (llvmpipe)" : ""}` : "a software renderer";
    return { device: `${renderer} on ${lib}: software rendering on the CPU${xvfb}`, software: true };
  }
  if (hwDri.length > 0 || nvidia.length > 0)
    return { device: `${renderer} on ${[...hwDri, ...nvidia].join(", ")}${xvfb}`, software: underXvfb };
  const why = libs === null ? "no /proc/self/maps to identify the GL driver" : "no known GL driver library loaded";
  return { device: `${renderer} (${why}; not verified to be a GPU)${xvfb}`, software: underXvfb };
}

/** Identifies the device the started gpu backend runs on. */
export function deviceInfo(underXvfb: boolean): DeviceInfo {
  const rt = runtime();
  if (!rt.textures) {
    const what = rt.mode === "webasm" ? "the CPU (WebAssembly kernels, one thread)" : "the CPU (JavaScript kernels)";
    return { mode: rt.mode, device: what, software: true, finish: () => {} };
  }
  // A one-value upload yields a texture, and with it the context every kernel of this runtime draws into.
  const probe = rt.upload([0], 1);
  let gl: GlContext;
  try {
    gl = glContextOf(probe);
  } finally {
    probe.free();
  }
  const str = (p: unknown): string => (p === null || p === undefined ? "" : String(p));
  const dbg = gl.getExtension("WEBGL_debug_renderer_info") as { UNMASKED_RENDERER_WEBGL: number; UNMASKED_VENDOR_WEBGL: number } | null;
  const unmasked = dbg === null ? "" : `${str(gl.getParameter(dbg.UNMASKED_VENDOR_WEBGL))} ${str(gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL))}`.trim();
  const renderer = unmasked !== ""
    ? unmasked
    : `WebGL renderer "${str(gl.getParameter(gl.RENDERER))}" (vendor "${str(gl.getParameter(gl.VENDOR))}", ${str(gl.getParameter(gl.VERSION))}; no WEBGL_debug_renderer_info)`;
  const { device, software } = classifyGlDriver(renderer, mappedLibraries(), underXvfb);
  return { mode: rt.mode, device, software, finish: () => gl.finish() };
}
