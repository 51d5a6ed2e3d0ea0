// The token-efficiency ratio and the report's rendering.

import { describe, expect, it } from "vitest";
import { accuracyTable, efficiencySentence, renderMarkdown, renderTerminal, tokenEfficiency, type ModelRow, type RunReport } from "./report.js";

describe("tokenEfficiency", () => {
  const curve = [
    { tokens: 100, loss: 6 },
    { tokens: 200, loss: 5.2 },
    { tokens: 300, loss: 5.0 },
    { tokens: 400, loss: 4.8 },
  ];

  it("is the first evaluated token count at which the baseline matched the LRC loss", () => {
    const e = tokenEfficiency(curve, 5.0, 100);
    expect(e).toMatchObject({ matched: true, baselineTokens: 300, ratio: 3, baselineMaxTokens: 400 });
    expect(efficiencySentence(e)).toMatch(/needed 300 tokens .* 3\.00x/);
  });

  it("is a lower bound when the baseline never got there", () => {
    const e = tokenEfficiency(curve, 4.5, 100);
    expect(e).toMatchObject({ matched: false, baselineTokens: null, ratio: 4 });
    expect(efficiencySentence(e)).toMatch(/did not reach .* within 400 tokens \(> 4\.00x/);
  });

  it("uses the first match even if the curve goes up again later", () => {
    expect(tokenEfficiency([{ tokens: 10, loss: 3 }, { tokens: 20, loss: 1 }, { tokens: 30, loss: 2 }], 2, 10).baselineTokens).toBe(20);
  });
});

const row = (name: string, loss: number, tokens: number | null): ModelRow => ({
  name, arch: "Qwen2 D=8", parameters: 1000, trainable: null, valLoss: loss, valPerplexity: Math.exp(loss), tokens,
  wallSeconds: 1.5, tokensPerSecond: 100, dir: null,
});

describe("renderMarkdown / renderTerminal", () => {
  it("shows every model, the ratio, the batch check and the samples", () => {
    const r: RunReport = {
      title: "t", mode: "embedded", preset: "quick", corpus: "c", tokenizer: "tok", backend: "cpu", seed: 0, seqLen: 8, batchSize: 2,
      evalDescription: "e", teacher: row("teacher", 4, 1000), lrc: row("LRC student", 4.5, 100), baseline: row("from scratch, same tokens", 5.5, 100),
      baselineLong: row("from scratch, 2x tokens", 5, 200), efficiency: tokenEfficiency([{ tokens: 100, loss: 5.5 }, { tokens: 200, loss: 5 }], 4.5, 100),
      batches: { lrc: "ab".repeat(32), baseline: "ab".repeat(32), identical: true },
      lrcCurve: [{ tokens: 100, loss: 4.5 }], baselineCurve: [{ tokens: 100, loss: 5.5 }, { tokens: 200, loss: 5 }],
      samples: [{ model: "teacher", prompt: "The Congress", completion: " shall" }],
      stages: [{ name: "data", seconds: 1, cached: true }], totalSeconds: 12, cpuSeconds: 20, files: { report: "r.md" }, settings: { a: 1 },
    };
    const md = renderMarkdown(r);
    for (const s of ["| teacher |", "| LRC student |", "| from scratch, same tokens |", "| from scratch, 2x tokens |", "> 2.00x", "identical", "\"The Congress shall\"", "data (cached)"])
      expect(md).toContain(s);
    expect(md).toContain(`**${Math.exp(4.5).toFixed(2)}**`);
    const term = renderTerminal(r);
    expect(term).toContain("same batches for LRC and baseline: yes");
    expect(term).toContain("[teacher] \"The Congress shall\"");
  });

  it("renders the zero-shot accuracy table with the paper's metric in bold and its average", () => {
    const sc = (acc: number, accNorm: number) => ({ n: 20, acc, acc_stderr: 0.1, acc_norm: accNorm, acc_norm_stderr: 0.1 });
    expect(accuracyTable([
      { model: "teacher", tasks: { arc_challenge: sc(0.3, 0.4), piqa: sc(0.6, 0.55) } },
      { model: "LRC student", tasks: { arc_challenge: sc(0.25, 0.35), piqa: sc(0.5, 0.5) } },
    ])).toEqual([
      "| model | arc_challenge (n=20) | piqa (n=20) | average |",
      "|---|---:|---:|---:|",
      "| teacher | 30.0 (**40.0**) | **60.0** (55.0) | 50.0 |",
      "| LRC student | 25.0 (**35.0**) | **50.0** (50.0) | 42.5 |",
    ]);
  });
});
