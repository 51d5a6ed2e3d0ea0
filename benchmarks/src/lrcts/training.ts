// The real training steps of @lrc-ts/lrc: `Trainer.step1()` (forward, loss, backward, gradient clipping,
// AdamW) of a pretraining LmTask and of an LRC distillation LrcTask, on synthetic token batches. Loaded
// lazily by ./index.ts, so a missing or broken lrc skips (distill) or falls back (pretrain) instead of
// failing the run.

import { existsSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CausalLM, initCheckpoint, loadCausalLM } from "@lrc-ts/nn";
import { LmTask, LowRankClone, LrcTask, Trainer } from "@lrc-ts/lrc";
import type { BatchSource, TrainTask } from "@lrc-ts/lrc";
import type { CaseSpec } from "../cases.js";
import type { Prepared } from "../impl.js";
import { SkipCase } from "../impl.js";
import { nnConfig, syntheticTokens } from "./models.js";

/** Synthetic batches as a trainer batch source (the data pipeline is not what is measured). */
function syntheticSource(vocab: number, batch: number, seq: number, seed: number): BatchSource {
  let n = 0;
  return {
    next: () => ({ ...syntheticTokens(vocab, batch, seq, seed + n++), shape: [batch, seq] }),
    state: () => ({ version: 1, split: "train", seed, epoch: 0, position: n * batch, seqLen: seq, batchSize: batch, numWindows: 0 }),
    restore: () => {
      throw new Error("benchmarks: the synthetic batch source cannot be restored");
    },
    describe: () => ({ synthetic: true, batch, seq, seed }),
  };
}

function trainerStep(task: TrainTask, source: BatchSource, note: string): Prepared {
  const trainer = new Trainer(task, source, null, {
    // decayAll: every tensor decays, as in the PyTorch anchor (torch.optim.AdamW(m.parameters(), weight_decay=0.1)).
    steps: 1_000_000, lr: 1e-3, weightDecay: 0.1, decayAll: true, schedule: "constant", warmupSteps: 0,
  });
  return { run: async () => void (await trainer.step1()), dispose: () => {}, note };
}

export function prepareTrainingCase(spec: CaseSpec): Prepared {
  switch (spec.kind) {
    case "pretrain": {
      const { model: d, batch: B, seq: T } = spec;
      const model = new CausalLM(nnConfig(d, T), { seed: 1 });
      return trainerStep(new LmTask(model), syntheticSource(d.vocab, B, T, 4), "lrc Trainer.step1 (LmTask: CE, grad clip 1.0, AdamW)");
    }
    case "distill": {
      const { teacher: t, student: s, batch: B, seq: T } = spec;
      const teacher = new CausalLM(nnConfig(t, T), { seed: 1 });
      const clone = new LowRankClone(teacher, { hiddenSize: s.hidden, seed: 2 });
      return trainerStep(new LrcTask(clone), syntheticSource(t.vocab, B, T, 5), "lrc Trainer.step1 (LrcTask: CE + KL + clone terms, grad clip 1.0, AdamW)");
    }
    case "realShape":
      throw new SkipCase("real-shape cases are prepared by prepareRealShapeCase (async)");
    default:
      throw new SkipCase(`not a training case: ${spec.kind}`);
  }
}

/**
 * A real-shape LRC step as a user runs it: the teacher is a random BF16 HF checkpoint (`lrc init`'s
 * initCheckpoint; written once into the temp directory and reused) loaded with loadCausalLM as `lrc distill`
 * loads it on the cpu backend (its matrices kept as bfloat16), or widened to float32 (`f32Teacher`).
 */
export async function prepareRealShapeCase(spec: CaseSpec): Promise<Prepared> {
  if (spec.kind !== "realShape") throw new SkipCase(`not a real-shape case: ${spec.kind}`);
  const { teacher: t, studentHidden, batch: B, seq: T } = spec;
  const config = nnConfig(t, T);
  const dir = path.join(os.tmpdir(), "lrc-bench-real-shape", `qwen2-V${t.vocab}-D${t.hidden}-L${t.layers}-H${t.heads}-${t.kvHeads}-F${t.ffn}-bf16`);
  if (!existsSync(dir)) initCheckpoint(config, dir, { dtype: "BF16", seed: 1 });
  const teacher = await loadCausalLM(dir, { keepDType: spec.f32Teacher !== true });
  const clone = new LowRankClone(teacher, { hiddenSize: studentHidden, seed: 2, ...(spec.recompute === true ? { recomputeWeights: true } : {}) });
  const held = spec.f32Teacher === true ? "widened to float32" : "its matrices kept as bfloat16";
  const recompute = clone.recomputePlan(B, T);
  return trainerStep(
    new LrcTask(clone), syntheticSource(t.vocab, B, T, 5),
    `lrc Trainer.step1 (LrcTask: CE + KL + clone terms, grad clip 1.0, AdamW), teacher loaded from a BF16 checkpoint, ${held}; ` +
      `generated weights ${recompute.recompute ? "recomputed" : "kept"} (${recompute.reason})`,
  );
}
