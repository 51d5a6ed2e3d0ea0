// Profiles full training steps of the benchmark models with tensor-core ops directly (not a test): the pretrain
// step of the anchor Llama (hidden 256, 4 layers, 4 heads / 2 kv heads, head_dim 64, FFN 704, vocab 4096, batch
// 8 x 128) and the LRC distill step (Qwen2 teacher hidden 512, 8 / 4 heads, FFN 1408 -> student 256; student
// weights = teacher W times trainable projections; CE + KL at temperature 40 + 0.5 x clone MSE terms). The math
// is nn's functional core (embedding, rmsNorm, q/k/v/o linears as matmul(x, W, { transB: true }), rope,
// causalAttention, swiglu MLP, final norm, LM head, crossEntropy), backward through valueAndGrad and AdamW on every
// trainable tensor, each step inside scope(). Prints tokens/s (wall and per CPU second), a per-op breakdown
// (forward and backward), and peak RSS.
//
//   npx tsx --conditions=source packages/tensor-core/scripts/profile-step.ts [--mode pretrain|distill|all]
//       [--steps 6] [--warmup 2] [--threads N] [--via-nn] [--no-profile]
//
// --via-nn also runs the pretrain step through @lrc-ts/nn's causalLMForward and the distill step through
// @lrc-ts/lrc's lrcLoss (imported from the workspace sources), when those load.

import * as ops from "../src/index.js";
import { AdamW, Tensor, noGrad, randn, rng, scope, tensor, valueAndGrad } from "../src/index.js";
import { getThreadCount, setThreadCount, shutdownPool } from "../src/backend/cpu/index.js";
import { OpProfiler } from "../src/profile.js";

interface Dims {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffn: number;
  bias: boolean;
}

const LLAMA: Dims = { vocab: 4096, hidden: 256, layers: 4, heads: 4, kvHeads: 2, headDim: 64, ffn: 704, bias: false };
const TEACHER: Dims = { vocab: 4096, hidden: 512, layers: 4, heads: 8, kvHeads: 4, headDim: 64, ffn: 1408, bias: true };
const B = 8;
const T = 128;
const EPS = 1e-6;

// ---- command line
const argv = process.argv.slice(2);
function flag(name: string): boolean {
  return argv.includes(`--${name}`);
}
function opt(name: string, dflt: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1]! : dflt;
}
const mode = opt("mode", "all");
const steps = Number(opt("steps", "6"));
const warmup = Number(opt("warmup", "2"));
if (opt("threads", "") !== "") setThreadCount(Number(opt("threads", "1")));
const profiling = !flag("no-profile");

const prof = new OpProfiler();
const O: typeof ops = profiling ? prof.wrap(ops) : ops;

// ---- weights
interface Layer {
  inputNorm: Tensor; qW: Tensor; kW: Tensor; vW: Tensor; oW: Tensor; qB?: Tensor; kB?: Tensor; vB?: Tensor;
  postNorm: Tensor; gateW: Tensor; upW: Tensor; downW: Tensor;
}
interface Weights {
  embed: Tensor;
  layers: Layer[];
  finalNorm: Tensor;
  lmHead: Tensor;
}

function initWeights(d: Dims, seed: number, tied: boolean): Weights {
  const r = rng(seed);
  const w = (shape: number[]): Tensor => randn(shape, { rng: r, std: 0.02 });
  const g = (n: number): Tensor => ops.full([n], 1);
  const { hidden: D, heads: H, kvHeads: Hk, headDim: dh, ffn: F } = d;
  const embed = w([d.vocab, D]);
  const layers: Layer[] = [];
  for (let i = 0; i < d.layers; i++) {
    const l: Layer = {
      inputNorm: g(D), qW: w([H * dh, D]), kW: w([Hk * dh, D]), vW: w([Hk * dh, D]), oW: w([D, H * dh]),
      postNorm: g(D), gateW: w([F, D]), upW: w([F, D]), downW: w([D, F]),
    };
    if (d.bias) {
      l.qB = w([H * dh]);
      l.kB = w([Hk * dh]);
      l.vB = w([Hk * dh]);
    }
    layers.push(l);
  }
  return { embed, layers, finalNorm: g(D), lmHead: tied ? embed : w([d.vocab, D]) };
}

