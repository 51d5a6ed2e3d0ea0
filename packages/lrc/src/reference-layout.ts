// The projection checkpoint in the layout of the reference implementation (CURRENTF/LowRankClone,
// modeling/co_train_{llama,qwen}.py, `CoTrainLM.save_pretrained(only_save_trainable=True)`), so a run started
// here can be warm-started on that PyTorch trainer (`hf_trainer.py --load_model_weight_path`) and its saves
// come back here to be folded. It is a warm start, not a resume: optimizer moments, schedule position, step
// and data position stay behind (see ./node/handoff.ts). nn.Linear stores weight [out, in] and computes x·Wᵀ; the
// table below follows from each module's forward / merge_weight:
//
//   ours (D x d unless noted)            reference tensor                                    shape    value
//   embed                                model.zoom.weight            Linear(D→d)            [d, D]   P_embᵀ
//   layers.{i}.q | k | v                 model.layers.{i}.self_attn.zoom_q|k|v.weight  (d→D) [D, d]   P
//   layers.{i}.o                         model.layers.{i}.self_attn.zoom_down.weight   (D→d) [d, D]   P_oᵀ
//   layers.{i}.gate | up | down          model.layers.{i}.mlp.zoom_gate|up|down.weight (D→d) [d, D]   Pᵀ
//   lm_head (untied projection only)     zoom_down.weight             CoTrainLM, (D→d)       [d, D]   P_lmᵀ
//   layers.{i}.input_layernorm [d]       model.layers.{i}.target_input_layernorm.weight              g
//   layers.{i}.post_attention_layernorm  model.layers.{i}.target_post_attention_layernorm.weight     g
//   norm [d]                             model.target_norm.weight                                    g
//
// R's q/k/v route is q = q_proj(zoom_q(a)) = a P_qᵀ W_qᵀ (so zoom_q.weight = P_q, merge W_q·zoom_q.weight);
// the FFN route is W_gate_S = zoom_gate(W_gate) = W_gate·zoom_gate.weightᵀ (so zoom_gate.weight = P_gateᵀ)
// and W_down_S = zoom_down(W_downᵀ)ᵀ = zoom_down.weight·W_down (= P_downᵀ W_down). R saves in bf16 by
// default; we write F32 (or BF16 on request) and read F32/F16/BF16.
//
// The settings R cannot see in the tensors travel in the file's `__metadata__` under R's own config names
// (`target_hidden_size`, `tie_word_emb_proj`, `target_rms_norm_eps`, `use_all_attn`, `use_in_out_mlp`) plus
// `attn_out`, `model_type`, `hidden_size` and `num_hidden_layers` of the teacher; R's own saves carry the
// same names in the config.json written next to them. readReferenceSettings reads either.

import type { SafetensorsFile, SafetensorsTensorInput } from "@lrc-ts/tensor-core";
import type { AttnOutForm } from "./losses.js";
import type { Projections } from "./projection.js";

interface Entry {
  /** our name */
  readonly ours: string;
  /** the reference implementation's name */
  readonly ref: string;
  /** stored transposed (Linear(D→d) weight = Pᵀ) */
  readonly transposed: boolean;
}

/** What the layout depends on: the number of layers and the tie flag (a Projections has both). */
export interface ReferenceLayoutShape {
  readonly teacherConfig: { readonly num_hidden_layers: number };
  readonly tieLmHeadProjection: boolean;
}

/** The tensors of a reference checkpoint, one file or the shards of an index seen as one. */
export type ReferenceTensorSource = Pick<SafetensorsFile, "names" | "has" | "info" | "readFloat32">;

/** The name of R's top-level LM-head projection (absent when `tie_word_emb_proj=1`). */
const LM_HEAD_PROJECTION = "zoom_down.weight";
const EMBED_PROJECTION = "model.zoom.weight";

/** The name mapping for a clone (depends on L and the tie flag). */
export function referenceLayout(p: ReferenceLayoutShape): Entry[] {
  const out: Entry[] = [{ ours: "embed", ref: EMBED_PROJECTION, transposed: true }];
  for (let i = 0; i < p.teacherConfig.num_hidden_layers; i++) {
    const a = `model.layers.${i}.self_attn`, m = `model.layers.${i}.mlp`;
    out.push(
      { ours: `layers.${i}.q`, ref: `${a}.zoom_q.weight`, transposed: false },
      { ours: `layers.${i}.k`, ref: `${a}.zoom_k.weight`, transposed: false },
      { ours: `layers.${i}.v`, ref: `${a}.zoom_v.weight`, transposed: false },
      { ours: `layers.${i}.o`, ref: `${a}.zoom_down.weight`, transposed: true },
      { ours: `layers.${i}.gate`, ref: `${m}.zoom_gate.weight`, transposed: true },
      { ours: `layers.${i}.up`, ref: `${m}.zoom_up.weight`, transposed: true },
      { ours: `layers.${i}.down`, ref: `${m}.zoom_down.weight`, transposed: true },
      { ours: `layers.${i}.input_layernorm`, ref: `model.layers.${i}.target_input_layernorm.weight`, transposed: false },
      { ours: `layers.${i}.post_attention_layernorm`, ref: `model.layers.${i}.target_post_attention_layernorm.weight`, transposed: false },
    );
  }
  if (!p.tieLmHeadProjection) out.push({ ours: "lm_head", ref: LM_HEAD_PROJECTION, transposed: true });
  out.push({ ours: "norm", ref: "model.target_norm.weight", transposed: false });
  return out;
}

