// The `lrc` entry point: it runs when started through a symlink (npm's node_modules/.bin/lrc), and its
// discoverability: --version, `lrc help <command>`, a command group's --help, "did you mean" hints.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, expectTypeOf, it } from "vitest";
import { setBackend } from "@lrc-ts/tensor-core";
import { closest, parseFlags, UsageError } from "./cli/args.js";
import { isEntryScript } from "./cli.js";
import { run as runMain } from "./testing-internal/cli-run.js";
import { CLI, REPO_ROOT } from "./testing-internal/fixtures.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-cli-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const pkgVersion = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "packages/lrc/package.json"), "utf8")) as { version: string }).version;

describe("lrc entry point", () => {
  it("runs when started through a symlink without the cli.* name, as npm's .bin/lrc does", () => {
    const link = path.join(root, "bin", "lrc");
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(CLI, link);
    const out = execFileSync(process.execPath, ["--conditions=source", "--import", "tsx", link, "--version"], { cwd: REPO_ROOT, encoding: "utf8" });
    expect(out.trim()).toBe(pkgVersion);
  });

  it("isEntryScript compares real paths", () => {
    const link = path.join(root, "other-name");
    fs.symlinkSync(CLI, link);
    const url = pathToFileURL(CLI).href;
    expect(isEntryScript(link, url)).toBe(true);
    expect(isEntryScript(CLI, url)).toBe(true);
    expect(isEntryScript(path.join(REPO_ROOT, "package.json"), url)).toBe(false);
    expect(isEntryScript(path.join(root, "missing"), url)).toBe(false);
    expect(isEntryScript(undefined, url)).toBe(false);
  });
});