function ropeTables(dh: number, theta: number): { cos: Tensor; sin: Tensor } {
  const half = dh / 2;
  const cos = new Float32Array(T * dh), sin = new Float32Array(T * dh);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < half; i++) {
      const f = Math.fround(t * Math.fround(1 / Math.pow(theta, (2 * i) / dh)));
      cos[t * dh + i] = cos[t * dh + half + i] = Math.cos(f);
      sin[t * dh + i] = sin[t * dh + half + i] = Math.sin(f);
    }
  return { cos: tensor(cos, [T, dh]), sin: tensor(sin, [T, dh]) };
}

// ---- the model (nn's functional core, written with the wrapped ops)
interface Capture {
  q: Tensor; k: Tensor; v: Tensor; context: Tensor; attnOut: Tensor; gate: Tensor; up: Tensor; mlpOut: Tensor;
}

function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const y = O.matmul(x, w, { transB: true }); // (N, out)
  return b === undefined ? y : O.add(y, b);
}

/** ids (B, T) -> hidden (B*T, D) after the final norm, with per-layer captures when asked. */
function decoder(w: Weights, d: Dims, ids: Tensor, rot: { cos: Tensor; sin: Tensor }, caps: Capture[] | null): Tensor {
  const { heads: H, kvHeads: Hk, headDim: dh } = d;
  const N = B * T;
  let x = O.reshape(O.embedding(w.embed, ids), [N, w.embed.shape[1]!]); // (N, D)
  for (const l of w.layers) {
    const a = O.rmsNorm(x, l.inputNorm, EPS);
    const q = linear(a, l.qW, l.qB), k = linear(a, l.kW, l.kB), v = linear(a, l.vW, l.vB);
    const heads = (t: Tensor, n: number): Tensor => O.permute(O.reshape(t, [B, T, n, dh]), [0, 2, 1, 3]);
    const qh = O.rope(heads(q, H), rot.cos, rot.sin); // (B, H, T, dh)
    const kh = O.rope(heads(k, Hk), rot.cos, rot.sin);
    const ctx = O.causalAttention(qh, kh, heads(v, Hk), { scale: 1 / Math.sqrt(dh) });
    const context = O.reshape(O.permute(ctx, [0, 2, 1, 3]), [N, H * dh]);
    const attnOut = linear(context, l.oW);
    const h = O.add(x, attnOut);
    const f = O.rmsNorm(h, l.postNorm, EPS);
    const gate = linear(f, l.gateW), up = linear(f, l.upW);
    const mlpOut = linear(O.swiglu(gate, up), l.downW);
    x = O.add(h, mlpOut);
    if (caps !== null) caps.push({ q, k, v, context, attnOut, gate, up, mlpOut });
  }
  return O.rmsNorm(x, w.finalNorm, EPS);
}

// ---- measurement
interface StepResult {
  wallMs: number;
  cpuMs: number;
  loss: number;
}

let peakRss = 0;

