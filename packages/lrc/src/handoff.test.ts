// The scale-out hand-off against fixtures written by tools/make_reference_fixtures.py, which mirrors the
// reference trainer's modules (CURRENTF/LowRankClone CoTrainLM) and their merge_weight formulas in PyTorch,
// without transformers: for a Llama and a Qwen2 teacher, tied and untied, trainable-only, full state dict and
// sharded saves, our import + fold equals the reference merge; our BF16 writer reproduces R's save byte for
// byte; a swap of two projections is caught; mismatched settings stop with the field or tensor named. Then
// `lrc export-reference` on a real distill run and `lrc import-reference` of what it wrote, through the CLI.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadCausalLM } from "@lrc-ts/nn";
import { readSafetensorsFileSync, serializeSafetensors } from "@lrc-ts/tensor-core";
import type { SafetensorsTensorInput } from "@lrc-ts/tensor-core";
import { main } from "./cli.js";
import { exportReference, importReference, openReferenceCheckpoint } from "./node/handoff.js";
import { LowRankClone } from "./clone.js";
import { loadReferenceCheckpoint } from "./node/model-files.js";
import { distill } from "./node/run.js";
import { writeMarkovShards } from "./testing-internal/fixtures.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const FIX = path.join(here, "..", "fixtures", "reference-handoff");
const TEACHERS = path.join(here, "..", "..", "nn", "fixtures");
const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-handoff-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

interface Case {
  name: string; teacher: string; checkpoint: string; hidden_size: number; tie_word_emb_proj: boolean; save: string;
  config_eps: number | null; student_tied: boolean;
}
const manifest = JSON.parse(fs.readFileSync(path.join(FIX, "manifest.json"), "utf8")) as { cases: Case[] };

