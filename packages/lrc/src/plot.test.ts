// The loss plot's y axis labels (log scale over one to several decades, linear inside a narrow range), the
// metrics log's plot (no duplicate "total" curve when total is ce) and its timestamped rows, the one status
// line (the commands' and, through Progress, training's) with and without a terminal, and the ETA without the
// warm-up step.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { statusLine } from "./node/status-line.js";
import { Progress } from "./node/progress.js";
import { MetricsLog, readMetrics } from "./node/metrics.js";
import { EtaClock, clock } from "./clock.js";
import { lossPlotSvg } from "./plot.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-plot-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** The y axis labels of a plot (the right-aligned tick texts), top to bottom reversed. */
function yLabels(svg: string): string[] {
  return [...svg.matchAll(/text-anchor="end" dominant-baseline="middle">([^<]*)</g)].map((m) => m[1]!);
}

const curve = (lo: number, hi: number) => Array.from({ length: 20 }, (_, i) => [i + 1, lo * (hi / lo) ** (i / 19)] as const);

describe("loss plot y axis", () => {
  it("data from 1 to 30 (1.5 decades) is labelled 1, 2, 5, 10, 20", () => {
    const svg = lossPlotSvg([{ name: "a", points: curve(1, 30) }]);
    expect(svg).toContain("(log scale)");
    expect(yLabels(svg)).toEqual(["1", "2", "5", "10", "20"]);
  });

  it("two and a half decades keep the 1-2-5 labels; five decades get the powers of ten", () => {
    expect(yLabels(lossPlotSvg([{ name: "a", points: curve(0.05, 15) }]))).toEqual(["0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10"]);
    expect(yLabels(lossPlotSvg([{ name: "a", points: curve(1e-3, 90) }]))).toEqual(["0.001", "0.01", "0.1", "1", "10", "100"]);
  });

  it("a range inside one decade gets round linear labels", () => {
    const labels = yLabels(lossPlotSvg([{ name: "a", points: curve(2.1, 2.6) }])).map(Number);
    expect(labels.length).toBeGreaterThanOrEqual(3);
    for (const v of labels) expect(v).toBeGreaterThan(2);
  });
});

describe("metrics log", () => {
  const step = (n: number, losses: Record<string, number>) => ({
    step: n, totalSteps: 3, losses, lr: 1e-3, gradNorm: 1, tokens: 10 * n, tokensPerSecond: 5, elapsedSeconds: n,
  });

  it("plain pretraining (total = ce) draws one curve; distillation draws total and ce; rows carry a timestamp", () => {
    const a = new MetricsLog(path.join(root, "a.jsonl"), path.join(root, "a.svg"));
    a.reset();
    for (let i = 1; i <= 3; i++) a.train(step(i, { total: 4 - i, ce: 4 - i }));
    a.eval({ step: 3, loss: 1.5, perplexity: Math.exp(1.5), tokens: 100, teacherLoss: null });
    a.plot();
    const svgA = fs.readFileSync(path.join(root, "a.svg"), "utf8");
    expect(svgA).toContain("train ce");
    expect(svgA).not.toContain("train total");
    const rows = readMetrics(path.join(root, "a.jsonl"));
    expect(rows).toHaveLength(4);
    for (const r of rows) expect(Date.now() - Date.parse(r.time)).toBeLessThan(60_000);

    const b = new MetricsLog(path.join(root, "b.jsonl"), path.join(root, "b.svg"));
    b.reset();
    for (let i = 1; i <= 3; i++) b.train(step(i, { total: 5 - i, ce: 4 - i, kl: 1 }));
    b.plot();
    const svgB = fs.readFileSync(path.join(root, "b.svg"), "utf8");
    expect(svgB).toContain("train total");
    expect(svgB).toContain("train ce");
  });
});

describe("status line", () => {
  function sink(tty: boolean): { stream: Writable & { isTTY?: boolean }; text: () => string } {
    let text = "";
    const stream = new Writable({ write: (chunk: Buffer, _enc, cb) => ((text += chunk.toString()), cb()) }) as Writable & { isTTY?: boolean };
    stream.isTTY = tty;
    return { stream, text: () => text };
  }

  it("without a terminal: the first update, then at most one per interval, and the last state at the end", () => {
    const s = sink(false);
    const line = statusLine(s.stream, 60_000);
    for (let i = 1; i <= 5; i++) line.update(`step ${i}`);
    line.done();
    expect(s.text()).toBe("step 1\nstep 5\n");
  });

  it("on a terminal: redraws in place and ends the line", () => {
    const s = sink(true);
    const line = statusLine(s.stream);
    line.update("a");
    line.update("b");
    line.done();
    expect(s.text()).toBe("\ra\x1b[K\rb\x1b[K\n");
  });
});

describe("training progress (drawn by the status line)", () => {
  function sink(tty: boolean): { stream: Writable & { isTTY?: boolean }; text: () => string } {
    let text = "";
    const stream = new Writable({ write: (chunk: Buffer, _enc, cb) => ((text += chunk.toString()), cb()) }) as Writable & { isTTY?: boolean };
    stream.isTTY = tty;
    return { stream, text: () => text };
  }
  const run = (tty: boolean) => {
    const s = sink(tty);
    const p = new Progress({ enabled: true, total: 100, label: "distill", stream: s.stream });
    for (let step = 1; step <= 100; step++) {
      p.update(step, { total: 1, ce: 0.5 }, 10, NaN);
      if (step === 50) p.note("step 50: val loss 1.0000");
    }
    p.done();
    return { text: s.text(), line: (n: number) => p.line(n, { total: 1, ce: 0.5 }, 10, NaN) };
  };

  it("without a terminal: the first and the last step at once, the rest at most every 5 s (and after a note), notes on their own lines", () => {
    const { text, line } = run(false);
    expect(line(100)).toBe("distill [####################] 100/100  loss 1.0000  ce 0.5000  10 tok/s  ETA --:--");
    expect(text).toBe(`${line(1)}\nstep 50: val loss 1.0000\n${line(51)}\n${line(100)}\n`);
  });

  it("on a terminal: redrawn in place, cleared for a note, the last step drawn and the line ended", () => {
    const { text, line } = run(true);
    expect(text).toBe(`\r${line(1)}\x1b[K\r\x1b[Kstep 50: val loss 1.0000\n\r${line(51)}\x1b[K\r${line(100)}\x1b[K\n`);
  });
});

describe("ETA", () => {
  it("leaves the first (warm-up) step out: 10 s warm-up then 1 s steps gives 1 s per remaining step", () => {
    const eta = new EtaClock(0);
    expect(eta.after(1, 100, 10_000)).toBeNaN();
    expect(clock(NaN)).toBe("--:--");
    expect(eta.after(2, 100, 11_000)).toBeCloseTo(98, 9);
    expect(eta.after(11, 100, 20_000)).toBeCloseTo(89, 9);
  });

  it("after a resume, counts from the first step of this process", () => {
    const eta = new EtaClock(50);
    expect(eta.after(51, 60, 5_000)).toBeNaN();
    expect(eta.after(53, 60, 9_000)).toBeCloseTo(14, 9);
  });
});