function transpose2d(src: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
  return out;
}

/**
 * The clone's trainable tensors under the reference names (F32 data), sorted by name: the order in which R's
 * `save_pretrained` (safetensors' Rust `serialize`: by dtype alignment, then name; all one dtype here) lays
 * them out, so the BF16 file is R's byte for byte. `p` is a Projections, or the same shape built from a
 * checkpoint's trainable tensors (our names, [D, d] projections).
 */
export function toReferenceTensors(
  p: ReferenceLayoutShape & { readonly params: Readonly<Record<string, { readonly shape: readonly number[]; readonly buf: ArrayLike<number> }>> },
): Array<[string, SafetensorsTensorInput]> {
  const byName = [...referenceLayout(p)].sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  return byName.map(({ ours, ref, transposed }) => {
    const t = p.params[ours];
    if (t === undefined) throw new RangeError(`reference layout: no trainable tensor "${ours}" (for ${ref})`);
    if (!transposed) return [ref, { shape: [...t.shape], data: Float32Array.from(t.buf) }];
    const [D, d] = t.shape as [number, number];
    return [ref, { shape: [d, D], data: transpose2d(t.buf, D, d) }];
  });
}

/**
 * Loads a parsed reference-layout safetensors file (named `file` in errors) into the clone's trainable
 * tensors. Every expected tensor must be present with its shape; tensors of other modules (a full CoTrainLM
 * state dict) are ignored, other `zoom`/`target` tensors are an error (a different architecture variant,
 * e.g. IO attention).
 */
export function loadReferenceTensors(p: Projections, st: ReferenceTensorSource, file: string): void {
  const layout = referenceLayout(p);
  const known = new Set(layout.map((e) => e.ref));
  const stray = st.names().filter((n) => isReferenceProjectionName(n) && !known.has(n));
  if (stray.length > 0)
    throw new RangeError(
      `${file}: unexpected projection tensor${stray.length > 1 ? "s" : ""} ${stray.slice(0, 4).map((s) => `"${s}"`).join(", ")}` +
        ` (trained with another variant: IO attention/FFN, or a ${p.tieLmHeadProjection ? "separate" : "tied"} LM-head projection?)`,
    );
  const values: Record<string, Float32Array> = {};
  for (const { ours, ref, transposed } of layout) {
    if (!st.has(ref)) throw new RangeError(`${file}: missing tensor "${ref}" (for ${ours})`);
    const shape = st.info(ref).shape;
    const want = p.params[ours]!.shape;
    const expect = transposed ? [want[1]!, want[0]!] : [...want];
    if (shape.length !== expect.length || shape.some((s, i) => s !== expect[i]))
      throw new RangeError(`${file}: tensor "${ref}" has shape [${shape.join(", ")}], expected [${expect.join(", ")}]`);
    const data = st.readFloat32(ref);
    values[ours] = transposed ? transpose2d(data, expect[0]!, expect[1]!) : data;
  }
  p.load(values, file);
}

/** A tensor of R's trainable modules (the key words of R's freeze_original_model: "zoom", "target"). */
export function isReferenceProjectionName(n: string): boolean {
  return n.includes("zoom") || n.includes("target_");
}

/** The settings of a hand-off: what R needs besides the tensors, and what we need to fold its saves. */
export interface ReferenceSettings {
  /** Student hidden size d (R `target_hidden_size`). */
  readonly hiddenSize: number;
  /** R `tie_word_emb_proj`. */
  readonly tieLmHeadProjection: boolean;
  /** Student RMSNorm eps (R `target_rms_norm_eps`). */
  readonly studentEps: number;
  /** The attention-out clone term this side trained with (R trains only the "reference" form). */
  readonly attnOut?: AttnOutForm;
  /** The teacher's model_type, hidden_size and num_hidden_layers. */
  readonly modelType?: string;
  readonly teacherHiddenSize?: number;
  readonly numLayers?: number;
}

