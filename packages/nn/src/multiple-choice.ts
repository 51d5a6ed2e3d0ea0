// Zero-shot multiple-choice accuracy as lm-evaluation-harness computes it (lm_eval/api/task.py
// ConfigurableTask, output_type multiple_choice): one request per choice, (context, " " + choice); acc is
// argmax(ll) == gold and acc_norm is argmax(ll / len(choice in characters)) == gold (numpy's argmax: the first
// index on ties). Partial scoring (WinoGrande, lm-eval's multiple_input): one context per choice and one
// shared continuation, (contexts[i], " " + target); acc_norm then divides by the contexts' lengths, as lm-eval
// does (it measures doc_to_choice, which are the contexts there). Standard errors are lm-eval's mean_stderr:
// the sample standard deviation (n - 1) over sqrt(n); NaN for fewer than two documents.

import type { LanguageModel } from "./generate.js";
import type { Encode, LoglikelihoodOptions, LoglikelihoodRequest } from "./loglikelihood.js";
import { encodeRequest, loglikelihoods } from "./loglikelihood.js";

/** lm-eval's default target_delimiter. */
export const TARGET_DELIMITER = " ";

/** One document: a shared context and its choices, or (partial scoring) one context per choice and a shared target. */
export type MultipleChoiceDoc =
  | { readonly context: string; readonly choices: readonly string[]; readonly gold: number }
  | { readonly contexts: readonly string[]; readonly target: string; readonly gold: number };

export interface MultipleChoiceSample {
  /** One log-likelihood per choice, in choice order. */
  readonly loglikelihoods: number[];
  readonly isGreedy: boolean[];
  readonly gold: number;
  readonly pred: number;
  readonly predNorm: number;
}

export interface MultipleChoiceResult {
  readonly n: number;
  readonly acc: number;
  readonly accStderr: number;
  readonly accNorm: number;
  readonly accNormStderr: number;
  readonly samples: MultipleChoiceSample[];
}

export interface MultipleChoiceOptions extends LoglikelihoodOptions {
  /** Token id for an empty context (lm-eval's prefix_token_id: the tokenizer's BOS, else its EOS). */
  readonly prefixToken: number;
}

/** The (context, continuation) text pairs of a document, and the strings acc_norm measures. */
export function docRequests(doc: MultipleChoiceDoc): { pairs: [string, string][]; normStrings: readonly string[] } {
  if ("context" in doc) return { pairs: doc.choices.map((c) => [doc.context, TARGET_DELIMITER + c]), normStrings: doc.choices };
  return { pairs: doc.contexts.map((c) => [c, TARGET_DELIMITER + doc.target]), normStrings: doc.contexts };
}

/** What is wrong with a document (fewer than two choices, a gold index out of range), or null. */
export function docProblem(doc: MultipleChoiceDoc): { field: "choices" | "gold"; message: string } | null {
  const n = docRequests(doc).pairs.length;
  if (n < 2) return { field: "choices", message: `${n} choice(s); at least 2 are needed` };
  if (!Number.isInteger(doc.gold) || doc.gold < 0 || doc.gold >= n) return { field: "gold", message: `the answer index ${doc.gold} is not one of the ${n} choices` };
  return null;
}

/** numpy.argmax: the first index of the maximum. */
function argmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** lm-eval's mean_stderr: sample standard deviation / sqrt(n). */
export function meanStderr(xs: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mu = xs.reduce((s, x) => s + x, 0) / n;
  const ss = xs.reduce((s, x) => s + (x - mu) * (x - mu), 0);
  return Math.sqrt(ss / (n - 1)) / Math.sqrt(n);
}

/** Scores one document's log-likelihoods (pred, pred_norm) as lm-eval's process_results does. */
export function scoreDoc(doc: MultipleChoiceDoc, lls: readonly number[]): { pred: number; predNorm: number } {
  const { normStrings } = docRequests(doc);
  return { pred: argmax(lls), predNorm: argmax(lls.map((l, i) => l / normStrings[i]!.length)) };
}

/** Accuracy (acc, acc_norm and their standard errors) of a model on multiple-choice documents. */
export async function evaluateMultipleChoice(
  model: LanguageModel, encode: Encode, docs: readonly MultipleChoiceDoc[], opts: MultipleChoiceOptions,
): Promise<MultipleChoiceResult> {
  const requests: LoglikelihoodRequest[] = [];
  const starts: number[] = [];
  docs.forEach((doc, d) => {
    const problem = docProblem(doc);
    if (problem !== null) throw new RangeError(`evaluateMultipleChoice: document ${d}: ${problem.message}`);
    const { pairs } = docRequests(doc);
    starts.push(requests.length);
    for (const [c, t] of pairs) requests.push(encodeRequest(encode, c, t, opts.prefixToken));
  });
  starts.push(requests.length);
  const { prefixToken: _prefix, ...llOpts } = opts;
  const results = await loglikelihoods(model, requests, llOpts);
  const samples: MultipleChoiceSample[] = docs.map((doc, d) => {
    const rs = results.slice(starts[d]!, starts[d + 1]!);
    const lls = rs.map((r) => r.logprob);
    const { pred, predNorm } = scoreDoc(doc, lls);
    return { loglikelihoods: lls, isGreedy: rs.map((r) => r.isGreedy), gold: doc.gold, pred, predNorm };
  });
  const acc = samples.map((s) => (s.pred === s.gold ? 1 : 0));
  const accNorm = samples.map((s) => (s.predNorm === s.gold ? 1 : 0));
  const mean = (xs: number[]) => (xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length);
  return { n: docs.length, acc: mean(acc), accStderr: meanStderr(acc), accNorm: mean(accNorm), accNormStderr: meanStderr(accNorm), samples };
}
