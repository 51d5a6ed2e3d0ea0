// @lrc-ts/nn, platform-neutral entry point: models, config parsing, generation, evaluation, and checkpoints
// as in-memory files (`loadCausalLMFromFiles`, `serializeCausalLM`). Bundlers that set the "browser"
// condition resolve the package here; Node resolves ./index.ts, which adds the directory functions
// (`loadCausalLM`, `saveCausalLM`, `readConfigFile`, ...). Nothing reachable from here imports a Node module.

export { ConfigError, parseConfig, makeConfig, configToJson, qkvBias, oBias, architectureClass } from "./config.js";
export type { Architecture, CausalLMConfig, RopeScaling, Llama3RopeScaling } from "./config.js";
export { Module, StateDictError } from "./module.js";
export type { StateDict, LoadStateDictOptions, ModuleOptions } from "./module.js";
export {
  linear, mlpForward, attentionForward, decoderLayerForward, causalLMForward, checkWeights,
} from "./functional.js";
export type {
  LayerWeights, CausalLMWeights, ForwardWeights, LayerCapture, CaptureField, LayerKV, KVCache, LayerForwardOptions, LayerForwardResult,
  CausalLMForwardOptions, CausalLMForwardResult,
} from "./functional.js";
export { Linear } from "./layers/linear.js";
export type { LinearOptions } from "./layers/linear.js";
export { Embedding } from "./layers/embedding.js";
export { RMSNorm } from "./layers/rms-norm.js";
export { RotaryEmbedding, rotaryEmbedding, ropeInverseFrequencies } from "./layers/rope.js";
export type { RopeTables } from "./layers/rope.js";
export { Attention } from "./layers/attention.js";
export type { AttentionWeights } from "./layers/attention.js";
export { MLP } from "./layers/mlp.js";
export { DecoderLayer } from "./layers/decoder-layer.js";
export type { InitOptions } from "./layers/init.js";
export { CausalLM, DecoderModel, ModuleList, idsTensor } from "./models/causal-lm.js";
export type { CausalLMOptions } from "./models/causal-lm.js";
export {
  loadCausalLMFromFiles, serializeCausalLM, fillCausalLM, parseWeightIndex, configFileText, checkpointTensors, CheckpointError,
  CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, TOKENIZER_FILES, TORCH_DTYPE, configDType, loadedBytes,
} from "./checkpoint-files.js";
export type { LoadOptions, LoadFromFilesOptions, SerializeModelOptions } from "./checkpoint-files.js";
export { generate, sampleToken, configStopTokens } from "./generate.js";
export type { GenerateOptions, GenerateResult, SamplingOptions, LanguageModel } from "./generate.js";
export { evaluate, evaluateBatches, batchNll } from "./evaluate.js";
export type { EvaluateOptions, EvalResult } from "./evaluate.js";
export { weightsFromStateDict, stateDictFromWeights, layerWeightKeys, LAYER_WEIGHT_NAMES, parameterShapes, parameterCount, parameterSpecs } from "./weights.js";
export type { ParameterSpec } from "./weights.js";
export { encodeRequest, loglikelihoods, PY_WHITESPACE } from "./loglikelihood.js";
export type { Encode, LoglikelihoodRequest, LoglikelihoodResult, LoglikelihoodOptions } from "./loglikelihood.js";
export { evaluateMultipleChoice, docRequests, docProblem, scoreDoc, meanStderr, TARGET_DELIMITER } from "./multiple-choice.js";
export type { MultipleChoiceDoc, MultipleChoiceSample, MultipleChoiceResult, MultipleChoiceOptions } from "./multiple-choice.js";
