// The training record an exported model carries in its config.json (platform-neutral): one field,
// `"lrc_ts": { "train_seq_len": T, "version": "0.1.0" }`, which transformers keeps as a config attribute.
// `lrc eval` defaults its window to train_seq_len. It describes one trained model, so a student built from a
// teacher does not inherit the teacher's.

import type { CausalLMConfig } from "@lrc-ts/nn";

export const TRAINING_CONFIG_FIELD = "lrc_ts";

/** The window a model's config says it was trained with, if it records one. */
export function trainedSeqLen(config: CausalLMConfig): number | undefined {
  const v = (config.extra[TRAINING_CONFIG_FIELD] as { train_seq_len?: unknown } | undefined)?.train_seq_len;
  return typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined;
}
