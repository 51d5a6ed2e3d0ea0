// Which implementation runs which case with how many threads, grouped into child processes: one per
// (suite, implementation, threads) for kernels and gradients, and one per e2e case so that each e2e case's
// peak RSS is its own process's. Also how a child is started: the lrc-ts-gpu child under `xvfb-run -a`
// when GPU.js's gl mode may run and there is no X display.

import { REAL_SHAPE } from "./cases.js";
import type { BenchCase, CaseSpec, Suite } from "./cases.js";
import { matchesFilters } from "./cli.js";
import type { GpuModeArg } from "./cli.js";
import type { Impl } from "./results.js";

export const IMPLS: readonly Impl[] = ["lrc-ts", "lrc-ts-gpu", "lrc-ts-webgpu", "tfjs-cpu", "tfjs-wasm", "pytorch"];

/** The kernel cases but LRC's attention-out term (bfloat16 W_o: lrc-ts only); the only ones lrc-ts-gpu and lrc-ts-webgpu run (their prepare skips, with the reason, those they cannot). */
const KERNEL_KINDS: ReadonlySet<CaseSpec["kind"]> = new Set(["matmul", "attention", "rmsNorm", "softmaxCE", "adamw"]);

export interface Group {
  suite: Suite;
  impl: Impl;
  threads: number;
  /** Case names (within suite) this child runs, in catalogue order. */
  cases: string[];
}

/**
 * What each implementation can run. TF.js has no gradient checker, no LRC distillation step and no eval-tasks scoring, and runs
 * the pretraining step for Llama only: its Qwen2 deltas (q/k/v biases, tied head) change little, and each
 * TF.js step takes tens of seconds. lrc-ts-gpu runs the kernel suite: the gpu backend's point of comparison
 * is the single kernel with its transfers (the gradients and e2e suites stay on the cpu backend). lrc-ts-webgpu
 * runs the kernel suite and the e2e training steps. The
 * real-shape distill steps run on lrc-ts and on PyTorch (the reference script, when torch is installed; its teacher is
 * fp32 in any case, so not the f32-teacher variant).
 */
export function supports(impl: Impl, spec: CaseSpec): boolean {
  if (spec.kind === "realShape") return impl === "lrc-ts" || (impl === "pytorch" && spec.f32Teacher !== true && spec.recompute !== true);
  if (impl === "pytorch") return false;
  if (impl === "lrc-ts") return true;
  if (impl === "lrc-ts-gpu") return KERNEL_KINDS.has(spec.kind);
  if (impl === "lrc-ts-webgpu") return KERNEL_KINDS.has(spec.kind) || spec.kind === "pretrain" || spec.kind === "distill";
  if (spec.kind === "pretrain") return spec.model.arch === "llama";
  return spec.kind !== "gradCheck" && spec.kind !== "distill" && spec.kind !== "mcEval" && spec.kind !== "attnOutTerm";
}

/**
 * Thread counts an implementation is run with: tfjs-cpu is single-threaded JavaScript, and lrc-ts-gpu's and
 * lrc-ts-webgpu's kernels run on the device (the host only records and submits them).
 */
export function threadsFor(impl: Impl, threads: readonly number[]): number[] {
  return impl === "tfjs-cpu" || impl === "lrc-ts-gpu" || impl === "lrc-ts-webgpu" ? [1] : [...threads];
}

export const caseLabel = (suite: string, name: string, impl: Impl, threads: number): string =>
  `${suite}/${name} ${impl}@${threads}t`;

/**
 * The groups to run. The real-shape cases (many GB and minutes each) run only when a filter names them
 * (`--filter real-shape`), never as part of a plain `pnpm bench`.
 */
export function planGroups(cases: readonly BenchCase[], threads: readonly number[], filters: readonly string[]): Group[] {
  const groups: Group[] = [];
  const wantRealShape = filters.some((f) => f.includes(REAL_SHAPE));
  cases = cases.filter((c) => wantRealShape || !c.name.startsWith(REAL_SHAPE));
  const suites: Suite[] = ["kernels", "gradients", "e2e"];
  for (const suite of suites)
    for (const impl of IMPLS)
      for (const t of threadsFor(impl, threads)) {
        const names = cases
          .filter((c) => c.suite === suite && supports(impl, c.spec) && matchesFilters(caseLabel(suite, c.name, impl, t), filters))
          .map((c) => c.name);
        if (names.length === 0) continue;
        if (suite === "e2e") for (const n of names) groups.push({ suite, impl, threads: t, cases: [n] });
        else groups.push({ suite, impl, threads: t, cases: names });
      }
  return groups;
}

/**
 * Whether a group's child must be started under `xvfb-run -a`: lrc-ts-gpu in a mode that may use gl, when
 * DISPLAY is unset and xvfb-run exists (without it, auto mode falls back to webasm and an explicit gl
 * mode fails with the reason).
 */
export function needsXvfb(impl: Impl, gpuMode: GpuModeArg, env: Readonly<Record<string, string | undefined>>, hasXvfbRun: boolean): boolean {
  return impl === "lrc-ts-gpu" && (gpuMode === "gl" || gpuMode === "auto") && (env["DISPLAY"] ?? "") === "" && hasXvfbRun;
}