function measure(name: string, tokens: number, step: () => number): void {
  for (let i = 0; i < warmup; i++) step();
  prof.reset();
  const results: StepResult[] = [];
  for (let i = 0; i < steps; i++) {
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    const loss = step();
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(cpu);
    results.push({ wallMs, cpuMs: (c.user + c.system) / 1000, loss });
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const walls = results.map((r) => r.wallMs).sort((a, b) => a - b);
  const median = walls[Math.floor(walls.length / 2)]!;
  const best = walls[0]!;
  const cpuMed = results.map((r) => r.cpuMs).sort((a, b) => a - b)[Math.floor(results.length / 2)]!;
  const meanWall = results.reduce((s, r) => s + r.wallMs, 0) / results.length;
  console.log(
    `\n== ${name} (threads ${getThreadCount()}): median ${median.toFixed(0)} ms/step, best ${best.toFixed(0)} ms -> ` +
      `${((tokens * 1000) / median).toFixed(0)} tokens/s (best ${((tokens * 1000) / best).toFixed(0)}), ` +
      `CPU ${cpuMed.toFixed(0)} ms/step -> ${((tokens * 1000) / cpuMed).toFixed(0)} tokens per CPU-second; ` +
      `loss ${results[0]!.loss.toFixed(4)} -> ${results[results.length - 1]!.loss.toFixed(4)}`,
  );
  if (profiling) console.log(prof.report(steps, meanWall));
}

function batch(seed: number, vocab: number): { ids: Tensor; targets: Tensor } {
  const r = rng(seed);
  const ids = new Int32Array(B * T), tg = new Int32Array(B * T);
  for (let i = 0; i < ids.length; i++) ids[i] = r.int(vocab);
  for (let i = 0; i < ids.length; i++) tg[i] = i % T === T - 1 ? r.int(vocab) : ids[i + 1]!;
  return { ids: tensor(ids, [B, T], { dtype: "int32" }), targets: tensor(tg, [B * T], { dtype: "int32" }) };
}

function flatten(w: Weights): Tensor[] {
  const out: Tensor[] = [w.embed];
  for (const l of w.layers) out.push(...Object.values(l));
  out.push(w.finalNorm);
  if (w.lmHead !== w.embed) out.push(w.lmHead);
  return out;
}

function unflatten(like: Weights, ps: readonly Tensor[]): Weights {
  let i = 0;
  const embed = ps[i++]!;
  const layers = like.layers.map((l) => {
    const out: Record<string, Tensor> = {};
    for (const k of Object.keys(l)) out[k] = ps[i++]!;
    return out as unknown as Layer;
  });
  const finalNorm = ps[i++]!;
  const lmHead = like.lmHead === like.embed ? embed : ps[i++]!;
  return { embed, layers, finalNorm, lmHead };
}

// ---- pretrain
function pretrain(): void {
  const w = initWeights(LLAMA, 1, false);
  const params = flatten(w);
  const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.1 });
  const rot = ropeTables(LLAMA.headDim, 10000);
  const { ids, targets } = batch(7, LLAMA.vocab);
  const lossFn = (...ps: Tensor[]): Tensor => {
    const ww = unflatten(w, ps);
    const hidden = decoder(ww, LLAMA, ids, rot, null);
    const loss = O.crossEntropy(linear(hidden, ww.lmHead), targets);
    if (profiling) prof.instrumentTape(loss);
    return loss;
  };
  const vg = valueAndGrad(lossFn);
  measure("pretrain step (tensor-core ops)", B * T, () =>
    scope(() => {
      const [loss, grads] = vg(...params);
      prof.time("adamw", () => opt.step(grads));
      return loss.item();
    }),
  );
}

