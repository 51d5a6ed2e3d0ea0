// LowRankClone against the spec: the PyTorch golden (every loss term per layer, both attention-out forms,
// τ 40 and 2, student logits, gradients), the identity clone, fold equivalence through an exported and
// reloaded HF directory, which tensors get gradients, a finite-difference check through the whole loss,
// and each loss term against a hand computation.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Batch } from "@lrc-ts/data";
import { CausalLM, causalLMForward, linear as linearOp, loadCausalLM, makeConfig } from "@lrc-ts/nn";
import type { CausalLMConfig, LayerCapture } from "@lrc-ts/nn";
import { astype, mse, readSafetensorsFileSync, rng, noGrad, scope, tensor, valueAndGrad } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { assertClose, checkGrad } from "@lrc-ts/tensor-core/testing";
import { LowRankClone } from "./clone.js";
import { exportStudent } from "./node/model-files.js";
import { identityValues, weightTensors } from "./projection.js";
import { batchIds } from "./losses.js";
import type { AttnOutForm, LossOptions } from "./losses.js";
import { attnOutGram, cloneCaptureFields, layerCloneTerms } from "./losses.js";

const fixtures = path.resolve(import.meta.dirname, "../../nn/fixtures");
const goldenDir = path.join(fixtures, "lrc-golden");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-core-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface GoldenLosses {
  per_layer: Array<Record<string, number>>;
  clone_sum_paper: number;
  clone_sum_reference: number;
  ce_student: number;
  alpha: number;
  by_temperature: Record<string, { kl: number; total_paper: number; total_reference: number }>;
}

/** ids [B, T] -> the spec's CE batch: targets = ids shifted left, the last position ignored (-100). */
function shiftedBatch(ids: Int32Array, B: number, T: number): Batch {
  const targets = new Int32Array(B * T).fill(-100);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) targets[b * T + t] = ids[b * T + t + 1]!;
  return { inputs: ids, targets, shape: [B, T] };
}

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-8);
}

describe("PyTorch golden (packages/nn/fixtures/lrc-golden)", async () => {
  const teacher = await loadCausalLM(path.join(fixtures, "qwen2-tied-f32"));
  const losses = JSON.parse(fs.readFileSync(path.join(goldenDir, "losses.json"), "utf8")) as GoldenLosses;
  const golden = readSafetensorsFileSync(path.join(goldenDir, "golden.safetensors"));
  const proj = readSafetensorsFileSync(path.join(goldenDir, "projections.safetensors"));
  const grads = readSafetensorsFileSync(path.join(goldenDir, "grads.safetensors"));
  const ids = golden.readInt32("input_ids");
  const [B, T] = golden.info("input_ids").shape as [number, number];
  const batch = shiftedBatch(ids, B, T);

  const make = (attnOut: AttnOutForm, temperature: number) => {
    const c = new LowRankClone(teacher, { hiddenSize: 16, studentEps: 1e-5, attnOut, temperature, alpha: losses.alpha });
    c.projections.load(Object.fromEntries(proj.names().map((n) => [n, proj.readFloat32(n)])), "projections.safetensors");
    return c;
  };

  for (const attnOut of ["paper", "reference"] as const)
    for (const tau of ["40", "2"])
      it(`matches every term (attnOut ${attnOut}, τ ${tau})`, () => {
        const c = make(attnOut, Number(tau));
        const r = c.forward(batch);
        assertClose(r.logits().student, golden.readFloat32("student_logits"), 1e-4, 1e-4, "student logits");
        assertClose(r.logits().teacher, golden.readFloat32("teacher_logits"), 1e-4, 1e-4, "teacher logits");
        losses.per_layer.forEach((l, i) => {
          const want: Record<string, number> = {
            q: l.q!, k: l.k!, v: l.v!, gate: l.gate!, up: l.up!, down: l.mlp_out!,
            o: attnOut === "paper" ? l.attn_out_paper! : l.attn_out_reference!,
          };
          for (const [m, v] of Object.entries(want)) expect(rel(r.terms[`layers.${i}.${m}`]!.item(), v), `layers.${i}.${m}`).toBeLessThan(1e-4);
        });
        expect(rel(r.clone!.item(), attnOut === "paper" ? losses.clone_sum_paper : losses.clone_sum_reference)).toBeLessThan(1e-4);
        expect(rel(r.ce!.item(), losses.ce_student)).toBeLessThan(1e-4);
        const g = losses.by_temperature[tau]!;
        expect(rel(r.kl!.item(), g.kl)).toBeLessThan(1e-4);
        expect(rel(r.total.item(), attnOut === "paper" ? g.total_paper : g.total_reference)).toBeLessThan(1e-4);
      });

  for (const attnOut of ["paper", "reference"] as const)
    it(`matches PyTorch's gradients of the τ=40 total (${attnOut})`, () => {
      const c = make(attnOut, 40);
      c.forward(batch).total.backward();
      for (const [name, t] of Object.entries(c.params)) {
        const want = grads.readFloat32(`${attnOut}.${name}`);
        let scale = 0;
        for (const x of want) scale = Math.max(scale, Math.abs(x));
        assertClose(t.grad!, want, 2e-4 * scale + 1e-6, 1e-3, `grad of ${name}`);
      }
      for (const t of weightTensors(c.teacherWeights)) expect(t.grad).toBeNull();
    });

  it("folds to the golden folded student (weights and logits)", async () => {
    const c = make("reference", 40);
    const dir = path.join(tmp, "golden-fold");
    await exportStudent(c, dir);
    const reloaded = await loadCausalLM(dir);
    const ref = await loadCausalLM(path.join(goldenDir, "folded"));
    for (const [n, t] of ref.namedParameters()) assertClose(reloaded.stateDict()[n]!, t, 1e-5, 1e-4, n);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    expect(cfg).toMatchObject({ hidden_size: 16, head_dim: 8, tie_word_embeddings: true, rms_norm_eps: 1e-5, num_attention_heads: 4 });
    const logits = noGrad(() => reloaded.logits(batchIds(batch, "inputs")));
    assertClose(logits, golden.readFloat32("student_logits"), 1e-4, 1e-4, "folded logits");
  });
});