/**
 * The `__metadata__` of a hand-off file: R's config names (strings, as safetensors metadata must be), with
 * the per-matrix variant R released (`use_all_attn=1`, `use_in_out_mlp=0`), the only one this layout holds.
 */
export function referenceMetadata(s: ReferenceSettings, extra: Record<string, string> = {}): Record<string, string> {
  const m: Record<string, string> = {
    format: "pt",
    target_hidden_size: String(s.hiddenSize),
    tie_word_emb_proj: s.tieLmHeadProjection ? "1" : "0",
    target_rms_norm_eps: String(s.studentEps),
    use_all_attn: "1",
    use_in_out_mlp: "0",
  };
  if (s.attnOut !== undefined) m.attn_out = s.attnOut;
  if (s.modelType !== undefined) m.model_type = s.modelType;
  if (s.teacherHiddenSize !== undefined) m.hidden_size = String(s.teacherHiddenSize);
  if (s.numLayers !== undefined) m.num_hidden_layers = String(s.numLayers);
  return { ...m, ...extra };
}

function flag(v: unknown, key: string, where: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === true || v === 1 || v === "1" || v === "true" || v === "True") return true;
  if (v === false || v === 0 || v === "0" || v === "false" || v === "False") return false;
  throw new RangeError(`${where}: ${key} must be 1/0 or true/false, got ${JSON.stringify(v)}`);
}

function num(v: unknown, key: string, where: string, integer: boolean): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new RangeError(`${where}: ${key} must be a positive ${integer ? "integer" : "number"}, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * The hand-off settings found in a file's `__metadata__` or in the config.json R writes next to its saves
 * (`where` names it in errors). Absent keys stay undefined; a file of an IO variant is an error naming the key.
 */
export function readReferenceSettings(src: Readonly<Record<string, unknown>>, where: string): Partial<ReferenceSettings> {
  if (flag(src.use_all_attn, "use_all_attn", where) === false)
    throw new RangeError(`${where}: use_all_attn is 0 (IO attention); only the per-matrix variant (use_all_attn=1) can be folded here`);
  if (flag(src.use_in_out_mlp, "use_in_out_mlp", where) === true)
    throw new RangeError(`${where}: use_in_out_mlp is 1 (IO FFN); only the per-matrix variant (use_in_out_mlp=0) can be folded here`);
  const attnOut = src.attn_out;
  if (attnOut !== undefined && attnOut !== "paper" && attnOut !== "reference")
    throw new RangeError(`${where}: attn_out must be "paper" or "reference", got ${JSON.stringify(attnOut)}`);
  const out: Record<string, unknown> = {
    hiddenSize: num(src.target_hidden_size, "target_hidden_size", where, true),
    tieLmHeadProjection: flag(src.tie_word_emb_proj, "tie_word_emb_proj", where),
    studentEps: num(src.target_rms_norm_eps, "target_rms_norm_eps", where, false),
    attnOut,
    modelType: typeof src.model_type === "string" ? src.model_type : undefined,
    teacherHiddenSize: num(src.hidden_size, "hidden_size", where, true),
    numLayers: num(src.num_hidden_layers, "num_hidden_layers", where, true),
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as Partial<ReferenceSettings>;
}

/**
 * What the tensors of a reference checkpoint say about the clone: d and D from `model.zoom.weight` [d, D],
 * L from the per-layer projections, the tie flag from the presence of the top-level `zoom_down.weight`.
 */
export function inspectReferenceTensors(st: ReferenceTensorSource, file: string): { hiddenSize: number; teacherHiddenSize: number; numLayers: number; tieLmHeadProjection: boolean } {
  if (!st.has(EMBED_PROJECTION)) {
    const any = st.names().some(isReferenceProjectionName);
    throw new RangeError(`${file}: no tensor "${EMBED_PROJECTION}"${any ? "" : " and no zoom_*/target_* tensor at all: not a Low-Rank Clone checkpoint of the reference trainer"}`);
  }
  const shape = st.info(EMBED_PROJECTION).shape;
  if (shape.length !== 2) throw new RangeError(`${file}: tensor "${EMBED_PROJECTION}" has shape [${shape.join(", ")}], expected [d, D]`);
  let numLayers = 0;
  const layer = /^model\.layers\.(\d+)\./;
  for (const n of st.names()) {
    const m = isReferenceProjectionName(n) ? layer.exec(n) : null;
    if (m !== null) numLayers = Math.max(numLayers, Number(m[1]) + 1);
  }
  return { hiddenSize: shape[0]!, teacherHiddenSize: shape[1]!, numLayers, tieLmHeadProjection: !st.has(LM_HEAD_PROJECTION) };
}