// ---- distill
function distill(): void {
  const teacher = initWeights(TEACHER, 2, true);
  const d = 256, D = TEACHER.hidden, L = TEACHER.layers;
  const r = rng(3);
  const proj = (): Tensor => randn([D, d], { rng: r, std: 0.02 });
  const names = ["q", "k", "v", "o", "gate", "up", "down"] as const;
  // trainable: embed P, 7 P per layer, 2 gains per layer, final gain
  const params: Tensor[] = [proj()];
  for (let i = 0; i < L; i++) for (let j = 0; j < names.length; j++) params.push(proj());
  for (let i = 0; i < L; i++) params.push(ops.full([d], 1), ops.full([d], 1));
  params.push(ops.full([d], 1));
  const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.1 });
  const rot = ropeTables(TEACHER.headDim, 10000);
  const { ids, targets } = batch(8, TEACHER.vocab);
  const studentDims: Dims = { ...TEACHER, hidden: d };
  const lossFn = (...ps: Tensor[]): Tensor => {
    const P = (i: number, m: number): Tensor => ps[1 + i * names.length + m]!;
    const gainBase = 1 + L * names.length;
    const tCaps: Capture[] = [];
    const tHidden = noGrad(() => decoder(teacher, TEACHER, ids, rot, tCaps));
    const zT = noGrad(() => linear(tHidden, teacher.lmHead));
    const embed = O.matmul(teacher.embed, ps[0]!); // (V, d)
    const sw: Weights = {
      embed,
      lmHead: embed,
      finalNorm: ps[ps.length - 1]!,
      layers: teacher.layers.map((l, i) => {
        const out: Layer = {
          inputNorm: ps[gainBase + 2 * i]!, postNorm: ps[gainBase + 2 * i + 1]!,
          qW: O.matmul(l.qW, P(i, 0)), kW: O.matmul(l.kW, P(i, 1)), vW: O.matmul(l.vW, P(i, 2)),
          oW: O.matmul(P(i, 3), l.oW, { transA: true }),
          gateW: O.matmul(l.gateW, P(i, 4)), upW: O.matmul(l.upW, P(i, 5)),
          downW: O.matmul(P(i, 6), l.downW, { transA: true }),
        };
        if (l.qB !== undefined) out.qB = l.qB;
        if (l.kB !== undefined) out.kB = l.kB;
        if (l.vB !== undefined) out.vB = l.vB;
        return out;
      }),
    };
    const sCaps: Capture[] = [];
    const sHidden = decoder(sw, studentDims, ids, rot, sCaps);
    const zS = linear(sHidden, embed);
    const terms: Tensor[] = [];
    for (let i = 0; i < L; i++) {
      const s = sCaps[i]!, t = tCaps[i]!;
      terms.push(O.mse(s.q, t.q), O.mse(s.k, t.k), O.mse(s.v, t.v), O.mse(s.gate, t.gate), O.mse(s.up, t.up));
      terms.push(O.mse(linear(s.context, teacher.layers[i]!.oW), t.attnOut));
      terms.push(O.mse(s.mlpOut, O.matmul(t.mlpOut, P(i, 6))));
    }
    let clone = terms[0]!;
    for (const t of terms.slice(1)) clone = O.add(clone, t);
    const ce = O.crossEntropy(zS, targets);
    const kl = O.klDivergence(O.reshape(zT, [B, T, -1]), O.reshape(zS, [B, T, -1]), { temperature: 40 });
    const loss = O.add(O.add(ce, kl), O.mul(clone, 0.5));
    if (profiling) prof.instrumentTape(loss);
    return loss;
  };
  const vg = valueAndGrad(lossFn);
  measure("distill step (tensor-core ops)", B * T, () =>
    scope(() => {
      const [loss, grads] = vg(...params);
      prof.time("adamw", () => opt.step(grads));
      return loss.item();
    }),
  );
}