/** A tiny random teacher. */
function tinyTeacher(opts: { tied: boolean; arch?: "qwen2" | "llama"; dtype?: "float32" | "float64"; D?: number; seed?: number }): CausalLM {
  const cfg: CausalLMConfig = makeConfig({
    model_type: opts.arch ?? "qwen2", vocab_size: 64, hidden_size: opts.D ?? 16, intermediate_size: 24, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: opts.tied, rms_norm_eps: 1e-6, max_position_embeddings: 64,
  });
  const m = new CausalLM(cfg, { seed: opts.seed ?? 1, std: 0.3, dtype: opts.dtype ?? "float32" });
  // Non-trivial norm gains and biases so that every teacher tensor matters.
  const r = rng(7);
  noGrad(() => {
    for (const [n, t] of m.namedParameters()) {
      if (n.endsWith("norm.weight")) for (let i = 0; i < t.size; i++) t.buf[i] = 1 + 0.1 * r.normal();
      if (n.endsWith(".bias")) for (let i = 0; i < t.size; i++) t.buf[i] = 0.2 * r.normal();
    }
  });
  return m;
}

function randomBatch(B: number, T: number, V: number, seed: number) {
  const r = rng(seed);
  const ids = new Int32Array(B * T).map(() => r.int(V));
  const tg = new Int32Array(B * T).map(() => r.int(V));
  return { inputs: ids, targets: tg, shape: [B, T] } satisfies Batch;
}

describe("identity clone (d = D, P = I, gains = teacher's)", () => {
  for (const arch of ["qwen2", "llama"] as const)
    for (const attnOut of ["paper", "reference"] as const)
      it(`${arch}, attnOut ${attnOut}: student = teacher, KL = 0, every clone term = 0`, () => {
        const teacher = tinyTeacher({ tied: arch === "qwen2", arch });
        const c = new LowRankClone(teacher, { hiddenSize: 16, attnOut, tieLmHeadProjection: arch === "qwen2" });
        c.projections.load(identityValues(c.projections));
        const r = noGrad(() => c.forward(randomBatch(2, 8, 64, 3)));
        assertClose(r.logits().student, r.logits().teacher, 1e-5, 1e-5, "logits");
        expect(Math.abs(r.kl!.item())).toBeLessThan(1e-6);
        expect(Object.keys(r.terms)).toHaveLength(14);
        for (const [n, t] of Object.entries(r.terms)) expect(t.item(), n).toBeLessThan(1e-10);
      });
});

