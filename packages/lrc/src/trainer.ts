// The one trainer behind `distill`, `pretrain` and plain KD, platform-neutral: a task (./task.ts) says
// which tensors train and how a batch becomes named loss terms; Trainer does
// AdamW (torch semantics) with warmup then linear (or cosine) decay, gradient accumulation, global-norm
// clipping, evaluation (the teacher's once, cached) and a stop at the first non-finite loss term or
// gradient norm, one step at a time, with no files (a browser drives it step by step). Its whole state
// besides the trainable tensors is one value (`state()` / `restore()`). In Node, runTraining
// (./node/train-loop.ts) drives it with JSONL metrics, the progress line, the SVG plot, atomic checkpoints,
// bit-exact resume and Ctrl-C.
//
// One step reads top to bottom in `step1()`: lr from the schedule; per micro-batch, inside a tensor-core
// scope, loss -> backward; then the loss terms are read (asynchronously, for webgpu) -> finiteness check -> the
// gradients (scaled by 1/accum) added into accumulators where they live (with one micro-batch, the gradients
// themselves); clip (one sum of squares read per gradient); AdamW.

import { AdamW, Rng, accumulate, clipGradNormAsync, full, keep, scope } from "@lrc-ts/tensor-core";
import type { AdamWState, RngState, Tensor } from "@lrc-ts/tensor-core";
import { sha256Hex } from "@lrc-ts/data";
import type { Batch, ReaderState } from "@lrc-ts/data";
import type { BatchSource, EvalSource, TaskLoss, TrainTask } from "./task.js";

/** The trainer's settings that change the math (Node's runTraining adds the run directory, logging, ...). */
export interface TrainerConfig {
  /** Optimizer steps to run in total (a resumed run continues to this). */
  readonly steps: number;
  /** Peak learning rate (default 1e-4, the LRC paper's). */
  readonly lr?: number;
  /** AdamW's decoupled weight decay (default 0, HF Trainer's and the LRC reference's). */
  readonly weightDecay?: number;
  /** Decay every trainable tensor (default false: the task's noDecay() tensors, biases and norm gains, get none). */
  readonly decayAll?: boolean;
  /** AdamW β1, β2, ε (defaults 0.9, 0.999, 1e-8: HF Trainer's and torch's). */
  readonly beta1?: number;
  readonly beta2?: number;
  readonly adamEps?: number;
  /** "linear" (default: warmup then linear decay, LRC's), "cosine", or "constant" (after warmup). */
  readonly schedule?: "linear" | "cosine" | "constant";
  /** Warmup as a fraction of the steps (default 0.005, LRC's), at least one step when > 0. */
  readonly warmupFraction?: number;
  /** Warmup steps (overrides warmupFraction); more than `steps` is refused. */
  readonly warmupSteps?: number;
  /** Global gradient-norm clip (default 1.0; 0 disables). */
  readonly gradClip?: number;
  /** Micro-batches per optimizer step (default 1). */
  readonly gradAccum?: number;
  /** Evaluate every N steps (0: only at the end; default 0). */
  readonly evalEvery?: number;
  /** Seed of the trainer's RNG (saved in checkpoints). */
  readonly seed?: number;
  /** Extra configuration folded into the checkpoint's config hash (the task's options). */
  readonly describe?: Record<string, unknown>;
}

export interface StepMetrics {
  readonly step: number;
  readonly totalSteps: number;
  /** Named scalars: total, ce, kl, clone and every clone term. */
  readonly losses: Record<string, number>;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokens: number;
  /** Tokens trained in this process over the seconds its training steps took (runTraining: evaluations and checkpoints excluded). */
  readonly tokensPerSecond: number;
  readonly elapsedSeconds: number;
}

export interface EvalMetrics {
  readonly step: number;
  readonly loss: number;
  readonly perplexity: number;
  readonly tokens: number;
  readonly teacherLoss: number | null;
}

/** A non-finite loss term or gradient norm; the message names the step and the term. */
export class NonFiniteError extends Error {
  override readonly name = "NonFiniteError";
  constructor(readonly step: number, readonly term: string, readonly value: number) {
    super(`step ${step}: ${term === "gradient norm" ? "gradient norm" : `loss term ${term}`} is ${Number.isNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf"}`);
  }
}

