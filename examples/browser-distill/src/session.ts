// The work of one Low-Rank Clone run in the page, with no DOM and no file system, so it runs the same in the
// page's Web Worker and in a Node test: load a teacher from its HF files in memory, tokenize a corpus with
// the teacher's tokenizer.json, hold out the last tenth of the tokens for validation, build the clone and a
// Trainer, then one optimizer step at a time; evaluate, sample from the student and the teacher, and
// export the folded student as HF files (config.json, model.safetensors, tokenizer files).

import { generate, loadCausalLMFromFiles } from "@lrc-ts/nn";
import type { CausalLM, LanguageModel } from "@lrc-ts/nn";
import { TokenWindowReader, tokenizerFromJson } from "@lrc-ts/data";
import type { TextTokenizer } from "@lrc-ts/data";
import { LowRankClone, LrcTask, Trainer, tokenEvalSource } from "@lrc-ts/lrc";
import type { EvalMetrics } from "@lrc-ts/lrc";

export interface SessionOptions {
  /** Student residual width d (< the teacher's hidden_size). */
  readonly hiddenSize: number;
  readonly steps: number;
  readonly batchSize: number;
  readonly seqLen: number;
  readonly lr: number;
  /** KL temperature τ. */
  readonly temperature: number;
  /** Weight α of the clone terms. */
  readonly alpha: number;
  readonly seed: number;
}

export const DEFAULT_OPTIONS: SessionOptions = { hiddenSize: 32, steps: 150, batchSize: 4, seqLen: 32, lr: 5e-3, temperature: 2, alpha: 0.5, seed: 0 };

/** What one step reports (losses by name: total, ce, kl, clone and each clone term). */
export interface StepReport {
  readonly step: number;
  readonly totalSteps: number;
  readonly losses: Record<string, number>;
  readonly lr: number;
  readonly gradNorm: number;
  readonly tokensPerSecond: number;
  readonly seconds: number;
}

export interface SessionInfo {
  readonly teacher: { hiddenSize: number; layers: number; heads: number; vocab: number; params: number };
  readonly studentHiddenSize: number;
  readonly trainable: number;
  readonly trainTokens: number;
  readonly valTokens: number;
  readonly vocabSize: number;
}

/** Sampling settings for the live samples (seeded, so a run is repeatable). */
const SAMPLE = { maxNewTokens: 32, temperature: 0.8, topK: 40 } as const;

function fail(msg: string): never {
  throw new Error(msg);
}

function positiveInt(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 1) fail(`${what} must be a positive integer, got ${v}`);
}

export class DistillSession {
  readonly trainer: Trainer;
  readonly info: SessionInfo;
  private readonly started = Date.now();
  private tokensDone = 0;

  private constructor(
    readonly teacher: CausalLM,
    readonly tokenizer: TextTokenizer,
    readonly clone: LowRankClone,
    readonly task: LrcTask,
    private readonly teacherFiles: ReadonlyMap<string, Uint8Array>,
    readonly options: SessionOptions,
    trainTokens: Int32Array,
    valTokens: Int32Array,
  ) {
    const o = options;
    const val = tokenEvalSource(valTokens, { seqLen: o.seqLen, batchSize: o.batchSize, maxBatches: 4 });
    const reader = new TokenWindowReader(trainTokens, { seqLen: o.seqLen, batchSize: o.batchSize, seed: o.seed, vocabSize: teacher.config.vocab_size, source: "corpus" });
    this.trainer = new Trainer(task, reader, val, {
      steps: o.steps, lr: o.lr, warmupSteps: Math.min(10, Math.max(1, Math.floor(o.steps / 20))), seed: o.seed,
    });
    const c = teacher.config;
    this.info = {
      teacher: {
        hiddenSize: c.hidden_size, layers: c.num_hidden_layers, heads: c.num_attention_heads, vocab: c.vocab_size,
        params: teacher.namedParameters().reduce((s, [, t]) => s + t.size, 0),
      },
      studentHiddenSize: o.hiddenSize,
      trainable: clone.numTrainable(),
      trainTokens: trainTokens.length,
      valTokens: valTokens.length,
      vocabSize: tokenizer.vocabSize,
    };
  }