describe("fold equivalence", () => {
  for (const tied of [true, false])
    for (const tieProj of [true, false])
      it(`training-graph logits = folded, saved and reloaded logits (teacher ${tied ? "tied" : "untied"}, projection ${tieProj ? "tied" : "untied"})`, async () => {
        const teacher = tinyTeacher({ tied, arch: tied ? "qwen2" : "llama" });
        const c = new LowRankClone(teacher, { hiddenSize: 8, seed: 3, initStd: 0.3, tieLmHeadProjection: tieProj, studentEps: 1e-5 });
        noGrad(() => {
          for (const [n, t] of Object.entries(c.params)) if (t.rank === 1) t.buf.forEach((_, i) => (t.buf[i] = 1 + 0.05 * Math.sin(i + n.length)));
        });
        const batch = randomBatch(2, 8, 64, 5);
        const train = noGrad(() => c.forward(batch).logits().student);
        const dir = path.join(tmp, `fold-${tied}-${tieProj}`);
        await exportStudent(c, dir);
        const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
        expect(cfg.hidden_size).toBe(8);
        expect(cfg.head_dim).toBe(4);
        expect(cfg.tie_word_embeddings).toBe(tied && tieProj);
        const re = await loadCausalLM(dir);
        assertClose(noGrad(() => re.logits(batchIds(batch, "inputs"))), train, 1e-4, 1e-4, "logits");
      });
});

