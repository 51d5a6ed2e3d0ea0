// Scale-out hand-off to the reference PyTorch trainer (CURRENTF/LowRankClone, `hf_trainer.py`: HF Trainer +
// DeepSpeed) and back.
//
// exportReference: the latest checkpoint of a `lrc distill` run becomes `projections.safetensors` in R's
// layout (./reference-layout.ts) with the settings in its `__metadata__`, plus `handoff.md` with the exact
// `hf_trainer.py` command line. It is a WARM START (`--load_model_weight_path`), not a resume: R's loader
// (hf_trainer.py, `load_state_dict(sd, strict=False)` then `assert len(unexpected) == 0`) takes the tensors
// only. HF Trainer's own resume needs `checkpoint-N/` with torch-pickled optimizer.pt / scheduler.pt /
// rng_state.pth and trainer_state.json (and DeepSpeed's `global_stepN/` ZeRO shards); we write none of them,
// so AdamW moments, the schedule position, the step count and the data position stay behind.
//
// importReference: a save of R (one safetensors file, a sharded `model.safetensors.index.json`, or the
// directory holding either; trainable-only as R's `save_pretrained` writes it, or a full state dict) is checked
// against the teacher (D, L, the tie flag, the settings in its metadata or in R's config.json next to it,
// every tensor's shape) and folded into a plain HF student with the clone's own fold.

import fs from "node:fs";
import path from "node:path";
import { loadCausalLM, parseWeightIndex, readConfigFile, resolveWeightFiles } from "@lrc-ts/nn";
import type { CausalLMConfig } from "@lrc-ts/nn";
import { makeDirectory, readSafetensorsFile, writeFileAtomic, writeSafetensorsFile } from "@lrc-ts/tensor-core";
import type { SafetensorsFile, SafetensorsFloatDType } from "@lrc-ts/tensor-core";
import { CheckpointStore, readCheckpointState, readCheckpointTrainable } from "./checkpoint.js";
import { LowRankClone } from "../clone.js";
import { exportConfigFiles } from "./model-card.js";
import { exportStudent } from "./model-files.js";
import type { ResolvedLossOptions } from "../losses.js";
import { MATRICES } from "../projection.js";
import type { MatrixName } from "../projection.js";
import {
  inspectReferenceTensors, isReferenceProjectionName, loadReferenceTensors, readReferenceSettings, referenceMetadata, toReferenceTensors,
} from "../reference-layout.js";
import type { ReferenceSettings, ReferenceTensorSource } from "../reference-layout.js";

/** The file exportReference writes R's tensors to, and the note beside it. */
export const REFERENCE_PROJECTIONS_FILE = "projections.safetensors";
export const HANDOFF_NOTE_FILE = "handoff.md";
/** R's default student eps (hf_trainer.py `target_rms_norm_eps=1e-5`), used when a save does not say. */
export const REFERENCE_DEFAULT_EPS = 1e-5;

/** R's logged name of each clone term (modeling/co_train_*.py), for `--str_ban_losses`. */
const REFERENCE_LOSS_NAMES: Readonly<Record<MatrixName, string>> = {
  q: "attn-q-sim-loss", k: "attn-k-sim-loss", v: "attn-v-sim-loss", o: "attn-out-sim-loss",
  gate: "mlp-gate-loss", up: "mlp-up-loss", down: "mlp-out-loss",
};

export interface ExportReferenceOptions {
  /** Run directory of `lrc distill` (its `checkpoints/` is read). */
  readonly run: string;
  /** Output directory (created): projections.safetensors and handoff.md. */
  readonly out: string;
  /** Teacher directory: checked against the run's teacher and written into the command (else a placeholder). */
  readonly teacher?: string;
  /** On-disk dtype of the tensors (default F32; R trains in bf16 and rounds on load). */
  readonly dtype?: SafetensorsFloatDType;
}

export interface ExportReferenceResult {
  readonly file: string;
  readonly note: string;
  /** The checkpoint directory exported. */
  readonly checkpoint: string;
  readonly step: number;
  readonly tokens: number;
  readonly settings: ReferenceSettings;
  /** The `hf_trainer.py` command line written into handoff.md. */
  readonly command: string;
  /** Settings of this run that R cannot reproduce exactly (also in handoff.md). */
  readonly warnings: string[];
}