  /**
   * Loads the teacher (config.json + model.safetensors + tokenizer.json among `teacherFiles`), tokenizes
   * `corpus` and sets up the clone and the trainer. Errors name the file and what is wrong.
   */
  static async create(teacherFiles: ReadonlyMap<string, Uint8Array>, corpus: string, options: SessionOptions): Promise<DistillSession> {
    const o = options;
    positiveInt(o.hiddenSize, "student hidden size");
    positiveInt(o.steps, "steps");
    positiveInt(o.batchSize, "batch size");
    positiveInt(o.seqLen, "sequence length");
    if (!(o.lr > 0)) fail(`learning rate must be positive, got ${o.lr}`);
    if (!(o.temperature > 0)) fail(`temperature must be positive, got ${o.temperature}`);
    const tokJson = teacherFiles.get("tokenizer.json") ?? fail("teacher/tokenizer.json: missing (pick the teacher's folder with its tokenizer.json)");
    const teacher = await loadCausalLMFromFiles(teacherFiles, { source: "teacher" });
    teacher.freeze();
    const c = teacher.config;
    if (o.hiddenSize >= c.hidden_size) fail(`student hidden size ${o.hiddenSize} must be smaller than the teacher's hidden_size ${c.hidden_size}`);
    if (o.seqLen > c.max_position_embeddings) fail(`sequence length ${o.seqLen} exceeds the teacher's max_position_embeddings ${c.max_position_embeddings}`);
    const tokenizer = tokenizerFromJson(tokJson, { path: "teacher/tokenizer.json" });
    if (tokenizer.vocabSize > c.vocab_size)
      fail(`teacher/tokenizer.json has ${tokenizer.vocabSize} tokens, more than the teacher's vocab_size ${c.vocab_size}`);
    const text = corpus.replace(/\r\n?/g, "\n");
    if (text.trim() === "") fail("corpus: the text is empty");
    const ids = tokenizer.encode(text);
    ids.push(tokenizer.eosId);
    const tokens = Int32Array.from(ids);
    const valCount = Math.max(o.seqLen + 1, Math.floor(tokens.length / 10));
    const trainCount = tokens.length - valCount;
    if (trainCount < o.batchSize * o.seqLen + 1)
      fail(`corpus: ${tokens.length} tokens are too few for batches of ${o.batchSize} x ${o.seqLen} plus a validation tenth; give more text`);
    const clone = new LowRankClone(teacher, { hiddenSize: o.hiddenSize, alpha: o.alpha, temperature: o.temperature, seed: o.seed });
    return new DistillSession(teacher, tokenizer, clone, new LrcTask(clone), teacherFiles, o, tokens.slice(0, trainCount), tokens.slice(trainCount));
  }

  get step(): number {
    return this.trainer.step;
  }

  get done(): boolean {
    return this.trainer.step >= this.options.steps;
  }

  /** One optimizer step. */
  async next(): Promise<StepReport> {
    const s = await this.trainer.step1();
    this.tokensDone += s.tokens;
    const seconds = (Date.now() - this.started) / 1000;
    return {
      step: this.trainer.step, totalSteps: this.options.steps, losses: s.losses, lr: s.lr, gradNorm: s.gradNorm,
      tokensPerSecond: seconds > 0 ? this.tokensDone / seconds : 0, seconds,
    };
  }

  /** Student val loss (and the teacher's, computed once). */
  async evaluate(): Promise<EvalMetrics> {
    return (await this.trainer.evaluate())!;
  }

  private async sampleFrom(model: LanguageModel, prompt: string): Promise<string> {
    const ids = this.tokenizer.encode(prompt);
    if (ids.length === 0) ids.push(this.tokenizer.eosId);
    const r = await generate(model, ids, { ...SAMPLE, seed: this.options.seed, stopTokens: [this.tokenizer.eosId] });
    return this.tokenizer.decode(r.tokens);
  }

  /** A continuation of `prompt` by the student as it is now. */
  sampleStudent(prompt: string): Promise<string> {
    return this.sampleFrom(this.task.evalModel(), prompt);
  }

  /** A continuation of `prompt` by the teacher. */
  sampleTeacher(prompt: string): Promise<string> {
    return this.sampleFrom(this.teacher, prompt);
  }

  /** The folded student as HF files: config.json, model.safetensors and the teacher's tokenizer files. */
  exportFiles(): Promise<Map<string, Uint8Array>> {
    return this.clone.exportStudentFiles({ tokenizerFiles: this.teacherFiles });
  }
}