/** The learning rate at 0-based step s: linear warmup over W steps (never 0), then decay. */
export function learningRate(s: number, total: number, peak: number, warmup: number, kind: "linear" | "cosine" | "constant"): number {
  if (s < warmup) return (peak * (s + 1)) / warmup;
  const span = Math.max(1, total - warmup);
  const p = (s - warmup) / span; // 0 at the end of warmup, (span-1)/span at the last step
  if (kind === "constant") return peak;
  if (kind === "linear") return peak * (1 - p);
  return peak * 0.5 * (1 + Math.cos(Math.PI * p));
}

/**
 * The warmup in steps. A warmupSteps longer than the run is refused, not capped: capping would silently run
 * a different schedule than the recipe's (HF's scheduler would never reach the peak lr), so the caller must
 * choose.
 */
export function warmupStepsFor(cfg: Pick<TrainerConfig, "steps" | "warmupSteps" | "warmupFraction">): number {
  if (cfg.warmupSteps !== undefined) {
    const w = Math.floor(cfg.warmupSteps);
    if (!(w >= 0)) throw new RangeError(`warmup steps must be >= 0, got ${cfg.warmupSteps}`);
    if (w > cfg.steps) throw new RangeError(`warmup of ${w} steps is longer than the run's ${cfg.steps} steps`);
    return w;
  }
  const f = cfg.warmupFraction ?? 0.005;
  if (!(f >= 0 && f < 1)) throw new RangeError(`warmup fraction must be in [0, 1), got ${f}`);
  return f === 0 ? 0 : Math.max(1, Math.round(f * cfg.steps));
}

/** The trainable tensors' names split into AdamW's two groups (with and without weight decay). */
export interface DecayGroups {
  readonly decay: string[];
  readonly noDecay: string[];
}

