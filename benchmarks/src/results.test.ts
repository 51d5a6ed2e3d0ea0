// Unit tests of the pure parts of the harness: the regression comparison, results-file validation,
// flag parsing, case filtering, how the gpu child is started, the report (the gpu backend's upload /
// compute / download table included) and the README section replacement. No benchmark runs here.

import { describe, expect, it } from "vitest";
import { allCases } from "./cases.js";
import { parseArgs } from "./cli.js";
import { sanitize } from "./machine.js";
import { needsXvfb, planGroups } from "./plan.js";
import { gpuTable, README_END, README_START, renderReport, replaceReadmeSection, suiteTable } from "./report.js";
import { findRegressions, mergeResults, parseResults, recordKey } from "./results.js";
import type { BenchRecord, GpuTiming, ResultsFile } from "./results.js";

const rec = (name: string, medianMs: number, impl: BenchRecord["impl"] = "lrc-ts", threads = 1): BenchRecord => ({
  suite: "kernels", case: name, impl, threads, medianMs, meanMs: medianMs, minMs: medianMs, rmePct: 1, samples: 10,
});

const gpuRec = (name: string, computeMs: number, gpu: Partial<GpuTiming> = {}): BenchRecord => ({
  ...rec(name, computeMs, "lrc-ts-gpu", 1),
  gpu: { mode: "gl", uploadMs: 2, downloadMs: 3, uploadBytes: 8 * 2 ** 20, downloadBytes: 4 * 2 ** 20, device: "ANGLE on Mesa swrast_dri.so", software: true, ...gpu },
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

  it("does not compare gpu cases run in another GPU.js mode or on another device", () => {
    const base = [gpuRec("a", 10), gpuRec("b", 10), gpuRec("c", 10)];
    const now = [gpuRec("a", 50, { mode: "webasm" }), gpuRec("b", 50, { device: "NVIDIA H200" }), gpuRec("c", 50)];
    expect(findRegressions(base, now).map((r) => r.key)).toEqual([recordKey(gpuRec("c", 0))]);
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
  it("accepts gpu timings and rejects malformed ones", () => {
    expect(parseResults(JSON.stringify({ ...good, records: [gpuRec("a", 1)] }), "f.json").records[0]!.gpu?.uploadMs).toBe(2);
    const bad = { ...gpuRec("a", 1), gpu: { mode: "gl", uploadMs: "2" } };
    expect(() => parseResults(JSON.stringify({ ...good, records: [rec("b", 1), bad] }), "f.json")).toThrow(/f\.json: records\[1\]\.gpu needs/);
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
    expect(() => parseArgs(["--gpu-mode", "vulkan"])).toThrow(/--gpu-mode must be one of auto, gl, webasm, webgpu, got "vulkan"/);
    expect(parseArgs(["--gpu-mode", "webgpu"]).gpuMode).toBe("webgpu");
  });
  it("takes the GPU.js mode, auto by default", () => {
    expect(parseArgs([]).gpuMode).toBe("auto");
    expect(parseArgs(["--gpu-mode", "webasm"]).gpuMode).toBe("webasm");
  });
});

describe("planGroups", () => {
  it("runs each e2e case in its own process and filters by label", () => {
    const groups = planGroups(allCases(), [1, 2], ["e2e/pretrain step llama"]);
    expect(groups.every((g) => g.suite === "e2e" && g.cases.length === 1)).toBe(true);
    // lrc-ts at 1 and 2 threads, lrc-ts-webgpu at 1, tfjs-wasm at 1 and 2, tfjs-cpu at 1.
    expect(groups.map((g) => `${g.impl}@${g.threads}`)).toEqual(["lrc-ts@1", "lrc-ts@2", "lrc-ts-webgpu@1", "tfjs-cpu@1", "tfjs-wasm@1", "tfjs-wasm@2"]);
  });
  it("never gives TF.js the cases it cannot run", () => {
    const groups = planGroups(allCases(), [1], ["checkgrad", "distill"]);
    expect(groups.map((g) => g.impl)).toEqual(["lrc-ts", "lrc-ts", "lrc-ts-webgpu"]);
  });
  it("runs the real-shape cases only when a filter names them: lrc-ts and pytorch, each case in its own process", () => {
    expect(planGroups(allCases(), [2], []).some((g) => g.cases.some((c) => c.startsWith("real-shape")))).toBe(false);
    expect(planGroups(allCases(), [2], ["e2e/"]).some((g) => g.cases.some((c) => c.startsWith("real-shape")))).toBe(false);
    const groups = planGroups(allCases(), [2], ["real-shape"]);
    expect(groups.map((g) => `${g.impl}@${g.threads} ${g.cases.join(",")}`)).toEqual([
      "lrc-ts@2 real-shape distill step Qwen2.5-0.5B L4 -> d448 4x256",
      "lrc-ts@2 real-shape distill step Qwen2.5-0.5B L24 -> d448 4x256",
      "lrc-ts@2 real-shape distill step Qwen2.5-0.5B L24 -> d448 4x256 recompute on",
      "lrc-ts@2 real-shape distill step Qwen2.5-0.5B L24 -> d448 4x256 f32 teacher",
      "lrc-ts@2 real-shape distill step Qwen2.5-1.5B L28 -> d768 2x256",
      "pytorch@2 real-shape distill step Qwen2.5-0.5B L4 -> d448 4x256",
      "pytorch@2 real-shape distill step Qwen2.5-0.5B L24 -> d448 4x256",
      "pytorch@2 real-shape distill step Qwen2.5-1.5B L28 -> d768 2x256",
    ]);
    expect(planGroups(allCases(), [2], ["real-shape distill step qwen2.5-0.5b l4 "]).map((g) => g.impl)).toEqual(["lrc-ts", "pytorch"]);
    // The f32-teacher variant (the float32 load #16 replaced) and the recompute-on one run on lrc-ts alone:
    // PyTorch's teacher is fp32 anyway and it keeps no generated weights to recompute.
    expect(planGroups(allCases(), [2], ["real-shape distill step qwen2.5-0.5b l24"]).map((g) => `${g.impl} ${g.cases.join(",")}`)).toEqual([
      "lrc-ts real-shape distill step Qwen2.5-0.5B L24 -> d448 4x256",
      "lrc-ts real-shape distill step Qwen2.5-0.5B L24 -> d448 4x256 recompute on",
      "lrc-ts real-shape distill step Qwen2.5-0.5B L24 -> d448 4x256 f32 teacher",
      "pytorch real-shape distill step Qwen2.5-0.5B L24 -> d448 4x256",
    ]);
  });
  it("--max-rss-gb", () => {
    expect(parseArgs([]).maxRssGb).toBe(16);
    expect(parseArgs(["--max-rss-gb", "10"]).maxRssGb).toBe(10);
    expect(() => parseArgs(["--max-rss-gb", "0"])).toThrow(/--max-rss-gb must be a positive number/);
  });
  it("runs lrc-ts-gpu on the kernel suite only and lrc-ts-webgpu on it and the training steps, at one thread", () => {
    const kernels = allCases().filter((c) => c.suite === "kernels" && c.spec.kind !== "attnOutTerm").map((c) => c.name);
    expect(planGroups(allCases(), [1, 2], ["lrc-ts-gpu"])).toEqual([{ suite: "kernels", impl: "lrc-ts-gpu", threads: 1, cases: kernels }]);
    const steps = allCases().filter((c) => c.spec.kind === "pretrain" || c.spec.kind === "distill").map((c) => c.name);
    expect(planGroups(allCases(), [1, 2], ["lrc-ts-webgpu"])).toEqual([
      { suite: "kernels", impl: "lrc-ts-webgpu", threads: 1, cases: kernels },
      ...steps.map((name) => ({ suite: "e2e", impl: "lrc-ts-webgpu", threads: 1, cases: [name] })),
    ]);
    // "lrc-ts@" still selects the cpu backend alone.
    expect(new Set(planGroups(allCases(), [1], ["lrc-ts@"]).map((g) => g.impl))).toEqual(new Set(["lrc-ts"]));
  });
  it("starts the gpu child under xvfb-run only when gl may run and there is no display", () => {
    expect(needsXvfb("lrc-ts-gpu", "auto", {}, true)).toBe(true);
    expect(needsXvfb("lrc-ts-gpu", "gl", { DISPLAY: "" }, true)).toBe(true);
    expect(needsXvfb("lrc-ts-gpu", "gl", { DISPLAY: ":0" }, true)).toBe(false);
    expect(needsXvfb("lrc-ts-gpu", "webasm", {}, true)).toBe(false);
    expect(needsXvfb("lrc-ts-gpu", "webgpu", {}, true)).toBe(false);
    expect(needsXvfb("lrc-ts-gpu", "auto", {}, false)).toBe(false);
    expect(needsXvfb("lrc-ts", "auto", {}, true)).toBe(false);
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
  it("shows the gpu column as compute, titled with its mode, and no ratio for it", () => {
    const table = suiteTable([rec("m", 10, "lrc-ts", 1), gpuRec("m", 40), rec("m", 25, "tfjs-wasm", 1)], "kernels");
    expect(table.split("\n")[0]).toBe("| case | lrc-ts 1t | lrc-ts-gpu gl (compute) | tfjs-wasm 1t | vs tfjs-wasm 1t |");
    expect(table).toContain("| m | 10.0 ms | 40.0 ms | 25.0 ms | 2.50× |");
  });
  it("reports upload, compute and download apart, and says GPU speed is unmeasured on software", () => {
    const t = gpuTable([rec("m", 10, "lrc-ts", 1), gpuRec("m", 40)]);
    expect(t).toContain("lrc-ts-gpu ran GPU.js gl on ANGLE on Mesa swrast_dri.so.");
    expect(t).toContain("**GPU speed is unmeasured**");
    expect(t).toContain("| m | 2.00 ms (8.0 MiB) | 40.0 ms | 3.00 ms (4.0 MiB) | 45.0 ms | 10.0 ms |");
    const real = gpuTable([gpuRec("m", 1, { device: "NVIDIA H200", software: false })]);
    expect(real).toContain("GPU.js gl on NVIDIA H200");
    expect(real).not.toContain("unmeasured");
    expect(gpuTable([rec("m", 10)])).toBe("");
  });
  it("names each device implementation's rows apart: GPU.js's mode beside the native webgpu backend", () => {
    const native: BenchRecord = { ...gpuRec("m", 20, { mode: "native webgpu", device: "llvmpipe" }), impl: "lrc-ts-webgpu" };
    const t = gpuTable([gpuRec("m", 40), native]);
    expect(t).toContain("lrc-ts-gpu ran GPU.js gl on ANGLE on Mesa swrast_dri.so; and lrc-ts-webgpu ran native webgpu on llvmpipe.");
    expect(t).toContain("| m | GPU.js gl | 2.00 ms (8.0 MiB) | 40.0 ms |");
    expect(t).toContain("| m | native webgpu | 2.00 ms (8.0 MiB) | 20.0 ms |");
  });
  it("says GPU speed is unmeasured when a kernel report has no gpu run", () => {
    const res: ResultsFile = {
      schema: 1, date: "2026-01-01", machine: { id: "m", cpu: "c", cores: 2, memoryGiB: 1, node: "v20", platform: "linux" },
      command: "pnpm bench", quick: false, records: [rec("m", 10)], skipped: [], notes: [], external: [],
    };
    expect(renderReport(res)).toContain("GPU backend (lrc-ts-gpu): not in this run, so GPU speed is unmeasured here.");
    const withGpu = renderReport({ ...res, records: [rec("m", 10), { ...gpuRec("m", 40), note: "compute only" }, { ...gpuRec("n", 40), note: "compute only" }] });
    expect(withGpu).toContain("### GPU backend: upload · compute · download");
    expect(withGpu).toContain("- lrc-ts-gpu: compute only (all 2 lrc-ts-gpu cases)");
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