/** Largest |a - b| over the folded student's tensors against the reference merge (names must agree). */
function maxDiffToMerged(studentDir: string, c: Case): number {
  const got = readSafetensorsFileSync(path.join(studentDir, "model.safetensors"));
  const want = readSafetensorsFileSync(path.join(FIX, c.name, "merged.safetensors"));
  expect(got.names().sort()).toEqual(want.names().sort());
  let worst = 0;
  for (const n of want.names()) {
    expect(got.info(n).shape, n).toEqual(want.info(n).shape);
    const a = got.readFloat32(n), b = want.readFloat32(n);
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  return worst;
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
  vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
  const code = await main(argv);
  vi.restoreAllMocks();
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** A copy of a trainable-only fixture save with tensors `a` and `b` exchanged (same shapes). */
function swapped(c: Case, a: string, b: string): string {
  const st = readSafetensorsFileSync(path.join(FIX, c.name, "model.safetensors"));
  const tensors: Array<[string, SafetensorsTensorInput]> = st.names().map((n) => {
    const src = n === a ? b : n === b ? a : n;
    return [n, { shape: st.info(src).shape, data: st.readFloat32(src) }];
  });
  const file = path.join(root, `${c.name}-swap-${path.basename(a)}.safetensors`);
  fs.writeFileSync(file, serializeSafetensors(tensors, { format: "pt" }, { dtype: "BF16" }));
  return file;
}

const byName = (n: string): Case => manifest.cases.find((c) => c.name === n)!;

describe("reference saves (fixtures from the reference modules' merge formulas)", () => {
  it("covers Llama and Qwen2 teachers, tied and untied, trainable-only, full and sharded saves", () => {
    const kinds = manifest.cases.map((c) => `${c.teacher.split("-")[0]}/${c.tie_word_emb_proj ? "tied" : "untied"}`);
    expect(new Set(kinds)).toEqual(new Set(["qwen2/tied", "qwen2/untied", "llama/tied", "llama/untied"]));
    expect(new Set(manifest.cases.map((c) => c.save))).toEqual(new Set(["trainable", "full", "sharded"]));
  });

  for (const c of manifest.cases)
    it(`${c.name}: import + fold equals the reference merge`, async () => {
      const out = path.join(root, `student-${c.name}`);
      const r = await importReference({ checkpoint: path.join(FIX, c.name, c.checkpoint), teacher: path.join(TEACHERS, c.teacher), out });
      expect(r.settings.hiddenSize).toBe(c.hidden_size);
      expect(r.settings.tieLmHeadProjection).toBe(c.tie_word_emb_proj);
      expect(maxDiffToMerged(out, c)).toBeLessThan(1e-5);
      const cfg = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")) as Record<string, unknown>;
      expect(cfg.hidden_size).toBe(c.hidden_size);
      expect(cfg.tie_word_embeddings).toBe(c.student_tied);
      // R's config.json beside the save states the eps; without one, R's default 1e-5 is assumed and said.
      expect(cfg.rms_norm_eps).toBe(c.config_eps ?? 1e-5);
      if (c.config_eps === null) expect(r.notes.join(" ")).toMatch(/does not state target_rms_norm_eps/);
    });

  for (const c of manifest.cases.filter((x) => x.save === "trainable"))
    it(`${c.name}: our BF16 writer reproduces R's save byte for byte`, async () => {
      const teacher = await loadCausalLM(path.join(TEACHERS, c.teacher));
      const clone = new LowRankClone(teacher, { hiddenSize: c.hidden_size, tieLmHeadProjection: c.tie_word_emb_proj, seed: 99 });
      const file = path.join(FIX, c.name, "model.safetensors");
      await loadReferenceCheckpoint(clone, file);
      expect(Buffer.compare(Buffer.from(clone.referenceCheckpointFile({ dtype: "BF16" })), fs.readFileSync(file))).toBe(0);
    });

  it("swapping two projections of the same shape breaks the match (attention q/k, FFN gate/up)", async () => {
    const c = byName("qwen2-tied");
    for (const [a, b] of [["model.layers.0.self_attn.zoom_q.weight", "model.layers.0.self_attn.zoom_k.weight"], ["model.layers.1.mlp.zoom_gate.weight", "model.layers.1.mlp.zoom_up.weight"]] as const) {
      const out = path.join(root, `swap-${path.basename(a)}`);
      await importReference({ checkpoint: swapped(c, a, b), teacher: path.join(TEACHERS, c.teacher), out, studentEps: 1e-6 });
      expect(maxDiffToMerged(out, c)).toBeGreaterThan(1e-2);
    }
  });

  it("reads a sharded index given as the index file, only the shards holding projections", async () => {
    const c = byName("llama-untied-sharded");
    // A full state dict's teacher shard: listed in the index, never opened (here it is not even safetensors).
    const dir = path.join(root, "sharded-full");
    fs.cpSync(path.join(FIX, c.name), dir, { recursive: true });
    const indexFile = path.join(dir, "model.safetensors.index.json");
    const index = JSON.parse(fs.readFileSync(indexFile, "utf8")) as { weight_map: Record<string, string> };
    index.weight_map["model.embed_tokens.weight"] = "model-00003-of-00003.safetensors";
    fs.writeFileSync(indexFile, JSON.stringify(index));
    fs.writeFileSync(path.join(dir, "model-00003-of-00003.safetensors"), "not read");
    const ck = await openReferenceCheckpoint(indexFile);
    expect(ck.tensors.names()).toContain("model.layers.1.mlp.zoom_down.weight");
    expect(ck.tensors.names()).toContain("model.zoom.weight");
    expect(ck.tensors.has("model.embed_tokens.weight")).toBe(false);
    expect(ck.settings).toMatchObject({ hiddenSize: 16, tieLmHeadProjection: false, studentEps: 1e-5 });
    const out = path.join(root, "student-sharded-full");
    await importReference({ checkpoint: indexFile, teacher: path.join(TEACHERS, c.teacher), out });
    expect(maxDiffToMerged(out, c)).toBeLessThan(1e-5);
  });

  it("stops on a mismatch, naming the tensor or the field", async () => {
    const q = byName("qwen2-tied");
    const out = path.join(root, "bad");
    // another teacher: D differs
    await expect(importReference({ checkpoint: path.join(FIX, q.name), teacher: path.join(TEACHERS, "llama-tied-bf16"), out })).rejects.toThrow(
      /tensor "model.zoom.weight" has shape \[16, 32\], but the teacher .* has hidden_size 48/,
    );
    // R's config.json says untied but the save has no LM-head projection
    const dir = path.join(root, "lying-config");
    fs.cpSync(path.join(FIX, q.name), dir, { recursive: true });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, tie_word_emb_proj: false }));
    await expect(importReference({ checkpoint: dir, teacher: path.join(TEACHERS, q.teacher), out })).rejects.toThrow(/config.json: tie_word_emb_proj is 0, but the top-level "zoom_down.weight"/);
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, use_all_attn: false }));
    await expect(importReference({ checkpoint: dir, teacher: path.join(TEACHERS, q.teacher), out })).rejects.toThrow(/config.json: use_all_attn is 0 \(IO attention\)/);
    // a tensor missing
    const st = readSafetensorsFileSync(path.join(FIX, q.name, "model.safetensors"));
    const drop = "model.layers.1.self_attn.zoom_v.weight";
    const partial = path.join(root, "partial.safetensors");
    fs.writeFileSync(partial, serializeSafetensors(st.names().filter((n) => n !== drop).map((n): [string, SafetensorsTensorInput] => [n, { shape: st.info(n).shape, data: st.readFloat32(n) }]), { format: "pt" }));
    await expect(importReference({ checkpoint: partial, teacher: path.join(TEACHERS, q.teacher), out })).rejects.toThrow(`missing tensor "${drop}"`);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe("lrc export-reference / import-reference", () => {
  const teacher = path.join(root, "qwen2-teacher");
  const run = path.join(root, "run");
  beforeAll(async () => {
    fs.cpSync(path.join(TEACHERS, "qwen2-tied-f32"), teacher, { recursive: true });
    fs.rmSync(path.join(teacher, "golden.safetensors"));
    const data = path.join(root, "shards");
    writeMarkovShards(data, { vocab: 64, trainTokens: 3000, valTokens: 300 });
    await distill({ teacher, hiddenSize: 16, data, out: run, steps: 3, batchSize: 2, seqLen: 8, alpha: 0.3, temperature: 20, progress: false, log: () => {} });
  });

  it("exports the latest checkpoint with its settings and the exact command, and folds back to the same student", async () => {
    const out = path.join(root, "handoff");
    const r = await cli(["export-reference", "--run", run, "--teacher", teacher, "--out", out]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const st = readSafetensorsFileSync(path.join(out, "projections.safetensors"));
    expect(st.metadata).toMatchObject({
      format: "pt", target_hidden_size: "16", tie_word_emb_proj: "1", target_rms_norm_eps: "0.000001", use_all_attn: "1", use_in_out_mlp: "0",
      attn_out: "reference", model_type: "qwen2", hidden_size: "32", num_hidden_layers: "2", step: "3",
    });
    expect(st.has("zoom_down.weight")).toBe(false);
    const note = fs.readFileSync(path.join(out, "handoff.md"), "utf8");
    expect(note).toMatch(/warm start, not a resume/);
    for (const flag of [
      `--raw_model_name ${path.resolve(teacher)}`, "--target_hidden_size 16", "--tie_word_emb_proj 1", "--target_rms_norm_eps 0.000001", "--use_all_attn 1",
      "--use_in_out_mlp 0", "--kl_temperature 20", "--aux_loss_scale_factor 0.3", `--load_model_weight_path ${path.resolve(out, "projections.safetensors")}`,
      "--data_max_len 8", "--lr_scheduler linear", "--max_grad_norm 1", "--str_ban_losses no", "--use_accelerate True", "--dataset_name DATASET",
    ])
      expect(note).toContain(flag);
    expect(note).not.toMatch(/Differences R cannot reproduce/);
    expect(note).toContain("this run used 2 sequences of 8 tokens per micro-batch, 1 accumulation step(s)");

    const back = path.join(root, "back");
    const i = await cli(["import-reference", "--checkpoint", path.join(out, "projections.safetensors"), "--teacher", teacher, "--out", back, "--json"]);
    expect(i.err).toBe("");
    expect(i.code).toBe(0);
    expect(JSON.parse(i.out).notes[0]).toMatch(/student eps 0.000001 \(from .*__metadata__\)/);
    expect(Buffer.compare(fs.readFileSync(path.join(back, "model.safetensors")), fs.readFileSync(path.join(run, "student", "model.safetensors")))).toBe(0);
    // The same Hub config files as the distill export (generation_config.json always; tokenizer_config.json beside a tokenizer.json).
    expect(fs.existsSync(path.join(back, "generation_config.json"))).toBe(true);
    for (const f of ["generation_config.json", "tokenizer_config.json"].filter((x) => fs.existsSync(path.join(run, "student", x))))
      expect(fs.readFileSync(path.join(back, f), "utf8"), f).toBe(fs.readFileSync(path.join(run, "student", f), "utf8"));
    // The same config, less the training record (lrc_ts: the trained window) that only the distill run has.
    const cfg = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    const { lrc_ts: trained, ...distilled } = cfg(path.join(run, "student"));
    expect(trained).toMatchObject({ train_seq_len: 8 });
    expect(cfg(back)).toEqual(distilled);
  });

  it("bf16 export, and warnings for what R cannot reproduce", async () => {
    const other = path.join(root, "teacher-elsewhere");
    fs.cpSync(teacher, other, { recursive: true });
    const out = path.join(root, "handoff-bf16");
    const r = await cli(["export-reference", "--run", run, "--teacher", other, "--out", out, "--dtype", "bf16"]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/warning: hf_trainer.py chooses its modeling file from the teacher path/);
    expect(readSafetensorsFileSync(path.join(out, "projections.safetensors")).info("model.zoom.weight").dtype).toBe("BF16");
    expect(fs.readFileSync(path.join(out, "handoff.md"), "utf8")).toMatch(/## Differences R cannot reproduce\n\n- hf_trainer.py chooses/);
  });

  it("maps banned terms and layers, KL off and the schedule to R's flags, and warns where R differs", async () => {
    const data = path.join(root, "shards");
    const run2 = path.join(root, "run-bans");
    await distill({
      teacher, hiddenSize: 16, data, out: run2, steps: 2, batchSize: 2, seqLen: 8, banLayers: [1], cloneTerms: ["q", "v", "o", "gate", "up", "down"],
      attnOut: "paper", klWeight: 0, schedule: "constant", beta1: 0.8, beta2: 0.95, adamEps: 1e-6, progress: false, log: () => {},
    });
    const out = path.join(root, "handoff-bans");
    const r = await exportReference({ run: run2, out, teacher });
    for (const flag of ["--str_ban_losses attn-k-sim-loss", "--ban_layers '[1]'", "--use_logits_loss False", "--lr_scheduler constant_with_warmup"]) expect(r.command).toContain(flag);
    expect(r.warnings.join("\n")).toMatch(/bans k and o together/);
    expect(r.warnings.join("\n")).toMatch(/paper's attention-out term/);
    expect(r.command).toContain("--adam_beta2 0.95");
    expect(r.warnings.join("\n")).toMatch(/AdamW beta1 0.8: the command does not carry it/);
    expect(r.warnings.join("\n")).toMatch(/AdamW epsilon 0.000001: the command does not carry it/);
    expect(readSafetensorsFileSync(r.file).metadata.attn_out).toBe("paper");
  });

  it("bad input exits 1 naming the file or field", async () => {
    const none = await cli(["export-reference", "--run", path.join(root, "no-run"), "--out", path.join(root, "x")]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/no-run\/checkpoints: no complete checkpoint/);
    const wrong = await cli(["export-reference", "--run", run, "--teacher", path.join(TEACHERS, "llama-tied-bf16"), "--out", path.join(root, "x")]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/llama-tied-bf16\/config.json: model_type is "llama", but the run in .*state.json was trained from a teacher with "qwen2"/);
    const dt = await cli(["export-reference", "--run", run, "--out", path.join(root, "x"), "--dtype", "f16"]);
    expect(dt.code).toBe(1);
    expect(dt.err).toMatch(/--dtype must be f32 or bf16/);
    const imp = await cli(["import-reference", "--checkpoint", path.join(root, "nothing.safetensors"), "--teacher", teacher, "--out", path.join(root, "x")]);
    expect(imp.code).toBe(1);
    expect(imp.err).toMatch(/nothing.safetensors: no such file or directory/);
  });
});