describe("gradients", () => {
  it("only projections and gains get gradients; the trainable count is 7Dd+2d per layer + Dd (+Dd) + d", () => {
    for (const tieProj of [true, false]) {
      const teacher = tinyTeacher({ tied: true });
      const c = new LowRankClone(teacher, { hiddenSize: 8, tieLmHeadProjection: tieProj });
      const D = 16, d = 8, L = 2;
      expect(c.numTrainable()).toBe(L * (7 * D * d + 2 * d) + D * d + (tieProj ? 0 : D * d) + d);
      c.forward(randomBatch(2, 8, 64, 1)).total.backward();
      for (const t of teacher.parameters()) expect(t.grad).toBeNull();
      for (const [n, t] of Object.entries(c.params)) {
        expect(t.grad, n).not.toBeNull();
        expect(t.grad!.buf.some((x) => x !== 0), n).toBe(true);
      }
    }
  });

  it("recomputeWeights: each layer's generated matrices are freed after its forward, and the gradients are bit-identical", () => {
    const teacher = tinyTeacher({ tied: true });
    const batch = randomBatch(2, 8, 64, 1);
    const grads = (recomputeWeights: boolean) => {
      const c = new LowRankClone(teacher, { hiddenSize: 8, recomputeWeights, initStd: 0.3 });
      let generated: Tensor[] = [];
      const studentStack = c.projections.studentStack.bind(c.projections);
      c.projections.studentStack = (p) => {
        const w = studentStack(p);
        generated = w.layers.flatMap((l) => [l.qW, l.kW, l.vW, l.oW, l.gateW, l.upW, l.downW]);
        return w;
      };
      const loss = c.forward(batch);
      expect(generated.map((t) => t.disposed)).toEqual(generated.map(() => recomputeWeights));
      loss.total.backward();
      return Object.entries(c.params).map(([n, t]) => [n, Array.from(t.grad!.data())] as const);
    };
    expect(grads(true)).toEqual(grads(false));
  });

  it("recomputeWeights \"auto\" (the default) decides from the memory estimate, per batch shape, and says why; a bad setting is refused", () => {
    const teacher = tinyTeacher({ tied: true });
    const auto = new LowRankClone(teacher, { hiddenSize: 8 });
    expect(auto.loss.recomputeWeights).toBe("auto");
    // a few hundred KB of estimate against any machine's memory: kept
    expect(auto.recomputePlan(2, 8)).toEqual({ recompute: false, reason: expect.stringMatching(/^auto: the step's estimate with them kept is 0\.\d\d GiB; 2 x that \(\d+\.\d\d GiB\) fits in \d+\.\d\d GiB, the (cgroup memory limit|machine's memory)/) });
    const batch = randomBatch(2, 8, 64, 1);
    let generated: Tensor[] = [];
    const studentWeights = auto.projections.studentWeights.bind(auto.projections);
    auto.projections.studentWeights = (p) => {
      const w = studentWeights(p);
      generated = w.layers.flatMap((l) => [l.qW, l.kW, l.vW, l.oW, l.gateW, l.upW, l.downW]);
      return w;
    };
    auto.forward(batch);
    expect(generated.some((t) => t.disposed)).toBe(false);
    expect(new LowRankClone(teacher, { hiddenSize: 8, recomputeWeights: true }).recomputePlan(2, 8)).toEqual({ recompute: true, reason: "recomputeWeights on as set" });
    expect(() => new LowRankClone(teacher, { hiddenSize: 8, recomputeWeights: "yes" as never })).toThrow(/recomputeWeights \(--recompute-weights\) must be true, false or "auto", got "yes"/);
  });

  it("reference form: P_o gets no clone-loss gradient; paper form: it does", () => {
    const teacher = tinyTeacher({ tied: true });
    for (const attnOut of ["reference", "paper"] as const) {
      const c = new LowRankClone(teacher, { hiddenSize: 8, attnOut, cloneTerms: ["o"], cloneLayers: [1], ceWeight: 0, klWeight: 0, initStd: 0.3 });
      c.forward(randomBatch(2, 8, 64, 1)).total.backward();
      const g = c.params["layers.1.o"]!.grad;
      const nonzero = g !== null && g.buf.some((x) => x !== 0);
      expect(nonzero, attnOut).toBe(attnOut === "paper");
    }
  });

  it("finite differences (float64) on a projection and a gain through the whole loss", () => {
    const teacher = tinyTeacher({ tied: false, dtype: "float64", arch: "llama", D: 8 });
    for (const attnOut of ["reference", "paper"] as const) {
      const c = new LowRankClone(teacher, { hiddenSize: 4, initStd: 0.3, attnOut, temperature: 2, seed: 9 });
      const batch = randomBatch(2, 5, 64, 2);
      for (const [pn, gn] of [["layers.0.down", "layers.1.post_attention_layernorm"], ["layers.1.o", "norm"], ["embed", "layers.0.input_layernorm"], ["lm_head", "layers.1.q"]] as const) {
        const f = (P: Tensor, g: Tensor) => c.forward(batch, { ...c.params, [pn]: P, [gn]: g }).total;
        const r = checkGrad(f, [c.params[pn]!, c.params[gn]!], rng(4), { eps: 1e-6, atol: 1e-6, rtol: 1e-5 });
        expect(r.ok, `${attnOut} ${pn}/${gn}: analytic ${r.analytic} numeric ${r.numeric}`).toBe(true);
      }
    }
  });
});