// ---- through nn / lrc (optional)
async function viaNn(): Promise<void> {
  let nn: typeof import("../../nn/src/index.js");
  try {
    nn = await import("../../nn/src/index.js");
  } catch (e) {
    console.log(`\n(skipping --via-nn: @lrc-ts/nn does not load: ${String(e).slice(0, 200)})`);
    return;
  }
  if (mode !== "distill") {
    const cfg = nn.makeConfig({
      model_type: "llama", vocab_size: LLAMA.vocab, hidden_size: LLAMA.hidden, intermediate_size: LLAMA.ffn,
      num_hidden_layers: LLAMA.layers, num_attention_heads: LLAMA.heads, num_key_value_heads: LLAMA.kvHeads,
      rms_norm_eps: EPS, tie_word_embeddings: false,
    });
    const w = initWeights(LLAMA, 1, false);
    const params = flatten(w);
    const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.1 });
    const { ids, targets } = batch(7, LLAMA.vocab);
    const vg = valueAndGrad((...ps: Tensor[]) => {
      const ww = unflatten(w, ps);
      const out = nn.causalLMForward(ww, cfg, ids);
      const loss = ops.crossEntropy(ops.reshape(out.logits!, [B * T, LLAMA.vocab]), targets);
      if (profiling) prof.instrumentTape(loss);
      return loss;
    });
    try {
      measure("pretrain step (nn causalLMForward; forward ops untimed)", B * T, () =>
        scope(() => {
          const [loss, grads] = vg(...params);
          prof.time("adamw", () => opt.step(grads));
          return loss.item();
        }),
      );
    } catch (e) {
      console.log(`(nn pretrain step failed: ${String(e).slice(0, 300)})`);
    }
  }
  if (mode !== "pretrain") {
    let lrc: typeof import("../../lrc/src/index.js");
    try {
      lrc = await import("../../lrc/src/index.js");
    } catch (e) {
      console.log(`\n(skipping the lrc distill step: @lrc-ts/lrc does not load: ${String(e).slice(0, 200)})`);
      return;
    }
    try {
      const lrcAny = lrc as unknown as Record<string, unknown>;
      const Projections = lrcAny["Projections"] as new (t: unknown, o: unknown) => { params: Record<string, Tensor> };
      const lrcLoss = lrcAny["lrcLoss"] as (p: unknown, b: unknown, o: unknown, params?: Record<string, Tensor>) => { total: Tensor };
      const resolve = lrcAny["resolveLossOptions"] as (o: unknown, n: number) => unknown;
      if (Projections === undefined || lrcLoss === undefined || resolve === undefined) {
        console.log("\n(skipping the lrc distill step: Projections / lrcLoss / resolveLossOptions are not exported)");
        return;
      }
      const cfg = nn.makeConfig({
        model_type: "qwen2", vocab_size: TEACHER.vocab, hidden_size: TEACHER.hidden, intermediate_size: TEACHER.ffn,
        num_hidden_layers: TEACHER.layers, num_attention_heads: TEACHER.heads, num_key_value_heads: TEACHER.kvHeads,
        rms_norm_eps: EPS, tie_word_embeddings: true,
      });
      const tw = initWeights(TEACHER, 2, true);
      const p = new Projections({ weights: tw, config: cfg }, { hiddenSize: 256 });
      const names = Object.keys(p.params);
      const tensors = names.map((n) => p.params[n]!);
      const opt = new AdamW(tensors, { lr: 1e-3, weightDecay: 0.1 });
      const { ids, targets } = batch(8, TEACHER.vocab);
      const lossOpts = resolve({}, TEACHER.layers);
      const vg = valueAndGrad((...ps: Tensor[]) => {
        const pp: Record<string, Tensor> = {};
        names.forEach((n, i) => (pp[n] = ps[i]!));
        const loss = lrcLoss(p, { inputs: ids, targets: ops.reshape(targets, [B, T]) }, lossOpts, pp).total;
        if (profiling) prof.instrumentTape(loss);
        return loss;
      });
      measure("distill step (lrc lrcLoss; forward ops untimed)", B * T, () =>
        scope(() => {
          const [loss, grads] = vg(...tensors);
          prof.time("adamw", () => opt.step(grads));
          return loss.item();
        }),
      );
    } catch (e) {
      console.log(`(lrc distill step failed: ${String(e).slice(0, 300)})`);
    }
  }
}

if (mode === "pretrain" || mode === "all") pretrain();
if (mode === "distill" || mode === "all") distill();
if (flag("via-nn")) await viaNn();
console.log(`\npeak RSS ${(Math.max(peakRss, process.resourceUsage().maxRSS * 1024) / 2 ** 20).toFixed(0)} MiB`);
shutdownPool();