interface RunTask {
  kind?: unknown;
  hiddenSize?: unknown;
  studentEps?: unknown;
  tieLmHeadProjection?: unknown;
  loss?: ResolvedLossOptions;
  teacher?: CausalLMConfig;
}

/** Exports the latest checkpoint of a distill run for the reference trainer (see the header). */
export async function exportReference(o: ExportReferenceOptions): Promise<ExportReferenceResult> {
  const store = new CheckpointStore(path.join(o.run, "checkpoints"));
  const dir = store.latestDir();
  if (dir === null) throw new Error(`${store.dir}: no complete checkpoint (a run directory of lrc distill holds checkpoints/step-*/)`);
  const state = readCheckpointState(dir);
  const stateFile = path.join(dir, "state.json");
  const config = (state.config ?? {}) as Record<string, unknown>;
  const task = (config.task ?? {}) as RunTask;
  if (task.kind !== "lrc") throw new Error(`${stateFile}: config.task.kind is ${JSON.stringify(task.kind)}, not "lrc": only a Low-Rank Clone run can be handed to the reference trainer`);
  const tc = task.teacher;
  if (tc === undefined || typeof tc.hidden_size !== "number" || typeof tc.num_hidden_layers !== "number")
    throw new Error(`${stateFile}: config.task.teacher: missing the teacher's config`);
  if (typeof task.hiddenSize !== "number" || typeof task.studentEps !== "number" || typeof task.tieLmHeadProjection !== "boolean" || task.loss === undefined)
    throw new Error(`${stateFile}: config.task: missing hiddenSize, studentEps, tieLmHeadProjection or loss`);
  if (o.teacher !== undefined) checkSameTeacher(readConfigFile(path.join(o.teacher, "config.json")), tc, path.join(o.teacher, "config.json"), stateFile);
  const settings: ReferenceSettings = {
    hiddenSize: task.hiddenSize, tieLmHeadProjection: task.tieLmHeadProjection, studentEps: task.studentEps, attnOut: task.loss.attnOut,
    modelType: tc.model_type, teacherHiddenSize: tc.hidden_size, numLayers: tc.num_hidden_layers,
  };
  const tr = readCheckpointTrainable(dir, state);
  const params: Record<string, { shape: readonly number[]; buf: Float32Array }> = {};
  for (const n of tr.names()) params[n] = { shape: tr.info(n).shape, buf: tr.readFloat32(n) };
  const tensors = toReferenceTensors({ teacherConfig: tc, tieLmHeadProjection: settings.tieLmHeadProjection, params });
  const step = Number(state.step), tokens = Number(state.tokens);
  makeDirectory(o.out);
  const file = path.join(o.out, REFERENCE_PROJECTIONS_FILE);
  const metadata = referenceMetadata(settings, { producer: "lrc-ts export-reference", step: String(step), tokens: String(tokens) });
  await writeSafetensorsFile(file, tensors, metadata, o.dtype !== undefined ? { dtype: o.dtype } : {});
  const { command, warnings } = referenceCommand({ settings, loss: task.loss, teacher: tc, teacherDir: o.teacher, weights: path.resolve(file), config, seqLen: batchSeqLen(config) });
  const note = path.join(o.out, HANDOFF_NOTE_FILE);
  writeFileAtomic(note, handoffNote({ run: o.run, checkpoint: dir, step, tokens, settings, command, warnings, dtype: o.dtype ?? "F32", teacherDir: o.teacher, batch: describeBatch(config) }));
  return { file, note, checkpoint: dir, step, tokens, settings, command, warnings };
}

/** "B sequences x T tokens x A accumulation steps" of the run, as far as its config says. */
function describeBatch(config: Record<string, unknown>): string {
  const b = config.batch as { batchSize?: unknown; seqLen?: unknown } | undefined;
  return `${String(b?.batchSize ?? "?")} sequences of ${String(b?.seqLen ?? "?")} tokens per micro-batch, ${String(config.gradAccum ?? 1)} accumulation step(s)`;
}

