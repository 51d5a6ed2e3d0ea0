// navigator.gpu for Node and browsers, shared by the native WebGPU backend and GPU.js's webgpu mode. Node has no
// `navigator.gpu`: it comes from the `webgpu` package (Dawn), loaded here only, by a name the bundlers do not
// follow. The GPU object create() returns is kept as navigator.gpu for the life of the process: dawn.node
// crashes or hangs when it is garbage-collected while a device is in use (docs/webgpu-facts.md).

export const isNode = typeof process !== "undefined" && typeof process.versions?.node === "string";

/** Makes `navigator.gpu` available (a browser's own is used as it is); throws saying why it cannot. */
export async function ensureNavigatorGpu(): Promise<void> {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator?.gpu !== undefined) return;
  if (!isNode) throw new Error("no WebGPU in this browser (navigator.gpu is missing)");
  const name = "webgpu";
  let mod: { create?: (flags: string[]) => unknown; globals?: Record<string, unknown> };
  try {
    mod = (await import(/* @vite-ignore */ name)) as typeof mod;
  } catch (e) {
    throw new Error(`Node has no navigator.gpu, and the \`webgpu\` package (Dawn, which provides it) does not load: ${e instanceof Error ? e.message.split("\n")[0] : String(e)} (install it: npm i webgpu@0.6.2)`);
  }
  if (typeof mod.create !== "function") throw new Error("the `webgpu` package has no create() export");
  Object.assign(globalThis, mod.globals ?? {});
  const gpu = mod.create([]);
  if (g.navigator === undefined) Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true });
  else Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true });
}