export function decayGroups(task: TrainTask, names: readonly string[], decayAll: boolean): DecayGroups {
  const off = (n: string) => !decayAll && (task.noDecay?.(n) ?? false);
  return { decay: names.filter((n) => !off(n)), noDecay: names.filter(off) };
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (v !== null && typeof v === "object")
    return `{${Object.keys(v as object).sort().map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
  return JSON.stringify(v) ?? "null";
}

/** The trainer's state besides the trainable tensors: what a checkpoint holds so a resumed run continues bit-exactly. */
export interface TrainerState {
  readonly step: number;
  readonly tokens: number;
  /** The configuration that must match on resume, and its hash. */
  readonly configHash: string;
  readonly config: Record<string, unknown>;
  /** AdamW's moments, slots in the order of the trainer's `names`. */
  readonly optimizer: AdamWState;
  readonly reader: ReaderState;
  readonly rng: RngState;
  /** The teacher's val loss, cached after the first evaluation. */
  readonly teacherVal: number | null;
}

export class Trainer {
  readonly task: TrainTask;
  readonly train: BatchSource;
  readonly val: EvalSource | null;
  readonly cfg: TrainerConfig;
  readonly names: string[];
  readonly params: Tensor[];
  readonly optimizer: AdamW;
  /** Which tensors decay (listed in run.json and the checkpoint's configuration). */
  readonly groups: DecayGroups;
  rng: Rng;
  /** The configuration that must match on resume, and its hash. */
  readonly identity: Record<string, unknown>;
  readonly configHash: string;
  private readonly accum: Tensor[];
  /** The optimizer's tensor order (groups in turn) as indices into params. */
  private readonly optOrder: number[];
  private readonly warmup: number;
  step = 0;
  tokens = 0;
  private teacherVal: number | null = null;
  /** The latest evaluation (null before the first). */
  lastEval: EvalMetrics | null = null;

  constructor(task: TrainTask, train: BatchSource, val: EvalSource | null, cfg: TrainerConfig) {
    if (!Number.isInteger(cfg.steps) || cfg.steps < 1) throw new RangeError(`steps must be a positive integer, got ${cfg.steps}`);
    const accum = cfg.gradAccum ?? 1;
    if (!Number.isInteger(accum) || accum < 1) throw new RangeError(`gradAccum must be a positive integer, got ${accum}`);
    this.task = task;
    this.train = train;
    this.val = val;
    this.cfg = cfg;
    const named = task.params();
    this.names = Object.keys(named);
    this.params = Object.values(named);
    this.groups = decayGroups(task, this.names, cfg.decayAll ?? false);
    const byName = (ns: string[]) => ns.map((n) => named[n]!);
    this.optimizer = new AdamW(
      [{ params: byName(this.groups.decay) }, { params: byName(this.groups.noDecay), weightDecay: 0 }].filter((g) => g.params.length > 0),
      { lr: cfg.lr ?? 1e-4, weightDecay: cfg.weightDecay ?? 0, beta1: cfg.beta1 ?? 0.9, beta2: cfg.beta2 ?? 0.999, eps: cfg.adamEps ?? 1e-8 },
    );
    this.optOrder = this.optimizer.params.map((p) => this.params.indexOf(p));
    this.accum = this.params.map((p) => keep(full(p.shape, 0, { dtype: p.dtype })));
    this.rng = new Rng(cfg.seed ?? 0);
    this.warmup = warmupStepsFor(cfg);
    this.identity = JSON.parse(JSON.stringify({
      task: task.describe(),
      params: this.names.map((n, i) => [n, this.params[i]!.shape]),
      steps: cfg.steps, lr: cfg.lr ?? 1e-4, weightDecay: cfg.weightDecay ?? 0, betas: [cfg.beta1 ?? 0.9, cfg.beta2 ?? 0.999],
      // The no-decay group changes the math only with weight decay; an all-decay run's configuration reads as before.
      ...((cfg.weightDecay ?? 0) > 0 && this.groups.noDecay.length > 0 ? { noDecay: this.groups.noDecay } : {}),
      adamEps: cfg.adamEps ?? 1e-8, schedule: cfg.schedule ?? "linear", warmup: this.warmup, gradClip: cfg.gradClip ?? 1,
      gradAccum: accum, seed: cfg.seed ?? 0, batch: train.describe(), extra: cfg.describe ?? null,
    })) as Record<string, unknown>;
    this.configHash = sha256Hex(new TextEncoder().encode(stableJson(this.identity))).slice(0, 16);
  }

  /** The optimizer's state with its slots in the order of `names` (the checkpoint's order). */
  async optimizerState(): Promise<AdamWState> {
    const s = await this.optimizer.stateAsync();
    const slot = this.names.map((_, i) => this.optOrder.indexOf(i));
    return { step: s.step, m: slot.map((j) => s.m[j]!), v: slot.map((j) => s.v[j]!) } as AdamWState;
  }

  /** Loads a state whose slots are in the order of `names`. */
  loadOptimizerState(s: AdamWState): void {
    this.optimizer.loadState({ step: s.step, m: this.optOrder.map((i) => s.m[i]!), v: this.optOrder.map((i) => s.v[i]!) } as AdamWState);
  }

  /** The state a checkpoint saves beside the trainable tensors (read asynchronously, as webgpu needs). */
  async state(): Promise<TrainerState> {
    return {
      step: this.step, tokens: this.tokens, configHash: this.configHash, config: this.identity, optimizer: await this.optimizerState(),
      reader: this.train.state(), rng: this.rng.state(), teacherVal: this.teacherVal,
    };
  }

  /**
   * Continues from a saved state (the trainable tensors are loaded by the caller): refuses a state of another
   * configuration or beyond cfg.steps, naming `source` (the checkpoint directory) and what differs.
   */
  restore(s: TrainerState, source: string): void {
    if (s.step > this.cfg.steps)
      throw new Error(`${source}/state.json: "step" ${s.step} is beyond the run's ${this.cfg.steps} steps; resume with the same --steps/--tokens`);
    if (s.configHash !== this.configHash) {
      const diffs = Object.keys({ ...this.identity, ...s.config }).filter((k) => stableJson(this.identity[k]) !== stableJson(s.config[k]));
      throw new Error(
        `${source}: the checkpoint was written with a different configuration (differs in: ${diffs.join(", ") || "unknown"}); ` +
          "resume with the same flags, or start a new --out directory",
      );
    }
    this.loadOptimizerState(s.optimizer);
    try {
      this.train.restore(s.reader);
    } catch (e) {
      throw new Error(`${source}/state.json: "reader" does not fit this data: ${(e as Error).message}`);
    }
    this.rng = Rng.fromState(s.rng);
    this.step = s.step;
    this.tokens = s.tokens;
    this.teacherVal = s.teacherVal;
  }

  /** Mean loss / perplexity of the task's model on the val source (teacher's once, cached). */
  async evaluate(): Promise<EvalMetrics | null> {
    if (this.val === null) return null;
    const r = await this.val.evaluate(this.task.evalModel());
    if (this.teacherVal === null) {
      const tm = this.task.teacherEvalModel?.() ?? null;
      if (tm !== null) this.teacherVal = (await this.val.evaluate(tm)).loss;
    }
    const m: EvalMetrics = { step: this.step, loss: r.loss, perplexity: Math.exp(r.loss), tokens: r.tokens, teacherLoss: this.teacherVal };
    this.lastEval = m;
    return m;
  }

  /**
   * One optimizer step (gradAccum micro-batches). Returns its metrics (mean over micro-batches). Async: the
   * loss terms and the gradients' sums of squares are read asynchronously, which webgpu needs (it reads back
   * only asynchronously); on the other backends those reads resolve at once.
   */
  async step1(): Promise<{ losses: Record<string, number>; lr: number; gradNorm: number; tokens: number }> {
    const stepNo = this.step + 1;
    const lr = learningRate(this.step, this.cfg.steps, this.cfg.lr ?? 1e-4, this.warmup, this.cfg.schedule ?? "linear");
    this.optimizer.lr = lr;
    const accum = this.cfg.gradAccum ?? 1;
    // Several micro-batches sum into fresh zeros (host values, uploaded by the first accumulate on a device
    // backend): nothing is read back. One micro-batch's gradients become the accumulators as they are, with no
    // zero fill and no pass over them (0 + g is g, up to the sign of a zero, which AdamW's update ignores).
    this.accum.forEach((a, i) => {
      a.dispose();
      if (accum > 1) this.accum[i] = keep(full(a.shape, 0, { dtype: a.dtype }));
    });
    const sums: Record<string, number> = {};
    let tokens = 0;
    for (let micro = 0; micro < accum; micro++) {
      const batch: Batch = this.train.next();
      tokens += batch.inputs.length;
      // Forward and backward in one scope; the loss terms and the gradients escape it, to be read below.
      const out = scope(() => {
        const l: TaskLoss = this.task.loss(batch);
        l.total.backward();
        const grads = this.params.map((p) => {
          const g = p.grad;
          p.grad = null;
          return g;
        });
        return { terms: { ...l.parts, total: l.total }, grads };
      });
      const held = [...Object.values(out.terms), ...out.grads.filter((g): g is Tensor => g !== null)];
      const adopted = new Set<Tensor>();
      try {
        await Promise.all(Object.values(out.terms).map((t) => t.toHostAsync()));
        const values: Record<string, number> = {};
        for (const [k, t] of Object.entries(out.terms)) values[k] = t.item();
        // Name the most specific term first: clone terms, then ce/kl/clone, then the total.
        const order = [...Object.keys(values).filter((k) => k.startsWith("layers.")), ...Object.keys(values).filter((k) => !k.startsWith("layers.") && k !== "total"), "total"];
        for (const k of order) if (!Number.isFinite(values[k]!)) throw new NonFiniteError(stepNo, k, values[k]!);
        for (const [k, v] of Object.entries(values)) sums[k] = (sums[k] ?? 0) + v / accum;
        // Added where the gradients live (on the device on a gpu backend): nothing is read back here.
        out.grads.forEach((g, i) => {
          const p = this.params[i]!;
          if (accum > 1) {
            if (g !== null) accumulate(this.accum[i]!, g, accum);
          } else {
            this.accum[i] = keep(g ?? full(p.shape, 0, { dtype: p.dtype }));
            if (g !== null) adopted.add(g);
          }
        });
      } finally {
        for (const t of held) if (!adopted.has(t)) t.dispose();
      }
    }
    // The clip runs where the gradients live and reads one sum of squares per gradient (asynchronously for webgpu).
    const clip = this.cfg.gradClip ?? 1;
    const gradNorm = await clipGradNormAsync(this.accum, clip > 0 ? clip : Infinity);
    if (!Number.isFinite(gradNorm)) throw new NonFiniteError(stepNo, "gradient norm", gradNorm);
    this.optimizer.step(this.optOrder.map((i) => this.accum[i]!));
    this.step = stepNo;
    this.tokens += tokens;
    return { losses: sums, lr, gradNorm, tokens };
  }
}
