// Command-line parsing: defaults, every flag, and clear errors for bad input.

import { describe, expect, it } from "vitest";
import { DEFAULT_PRESET, HUB_PRESET, QUICK_PRESET, UsageError, parseCli } from "./options.js";

describe("parseCli", () => {
  it("has the embedded defaults with no arguments (and skips pnpm's leading --)", () => {
    for (const argv of [[], ["--"]])
      expect(parseCli(argv)).toEqual({
        help: false, quick: false, teacher: null, data: [], out: null, hiddenSize: null, tokens: null, seed: 0, baselineMultiple: null, lr: null, prompts: null,
        tasks: null, taskLimit: null,
      });
  });

  it("reads every flag", () => {
    const o = parseCli([
      "--teacher", "models/q", "--data", "a.txt,b.jsonl", "--data=c/", "--out", "o", "--hidden-size", "448", "--tokens", "65536", "--seed", "3",
      "--baseline-multiple", "2", "--lr", "1e-3", "--prompt", "Hello", "--prompt", "World", "--tasks", "t/", "--task-limit", "50",
    ]);
    expect(o).toMatchObject({
      teacher: "models/q", data: ["a.txt", "b.jsonl", "c/"], out: "o", hiddenSize: 448, tokens: 65536, seed: 3, baselineMultiple: 2, lr: 1e-3, prompts: ["Hello", "World"],
      tasks: "t/", taskLimit: 50,
    });
    expect(parseCli(["--quick"]).quick).toBe(true);
    expect(parseCli(["--help"]).help).toBe(true);
  });

  it("rejects unknown flags, bad numbers and inconsistent combinations with a message naming the flag", () => {
    const bad: Array<[string[], RegExp]> = [
      [["--bogus"], /bogus/],
      [["stray"], /stray/],
      [["--tokens", "1.5"], /--tokens must be a positive integer/],
      [["--hidden-size", "0"], /--hidden-size/],
      [["--seed", "-1"], /--seed/],
      [["--lr", "x"], /--lr/],
      [["--teacher", "m"], /--teacher needs --data/],
      [["--data", "a.txt"], /--data is only used with --teacher/],
      [["--teacher", "m", "--data", "a", "--quick"], /--quick/],
      [["--task-limit", "5"], /--task-limit is only used with --tasks/],
      [["--tasks", "t", "--task-limit", "0"], /--task-limit must be a positive integer/],
    ];
    for (const [argv, re] of bad) {
      expect(() => parseCli(argv), argv.join(" ")).toThrow(UsageError);
      expect(() => parseCli(argv), argv.join(" ")).toThrow(re);
    }
  });
});

describe("presets", () => {
  it("keep the student at half the teacher's width with whole heads, and fit the teacher's context", () => {
    for (const p of [DEFAULT_PRESET, QUICK_PRESET, HUB_PRESET]) {
      expect(p.teacher.hiddenSize % p.teacher.heads).toBe(0);
      expect(p.teacher.heads % p.teacher.kvHeads).toBe(0);
      expect((p.teacher.hiddenSize / 2) % 1).toBe(0);
      expect(p.lrcSteps % p.evalsPerBudget).toBe(0);
      expect(p.baselineMultiple).toBeGreaterThanOrEqual(1);
    }
  });
});
