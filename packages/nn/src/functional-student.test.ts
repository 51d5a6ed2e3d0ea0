// The functional core with computed weights, the way LRC's student runs it: the teacher fixture
// `qwen2-tied-f32` times the projections of `lrc-golden/projections.safetensors` (tools/README.md, "LRC
// golden"), with the student's own RMSNorm eps (1e-5), reproduces PyTorch's student logits and activations,
// and gradients reach the projections through the computed weights.

import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { crossEntropy, matmul, readSafetensorsFileSync, slice, tensor } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { allclose } from "@lrc-ts/tensor-core/testing";
import { describe, expect, it } from "vitest";
import { loadCausalLM } from "./checkpoint.js";
import { makeConfig } from "./config.js";
import type { CausalLMWeights, LayerCapture, LayerWeights } from "./functional.js";
import { causalLMForward } from "./functional.js";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

describe("LRC-style student through causalLMForward", () => {
  it("matches the PyTorch training-graph golden, and backprop reaches the projections", async () => {
    const teacher = await loadCausalLM(path.join(FIXTURES, "qwen2-tied-f32"));
    teacher.freeze();
    const proj = readSafetensorsFileSync(path.join(FIXTURES, "lrc-golden", "projections.safetensors"));
    const golden = readSafetensorsFileSync(path.join(FIXTURES, "lrc-golden", "golden.safetensors"));
    const P = (name: string): Tensor => tensor(proj.readFloat32(name), proj.info(name).shape, { requiresGrad: true });
    const tw = teacher.weights();
    const d = 16;
    const cfg = makeConfig({ ...teacher.config, hidden_size: d, head_dim: teacher.config.head_dim, rms_norm_eps: 1e-5, extra: {} });
    const Ps: Tensor[] = [];
    const keep = (t: Tensor) => (Ps.push(t), t);
    const embed = matmul(tw.embed, keep(P("embed"))); // (V, d) = E P_emb
    const layers: LayerWeights[] = tw.layers.map((l, i) => {
      const p = (m: string) => keep(P(`layers.${i}.${m}`));
      return {
        inputNorm: p("input_layernorm"),
        qW: matmul(l.qW, p("q")), qB: l.qB!, // (H*dh, d) = W_q P_q
        kW: matmul(l.kW, p("k")), kB: l.kB!,
        vW: matmul(l.vW, p("v")), vB: l.vB!,
        oW: matmul(p("o"), l.oW, { transA: true }), // (d, H*dh) = P_o^T W_o
        postNorm: p("post_attention_layernorm"),
        gateW: matmul(l.gateW, p("gate")),
        upW: matmul(l.upW, p("up")),
        downW: matmul(p("down"), l.downW, { transA: true }), // (d, F) = P_down^T W_down
      };
    });
    const w: CausalLMWeights = { embed, layers, finalNorm: keep(P("norm")), lmHead: embed };
    const ids = tensor(golden.readInt32("input_ids"), golden.info("input_ids").shape, { dtype: "int32" });
    const r = causalLMForward(w, cfg, ids, { capture: true });
    const close = (name: string, t: Tensor) => {
      const c = allclose(t.buf, golden.readFloat32(name), 1e-4, 0);
      expect(c.ok, `${name}: max |diff| ${c.maxAbs}`).toBe(true);
    };
    close("student_logits", r.logits!);
    close("student_hidden_final", r.hidden);
    const names: Array<[string, keyof LayerCapture]> = [
      ["q", "q"], ["k", "k"], ["v", "v"], ["attn_heads", "attnContext"], ["attn_out", "attnOut"], ["gate", "gate"], ["up", "up"], ["mlp_out", "mlpOut"],
    ];
    for (let i = 0; i < 2; i++) for (const [g, c] of names) close(`student.layers.${i}.${g}`, r.captures![i]![c]);
    // next-token CE on the student logits equals the golden's, and its gradient reaches every projection
    const [B, T] = ids.shape as [number, number];
    const ce = crossEntropy(slice(r.logits!, [0, 0], [B, T - 1]), slice(ids, [0, 1], [B, T]));
    expect(ce.item()).toBeCloseTo(8.5329, 3);
    ce.backward();
    for (const p of Ps) expect(p.grad, "a projection got no gradient").not.toBeNull();
    for (const t of teacher.parameters()) expect(t.grad).toBeNull();
  });
});
