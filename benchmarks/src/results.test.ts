// Unit tests of the pure parts of the harness: the regression comparison, results-file validation,
// flag parsing, case filtering and the README section replacement. No benchmark runs here.

import { describe, expect, it } from "vitest";
import { allCases } from "./cases.js";
import { parseArgs } from "./cli.js";
import { sanitize } from "./machine.js";
import { planGroups } from "./plan.js";
import { README_END, README_START, replaceReadmeSection, suiteTable } from "./report.js";
import { findRegressions, mergeResults, parseResults, recordKey } from "./results.js";
import type { BenchRecord, ResultsFile } from "./results.js";

const rec = (name: string, medianMs: number, impl: BenchRecord["impl"] = "lrc-ts", threads = 1): BenchRecord => ({
  suite: "kernels", case: name, impl, threads, medianMs, meanMs: medianMs, minMs: medianMs, rmePct: 1, samples: 10,
});

describe("findRegressions", () => {
  it("flags a throughput drop above 20% and nothing else", () => {
    const base = [rec("a", 10), rec("b", 10), rec("c", 10), rec("d", 10)];
    // a: 1 - 10/12.4 = 19.4% drop (ok); b: 1 - 10/12.6 = 20.6% (flagged); c: faster; d: missing now.
    const now = [rec("a", 12.4), rec("b", 12.6), rec("c", 5), rec("e", 100)];
    const regs = findRegressions(base, now);
    expect(regs.map((r) => r.key)).toEqual([recordKey(rec("b", 0))]);
    expect(regs[0]!.drop).toBeCloseTo(1 - 10 / 12.6, 10);
  });

  it("matches records by implementation and thread count", () => {
    const base = [rec("a", 10, "lrc-ts", 1), rec("a", 5, "lrc-ts", 2)];
    const now = [rec("a", 10, "lrc-ts", 2), rec("a", 10, "tfjs-wasm", 1)];
    expect(findRegressions(base, now).map((r) => r.key)).toEqual([recordKey(rec("a", 0, "lrc-ts", 2))]);
  });

  it("sorts the worst drop first and honours a custom threshold", () => {
    const regs = findRegressions([rec("a", 10), rec("b", 10)], [rec("a", 15), rec("b", 40)], 0.1);
    expect(regs.map((r) => r.key)).toEqual([recordKey(rec("b", 0)), recordKey(rec("a", 0))]);
  });
});

describe("parseResults", () => {
  const good = { schema: 1, machine: { id: "x" }, records: [rec("a", 1)], skipped: [], notes: [], external: [] };
  it("accepts a valid file", () => {
    expect(parseResults(JSON.stringify(good), "f.json").records).toHaveLength(1);
  });
  it("names the file and field on bad input", () => {
    expect(() => parseResults("{", "f.json")).toThrow(/f\.json: not valid JSON/);
    expect(() => parseResults(JSON.stringify({ ...good, schema: 2 }), "f.json")).toThrow(/f\.json: field "schema"/);
    expect(() => parseResults(JSON.stringify({ ...good, records: [{ case: "a" }] }), "f.json")).toThrow(/records\[0\]/);
  });
});

describe("mergeResults", () => {
  const file = (records: BenchRecord[], command: string): ResultsFile => ({
    schema: 1, date: "2026-01-01", machine: { id: "m", cpu: "c", cores: 2, memoryGiB: 1, node: "v20", platform: "linux" },
    command, quick: false, records, skipped: [], notes: [command], external: [],
  });
  it("replaces the re-run cases and keeps the others", () => {
    const prev = file([rec("a", 10), rec("b", 10), rec("a", 20, "tfjs-wasm")], "full");
    const next = file([rec("a", 5)], "filtered");
    const m = mergeResults(prev, next);
    expect(m.records.map((r) => `${recordKey(r)}=${r.medianMs}`).sort()).toEqual(
      [`${recordKey(rec("a", 0))}=5`, `${recordKey(rec("b", 0))}=10`, `${recordKey(rec("a", 0, "tfjs-wasm"))}=20`].sort(),
    );
    expect(m.command).toBe("full; then filtered");
    expect(m.notes).toEqual(["full", "filtered"]);
  });
});

describe("parseArgs", () => {
  it("parses every flag", () => {
    const a = parseArgs(["--json", "--quick", "--filter", "MatMul", "--filter", "e2e/", "--threads", "2,1,2", "--readme"]);
    expect(a).toMatchObject({ json: true, quick: true, readme: true, filters: ["matmul", "e2e/"], threads: [1, 2] });
  });
  it("rejects unknown flags and bad values with a clear message", () => {
    expect(() => parseArgs(["--fast"])).toThrow(/unknown option "--fast"/);
    expect(() => parseArgs(["--filter"])).toThrow(/--filter needs a value/);
    expect(() => parseArgs(["--threads", "0"])).toThrow(/--threads must be/);
  });
});

describe("planGroups", () => {
  it("runs each e2e case in its own process and filters by label", () => {
    const groups = planGroups(allCases(), [1, 2], ["e2e/pretrain step llama"]);
    expect(groups.every((g) => g.suite === "e2e" && g.cases.length === 1)).toBe(true);
    // lrc-ts at 1 and 2 threads, tfjs-wasm at 1 and 2, tfjs-cpu at 1.
    expect(groups.map((g) => `${g.impl}@${g.threads}`)).toEqual(["lrc-ts@1", "lrc-ts@2", "tfjs-cpu@1", "tfjs-wasm@1", "tfjs-wasm@2"]);
  });
  it("never gives TF.js the cases it cannot run", () => {
    const groups = planGroups(allCases(), [1], ["checkgrad", "distill"]);
    expect(groups.map((g) => g.impl)).toEqual(["lrc-ts", "lrc-ts"]);
  });
  it("case names are unique within a suite", () => {
    const names = allCases().map((c) => `${c.suite}/${c.name}`);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe("report", () => {
  it("puts ratios as TF.js time over lrc-ts time", () => {
    const table = suiteTable([rec("m", 10, "lrc-ts", 1), rec("m", 25, "tfjs-wasm", 1)], "kernels");
    expect(table).toContain("| m | 10.0 ms | 25.0 ms | 2.50× |");
  });
  it("replaces only the generated README section", () => {
    const readme = `intro\n${README_START}\nold\n${README_END}\noutro\n`;
    const out = replaceReadmeSection(readme, "new table");
    expect(out).toBe(`intro\n${README_START}\n\nnew table\n\n${README_END}\noutro\n`);
    expect(() => replaceReadmeSection("no markers", "x")).toThrow(/markers/);
  });
  it("sanitizes machine names for file names", () => {
    expect(sanitize("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")).toBe("intel-xeon-platinum-8375c-cpu-2-90ghz");
  });
});
