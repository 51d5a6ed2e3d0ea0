// @lrc-ts/tensor-core: eager tensors with tape autodiff, fast CPU kernels, optimisers and safetensors.
// Node entry point: the platform-neutral API (./browser.ts) plus the safetensors file helpers and the
// file-system helpers (fileSystemError, makeDirectory, atomic writes of files and directories).

export * from "./browser.js";
export * from "./safetensors-node.js";
export * from "./files-node.js";
