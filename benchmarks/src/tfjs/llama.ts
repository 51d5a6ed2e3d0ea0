// The same decoder-only transformer in TF.js, for the gradient and end-to-end reference numbers: RMSNorm,
// rotate-half RoPE (theta 1e4), GQA causal attention, SwiGLU MLP, Llama (no biases, untied head) or Qwen2
// (q/k/v biases, tied head), softmax cross-entropy, trained with tf.train.adam through optimizer.minimize.
//
// The embedding lookup is tf.gather with a custom gradient (tf.scatterND, which sums duplicate rows),
// because tfjs-backend-wasm has no UnsortedSegmentSum kernel for gather's built-in gradient.

import type { Tensor as TfTensor, Variable } from "@tensorflow/tfjs-core";
import type { CaseSpec, ModelDims } from "../cases.js";
import type { Prepared } from "../impl.js";
import { SkipCase } from "../impl.js";
import { attention, causalMask, rmsNorm } from "./kernels.js";
import type { Tf } from "./setup.js";

const EPS = 1e-6;

export interface TfLayerParams {
  ln1: Variable; wq: Variable; wk: Variable; wv: Variable; wo: Variable;
  bq: Variable | null; bk: Variable | null; bv: Variable | null;
  ln2: Variable; wGate: Variable; wUp: Variable; wDown: Variable;
}

export interface TfModel {
  dims: ModelDims;
  embed: Variable;
  layers: TfLayerParams[];
  lnF: Variable;
  lmHead: Variable | null;
  variables: Variable[];
  dispose(): void;
}

let seed = 1;

function init(tf: Tf, shape: number[], name: string, vars: Variable[], kind: "normal" | "ones" | "zeros" = "normal"): Variable {
  const value = kind === "ones" ? tf.ones(shape) : kind === "zeros" ? tf.zeros(shape) : tf.randomNormal(shape, 0, 0.02, "float32", seed++);
  const v = tf.variable(value, true, `${name}_${seed++}`);
  value.dispose();
  vars.push(v);
  return v;
}

export function createLayer(tf: Tf, d: ModelDims, vars: Variable[]): TfLayerParams {
  const dh = d.hidden / d.heads, bias = d.arch === "qwen2";
  return {
    ln1: init(tf, [d.hidden], "ln1", vars, "ones"),
    wq: init(tf, [d.hidden, d.heads * dh], "wq", vars),
    wk: init(tf, [d.hidden, d.kvHeads * dh], "wk", vars),
    wv: init(tf, [d.hidden, d.kvHeads * dh], "wv", vars),
    wo: init(tf, [d.heads * dh, d.hidden], "wo", vars),
    bq: bias ? init(tf, [d.heads * dh], "bq", vars, "zeros") : null,
    bk: bias ? init(tf, [d.kvHeads * dh], "bk", vars, "zeros") : null,
    bv: bias ? init(tf, [d.kvHeads * dh], "bv", vars, "zeros") : null,
    ln2: init(tf, [d.hidden], "ln2", vars, "ones"),
    wGate: init(tf, [d.hidden, d.ffn], "wg", vars),
    wUp: init(tf, [d.hidden, d.ffn], "wu", vars),
    wDown: init(tf, [d.ffn, d.hidden], "wd", vars),
  };
}

export function createModel(tf: Tf, d: ModelDims): TfModel {
  const variables: Variable[] = [];
  const embed = init(tf, [d.vocab, d.hidden], "embed", variables);
  const layers = Array.from({ length: d.layers }, () => createLayer(tf, d, variables));
  const lnF = init(tf, [d.hidden], "lnf", variables, "ones");
  const lmHead = d.tied ? null : init(tf, [d.hidden, d.vocab], "lm_head", variables);
  return { dims: d, embed, layers, lnF, lmHead, variables, dispose: () => variables.forEach((v) => v.dispose()) };
}

/** cos / sin tables [T, dh] in the rotate-half layout. */
export function ropeTables(tf: Tf, T: number, dh: number, theta = 10000): { cos: TfTensor; sin: TfTensor } {
  const cos = new Float32Array(T * dh), sin = new Float32Array(T * dh), half = dh / 2;
  for (let t = 0; t < T; t++)
    for (let i = 0; i < half; i++) {
      const a = t / theta ** ((2 * i) / dh);
      cos[t * dh + i] = cos[t * dh + i + half] = Math.cos(a);
      sin[t * dh + i] = sin[t * dh + i + half] = Math.sin(a);
    }
  return { cos: tf.tensor2d(cos, [T, dh]), sin: tf.tensor2d(sin, [T, dh]) };
}

/** Fixed per-sequence inputs: rope tables and the causal mask. */
export interface TfContext {
  B: number;
  T: number;
  cos: TfTensor;
  sin: TfTensor;
  mask: TfTensor;
  dispose(): void;
}

export function createContext(tf: Tf, d: ModelDims, B: number, T: number): TfContext {
  const { cos, sin } = ropeTables(tf, T, d.hidden / d.heads);
  const mask = causalMask(tf, T);
  return { B, T, cos, sin, mask, dispose: () => [cos, sin, mask].forEach((t) => t.dispose()) };
}

