// The TF.js reference implementation of the cases (kernels composed from TF.js ops, and the same
// transformer in TF.js for the gradient and pretraining cases).

import type { BenchCase } from "../cases.js";
import type { Implementation, Prepared } from "../impl.js";
import { prepareTfKernel } from "./kernels.js";
import { prepareTfModelCase } from "./llama.js";
import type { Tf, TfBackend } from "./setup.js";
import { loadTf } from "./setup.js";

export function tfjsImplementation(backend: TfBackend): Implementation {
  let tf: Tf | null = null;
  return {
    async init(threads: number): Promise<string> {
      const loaded = await loadTf(backend, threads);
      tf = loaded.tf;
      return loaded.description;
    },
    async prepare(c: BenchCase): Promise<Prepared> {
      if (tf === null) throw new Error("tfjs: prepare called before init");
      switch (c.spec.kind) {
        case "matmul": case "attention": case "rmsNorm": case "softmaxCE": case "adamw":
          return prepareTfKernel(tf, c.spec);
        default:
          return prepareTfModelCase(tf, c.spec);
      }
    },
  };
}
