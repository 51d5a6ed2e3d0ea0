// CausalLM on random tiny models: HF parameter names, KV-cache decoding equal to the full forward, state
// dict round trip, capture shapes and tape, the functional core equal to the Module path, and a float64
// finite-difference gradient check through the whole model.

import { add, bufferPoolStats, concat, mul, noGrad, rng, scope, sum, swiglu, tensor } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { assertClose, checkGrad } from "@lrc-ts/tensor-core/testing";
import { describe, expect, it } from "vitest";
import { causalLMForward, linear, mlpForward } from "./functional.js";
import type { KVCache } from "./functional.js";
import { CausalLM, idsTensor } from "./models/causal-lm.js";
import { StateDictError } from "./module.js";
import { tinyLlama, tinyQwen } from "./testing-internal/tiny.js";
import { stateDictFromWeights, weightsFromStateDict } from "./weights.js";

function randomIds(n: number, V: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => r.int(V));
}

describe("parameter tree", () => {
  it("Qwen2: HF names, q/k/v biases, no o bias, tied head reported once", () => {
    const m = new CausalLM(tinyQwen());
    const names = m.namedParameters().map(([n]) => n);
    expect(names.slice(0, 6)).toEqual([
      "model.embed_tokens.weight",
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.self_attn.q_proj.bias",
      "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.self_attn.k_proj.bias",
      "model.layers.0.self_attn.v_proj.weight",
    ]);
    expect(names).toContain("model.layers.1.mlp.down_proj.weight");
    expect(names).toContain("model.norm.weight");
    expect(names).not.toContain("model.layers.0.self_attn.o_proj.bias");
    expect(names).not.toContain("lm_head.weight");
    expect(names.length).toBe(1 + 2 * 12 + 1);
    expect(m.lm_head.weight).toBe(m.model.embed_tokens.weight);
  });

  it("Llama with attention_bias and head_dim != hidden/heads: o bias, untied head", () => {
    const cfg = tinyLlama();
    const m = new CausalLM(cfg);
    const sd = m.stateDict();
    expect(sd["model.layers.0.self_attn.o_proj.bias"]!.shape).toEqual([12]);
    expect(sd["model.layers.0.self_attn.q_proj.weight"]!.shape).toEqual([3 * 6, 12]);
    expect(sd["model.layers.0.self_attn.k_proj.weight"]!.shape).toEqual([6, 12]);
    expect(sd["model.layers.0.self_attn.o_proj.weight"]!.shape).toEqual([12, 18]);
    expect(sd["lm_head.weight"]!.shape).toEqual([48, 12]);
    expect(m.numParameters()).toBe(Object.values(sd).reduce((s, t) => s + t.size, 0));
  });

  it("freeze / unfreeze / train / eval switches", () => {
    const m = new CausalLM(tinyQwen());
    expect(m.parameters().every((t) => t.requiresGrad)).toBe(true);
    m.freeze();
    expect(m.parameters().some((t) => t.requiresGrad)).toBe(false);
    m.unfreeze();
    expect(m.parameters().every((t) => t.requiresGrad)).toBe(true);
    m.eval();
    expect(m.namedModules().every(([, x]) => !x.training)).toBe(true);
    m.train();
    expect(m.model.layers.items[1]!.mlp.training).toBe(true);
  });

  it("a seed makes the random init reproducible and layers differ", () => {
    const a = new CausalLM(tinyQwen(), { seed: 3 }), b = new CausalLM(tinyQwen(), { seed: 3 });
    expect([...a.model.layers.items[0]!.self_attn.q_proj.weight.buf]).toEqual([...b.model.layers.items[0]!.self_attn.q_proj.weight.buf]);
    expect([...a.model.layers.items[0]!.self_attn.q_proj.weight.buf]).not.toEqual([...a.model.layers.items[1]!.self_attn.q_proj.weight.buf]);
  });
});