function rope(tf: Tf, x: TfTensor, ctx: TfContext): TfTensor {
  const dh = x.shape[3]!, half = dh / 2;
  const [x1, x2] = tf.split(x, [half, half], 3) as [TfTensor, TfTensor];
  return tf.add(tf.mul(x, ctx.cos), tf.mul(tf.concat([tf.neg(x2), x1], 3), ctx.sin));
}

function project(tf: Tf, h: TfTensor, w: Variable, b: Variable | null): TfTensor {
  const y = tf.matMul(h, w);
  return b === null ? y : tf.add(y, b);
}

/** One pre-norm decoder layer on x [B*T, D]. */
export function decoderLayer(tf: Tf, d: ModelDims, p: TfLayerParams, x: TfTensor, ctx: TfContext): TfTensor {
  const { B, T } = ctx, dh = d.hidden / d.heads;
  const heads = (y: TfTensor, n: number): TfTensor => tf.transpose(tf.reshape(y, [B, T, n, dh]), [0, 2, 1, 3]);
  const h = rmsNorm(tf, x, p.ln1, EPS);
  const q = rope(tf, heads(project(tf, h, p.wq, p.bq), d.heads), ctx);
  const k = rope(tf, heads(project(tf, h, p.wk, p.bk), d.kvHeads), ctx);
  const v = heads(project(tf, h, p.wv, p.bv), d.kvHeads);
  const o = tf.reshape(tf.transpose(attention(tf, q, k, v, ctx.mask), [0, 2, 1, 3]), [B * T, d.heads * dh]);
  const x1 = tf.add(x, tf.matMul(o, p.wo));
  const h2 = rmsNorm(tf, x1, p.ln2, EPS);
  const gate = tf.matMul(h2, p.wGate);
  const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.matMul(h2, p.wUp));
  return tf.add(x1, tf.matMul(act, p.wDown));
}

/** Embedding rows for ids (int32 [N]) with a scatter-add gradient. */
function embedLookup(tf: Tf, table: Variable, ids: TfTensor, ids2d: TfTensor): TfTensor {
  const f = tf.customGrad((...args) => {
    const w = args[0] as TfTensor;
    return { value: tf.gather(w, ids), gradFunc: (dy: TfTensor) => tf.scatterND(ids2d, dy, w.shape) };
  });
  return f(table);
}

/** Mean next-token cross-entropy of the model on ids, against one-hot targets [B*T, V]. */
export function lossFn(tf: Tf, m: TfModel, ctx: TfContext, ids: TfTensor, ids2d: TfTensor, targets: TfTensor): TfTensor {
  let x = embedLookup(tf, m.embed, ids, ids2d);
  for (const p of m.layers) x = decoderLayer(tf, m.dims, p, x, ctx);
  const h = rmsNorm(tf, x, m.lnF, EPS);
  const logits = m.lmHead === null ? tf.matMul(h, m.embed, false, true) : tf.matMul(h, m.lmHead);
  return tf.losses.softmaxCrossEntropy(targets, logits);
}

function tokens(tf: Tf, vocab: number, n: number, salt: number): { ids: TfTensor; ids2d: TfTensor; onehot: TfTensor } {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i + salt) * 2654435761) % vocab;
  const ids = tf.tensor1d(a, "int32");
  return { ids, ids2d: tf.reshape(ids, [n, 1]), onehot: tf.cast(tf.oneHot(ids, vocab), "float32") };
}

export function prepareTfModelCase(tf: Tf, spec: CaseSpec): Prepared {
  switch (spec.kind) {
    case "decoderLayer": {
      const { model: d, batch: B, seq: T } = spec;
      const vars: Variable[] = [];
      const p = createLayer(tf, d, vars);
      const x = tf.variable(tf.randomNormal([B * T, d.hidden], 0, 1, "float32", 5), true, "layer_x");
      const dy = tf.randomNormal([B * T, d.hidden], 0, 1, "float32", 6);
      const ctx = createContext(tf, d, B, T);
      const varList = [...vars, x];
      return {
        run: () => tf.tidy(() => void tf.variableGrads(() => tf.sum(tf.mul(decoderLayer(tf, d, p, x, ctx), dy)) as never, varList)),
        dispose: () => {
          [...varList, dy].forEach((t) => t.dispose());
          ctx.dispose();
        },
      };
    }
    case "modelGrad":
    case "pretrain": {
      const { model: d, batch: B, seq: T } = spec;
      const m = createModel(tf, d);
      const ctx = createContext(tf, d, B, T);
      const inp = tokens(tf, d.vocab, B * T, 0), tgt = tokens(tf, d.vocab, B * T, 1);
      const loss = () => lossFn(tf, m, ctx, inp.ids, inp.ids2d, tgt.onehot) as never;
      const cleanup = (): void => {
        m.dispose();
        ctx.dispose();
        [inp.ids, inp.ids2d, inp.onehot, tgt.ids, tgt.ids2d, tgt.onehot].forEach((t) => t.dispose());
      };
      if (spec.kind === "modelGrad") return { run: () => tf.tidy(() => void tf.variableGrads(loss, m.variables)), dispose: cleanup };
      const opt = tf.train.adam(1e-3);
      return {
        run: () => tf.tidy(() => void opt.minimize(loss, false, m.variables)),
        dispose: () => {
          cleanup();
          opt.dispose();
        },
        note: "tf.train.adam (TF.js has no AdamW)",
      };
    }
    default:
      throw new SkipCase(`TF.js has no ${spec.kind} case`);
  }
}
