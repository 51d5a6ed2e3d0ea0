// The projection checkpoint in the layout of the reference implementation (CURRENTF/LowRankClone,
// modeling/co_train_{llama,qwen}.py, `CoTrainLM.save_pretrained(only_save_trainable=True)`), so a run started
// here can continue on that PyTorch trainer and come back here to be folded. nn.Linear stores weight
// [out, in] and computes x·Wᵀ; the table below follows from each module's forward / merge_weight:
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

import type { SafetensorsFile, SafetensorsTensorInput } from "@lrc-ts/tensor-core";
import type { Projections } from "./projection.js";

interface Entry {
  /** our name */
  readonly ours: string;
  /** the reference implementation's name */
  readonly ref: string;
  /** stored transposed (Linear(D→d) weight = Pᵀ) */
  readonly transposed: boolean;
}

/** The name mapping for a clone (depends on L and the tie flag). */
export function referenceLayout(p: Projections): Entry[] {
  const out: Entry[] = [{ ours: "embed", ref: "model.zoom.weight", transposed: true }];
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
  if (!p.tieLmHeadProjection) out.push({ ours: "lm_head", ref: "zoom_down.weight", transposed: true });
  out.push({ ours: "norm", ref: "model.target_norm.weight", transposed: false });
  return out;
}

function transpose2d(src: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
  return out;
}

/** The clone's trainable tensors under the reference names (F32 data). */
export function toReferenceTensors(p: Projections): Array<[string, SafetensorsTensorInput]> {
  return referenceLayout(p).map(({ ours, ref, transposed }) => {
    const t = p.params[ours]!;
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
export function loadReferenceTensors(p: Projections, st: SafetensorsFile, file: string): void {
  const layout = referenceLayout(p);
  const known = new Set(layout.map((e) => e.ref));
  const stray = st.names().filter((n) => (n.includes("zoom") || n.includes("target_")) && !known.has(n));
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