describe("state dict", () => {
  it("round trips into a differently initialised model, giving identical logits", () => {
    const cfg = tinyLlama();
    const a = new CausalLM(cfg, { seed: 1, std: 0.3 }), b = new CausalLM(cfg, { seed: 2, std: 0.3 });
    const ids = randomIds(7, cfg.vocab_size, 0);
    const la = noGrad(() => a.logits(ids));
    expect(noGrad(() => b.logits(ids)).buf).not.toEqual(la.buf);
    b.loadStateDict(a.stateDict());
    expect([...noGrad(() => b.logits(ids)).buf]).toEqual([...la.buf]);
  });

  it("a tied model accepts an HF-style state dict that also lists lm_head.weight", () => {
    const cfg = tinyQwen();
    const a = new CausalLM(cfg, { seed: 1 }), b = new CausalLM(cfg, { seed: 2 });
    b.loadStateDict({ ...a.stateDict(), "lm_head.weight": a.model.embed_tokens.weight });
    expect([...b.lm_head.weight.buf]).toEqual([...a.model.embed_tokens.weight.buf]);
    expect(() => new CausalLM(tinyLlama()).loadStateDict({ ...new CausalLM(tinyLlama()).stateDict(), "x.weight": tensor([1]) })).toThrow(/"x\.weight"/);
  });

  it("keeps parameter identity (copies in place)", () => {
    const cfg = tinyQwen();
    const a = new CausalLM(cfg, { seed: 1 }), b = new CausalLM(cfg, { seed: 2 });
    const before = b.parameters();
    b.loadStateDict(a.stateDict());
    expect(b.parameters()).toEqual(before);
  });

  it("errors name the missing, unexpected or mis-shaped tensor and the source, and change nothing", () => {
    const cfg = tinyQwen();
    const a = new CausalLM(cfg, { seed: 1 }), b = new CausalLM(cfg, { seed: 2 });
    const snapshot = [...b.model.norm.weight.buf];
    const missing = { ...a.stateDict() };
    delete missing["model.layers.1.mlp.up_proj.weight"];
    expect(() => b.loadStateDict(missing, { source: "x.safetensors" })).toThrow(
      new StateDictError('x.safetensors: missing tensor "model.layers.1.mlp.up_proj.weight"'),
    );
    const extra = { ...a.stateDict(), "model.layers.9.foo": tensor([1]) };
    expect(() => b.loadStateDict(extra)).toThrow(/unexpected tensor "model\.layers\.9\.foo"/);
    const wrong = { ...a.stateDict(), "model.norm.weight": tensor([1, 2, 3]) };
    expect(() => b.loadStateDict(wrong)).toThrow(/tensor "model\.norm\.weight" has shape \[3\], expected \[16\]/);
    expect([...b.model.norm.weight.buf]).toEqual(snapshot);
    // non-strict ignores names but still checks shapes
    b.loadStateDict(missing, { strict: false });
    expect(() => b.loadStateDict(wrong, { strict: false })).toThrow(/model\.norm\.weight/);
  });

  it("weightsFromStateDict / stateDictFromWeights are inverse name maps", () => {
    const cfg = tinyLlama();
    const m = new CausalLM(cfg);
    const w = weightsFromStateDict(m.stateDict(), cfg);
    expect(w.layers[1]!.oB).toBe(m.model.layers.items[1]!.self_attn.o_proj.bias);
    expect(stateDictFromWeights(w, cfg)).toEqual(m.stateDict());
    expect(() => weightsFromStateDict({}, cfg, "f.safetensors")).toThrow(/f\.safetensors: missing tensor "model\.layers\.0\./);
  });
});

describe("forward", () => {
  it("batch rows are independent and the functional core equals the Module path", () => {
    const cfg = tinyQwen();
    const m = new CausalLM(cfg, { seed: 5, std: 0.2 });
    const r0 = randomIds(6, cfg.vocab_size, 1), r1 = randomIds(6, cfg.vocab_size, 2);
    noGrad(() => {
      const both = m.logits([r0, r1]);
      expect(both.shape).toEqual([2, 6, cfg.vocab_size]);
      const one = m.logits(r1);
      assertClose(both.slice([1]).buf, one.buf, 1e-6, 1e-5, "row 1");
      const f = causalLMForward(m.weights(), cfg, idsTensor([r0, r1])).logits!;
      expect([...f.buf]).toEqual([...both.buf]);
    });
  });

  it("causal: logits at position t do not depend on later tokens", () => {
    const cfg = tinyLlama();
    const m = new CausalLM(cfg, { seed: 5, std: 0.2 });
    const a = randomIds(8, cfg.vocab_size, 3);
    const b = [...a.slice(0, 5), ...randomIds(3, cfg.vocab_size, 4)];
    noGrad(() => assertClose(m.logits(a).slice([0, 0], [1, 5]).buf, m.logits(b).slice([0, 0], [1, 5]).buf, 1e-6, 1e-5));
  });

  it("logits: 'last' and 'none' and the eps override", () => {
    const cfg = tinyQwen();
    const m = new CausalLM(cfg, { seed: 5, std: 0.2 });
    const ids = randomIds(5, cfg.vocab_size, 6);
    noGrad(() => {
      const all = m.forward(ids);
      const last = m.forward(ids, { logits: "last" });
      expect(last.logits!.shape).toEqual([1, 1, cfg.vocab_size]);
      expect([...last.logits!.buf]).toEqual([...all.logits!.slice([0, 4]).buf]);
      expect(m.forward(ids, { logits: "none" }).logits).toBeNull();
      const big = m.forward(ids, { eps: 10 }).logits!;
      expect(big.buf).not.toEqual(all.logits!.buf);
    });
  });

  it("inputsEmbeds replaces the embedding lookup", () => {
    const cfg = tinyQwen();
    const m = new CausalLM(cfg, { seed: 5, std: 0.2 });
    const ids = idsTensor(randomIds(5, cfg.vocab_size, 7));
    noGrad(() => {
      const e = m.model.embed_tokens.forward(ids);
      const a = m.forward(ids).logits!, b = causalLMForward(m.weights(), cfg, null, { inputsEmbeds: e }).logits!;
      expect([...b.buf]).toEqual([...a.buf]);
      // the decoder stack alone (LRC's student in training): no embedding with inputsEmbeds, no head without logits
      const { embed: _e, lmHead: _h, ...stack } = m.weights();
      const h = causalLMForward(stack, cfg, null, { inputsEmbeds: e, logits: "none" }).hidden;
      expect([...h.buf]).toEqual([...m.forward(ids, { logits: "none" }).hidden.buf]);
      expect(() => causalLMForward(stack, cfg, ids, { logits: "none" })).toThrow(/no embed weight \(give inputsEmbeds\)/);
      expect(() => causalLMForward(stack, cfg, null, { inputsEmbeds: e })).toThrow(/logits "all" need an lmHead weight/);
    });
  });

  it("rejects mis-shaped weights naming the field", () => {
    const cfg = tinyQwen();
    const m = new CausalLM(cfg);
    const w = m.weights();
    const bad = { ...w, layers: [w.layers[0]!, { ...w.layers[1]!, kW: w.layers[1]!.qW }] };
    expect(() => causalLMForward(bad, cfg, idsTensor([1, 2]))).toThrow(/layers\[1\]\.kW has shape \[16, 16\], expected \[8, 16\]/);
  });
});

describe("KV cache", () => {
  it.each([["qwen2", tinyQwen()], ["llama", tinyLlama()]])("%s: prefill + one-token steps equal the full forward", (_, cfg) => {
    const m = new CausalLM(cfg, { seed: 9, std: 0.3 });
    const ids = [randomIds(10, cfg.vocab_size, 10), randomIds(10, cfg.vocab_size, 11)];
    noGrad(() => {
      const full = m.logits(ids);
      let r = m.forward(ids.map((row) => row.slice(0, 4)), { returnCache: true });
      assertClose(r.logits!.buf, full.slice([0, 0], [2, 4]).buf, 1e-5, 1e-5, "prefill");
      expect(r.cache!.length).toBe(4);
      // then a chunk of 2, then single tokens
      r = m.forward(ids.map((row) => row.slice(4, 6)), { cache: r.cache });
      assertClose(r.logits!.buf, full.slice([0, 4], [2, 6]).buf, 1e-5, 1e-5, "chunk");
      for (let t = 6; t < 10; t++) {
        const cache: KVCache = r.cache!;
        r = m.forward(ids.map((row) => [row[t]!]), { cache });
        expect(r.cache!.length).toBe(t + 1);
        expect(r.cache!.layers[0]!.k.shape).toEqual([2, cfg.num_key_value_heads, t + 1, cfg.head_dim]);
        assertClose(r.logits!.buf, full.slice([0, t], [2, t + 1]).buf, 1e-5, 1e-5, `step ${t}`);
      }
    });
  });
});

describe("capture", () => {
  it("returns every activation with the documented shapes, on the tape", () => {
    const cfg = tinyLlama();
    const m = new CausalLM(cfg, { seed: 2, std: 0.3 });
    const r = m.forward([[1, 2, 3], [4, 5, 6]], { capture: true });
    const [B, T, D, H, Hkv, dh, F] = [2, 3, 12, 3, 1, 6, 20];
    const c = r.captures![1]!;
    expect(r.captures!.length).toBe(2);
    expect(c.q.shape).toEqual([B, T, H * dh]);
    expect(c.k.shape).toEqual([B, T, Hkv * dh]);
    expect(c.v.shape).toEqual([B, T, Hkv * dh]);
    expect(c.attnContext.shape).toEqual([B, T, H * dh]);
    expect(c.attnOut.shape).toEqual([B, T, D]);
    expect(c.gate.shape).toEqual([B, T, F]);
    expect(c.up.shape).toEqual([B, T, F]);
    expect(c.mlpOut.shape).toEqual([B, T, D]);
    expect(c.attnInput.shape).toEqual([B, T, D]);
    expect(c.mlpInput.shape).toEqual([B, T, D]);
    expect(c.hidden.shape).toEqual([B, T, D]);
    for (const t of Object.values(c) as Tensor[]) expect(t.requiresGrad).toBe(true);
    // backprop from a captured activation reaches the parameters
    sum(mul(c.q, c.q)).backward();
    expect(m.model.layers.items[1]!.self_attn.q_proj.weight.grad).not.toBeNull();
    expect(m.model.embed_tokens.weight.grad).not.toBeNull();
    expect(m.model.layers.items[1]!.mlp.gate_proj.weight.grad).toBeNull();
    expect(m.forward([1, 2, 3]).captures).toBeNull();
  });
});

describe("mlpForward on the tape", () => {
  it("keeps no SwiGLU product between forward and backward, and gives the gradients of the plain composite bit for bit", () => {
    const r = rng(5);
    const x = tensor(Float32Array.from({ length: 2 * 3 * 8 }, () => r.normal()), [2, 3, 8], { requiresGrad: true });
    const w = { gateW: tensor(Float32Array.from({ length: 20 * 8 }, () => r.normal()), [20, 8], { requiresGrad: true }),
      upW: tensor(Float32Array.from({ length: 20 * 8 }, () => r.normal()), [20, 8], { requiresGrad: true }),
      downW: tensor(Float32Array.from({ length: 8 * 20 }, () => r.normal()), [8, 20], { requiresGrad: true }) };
    const dy = tensor(Float32Array.from({ length: 2 * 3 * 8 }, () => r.normal()), [2, 3, 8]);
    const grads = (f: () => Tensor) => {
      for (const t of [x, w.gateW, w.upW, w.downW]) t.grad = null;
      sum(mul(f(), dy)).backward();
      return [x, w.gateW, w.upW, w.downW].map((t) => Array.from(t.grad!.data()));
    };
    const before = bufferPoolStats().freshBytes - bufferPoolStats().cachedBytes;
    const m = mlpForward(x, w);
    // alive: gate and up (N x F each) and the output; the SwiGLU product (N x F) was evicted
    const alive = bufferPoolStats().freshBytes - bufferPoolStats().cachedBytes - before;
    expect(alive).toBe(512 + 512 + 256); // the pool's buckets of gate and up (6 x 20 floats each) and out (6 x 8)
    const composite = () => linear(swiglu(linear(x, w.gateW), linear(x, w.upW)), w.downW);
    expect(grads(() => mlpForward(x, w).out)).toEqual(grads(composite));
    expect(m.out.shape).toEqual([2, 3, 8]);
  });
});

describe("capture: a list of fields", () => {
  /** Bytes handed out by the buffer pool and not yet returned to it. */
  const live = (): number => bufferPoolStats().freshBytes - bufferPoolStats().cachedBytes;
  /** The pool's bucket bytes of a tensor (next power of two, at least 64). */
  const bucket = (t: Tensor): number => 2 ** Math.ceil(Math.log2(Math.max(64, t.size * 4)));
  it("returns just those fields, equal to the full capture's, and without a tape keeps nothing else alive", () => {
    const cfg = tinyQwen({ num_hidden_layers: 3 });
    const m = new CausalLM(cfg, { seed: 3, std: 0.3 });
    const ids = idsTensor([[1, 2, 3, 4], [5, 6, 7, 8]]);
    const full = noGrad(() => causalLMForward(m.weights(), cfg, ids, { capture: true, logits: "none" }));
    /** Bytes a forward leaves alive beyond the tensors it returns (hidden and the captures). */
    const leak = (capture: true | ReadonlyArray<"q" | "gate" | "mlpOut">): number => {
      const before = live();
      const r = noGrad(() => causalLMForward(m.weights(), cfg, ids, { capture, logits: "none" }));
      const returned = [r.hidden, ...r.captures!.flatMap((c) => Object.values(c) as Tensor[])];
      const extra = live() - before - returned.reduce((s, t) => s + bucket(t), 0);
      if (capture !== true) {
        r.captures!.forEach((c, i) => {
          expect(Object.keys(c).sort()).toEqual([...capture].sort());
          for (const f of capture) expect(Array.from(c[f].data())).toEqual(Array.from(full.captures![i]![f].data()));
        });
        expect(Array.from(r.hidden.data())).toEqual(Array.from(full.hidden.data()));
      }
      returned.forEach((t) => t.dispose());
      return extra;
    };
    leak(true); // the pool's buffers exist from here on
    // What stays besides the returned tensors (the rope tables of the call) is the same whatever is captured.
    const base = leak(true);
    expect(base).toBeLessThanOrEqual(3 * 64);
    expect(leak(["q"])).toBe(base);
    expect(leak(["gate", "mlpOut"])).toBe(base);
  });
});

describe("gradient check (float64, finite differences)", () => {
  it.each([["qwen2", tinyQwen({ num_hidden_layers: 2, vocab_size: 12 })], ["llama", tinyLlama({ vocab_size: 10 })]])(
    "%s: logits and captured activations w.r.t. every parameter",
    (_, cfg) => {
      const m = new CausalLM(cfg, { dtype: "float64", seed: 4, std: 0.3 });
      const names = m.namedParameters().map(([n]) => n);
      const params = m.parameters();
      const ids = idsTensor([[1, 5, 3, 7], [2, 2, 9, 0]]);
      const f = (...ps: Tensor[]): Tensor => {
        const sd = Object.fromEntries(names.map((n, i) => [n, ps[i]!]));
        const r = causalLMForward(weightsFromStateDict(sd, cfg), cfg, ids, { capture: true });
        const c = r.captures![0]!;
        // logits plus a few captures, flattened into one output
        return concat([r.logits!.reshape([-1]), c.q.reshape([-1]), add(c.attnContext, 0).reshape([-1]), c.mlpOut.reshape([-1])], 0);
      };
      expect(params.every((p) => p.dtype === "float64")).toBe(true);
      const res = checkGrad(f, params, rng(1), { eps: 1e-5, atol: 1e-7, rtol: 1e-6 });
      expect(res.ok, `analytic ${res.analytic} vs numeric ${res.numeric}`).toBe(true);
    },
  );
});

describe("memory of a forward without a tape", () => {
  it("holds one layer's temporaries, not every layer's: the bytes outstanding do not grow with the depth", () => {
    /** Pool bytes handed out and not yet returned after a noGrad forward, measured inside the caller's scope. */
    const outstanding = (layers: number): number => {
      const m = new CausalLM(tinyQwen({ num_hidden_layers: layers, hidden_size: 64, intermediate_size: 256 }), { seed: 1 });
      const ids = tensor(Int32Array.from({ length: 2 * 32 }, (_, i) => i % 40), [2, 32], { dtype: "int32" });
      return scope(() => {
        const before = bufferPoolStats();
        noGrad(() => causalLMForward(m.weights(), m.config, ids, { logits: "none" }));
        const after = bufferPoolStats();
        return after.freshBytes - before.freshBytes - (after.cachedBytes - before.cachedBytes);
      });
    };
    // Per extra layer only what a layer returns stays: its hidden states [2, 32, 64] and K, V [2, 2, 32, 16]
    // (32 KiB of float32); with every layer's temporaries held it was ~450 KiB.
    const perLayer = (outstanding(8) - outstanding(2)) / 6;
    expect(perLayer).toBeLessThanOrEqual(2 * 32 * 1024);
  });
});
