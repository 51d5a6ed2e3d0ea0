// Names of software rasterisers, as GL renderer strings and WebGPU adapter strings show them: Mesa's llvmpipe,
// softpipe and lavapipe (swrast), Google's SwiftShader, Microsoft's Basic Render Driver (WARP). A plain module
// (no GPU.js), so a page can test a WebGL renderer before it starts the gpu backend.

const SOFTWARE_RENDERER = /llvmpipe|softpipe|lavapipe|swiftshader|swrast|software|basic render driver/i;

/** True when a GL renderer / vendor string or a WebGPU adapter string names a software rasteriser. */
export function isSoftwareRenderer(name: string): boolean {
  return SOFTWARE_RENDERER.test(name);
}
