// Ctrl-C / SIGTERM in the long commands. onInterrupt in-process (process.exit mocked): the first signal aborts
// and logs, the second exits with 128 + its number. Then `lrc eval` in a real child process on a tiny model:
// SIGINT or SIGTERM mid-run stops it between windows with the result over the windows scored (equal to
// evaluateBatches over those windows), exit 130 / 143.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { evalWindows, readManifest } from "@lrc-ts/data";
import { evaluateBatches, initCheckpoint, loadCausalLM, makeConfig } from "@lrc-ts/nn";
import { missingVulkanLoader } from "@lrc-ts/tensor-core";
import { spawn } from "node:child_process";
import { REPO_ROOT, spawnCli, waitFor, writeMarkovShards } from "../testing-internal/fixtures.js";
import { onInterrupt } from "./interrupt.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-interrupt-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

describe("onInterrupt", () => {
  it("aborts at the first SIGINT, exits 130 at the second, and removes its listeners", () => {
    const before = process.listenerCount("SIGINT");
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const lines: string[] = [];
    const i = onInterrupt("stopping after this window", (l) => lines.push(l));
    expect(process.listenerCount("SIGINT")).toBe(before + 1);
    expect(i.signal.aborted).toBe(false);
    process.emit("SIGINT", "SIGINT");
    expect(i.signal.aborted).toBe(true);
    expect(i.exitCode()).toBe(130);
    expect(lines).toEqual(["\ninterrupt: stopping after this window (Ctrl-C again to exit at once)"]);
    expect(exit).not.toHaveBeenCalled();
    process.emit("SIGINT", "SIGINT");
    expect(exit).toHaveBeenCalledWith(130);
    i.dispose();
    expect(process.listenerCount("SIGINT")).toBe(before);
  });
  it("SIGTERM: exit code 143", () => {
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const lines: string[] = [];
    const i = onInterrupt("stopping", (l) => lines.push(l));
    process.emit("SIGTERM", "SIGTERM");
    expect([i.signal.aborted, i.exitCode(), lines[0]]).toEqual([true, 143, "\nSIGTERM: stopping (Ctrl-C again to exit at once)"]);
    process.emit("SIGINT", "SIGINT");
    expect(exit).toHaveBeenCalledWith(130);
    i.dispose();
  });
});

describe("lrc eval in a child process", () => {
  const model = path.join(root, "model"), data = path.join(root, "shards");
  const window = 64;
  const setup = (() => {
    let done = false;
    return () => {
      if (done) return;
      const config = makeConfig({
        model_type: "qwen2", vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
        num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: window, tie_word_embeddings: true,
      });
      initCheckpoint(config, model, { seed: 1 });
      // Enough windows (~6,000) that a run takes far longer than the time to the signal.
      writeMarkovShards(data, { vocab: 64, trainTokens: 2000, valTokens: 400_000 });
      done = true;
    };
  })();

  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const)
    it(`${sig} mid-run: the result over the windows done, exit ${code}`, async () => {
      setup();
      const p = spawnCli(["eval", "--model", model, "--data", data, "--window", String(window), "--json"]);
      // Wait until some windows are scored (the progress line counts them), then signal.
      await waitFor(() => /eval [1-9]\d*\//.test(p.stderr()) || p.child.exitCode !== null, 120_000, "the first windows");
      p.child.kill(sig);
      const ex = await p.exit;
      expect(ex.code, p.stderr()).toBe(code);
      expect(p.stderr()).toMatch(sig === "SIGINT" ? /interrupt: stopping after this batch of windows/ : /SIGTERM: stopping after this batch of windows/);
      const r = JSON.parse(p.stdout().trim()) as { loss: number; tokens: number; tokens_total: number; interrupted: boolean };
      expect(r.interrupted).toBe(true);
      expect(r.tokens_total).toBe(Math.floor((readManifest(data).splits.val.tokens - 1) / window) * window);
      expect(r.tokens).toBeGreaterThan(0);
      expect(r.tokens).toBeLessThan(r.tokens_total);
      expect(r.tokens % window).toBe(0);
      // The same windows scored in this process give the same loss.
      const n = r.tokens / window;
      const first = (function* () {
        let k = 0;
        for (const b of evalWindows(data, { split: "val", seqLen: window, batchSize: 1 })) {
          if (k++ === n) return;
          yield b;
        }
      })();
      const want = await evaluateBatches(await loadCausalLM(model), first);
      expect(want.tokens).toBe(r.tokens);
      expect(r.loss).toBeCloseTo(want.loss, 9);
    }, 180_000);
});

describe("the repository's `pnpm lrc` script", () => {
  // A terminal's Ctrl-C sends SIGINT to the whole foreground process group. tsx's own runner (`tsx file.ts`)
  // SIGKILLs a child that has not acknowledged the signal within ~60 ms, which a command busy in a forward pass
  // never does: the checkpoint (distill) or the partial result (eval) was lost. The script runs node with tsx's
  // loader instead, so the command handles the signal itself.
  it("Ctrl-C reaches the command: lrc eval finishes its batch and prints the result over the windows scored", async () => {
    const model = path.join(root, "busy-model"), data = path.join(root, "busy-shards");
    // Batches long enough (a vocabulary of 8,192, 4 windows of 256) that the signal lands inside one.
    initCheckpoint(makeConfig({
      model_type: "qwen2", vocab_size: 8192, hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, tie_word_embeddings: true,
    }), model, { seed: 1 });
    writeMarkovShards(data, { vocab: 8192, trainTokens: 2000, valTokens: 200_000 });
    const script = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts.lrc!;
    const [cmd, ...args] = script.split(" ");
    const exe = cmd === "node" ? process.execPath : path.join(REPO_ROOT, "node_modules", ".bin", cmd!);
    // Its own process group, as a terminal's foreground job.
    const child = spawn(exe, [...args, "eval", "--model", model, "--data", data, "--window", "256", "--batch-size", "4", "--json"], {
      cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" },
    });
    let out = "", err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    await waitFor(() => /eval [1-9]\d*\//.test(err) || child.exitCode !== null, 120_000, "the first windows");
    process.kill(-child.pid!, "SIGINT");
    const code = await closed;
    expect(code, err).toBe(130);
    expect(err).toMatch(/interrupt: stopping after this batch of windows/);
    // Without a Vulkan loader auto does not ask Dawn, whose warning (with a C++ source location) read like a crash.
    if (missingVulkanLoader() !== null) expect(err).not.toContain("Couldn't load Vulkan");
    const r = JSON.parse(out.trim()) as { tokens: number; tokens_total: number; interrupted: boolean };
    expect(r.interrupted).toBe(true);
    expect(r.tokens).toBeGreaterThan(0);
    expect(r.tokens).toBeLessThan(r.tokens_total);
  }, 180_000);
});
