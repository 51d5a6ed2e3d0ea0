// The lrc-ts side of every case. The thread count reaches tensor-core's worker pool through LRC_THREADS,
// which run.ts sets for this child process; the model cases load @lrc-ts/nn and @lrc-ts/lrc lazily so that
// the kernel suites run even while those packages are unfinished.

import { getBackend } from "@lrc-ts/tensor-core";
import type { BenchCase } from "../cases.js";
import type { Implementation, Prepared } from "../impl.js";
import { SkipCase } from "../impl.js";
import { prepareGradCheck } from "./gradcheck.js";
import { prepareKernel } from "./kernels.js";

const firstLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0]!;

async function prepareModelCase(c: BenchCase): Promise<Prepared> {
  let models: typeof import("./models.js");
  try {
    models = await import("./models.js");
  } catch (e) {
    throw new SkipCase(`nn not available yet: ${firstLine(e)}`);
  }
  if (c.spec.kind !== "pretrain" && c.spec.kind !== "distill" && c.spec.kind !== "realShape") return models.prepareModelCase(c);
  let training: typeof import("./training.js");
  try {
    training = await import("./training.js");
  } catch (e) {
    // Without lrc's Trainer, pretraining still runs as a plain nn step (noted in the table).
    if (c.spec.kind === "pretrain") return models.prepareModelCase(c);
    throw new SkipCase(`lrc not available yet: ${firstLine(e)}`);
  }
  return c.spec.kind === "realShape" ? training.prepareRealShapeCase(c.spec) : training.prepareTrainingCase(c.spec);
}

export const lrcTs: Implementation = {
  async init(threads: number): Promise<string> {
    const env = process.env["LRC_THREADS"];
    if (env !== String(threads)) throw new Error(`LRC_THREADS is "${env ?? ""}" but this group wants ${threads} threads`);
    return `${getBackend().description}; LRC_THREADS=${threads}`;
  },
  async prepare(c: BenchCase): Promise<Prepared> {
    switch (c.spec.kind) {
      case "matmul": case "attention": case "rmsNorm": case "softmaxCE": case "adamw": case "attnOutTerm":
        return prepareKernel(c.spec);
      case "gradCheck":
        return prepareGradCheck(c.spec);
      default:
        return prepareModelCase(c);
    }
  },
};