describe("lrc --backend auto", () => {
  it("chooses before the command runs and says why it passed over webgpu and GPU.js (none is a hardware GPU here)", async () => {
    const r = await runMain(["generate", "--backend", "auto", "--model", "/nonexistent-model-dir", "--prompt", "hi"]);
    expect(r.code).toBe(1);
    expect(r.backend).toMatch(/^lrc backend: \S+: .* \(auto: webgpu: /);
    expect(r.err).toContain("lrc generate: /nonexistent-model-dir: no such model directory");
    setBackend("cpu");
  }, 60_000);
});

describe("lrc default backend", () => {
  it("is auto (LRC_BACKEND unset), which prints what it chose and why; --backend cpu forces cpu", async () => {
    const saved = process.env.LRC_BACKEND;
    delete process.env.LRC_BACKEND;
    try {
      const r = await runMain(["generate", "--model", "/nonexistent-model-dir", "--prompt", "hi"]);
      expect(r.backend).toMatch(/^lrc backend: \S+: .* \(auto: webgpu: /);
      expect(r.err).toBe("lrc generate: /nonexistent-model-dir: no such model directory");
      const c = await runMain(["generate", "--backend", "cpu", "--model", "/nonexistent-model-dir", "--prompt", "hi"]);
      expect(c.backend).toMatch(/^lrc backend: cpu: [^(]*$/);
      expect(c.err).toBe("lrc generate: /nonexistent-model-dir: no such model directory");
      // A command that runs no model chooses no backend and prints no backend line.
      expect((await runMain(["tokenizer", "train", "--help"])).backend).toBeNull();
    } finally {
      if (saved !== undefined) process.env.LRC_BACKEND = saved;
      setBackend("cpu");
    }
  }, 60_000);
});

describe("lrc discoverability", () => {
  it("--version prints the package version", async () => {
    const r = await runMain(["--version"]);
    expect(r).toMatchObject({ code: 0, out: pkgVersion });
  });

  it("lrc help <command> equals lrc <command> --help", async () => {
    const a = await runMain(["help", "distill"]);
    const b = await runMain(["distill", "--help"]);
    expect(a.code).toBe(0);
    expect(a.out).toContain("usage: lrc distill [flags]");
    expect(a.out).toContain("--hidden-size");
    expect(a.out).toBe(b.out);
    const t = await runMain(["help", "tokenizer", "train"]);
    expect(t.out).toContain("usage: lrc tokenizer train [flags]");
  });

  it("a command group lists its subcommands", async () => {
    const h = await runMain(["tokenizer", "--help"]);
    expect(h.code).toBe(0);
    expect(h.out).toContain("lrc tokenizer train");
    const bare = await runMain(["tokenizer"]);
    expect(bare.code).toBe(1);
    expect(bare.err).toContain("give a subcommand");
    expect(bare.err).toContain("lrc tokenizer train");
  });

  it("suggests the nearest flag and command", async () => {
    const f = await runMain(["distill", "--stpes", "3"]);
    expect(f.code).toBe(1);
    expect(f.err.split("\n")[0]).toBe("lrc distill: unknown flag --stpes (did you mean --steps?)");
    const c = await runMain(["distil"]);
    expect(c.code).toBe(1);
    expect(c.err.split("\n")[0]).toBe("lrc: unknown command 'distil' (did you mean 'distill'?)");
    const dt = await runMain(["distill", "--teacher", "t", "--hidden-size", "8", "--data", "d", "--out", "o", "--steps", "1", "--dtype", "fp8"]);
    expect(dt.err.split("\n")[0]).toBe("lrc distill: --dtype must be bf16, f16 or f32, got 'fp8'");
    const be = await runMain(["eval", "--model", "m", "--data", "d", "--backend", "cuda"]);
    expect(be.err.split("\n")[0]).toBe("lrc eval: --backend must be cpu, gpu, webgpu or auto, got 'cuda'");
    const none = await runMain(["distill", "--zzzzzz"]);
    expect(none.err.split("\n")[0]).toBe("lrc distill: unknown flag --zzzzzz");
  });

  it("closest() stays within a third of the word's length", () => {
    expect(closest("stpes", ["steps", "seed"])).toBe("steps");
    expect(closest("seq-lne", ["seq-len", "steps"])).toBe("seq-len");
    expect(closest("lr", ["lr", "clip"])).toBe("lr");
    expect(closest("xy", ["lr", "seed"])).toBeUndefined();
    expect(closest("teachr", ["teacher", "tokens"])).toBe("teacher");
    expect(closest("abcdefgh", ["zzzzzzzz"])).toBeUndefined();
  });
});

describe("parseFlags (util.parseArgs, strict) with flags typed from the table", () => {
  const specs = {
    name: { kind: "string", required: true, help: "" },
    mode: { kind: "string", default: "fast", choices: ["fast", "slow"], help: "" },
    steps: { kind: "int", help: "" },
    lr: { kind: "number", default: 0.5, help: "" },
    layers: { kind: "list", help: "" },
    terms: { kind: "list", choices: ["q", "k"], help: "" },
    json: { kind: "boolean", help: "" },
    log: { kind: "boolean", default: true, help: "" },
  } as const;

  it("infers each flag's type from its spec: required and defaulted flags and switches are always set", () => {
    const f = parseFlags(["--name", "a"], specs);
    expectTypeOf(f.name).toEqualTypeOf<string>();
    expectTypeOf(f.mode).toEqualTypeOf<"fast" | "slow">();
    expectTypeOf(f.steps).toEqualTypeOf<number | undefined>();
    expectTypeOf(f.lr).toEqualTypeOf<number>();
    expectTypeOf(f.layers).toEqualTypeOf<string[] | undefined>();
    expectTypeOf(f.terms).toEqualTypeOf<Array<"q" | "k"> | undefined>();
    expectTypeOf(f.json).toEqualTypeOf<boolean>();
    expect(f).toEqual({ name: "a", mode: "fast", steps: undefined, lr: 0.5, layers: undefined, terms: undefined, json: false, log: true });
  });

  it("reads --flag value, --flag=value, negative numbers, repeated and comma-separated lists, --switch=false", () => {
    const f = parseFlags(["--name=a", "--mode", "slow", "--steps", "-3", "--lr=-1e-3", "--layers", "-1,2", "--layers", "3", "--terms=k", "--json", "--log=false"], specs);
    expect(f).toEqual({ name: "a", mode: "slow", steps: -3, lr: -1e-3, layers: ["-1", "2", "3"], terms: ["k"], json: true, log: false });
    expect(parseFlags(["--name", "a", "--json=0", "--log=1"], specs)).toMatchObject({ json: false, log: true });
    expect(parseFlags(["--name", "a", "--json=false", "--json", "--log", "--log=false"], specs)).toMatchObject({ json: true, log: false });
  });

  it("refuses bad input with a UsageError naming the flag", () => {
    const bad: Array<[string[], string]> = [
      [["--nme", "a"], "unknown flag --nme (did you mean --name?)"],
      [["--name", "a", "-q"], "unknown flag -q"],
      [["--name", "a", "stray"], "unexpected argument 'stray'"],
      [["--name"], "--name needs a value"],
      [["--name", "--json"], "--name needs a value (got the flag '--json'; write --name=--json if that is the value)"],
      [[], "--name is required"],
      [["--name", "a", "--steps", "1.5"], "--steps expects an integer, got '1.5'"],
      [["--name", "a", "--lr", "fast"], "--lr expects a number, got 'fast'"],
      [["--name", "a", "--lr="], "--lr expects a number, got ''"],
      [["--name", "a", "--mode", "medium"], "--mode must be fast or slow, got 'medium'"],
      [["--name", "a", "--terms", "q,v"], "--terms: unknown value 'v' (known: q,k)"],
      [["--name", "a", "--json=yes"], "--json is a switch: give it alone or as --json=true|false, got 'yes'"],
    ];
    for (const [argv, msg] of bad) {
      expect(() => parseFlags(argv, specs), argv.join(" ")).toThrow(UsageError);
      expect(() => parseFlags(argv, specs), argv.join(" ")).toThrow(msg);
    }
  });
});