describe("each term by hand", () => {
  const teacher = tinyTeacher({ tied: true, dtype: "float64", D: 8 });
  const c = new LowRankClone(teacher, { hiddenSize: 4, initStd: 0.3, temperature: 3, alpha: 0.7, seed: 2 });
  const B = 2, T = 4, V = 64;
  const batch = randomBatch(B, T, V, 11);
  const r = noGrad(() => c.forward(batch));
  const { student: zS, teacher: zT } = r.logits();
  const zs = zS.buf, zt = zT.buf;

  it("KL(p_T || p_S) at temperature τ, summed over positions and vocab, divided by B (no τ²)", () => {
    let kl = 0;
    for (let row = 0; row < B * T; row++) {
      const lsm = (z: ArrayLike<number>) => {
        let m = -Infinity;
        for (let j = 0; j < V; j++) m = Math.max(m, z[row * V + j]! / 3);
        let s = 0;
        for (let j = 0; j < V; j++) s += Math.exp(z[row * V + j]! / 3 - m);
        return (j: number) => z[row * V + j]! / 3 - m - Math.log(s);
      };
      const lt = lsm(zt), ls = lsm(zs);
      for (let j = 0; j < V; j++) kl += Math.exp(lt(j)) * (lt(j) - ls(j));
    }
    expect(rel(r.kl!.item(), kl / B)).toBeLessThan(1e-9);
  });

  it("CE = mean over the B·T targets of -log softmax(z_S)[target]", () => {
    let ce = 0;
    const tg = batch.targets;
    for (let row = 0; row < B * T; row++) {
      let m = -Infinity;
      for (let j = 0; j < V; j++) m = Math.max(m, zs[row * V + j]!);
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(zs[row * V + j]! - m);
      ce += -(zs[row * V + tg[row]!]! - m - Math.log(s));
    }
    expect(rel(r.ce!.item(), ce / (B * T))).toBeLessThan(1e-9);
  });

  it("clone terms: MSE means of the captured activations, o and down through P; total = ce + kl + α Σ", () => {
    const sw = noGrad(() => c.studentWeights());
    const s = noGrad(() => causalLMForward(sw, c.studentConfig, batchIds(batch, "inputs"), { capture: true }));
    const t = noGrad(() => causalLMForward(c.teacherWeights, c.teacherConfig, batchIds(batch, "inputs"), { capture: true }));
    const mseHand = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let sum = 0;
      for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
      return sum / a.length;
    };
    const times = (x: Tensor, P: Tensor) => {
      const [Bx, Tx, D] = x.shape as [number, number, number];
      const d = P.shape[1]!;
      const out = new Float64Array(Bx * Tx * d);
      for (let row = 0; row < Bx * Tx; row++)
        for (let j = 0; j < d; j++) {
          let acc = 0;
          for (let k = 0; k < D; k++) acc += x.buf[row * D + k]! * P.buf[k * d + j]!;
          out[row * d + j] = acc;
        }
      return out;
    };
    let sum = 0;
    for (let i = 0; i < 2; i++) {
      const S = s.captures![i]!, Tc = t.captures![i]!;
      const want: Record<string, number> = {
        q: mseHand(S.q.buf, Tc.q.buf), k: mseHand(S.k.buf, Tc.k.buf), v: mseHand(S.v.buf, Tc.v.buf),
        gate: mseHand(S.gate.buf, Tc.gate.buf), up: mseHand(S.up.buf, Tc.up.buf),
        down: mseHand(S.mlpOut.buf, times(Tc.mlpOut, c.params[`layers.${i}.down`]!)),
      };
      // reference o: c_S W_oᵀ vs c_T W_oᵀ (= the teacher's o_proj output; the loss evaluates it as a quadratic form)
      const Wo = c.teacherWeights.layers[i]!.oW;
      const ctx = S.attnContext;
      const [Bx, Tx, HD] = ctx.shape as [number, number, number];
      const D = Wo.shape[0]!;
      const cs = new Float64Array(Bx * Tx * D);
      for (let row = 0; row < Bx * Tx; row++)
        for (let o = 0; o < D; o++) {
          let acc = 0;
          for (let k = 0; k < HD; k++) acc += ctx.buf[row * HD + k]! * Wo.buf[o * HD + k]!;
          cs[row * D + o] = acc;
        }
      want.o = mseHand(cs, Tc.attnOut.buf);
      for (const [m, v] of Object.entries(want)) {
        expect(rel(r.terms[`layers.${i}.${m}`]!.item(), v), `layers.${i}.${m}`).toBeLessThan(1e-9);
        sum += v;
      }
    }
    expect(rel(r.clone!.item(), sum)).toBeLessThan(1e-9);
    expect(rel(r.total.item(), r.ce!.item() + r.kl!.item() + 0.7 * sum)).toBeLessThan(1e-9);
  });

  it("options switch terms, layers and weights off", () => {
    const c2 = new LowRankClone(teacher, { hiddenSize: 4, cloneTerms: ["gate", "down"], banLayers: [0], klWeight: 0, ceWeight: 2, alpha: 1 });
    const r2 = noGrad(() => c2.forward(batch));
    expect(Object.keys(r2.terms).sort()).toEqual(["layers.1.down", "layers.1.gate"]);
    expect(r2.kl).toBeNull();
    expect(rel(r2.total.item(), 2 * r2.ce!.item() + r2.clone!.item())).toBeLessThan(1e-12);
    expect(() => new LowRankClone(teacher, { hiddenSize: 4, cloneTerms: ["x" as "q"] })).toThrow(/unknown term "x"/);
    expect(() => new LowRankClone(teacher, { hiddenSize: 4, cloneLayers: [5] })).toThrow(/cloneLayers \(--clone-layers\): layer 5 does not exist/);
  });

  it("the forwards capture just what the asked-for terms compare", () => {
    expect(cloneCaptureFields({ attnOut: "reference", cloneTerms: ["q", "k", "v", "o", "gate", "up", "down"] })).toEqual({
      student: ["q", "k", "v", "attnContext", "gate", "up", "mlpOut"],
      teacher: ["q", "k", "v", "attnContext", "gate", "up", "mlpOut"],
    });
    expect(cloneCaptureFields({ attnOut: "paper", cloneTerms: ["o", "down"] })).toEqual({ student: ["attnOut", "mlpOut"], teacher: ["attnOut", "mlpOut"] });
  });

  it("the memory estimate keeps W_oᵀ W_o for exactly the layers whose o term the loss computes through it", () => {
    const n = teacher.config.num_hidden_layers;
    // options, layers with G (planned and used), layers with an o term at all
    const cases: [LossOptions, number, number][] = [
      [{}, n, n],
      [{ banLayers: [0] }, n - 1, n - 1],
      [{ cloneLayers: [] }, 0, 0],
      [{ attnOut: "paper" }, 0, n],
      [{ cloneTerms: ["q"] }, 0, 0],
      [{ cloneTerms: [] }, 0, 0],
      [{ alpha: 0 }, n, n], // logged (logCloneTerms defaults to true)
      [{ alpha: 0, logCloneTerms: false }, 0, 0],
      [{ alpha: 0, attnOut: "paper" }, 0, n],
    ];
    for (const [opts, gram, o] of cases) {
      const c = new LowRankClone(teacher, { hiddenSize: 4, ...opts });
      const r = noGrad(() => c.forward(batch));
      const oTerms = Object.keys(r.terms).filter((t) => t.endsWith(".o")).length;
      // the reference form's o terms are the loss's quadFormMse calls on G
      const used = (opts.attnOut ?? "reference") === "reference" ? oTerms : 0;
      expect([c.runShape().gramLayers, used, oTerms], JSON.stringify(opts)).toEqual([gram, gram, o]);
    }
  });
});