function batchSeqLen(config: Record<string, unknown>): number | undefined {
  const b = config.batch as { seqLen?: unknown } | undefined;
  return typeof b?.seqLen === "number" ? b.seqLen : undefined;
}

/** The teacher directory given must be the run's teacher (the fields the projections' shapes rest on). */
export function checkSameTeacher(given: CausalLMConfig, run: CausalLMConfig, givenFile: string, runFile: string): void {
  for (const k of ["model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size"] as const)
    if (given[k] !== run[k]) throw new Error(`${givenFile}: ${k} is ${JSON.stringify(given[k])}, but the run in ${runFile} was trained from a teacher with ${JSON.stringify(run[k])}`);
}

/** A shell word (single-quoted unless plain). */
function sh(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The `hf_trainer.py` command (fire flags, R's names) that continues this clone, and what it cannot carry.
 * Every flag whose R default differs from this run is written out: the tie flag (R default 0: a tied teacher
 * without it silently trains a fresh LM-head projection, since R's loader ignores missing keys), the eps (R
 * default 1e-5), `--use_all_attn 1` (R default: IO attention), α and τ (R defaults 1.0 and 10).
 */
function referenceCommand(a: {
  settings: ReferenceSettings; loss: ResolvedLossOptions; teacher: CausalLMConfig; teacherDir: string | undefined; weights: string;
  config: Record<string, unknown>; seqLen: number | undefined;
}): { command: string; warnings: string[] } {
  const { settings: s, loss, teacher } = a;
  const warnings: string[] = [];
  const teacherDir = a.teacherDir !== undefined ? path.resolve(a.teacherDir) : "TEACHER_DIR";
  const want = teacher.model_type === "qwen2" ? "qwen" : "llama";
  const lower = teacherDir.toLowerCase();
  // hf_trainer.py picks the modeling file by substring: "llama" first, then "qwen", else ValueError.
  const picked = lower.includes("llama") ? "llama" : lower.includes("qwen") ? "qwen" : null;
  if (a.teacherDir !== undefined && picked !== want)
    warnings.push(
      `hf_trainer.py chooses its modeling file from the teacher path (\`"llama" in raw_model_name.lower()\`, then "qwen"): ` +
        `${teacherDir} ${picked === null ? "contains neither" : `selects ${picked}`}; give it a path containing "${want}"${want === "qwen" ? ' and not "llama"' : ""}.`,
    );
  const flags: Array<[string, string]> = [
    ["raw_model_name", teacherDir],
    ["target_hidden_size", String(s.hiddenSize)],
    ["tie_word_emb_proj", s.tieLmHeadProjection ? "1" : "0"],
    ["target_rms_norm_eps", String(s.studentEps)],
    ["use_all_attn", "1"],
    ["use_in_out_mlp", "0"],
    ["kl_temperature", String(loss.temperature)],
    ["aux_loss_scale_factor", String(loss.alpha)],
  ];
  const banned = MATRICES.filter((m) => !loss.cloneTerms.includes(m)).map((m) => REFERENCE_LOSS_NAMES[m]);
  flags.push(["str_ban_losses", banned.length === 0 ? "no" : banned.join(",")]);
  if (teacher.model_type === "qwen2" && loss.cloneTerms.includes("k") !== loss.cloneTerms.includes("o"))
    warnings.push("R's Qwen2 file switches the attn-out term with the attn-k-sim-loss ban key (co_train_qwen.py AllAttn.forward), so it bans k and o together; this run used one without the other.");
  const banLayers = Array.from({ length: teacher.num_hidden_layers }, (_, i) => i).filter((i) => !loss.cloneLayers.includes(i));
  if (banLayers.length > 0) flags.push(["ban_layers", `[${banLayers.join(",")}]`]);
  if (loss.klWeight === 0) flags.push(["use_logits_loss", "False"]);
  else if (loss.klWeight !== 1) warnings.push(`KL weight ${loss.klWeight}: R has no KL weight (only on/off, --use_logits_loss); it trains with weight 1.`);
  if (loss.ceWeight === 0) flags.push(["use_ntp_loss", "False"]);
  else if (loss.ceWeight !== 1) warnings.push(`CE weight ${loss.ceWeight}: R has no CE weight (only on/off, --use_ntp_loss); it trains with weight 1.`);
  if (loss.attnOut === "paper")
    warnings.push('This run used the paper\'s attention-out term (--attn-out paper); R trains only the "reference" form (MSE of c W_o^T in R^D), so the loss changes at the hand-off.');
  const rope = teacher.rope_scaling as { rope_type?: unknown; type?: unknown } | null | undefined;
  if (rope !== null && rope !== undefined && (rope.rope_type ?? rope.type) === "llama3")
    warnings.push('The teacher has llama3 rope_scaling, which R\'s pinned transformers 4.41.2 cannot parse; R\'s README sets "rope_scaling": null in the teacher config, so R trains with plain RoPE where this run used the scaled one. Use one RoPE on both sides.');
  const num = (k: string): number | undefined => (typeof a.config[k] === "number" ? (a.config[k] as number) : undefined);
  const lr = num("lr"), clip = num("gradClip"), wd = num("weightDecay"), betas = a.config.betas as number[] | undefined;
  if (lr !== undefined) flags.push(["learning_rate", String(lr)]);
  if (betas !== undefined && typeof betas[1] === "number") flags.push(["adam_beta2", String(betas[1])]);
  if (clip !== undefined) flags.push(["max_grad_norm", String(clip)]);
  if (wd !== undefined && wd !== 0) warnings.push(`weight decay ${wd}: hf_trainer.py has no flag for it (HF Trainer's default is 0).`);
  const eps = num("adamEps");
  if (betas !== undefined && typeof betas[0] === "number" && betas[0] !== 0.9)
    warnings.push(`AdamW beta1 ${betas[0]}: the command does not carry it; R's HF Trainer runs with its default 0.9.`);
  if (eps !== undefined && eps !== 1e-8) warnings.push(`AdamW epsilon ${eps}: the command does not carry it; R's HF Trainer runs with its default 1e-8.`);
  const schedule = a.config.schedule;
  // Ours warm up in every schedule; HF's "constant" does not (its "constant_with_warmup" does).
  if (schedule === "linear" || schedule === "cosine") flags.push(["lr_scheduler", schedule]);
  else if (schedule === "constant") flags.push(["lr_scheduler", "constant_with_warmup"]);
  if (a.seqLen !== undefined) flags.push(["data_max_len", String(a.seqLen)]);
  // --use_accelerate True: under `accelerate launch` (DeepSpeed) R must not place the model itself (R README).
  flags.push(["use_accelerate", "True"], ["load_model_weight_path", a.weights], ["dataset_name", "DATASET"], ["output_dir", "OUTPUT_DIR"], ["max_steps", "MAX_STEPS"]);
  const command = [
    "accelerate launch --config_file configs/accel_ds_8h800_gas1.yaml hf_trainer.py",
    ...flags.map(([k, v]) => `  --${k} ${sh(v)}`),
  ].join(" \\\n");
  return { command, warnings };
}

function handoffNote(a: {
  run: string; checkpoint: string; step: number; tokens: number; settings: ReferenceSettings; command: string; warnings: string[];
  dtype: SafetensorsFloatDType; teacherDir: string | undefined; batch: string;
}): string {
  const s = a.settings;
  return `# Hand-off to the reference trainer

Exported by \`lrc export-reference\` from \`${a.checkpoint}\` (run \`${a.run}\`): step ${a.step}, ${a.tokens.toLocaleString("en-US")} tokens.
Teacher: ${s.modelType}, D = ${s.teacherHiddenSize}, ${s.numLayers} layers. Student: d = ${s.hiddenSize}, RMSNorm eps ${s.studentEps},
${s.tieLmHeadProjection ? "tied LM-head projection (P_lm = P_emb)" : "separate LM-head projection (top-level zoom_down.weight)"}, attention-out term "${s.attnOut}".

\`${REFERENCE_PROJECTIONS_FILE}\` (${a.dtype}) holds every projection and student RMSNorm gain under the names of
\`CoTrainLM\` in the reference code (github.com/CURRENTF/LowRankClone, modeling/co_train_{llama,qwen}.py); its
\`__metadata__\` repeats the settings under R's config names (target_hidden_size, tie_word_emb_proj,
target_rms_norm_eps, use_all_attn, use_in_out_mlp) plus attn_out and the teacher's model_type, hidden_size and
num_hidden_layers.

## This is a warm start, not a resume

\`hf_trainer.py --load_model_weight_path\` loads the tensors into a freshly built model and trains from step 0.
What carries over: the values of every projection and gain, and the settings in the command below.
What does not:
- AdamW's moments: R starts them at zero (its first steps behave like a fresh optimizer).
- The schedule: R warms up again over \`--warmup_ratio\` (default 0.005) of its \`--max_steps\` and decays from there.
- The step count, the tokens seen (${a.tokens.toLocaleString("en-US")}) and the data position: R reads its own dataset from the start.
- The random state.
A true resume (\`--resume_checkpoint\`) needs HF Trainer's \`checkpoint-N/\` (trainer_state.json and torch-pickled
optimizer.pt, scheduler.pt, rng_state.pth; under DeepSpeed the \`global_stepN/\` ZeRO shards); lrc-ts writes none of them.

## Command

Run from a checkout of the reference code${a.teacherDir !== undefined ? "" : "; replace TEACHER_DIR with the teacher's directory (the same weights this run used)"};
replace DATASET, OUTPUT_DIR and MAX_STEPS:

\`\`\`sh
${a.command}
\`\`\`

Check these flags before changing anything:
- \`--tie_word_emb_proj ${s.tieLmHeadProjection ? 1 : 0}\`: R's default is 0, and its loader ignores missing keys, so a tied clone started
  without \`--tie_word_emb_proj 1\` silently trains a fresh random LM-head projection.
- \`--target_rms_norm_eps ${s.studentEps}\`: R's default is 1e-5.
- \`--use_all_attn 1\`: R's default is the IO attention variant, whose tensors this file does not hold (R asserts on them).
- \`--kl_temperature\` and \`--aux_loss_scale_factor\` are this run's τ and α (R's defaults are 10 and 1.0).
- The learning rate, β2, clip and schedule are this run's; R restarts the schedule, so lower the rate if the
  run here was already past its warmup.
- \`--batch_size\` (per GPU) and \`--gradient_accumulation_steps\` are left to the cluster (R's defaults: 4 and 1);
  this run used ${a.batch}.

## Data

R reads its own tokenized dataset (\`--dataset_name\`, see data/ in the reference code); the shards of \`lrc tokenize\`
are not readable there. Tokenize with the teacher's tokenizer, rows of \`--data_max_len\` tokens, and leave out what
this run has seen if the continuation should not repeat it (R does not know).

## Coming back

R saves only the trainable tensors (\`CoTrainLM.save_pretrained\`), in bf16, as \`model.safetensors\` or shards with
\`model.safetensors.index.json\` above 5 GB, with a config.json holding the same settings. Fold any of them here:

\`\`\`sh
lrc import-reference --checkpoint OUTPUT_DIR/checkpoint-N --teacher ${a.teacherDir !== undefined ? sh(path.resolve(a.teacherDir)) : "TEACHER_DIR"} --out student
\`\`\`
${a.warnings.length > 0 ? `\n## Differences R cannot reproduce\n\n${a.warnings.map((w) => `- ${w}`).join("\n")}\n` : ""}`;
}

/** A reference save opened for reading: its tensors (one view over every shard) and the settings it states. */
export interface ReferenceCheckpoint {
  readonly tensors: ReferenceTensorSource;
  /** The file or index named in errors. */
  readonly describe: string;
  /** Settings from the file's `__metadata__` (ours) and R's config.json next to it (R's saves). */
  readonly settings: Partial<ReferenceSettings>;
  /** Where the settings came from (null: nowhere). */
  readonly settingsFrom: string | null;
}

/** One view over several shards: name -> the file holding it. */
function shardView(byName: ReadonlyMap<string, SafetensorsFile>): ReferenceTensorSource {
  const get = (n: string): SafetensorsFile => {
    const f = byName.get(n);
    if (f === undefined) throw new RangeError(`no tensor "${n}" in the checkpoint`);
    return f;
  };
  return { names: () => [...byName.keys()], has: (n) => byName.has(n), info: (n) => get(n).info(n), readFloat32: (n) => get(n).readFloat32(n) };
}

/**
 * Opens a reference save: a .safetensors file, a model.safetensors.index.json (only the shards holding
 * projection tensors are read, so a full state dict's teacher shards are skipped), or a directory with either.
 */
export async function openReferenceCheckpoint(p: string): Promise<ReferenceCheckpoint> {
  if (!fs.existsSync(p)) throw new Error(`${p}: no such file or directory`);
  const isDir = fs.statSync(p).isDirectory();
  const dir = isDir ? p : path.dirname(p);
  let weights: { files: string[]; weightMap: Map<string, string> | null; describe: string };
  if (isDir) weights = resolveWeightFiles(dir);
  else if (p.endsWith(".json")) {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(p, "utf8"));
    } catch (e) {
      throw new Error(`${p}: invalid JSON: ${(e as Error).message}`);
    }
    const weightMap = parseWeightIndex(json, p, (f) => path.join(dir, f), (f) => fs.existsSync(f));
    weights = { files: [...new Set(weightMap.values())].sort(), weightMap, describe: p };
  } else weights = { files: [p], weightMap: null, describe: p };
  let tensors: ReferenceTensorSource;
  let metadata: Readonly<Record<string, string>>;
  const weightMap = weights.weightMap;
  if (weightMap === null) {
    const st = await readSafetensorsFile(weights.files[0]!);
    tensors = st;
    metadata = st.metadata;
  } else {
    const byName = new Map<string, SafetensorsFile>();
    const wanted = [...new Set([...weightMap].filter(([n]) => isReferenceProjectionName(n)).map(([, f]) => f))].sort();
    metadata = {};
    for (const file of wanted) {
      const st = await readSafetensorsFile(file);
      if (file === wanted[0]) metadata = st.metadata;
      for (const [n, f] of weightMap) {
        if (f !== file) continue;
        if (!st.has(n)) throw new Error(`${file}: missing tensor "${n}" (listed in ${weights.describe})`);
        byName.set(n, st);
      }
    }
    tensors = shardView(byName);
  }
  const configFile = path.join(dir, "config.json");
  let fromConfig: Partial<ReferenceSettings> = {};
  let settingsFrom: string | null = null;
  if (fs.existsSync(configFile)) {
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(fs.readFileSync(configFile, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${configFile}: invalid JSON: ${(e as Error).message}`);
    }
    // R's CustomConfig (target_* keys); a plain model config next to the file says nothing about the clone.
    if ("target_hidden_size" in cfg) {
      fromConfig = readReferenceSettings(cfg, configFile);
      settingsFrom = configFile;
    }
  }
  let fromMeta: Partial<ReferenceSettings> = {};
  if ("target_hidden_size" in metadata) {
    const where = `${weights.files[0]} __metadata__`;
    fromMeta = readReferenceSettings(metadata, where);
    settingsFrom = settingsFrom === null ? where : `${settingsFrom} and ${where}`;
  }
  return { tensors, describe: weights.describe, settings: { ...fromConfig, ...fromMeta }, settingsFrom };
}

export interface ImportReferenceOptions {
  /** A reference save: file, index or directory (see openReferenceCheckpoint). */
  readonly checkpoint: string;
  /** The teacher's HF directory (the weights R trained against). */
  readonly teacher: string;
  /** Output HF model directory (replaced atomically). */
  readonly out: string;
  /** Student RMSNorm eps when the save does not state it (default 1e-5, R's default). Overrides a stated one. */
  readonly studentEps?: number;
  /** Tokenizer files to copy (default: the teacher directory). */
  readonly tokenizerFrom?: string;
}

export interface ImportReferenceResult {
  readonly out: string;
  readonly settings: ReferenceSettings;
  /** Where the settings came from, or how they were chosen. */
  readonly notes: string[];
}

/** Folds a reference save into a plain HF student directory (see the header). */
export async function importReference(o: ImportReferenceOptions): Promise<ImportReferenceResult> {
  const ck = await openReferenceCheckpoint(o.checkpoint);
  const teacher = await loadCausalLM(o.teacher);
  try {
    const tc = teacher.config;
    const teacherFile = path.join(o.teacher, "config.json");
    const seen = inspectReferenceTensors(ck.tensors, ck.describe);
    if (seen.teacherHiddenSize !== tc.hidden_size)
      throw new RangeError(`${ck.describe}: tensor "model.zoom.weight" has shape [${seen.hiddenSize}, ${seen.teacherHiddenSize}], but the teacher (${teacherFile}) has hidden_size ${tc.hidden_size}`);
    if (seen.numLayers !== tc.num_hidden_layers)
      throw new RangeError(`${ck.describe}: holds projections for ${seen.numLayers} layers, but the teacher (${teacherFile}) has num_hidden_layers ${tc.num_hidden_layers}`);
    const s = ck.settings, from = ck.settingsFrom ?? ck.describe;
    const mismatch = (key: string, stated: unknown, actual: unknown, what: string): never => {
      throw new RangeError(`${from}: ${key} is ${JSON.stringify(stated)}, but ${what} ${JSON.stringify(actual)}`);
    };
    if (s.hiddenSize !== undefined && s.hiddenSize !== seen.hiddenSize) mismatch("target_hidden_size", s.hiddenSize, seen.hiddenSize, 'tensor "model.zoom.weight" says d =');
    if (s.tieLmHeadProjection !== undefined && s.tieLmHeadProjection !== seen.tieLmHeadProjection)
      mismatch("tie_word_emb_proj", s.tieLmHeadProjection ? 1 : 0, seen.tieLmHeadProjection ? "absent" : "present", 'the top-level "zoom_down.weight" (the separate LM-head projection) is');
    if (s.teacherHiddenSize !== undefined && s.teacherHiddenSize !== tc.hidden_size) mismatch("hidden_size", s.teacherHiddenSize, tc.hidden_size, `the teacher (${teacherFile}) has`);
    if (s.numLayers !== undefined && s.numLayers !== tc.num_hidden_layers) mismatch("num_hidden_layers", s.numLayers, tc.num_hidden_layers, `the teacher (${teacherFile}) has`);
    if (s.modelType !== undefined && s.modelType !== tc.model_type) mismatch("model_type", s.modelType, tc.model_type, `the teacher (${teacherFile}) is`);
    const notes: string[] = [];
    let eps: number;
    if (o.studentEps !== undefined) {
      eps = o.studentEps;
      notes.push(`student eps ${eps} (given)${s.studentEps !== undefined && s.studentEps !== eps ? `; ${from} says ${s.studentEps}` : ""}`);
    } else if (s.studentEps !== undefined) {
      eps = s.studentEps;
      notes.push(`student eps ${eps} (from ${from})`);
    } else {
      eps = REFERENCE_DEFAULT_EPS;
      notes.push(`student eps ${eps}: ${ck.describe} does not state target_rms_norm_eps, so R's default is assumed (give --student-eps if the run used another)`);
    }
    const clone = new LowRankClone(teacher, { hiddenSize: seen.hiddenSize, tieLmHeadProjection: seen.tieLmHeadProjection, studentEps: eps });
    loadReferenceTensors(clone.projections, ck.tensors, ck.describe);
    // As distill's export: generation/tokenizer configs where the tokenizer source has none (weights stay F32).
    const tokenizerFrom = o.tokenizerFrom ?? o.teacher;
    await exportStudent(clone, o.out, { tokenizerFrom, extraFiles: exportConfigFiles(tc, tokenizerFrom) });
    const settings: ReferenceSettings = {
      hiddenSize: seen.hiddenSize, tieLmHeadProjection: seen.tieLmHeadProjection, studentEps: eps,
      modelType: tc.model_type, teacherHiddenSize: tc.hidden_size, numLayers: tc.num_hidden_layers, ...(s.attnOut !== undefined ? { attnOut: s.attnOut } : {}),
    };
    return { out: o.out, settings, notes };
  } finally {
    teacher.dispose();
  }
}
