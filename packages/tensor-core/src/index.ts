// @lrc-ts/tensor-core: eager tensors with tape autodiff, fast CPU kernels, optimisers and safetensors.
// Node entry point: the platform-neutral API (./browser.ts) plus the safetensors file helpers.

export * from "./browser.js";
export * from "./safetensors-node.js";