describe("the reference attention-out term as a quadratic form", () => {
  it("matches the projected form mse(c_S W_oᵀ + b_o, c_T W_oᵀ + b_o) at a real-ish shape (bfloat16 W_o 896 x 896, 4 x 256 tokens)", () => {
    const D = 896, B = 4, T = 256, r = rng(3);
    const rand = (shape: number[], scale: number) => {
      const n = shape.reduce((a, b) => a * b, 1), v = new Float32Array(n);
      for (let i = 0; i < n; i++) v[i] = scale * (2 * r.uniform() - 1);
      return tensor(v, shape);
    };
    const oW = astype(rand([D, D], 0.05), "bfloat16"), oB = rand([D], 0.5);
    const cS = rand([B, T, D], 1), cT = rand([B, T, D], 1);
    const teacherW = { layers: [{ oW, oB }] } as unknown as Parameters<typeof layerCloneTerms>[4];
    const term = (c: Tensor) => layerCloneTerms(0, { attnContext: c } as LayerCapture, { attnContext: cT } as LayerCapture, {}, teacherW, { attnOut: "reference", cloneTerms: ["o"] })["layers.0.o"]!;
    const projected = (c: Tensor) => mse(linearOp(c, oW, oB), noGrad(() => linearOp(cT, oW, oB)));
    // the first use makes G inside a step's scope (the trainer's); it must outlive it for the next step
    scope(() => noGrad(() => term(cS)));
    const [v, [g]] = valueAndGrad(term)(cS);
    const [v0, [g0]] = valueAndGrad(projected)(cS);
    expect(rel(v.item(), v0.item())).toBeLessThan(2e-5);
    let diff = 0, scale = 0;
    const a = g!.peek(), b = g0!.peek();
    for (let i = 0; i < b.length; i++) [diff, scale] = [Math.max(diff, Math.abs(a[i]! - b[i]!)), Math.max(scale, Math.abs(b[i]!))];
    expect(diff / scale).toBeLessThan(2e-4);
    // G is made once per teacher weight and reused
    expect(attnOutGram(oW)).toBe(attnOutGram(oW));
  });
});
