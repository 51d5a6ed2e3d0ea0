// @lrc-ts/nn: Qwen2 / Llama causal language models with exactly the math of HF transformers: a functional
// core over plain weight objects (what LRC's students run), Module classes with HF parameter names, HF
// config and checkpoint load/save, KV-cache generation, evaluation and activation capture.
// Node entry point: the platform-neutral API (./browser.ts) plus model directories on disk.

export * from "./browser.js";
export { readConfigFile } from "./config-file.js";
export { loadCausalLM, saveCausalLM, resolveWeightFiles, readModelFiles, TORCH_DTYPE, configDType } from "./checkpoint.js";
export type { SaveOptions } from "./checkpoint.js";
