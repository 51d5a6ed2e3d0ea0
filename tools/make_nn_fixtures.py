#!/usr/bin/env python3
"""Generate the PyTorch golden fixtures for @lrc-ts/nn and @lrc-ts/lrc (packages/nn/fixtures/**).

Plain PyTorch, no `transformers` and no `safetensors` package: the models are written here from the
semantics of transformers' modeling_llama.py / modeling_qwen2.py (eager attention path), and the
safetensors files are written by a small writer that lays files out as the reference Rust crate does.
See tools/README.md for what each fixture contains.

Semantics implemented (HF transformers):
  * RMSNorm: h = x.float(); h = h * rsqrt(mean(h^2, -1) + eps); out = weight * h.to(x.dtype).
  * RoPE, rotate-half layout: inv_freq = 1 / theta^(arange(0, dh, 2) / dh), optionally rescaled by
    `rope_scaling` {rope_type: "llama3"} exactly as transformers' _compute_llama3_parameters;
    freqs = pos x inv_freq; emb = cat(freqs, freqs); q' = q*cos + rotate_half(q)*sin.
  * Attention: scale head_dim**-0.5, causal mask, softmax in float32, GQA by repeat_kv
    (kv head j serves query heads j*rep .. j*rep+rep-1), then o_proj.
  * MLP: down(silu(gate(x)) * up(x)).
  * Qwen2: q/k/v biases (o_proj none). Llama: biases only if attention_bias / mlp_bias.
  * `head_dim` from config when present, else hidden_size // num_attention_heads.
  * lm_head tied to embed_tokens when tie_word_embeddings (then not stored in the checkpoint).
All goldens are computed in float32. BF16 fixtures store bf16-rounded weights on disk and the goldens
are computed from those rounded weights upcast to float32.

The LRC golden follows docs/lrc-method.md sections 1.6 and 2.2 (see README for every term).

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/make_nn_fixtures.py
Deterministic: fixed seeds, one thread; rerunning rewrites byte-identical files.
"""

import json
import math
import os
import shutil
import struct
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "packages" / "nn" / "fixtures"

# ------------------------------------------------------------------------------------------------
# safetensors writer / reader (format: u64 LE header length, compact JSON header padded with spaces
# to a multiple of 8, then little-endian data). Layout as safetensors' Rust `serialize`: tensors
# sorted by dtype alignment (descending) then by name, __metadata__ first.
# ------------------------------------------------------------------------------------------------

ST_NAME = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64",
           torch.int32: "I32", torch.float64: "F64"}
ST_TORCH = {v: k for k, v in ST_NAME.items()}
ALIGN_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32",
               "F32", "F64", "I64", "U64"]
assert sys.byteorder == "little", "the safetensors writer assumes a little-endian host"


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_bytes_atomic(path, data):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_safetensors(path, tensors, metadata=None):
    items = sorted(tensors.items(), key=lambda kv: (-ALIGN_ORDER.index(ST_NAME[kv[1].dtype]), kv[0]))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name, t in items:
        b = tensor_bytes(t)
        header[name] = {"dtype": ST_NAME[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    hb = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    write_bytes_atomic(path, struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def load_safetensors(path):
    """Independent reader, used to re-check every file written (float tensors returned as float32)."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    out = {}
    base = 8 + n
    for name, info in header.items():
        s, e = info["data_offsets"]
        dtype = ST_TORCH[info["dtype"]]
        raw = bytearray(data[base + s:base + e])
        if dtype in (torch.bfloat16, torch.float16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dtype).float()
        else:
            t = torch.frombuffer(raw, dtype=dtype).clone()
        out[name] = t.reshape(info["shape"])
    return out


def write_json(path, obj, sort_keys=True):
    """JSON as transformers writes config.json / index files: indent 2, sorted keys, trailing newline."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n").encode("utf-8"))


# ------------------------------------------------------------------------------------------------
# The model (HF semantics, float32)
# ------------------------------------------------------------------------------------------------

def head_dim_of(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def rope_inv_freq(cfg):
    dh = head_dim_of(cfg)
    base = cfg["rope_theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    scaling = cfg.get("rope_scaling")
    if scaling is None:
        return inv_freq
    assert scaling["rope_type"] == "llama3", scaling
    # transformers.modeling_rope_utils._compute_llama3_parameters
    factor = scaling["factor"]
    low_freq_factor = scaling["low_freq_factor"]
    high_freq_factor = scaling["high_freq_factor"]
    old_context_len = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def rope_cos_sin(cfg, T):
    inv_freq = rope_inv_freq(cfg)
    pos = torch.arange(T, dtype=torch.int64).float()
    freqs = (inv_freq[None, :, None] @ pos[None, None, :]).transpose(1, 2)[0]  # [T, dh/2], as HF
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rms_norm(x, weight, eps):
    input_dtype = x.dtype
    h = x if x.dtype == torch.float64 else x.to(torch.float32)  # float64 stays float64 (log-likelihood golden)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    b, hkv, t, dh = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, hkv, n_rep, t, dh).reshape(b, hkv * n_rep, t, dh)


def attention_heads(q, k, v, H, Hkv, dh, cos, sin):
    """q [B,T,H*dh], k/v [B,T,Hkv*dh] (pre-RoPE) -> head outputs before o_proj, [B,T,H*dh]."""
    B, T, _ = q.shape
    q = q.view(B, T, H, dh).transpose(1, 2)
    k = k.view(B, T, Hkv, dh).transpose(1, 2)
    v = v.view(B, T, Hkv, dh).transpose(1, 2)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = repeat_kv(k, H // Hkv)
    v = repeat_kv(v, H // Hkv)
    scores = torch.matmul(q, k.transpose(2, 3)) * dh ** -0.5
    mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)
    probs = F.softmax(scores + mask, dim=-1, dtype=torch.float64 if q.dtype == torch.float64 else torch.float32).to(q.dtype)
    return torch.matmul(probs, v).transpose(1, 2).reshape(B, T, H * dh)


def linear(x, W, name, has_bias):
    return F.linear(x, W[name + ".weight"], W[name + ".bias"] if has_bias else None)


def has_qkv_bias(cfg):
    return cfg["model_type"] == "qwen2" or bool(cfg.get("attention_bias", False))


def forward(cfg, W, ids, caps=None):
    """HF CausalLM forward. W: HF-named float32 weights. caps (dict) receives the per-layer taps."""
    B, T = ids.shape
    H, Hkv, dh = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
    eps = cfg["rms_norm_eps"]
    qkv_bias = has_qkv_bias(cfg)
    o_bias = cfg["model_type"] == "llama" and bool(cfg.get("attention_bias", False))
    mlp_bias = bool(cfg.get("mlp_bias", False))
    cos, sin = rope_cos_sin(cfg, T)
    x = F.embedding(ids, W["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tap = (lambda n, t: caps.__setitem__(f"layers.{i}.{n}", t)) if caps is not None else (lambda n, t: None)
        a = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = linear(a, W, p + "self_attn.q_proj", qkv_bias)
        k = linear(a, W, p + "self_attn.k_proj", qkv_bias)
        v = linear(a, W, p + "self_attn.v_proj", qkv_bias)
        c = attention_heads(q, k, v, H, Hkv, dh, cos, sin)
        o = linear(c, W, p + "self_attn.o_proj", o_bias)
        x = x + o
        f = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = linear(f, W, p + "mlp.gate_proj", mlp_bias)
        u = linear(f, W, p + "mlp.up_proj", mlp_bias)
        y = linear(F.silu(g) * u, W, p + "mlp.down_proj", mlp_bias)
        x = x + y
        for n, t in (("q", q), ("k", k), ("v", v), ("attn_heads", c), ("attn_out", o), ("gate", g), ("up", u), ("mlp_out", y)):
            tap(n, t)
    h = rms_norm(x, W["model.norm.weight"], eps)
    if caps is not None:
        caps["hidden_final"] = h
    lm = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return F.linear(h, lm)


def greedy(cfg, W, prompt, steps):
    """Greedy decoding with a full forward per step (no cache); returns tokens, step logits, margin."""
    ids = prompt.clone()
    step_logits = []
    margin = float("inf")
    for _ in range(steps):
        last = forward(cfg, W, ids)[:, -1, :]
        top2 = torch.topk(last, 2, dim=-1).values
        margin = min(margin, float((top2[:, 0] - top2[:, 1]).min()))
        nxt = last.argmax(dim=-1, keepdim=True)
        step_logits.append(last)
        ids = torch.cat([ids, nxt], dim=1)
    return ids[:, prompt.shape[1]:], torch.cat(step_logits, dim=0), margin


# ------------------------------------------------------------------------------------------------
# Configs and weights
# ------------------------------------------------------------------------------------------------

def qwen2_config(**kw):
    cfg = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_window_layers": 2,
        "model_type": "qwen2",
        "rope_scaling": None,
        "sliding_window": None,
        "transformers_version": "4.51.3",
        "use_cache": True,
        "use_sliding_window": False,
    }
    cfg.update(kw)
    return cfg


def llama_config(**kw):
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "mlp_bias": False,
        "model_type": "llama",
        "pretraining_tp": 1,
        "rope_scaling": None,
        "transformers_version": "4.51.3",
        "use_cache": True,
    }
    cfg.update(kw)
    if "head_dim" not in cfg:
        cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]  # LlamaConfig always writes it
    return cfg


def make_weights(cfg, seed):
    """Random weights scaled so activations stay O(1) and every parameter visibly matters."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    D, V, Fw = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, Hkv, dh = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
    qkv_bias = has_qkv_bias(cfg)
    W = {"model.embed_tokens.weight": randn(V, D, std=0.5)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        W[p + "input_layernorm.weight"] = randn(D, std=0.1, mean=1.0)
        W[p + "self_attn.q_proj.weight"] = randn(H * dh, D, std=D ** -0.5)
        W[p + "self_attn.k_proj.weight"] = randn(Hkv * dh, D, std=D ** -0.5)
        W[p + "self_attn.v_proj.weight"] = randn(Hkv * dh, D, std=D ** -0.5)
        if qkv_bias:
            W[p + "self_attn.q_proj.bias"] = randn(H * dh, std=0.2)
            W[p + "self_attn.k_proj.bias"] = randn(Hkv * dh, std=0.2)
            W[p + "self_attn.v_proj.bias"] = randn(Hkv * dh, std=0.2)
        W[p + "self_attn.o_proj.weight"] = randn(D, H * dh, std=(H * dh) ** -0.5)
        W[p + "post_attention_layernorm.weight"] = randn(D, std=0.1, mean=1.0)
        W[p + "mlp.gate_proj.weight"] = randn(Fw, D, std=D ** -0.5)
        W[p + "mlp.up_proj.weight"] = randn(Fw, D, std=D ** -0.5)
        W[p + "mlp.down_proj.weight"] = randn(D, Fw, std=Fw ** -0.5)
    W["model.norm.weight"] = randn(D, std=0.1, mean=1.0)
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = randn(V, D, std=D ** -0.5)
    return W


def storage_dtype(cfg):
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg["torch_dtype"]]


def round_to_storage(cfg, W):
    """Weights as stored on disk, and the float32 values the goldens are computed from."""
    dt = storage_dtype(cfg)
    stored = {k: v.to(dt) for k, v in W.items()}
    return stored, {k: v.float() for k, v in stored.items()}


# ------------------------------------------------------------------------------------------------
# Fixture writing
# ------------------------------------------------------------------------------------------------

def write_model_dir(d, cfg, stored, shards=None):
    """An HF model directory: config.json and model.safetensors (or shards + index)."""
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", cfg)
    meta = {"format": "pt"}
    if shards is None:
        save_safetensors(d / "model.safetensors", stored, meta)
        return
    n = len(shards)
    weight_map = {}
    for j, names in enumerate(shards):
        fname = f"model-{j + 1:05d}-of-{n:05d}.safetensors"
        save_safetensors(d / fname, {k: stored[k] for k in names}, meta)
        weight_map.update({k: fname for k in names})
    assert sorted(weight_map) == sorted(stored), "shards must cover every tensor exactly once"
    total = sum(t.numel() * t.element_size() for t in stored.values())
    write_json(d / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})


def golden_tensors(cfg, W, ids):
    caps = {}
    logits = forward(cfg, W, ids, caps)
    out = {"input_ids": ids, "logits": logits, "rope.inv_freq": rope_inv_freq(cfg)}
    out.update(caps)
    V = cfg["vocab_size"]
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    out["loss"] = loss.reshape(())
    return {k: (v if v.dtype == torch.int64 else v.float()).detach().contiguous() for k, v in out.items()}


def add_generation(golden, cfg, W, seed, prompt_len=5, steps=8):
    """Greedy continuation of a prompt, choosing a prompt whose top-2 logit margins are >= 1e-2."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(50):
        prompt = torch.randint(0, cfg["vocab_size"], (1, prompt_len), generator=g)
        tokens, step_logits, margin = greedy(cfg, W, prompt, steps)
        if margin >= 1e-2:
            golden["generate_prompt"] = prompt
            golden["generate_tokens"] = tokens
            golden["generate_logits"] = step_logits.detach()
            return margin
    raise RuntimeError("no prompt with a safe greedy margin")


def check_roundtrip(d, cfg, W32, golden):
    """Reload what was written with the independent reader and recompute the logits."""
    index = d / "model.safetensors.index.json"
    if index.exists():
        W = {}
        for f in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            W.update(load_safetensors(d / f))
    else:
        W = load_safetensors(d / "model.safetensors")
    assert sorted(W) == sorted(W32), (sorted(W), sorted(W32))
    for k in W:
        assert torch.equal(W[k], W32[k]), k
    cfg2 = json.loads((d / "config.json").read_text())
    g = load_safetensors(d / "golden.safetensors")
    logits = forward(cfg2, W, g["input_ids"])
    assert torch.equal(logits, golden["logits"]), "reloaded fixture does not reproduce its golden logits"


def build_fixture(name, cfg, seed, T, generation=False, shards=None, extra_dirs=()):
    W = make_weights(cfg, seed)
    stored, W32 = round_to_storage(cfg, W)
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg["vocab_size"], (2, T), generator=g)
    golden = golden_tensors(cfg, W32, ids)
    margin = add_generation(golden, cfg, W32, seed + 2) if generation else None
    dirs = [(name, None)] + list(extra_dirs)
    for dname, dshards in dirs:
        d = OUT / dname
        write_model_dir(d, cfg, stored, dshards)
        save_safetensors(d / "golden.safetensors", golden)
        check_roundtrip(d, cfg, W32, golden)
    info = {"dir": name, "architecture": cfg["architectures"][0], "weights_dtype": ST_NAME[storage_dtype(cfg)],
            "tied": cfg["tie_word_embeddings"], "seq_len": T, "generation": generation}
    if margin is not None:
        info["greedy_min_top2_margin"] = round(margin, 6)
    print(f"{name}: logits |max| {golden['logits'].abs().max():.3f}, loss {golden['loss'].item():.4f}"
          + (f", greedy margin {margin:.4f}" if margin is not None else ""))
    return W32, ids, info


# ------------------------------------------------------------------------------------------------
# LRC golden (docs/lrc-method.md 1.6 and 2.2)
# ------------------------------------------------------------------------------------------------

CLONE_TERMS = ["q", "k", "v", "gate", "up", "attn_out_paper", "attn_out_reference", "mlp_out"]


def student_forward(tcfg, TW, P, G, ids, eps):
    """Training-graph student (materialised W·P). Returns logits and per-layer taps."""
    H, Hkv, dh = tcfg["num_attention_heads"], tcfg["num_key_value_heads"], head_dim_of(tcfg)
    qkv_bias = has_qkv_bias(tcfg)
    T = ids.shape[1]
    cos, sin = rope_cos_sin(tcfg, T)
    x = F.embedding(ids, TW["model.embed_tokens.weight"] @ P["embed"])
    taps = []
    for i in range(tcfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        pp = f"layers.{i}."

        def proj_in(m, mod):  # student weight W·P (input side projected)
            return TW[p + mod + ".weight"] @ P[pp + m]

        def bias(mod):
            return TW[p + mod + ".bias"] if qkv_bias else None

        a = rms_norm(x, G[pp + "input_layernorm"], eps)
        q = F.linear(a, proj_in("q", "self_attn.q_proj"), bias("self_attn.q_proj"))
        k = F.linear(a, proj_in("k", "self_attn.k_proj"), bias("self_attn.k_proj"))
        v = F.linear(a, proj_in("v", "self_attn.v_proj"), bias("self_attn.v_proj"))
        c = attention_heads(q, k, v, H, Hkv, dh, cos, sin)
        o = F.linear(c, P[pp + "o"].t() @ TW[p + "self_attn.o_proj.weight"])  # P_o^T W_o
        x = x + o
        f = rms_norm(x, G[pp + "post_attention_layernorm"], eps)
        gate = F.linear(f, proj_in("gate", "mlp.gate_proj"))
        up = F.linear(f, proj_in("up", "mlp.up_proj"))
        y = F.linear(F.silu(gate) * up, P[pp + "down"].t() @ TW[p + "mlp.down_proj.weight"])  # P_down^T W_down
        x = x + y
        taps.append({"q": q, "k": k, "v": v, "attn_heads": c, "attn_out": o, "gate": gate, "up": up, "mlp_out": y})
    h = rms_norm(x, G["norm"], eps)
    if tcfg["tie_word_embeddings"]:
        lm = TW["model.embed_tokens.weight"] @ P["embed"]
    else:
        lm = TW["lm_head.weight"] @ P["lm_head"]
    return F.linear(h, lm), taps, h


def teacher_taps(tcfg, TW, ids):
    caps = {}
    logits = forward(tcfg, TW, ids, caps)
    L = tcfg["num_hidden_layers"]
    names = ["q", "k", "v", "attn_heads", "attn_out", "gate", "up", "mlp_out"]
    return logits, [{n: caps[f"layers.{i}.{n}"] for n in names} for i in range(L)]


def lrc_losses(tcfg, TW, P, G, ids, eps, alpha, taus):
    zT, tT = teacher_taps(tcfg, TW, ids)
    zS, tS, _ = student_forward(tcfg, TW, P, G, ids, eps)
    V = tcfg["vocab_size"]
    B = ids.shape[0]
    per_layer = []
    for i, (s, t) in enumerate(zip(tS, tT)):
        Wo = TW[f"model.layers.{i}.self_attn.o_proj.weight"]
        per_layer.append({
            "q": F.mse_loss(s["q"], t["q"]),
            "k": F.mse_loss(s["k"], t["k"]),
            "v": F.mse_loss(s["v"], t["v"]),
            "gate": F.mse_loss(s["gate"], t["gate"]),
            "up": F.mse_loss(s["up"], t["up"]),
            # paper: MSE(o_S, o_T P_o), in R^d
            "attn_out_paper": F.mse_loss(s["attn_out"], t["attn_out"] @ P[f"layers.{i}.o"]),
            # reference code: MSE(c_S W_o^T, c_T W_o^T), in R^D, before P_o
            "attn_out_reference": F.mse_loss(F.linear(s["attn_heads"], Wo), F.linear(t["attn_heads"], Wo)),
            # both: MSE(y_S, y_T P_down), no stop-gradient
            "mlp_out": F.mse_loss(s["mlp_out"], t["mlp_out"] @ P[f"layers.{i}.down"]),
        })
    common = ["q", "k", "v", "gate", "up", "mlp_out"]
    clone_paper = sum(sum(l[n] for n in common) + l["attn_out_paper"] for l in per_layer)
    clone_reference = sum(sum(l[n] for n in common) + l["attn_out_reference"] for l in per_layer)
    ce = F.cross_entropy(zS[:, :-1].reshape(-1, V).float(), ids[:, 1:].reshape(-1))
    ce_teacher = F.cross_entropy(zT[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    by_tau = {}
    for tau in taus:
        logp_s = F.log_softmax(zS / tau, dim=-1)
        logp_t = F.log_softmax(zT / tau, dim=-1)
        kl = F.kl_div(logp_s, logp_t, log_target=True, reduction="batchmean")
        kl_manual = (logp_t.exp() * (logp_t - logp_s)).sum() / B
        assert torch.allclose(kl, kl_manual, rtol=1e-5, atol=1e-9)
        by_tau[tau] = {
            "kl": kl,
            "total_paper": ce + kl + alpha * clone_paper,
            "total_reference": ce + kl + alpha * clone_reference,
        }
    return {"zS": zS, "zT": zT, "per_layer": per_layer, "clone_paper": clone_paper,
            "clone_reference": clone_reference, "ce": ce, "ce_teacher": ce_teacher, "by_tau": by_tau}


def fold_student(tcfg, TW, P, G, eps):
    """Materialise the student as a plain HF model (docs/lrc-method.md 1.7)."""
    d = P["embed"].shape[1]
    cfg = dict(tcfg)
    cfg["hidden_size"] = d
    cfg["head_dim"] = head_dim_of(tcfg)
    cfg["rms_norm_eps"] = eps  # the training-graph eps, so the folded logits equal the training graph's
    cfg["tie_word_embeddings"] = bool(tcfg["tie_word_embeddings"])
    cfg["torch_dtype"] = "float32"
    W = {"model.embed_tokens.weight": TW["model.embed_tokens.weight"] @ P["embed"]}
    for i in range(tcfg["num_hidden_layers"]):
        p, pp = f"model.layers.{i}.", f"layers.{i}."
        for m, mod in (("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
                       ("gate", "mlp.gate_proj"), ("up", "mlp.up_proj")):
            W[p + mod + ".weight"] = TW[p + mod + ".weight"] @ P[pp + m]
            if p + mod + ".bias" in TW:
                W[p + mod + ".bias"] = TW[p + mod + ".bias"].clone()
        W[p + "self_attn.o_proj.weight"] = P[pp + "o"].t() @ TW[p + "self_attn.o_proj.weight"]
        W[p + "mlp.down_proj.weight"] = P[pp + "down"].t() @ TW[p + "mlp.down_proj.weight"]
        W[p + "input_layernorm.weight"] = G[pp + "input_layernorm"].clone()
        W[p + "post_attention_layernorm.weight"] = G[pp + "post_attention_layernorm"].clone()
    W["model.norm.weight"] = G["norm"].clone()
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = TW["lm_head.weight"] @ P["lm_head"]
    return cfg, {k: v.detach().contiguous() for k, v in W.items()}


def build_lrc_golden(teacher_dir, tcfg, TW, ids, d=16, seed=1234, eps=1e-5, alpha=0.5, taus=(40.0, 2.0), proj_std=0.25):
    D = tcfg["hidden_size"]
    g = torch.Generator().manual_seed(seed)
    P = {}
    for i in range(tcfg["num_hidden_layers"]):
        for m in ["q", "k", "v", "o", "gate", "up", "down"]:
            P[f"layers.{i}.{m}"] = torch.randn(D, d, generator=g) * proj_std
    P["embed"] = torch.randn(D, d, generator=g) * proj_std
    if not tcfg["tie_word_embeddings"]:
        P["lm_head"] = torch.randn(D, d, generator=g) * proj_std
    G = {}
    for i in range(tcfg["num_hidden_layers"]):
        G[f"layers.{i}.input_layernorm"] = 1.0 + 0.1 * torch.randn(d, generator=g)
        G[f"layers.{i}.post_attention_layernorm"] = 1.0 + 0.1 * torch.randn(d, generator=g)
    G["norm"] = 1.0 + 0.1 * torch.randn(d, generator=g)

    params = {**P, **G}
    for t in params.values():
        t.requires_grad_(True)
    TWc = {k: v.detach() for k, v in TW.items()}  # the teacher is frozen
    res = lrc_losses(tcfg, TWc, P, G, ids, eps, alpha, taus)

    # Gradients of the totals at tau = 40 w.r.t. every trainable tensor, for both attn-out forms.
    grads = {}
    for form in ("reference", "paper"):
        total = res["by_tau"][taus[0]][f"total_{form}"]
        gs = torch.autograd.grad(total, list(params.values()), retain_graph=True)
        for (name, _), gr in zip(params.items(), gs):
            grads[f"{form}.{name}"] = gr.detach().contiguous()

    out = OUT / "lrc-golden"
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(out / "projections.safetensors", {k: v.detach().contiguous() for k, v in params.items()})
    save_safetensors(out / "grads.safetensors", grads)

    zS = res["zS"].detach()
    _, taps_s, h_s = student_forward(tcfg, TWc, {k: v.detach() for k, v in P.items()},
                                     {k: v.detach() for k, v in G.items()}, ids, eps)
    student = {"input_ids": ids, "student_logits": zS, "teacher_logits": res["zT"].detach(),
               "student_hidden_final": h_s.detach()}
    for i, taps in enumerate(taps_s):
        for n, t in taps.items():
            student[f"student.layers.{i}.{n}"] = t.detach().contiguous()
    save_safetensors(out / "golden.safetensors", student)

    f = lambda t: float(t.detach())  # noqa: E731
    losses = {
        "teacher_dir": f"../{teacher_dir}",
        "teacher_hidden_size": D,
        "student_hidden_size": d,
        "student_rms_norm_eps": eps,
        "teacher_rms_norm_eps": tcfg["rms_norm_eps"],
        "alpha": alpha,
        "batch": list(ids.shape),
        "ce_student": f(res["ce"]),
        "ce_teacher": f(res["ce_teacher"]),
        "per_layer": [{n: f(l[n]) for n in CLONE_TERMS} for l in res["per_layer"]],
        "clone_sum_paper": f(res["clone_paper"]),
        "clone_sum_reference": f(res["clone_reference"]),
        "by_temperature": {str(int(tau)): {k: f(v) for k, v in res["by_tau"][tau].items()} for tau in taus},
    }
    write_json(out / "losses.json", losses, sort_keys=False)

    fcfg, FW = fold_student(tcfg, TWc, {k: v.detach() for k, v in P.items()}, {k: v.detach() for k, v in G.items()}, eps)
    fdir = out / "folded"
    write_model_dir(fdir, fcfg, FW)
    fgold = golden_tensors(fcfg, FW, ids)
    diff = float((fgold["logits"] - zS).abs().max())
    assert diff < 1e-5, f"folded logits differ from the training graph by {diff}"
    save_safetensors(fdir / "golden.safetensors", fgold)
    check_roundtrip(fdir, fcfg, FW, fgold)
    print(f"lrc-golden: ce {losses['ce_student']:.4f}, kl40 {losses['by_temperature']['40']['kl']:.6f}, "
          f"kl2 {losses['by_temperature']['2']['kl']:.4f}, clone(ref) {losses['clone_sum_reference']:.4f}, "
          f"fold |dlogits| {diff:.2e}")


# ------------------------------------------------------------------------------------------------
# Log-likelihood golden (lm-evaluation-harness's rules, docs/eval-tasks.md), in float64
# ------------------------------------------------------------------------------------------------

# A toy tokenizer for the tests: greedy longest match over this vocabulary (64 ids, so it fits every
# fixture), unknown characters -> id 0. Tokens with inner or trailing spaces ("  ") and merges across the
# context/continuation boundary make lm-eval's boundary rule observable.
LL_VOCAB = (["<pad>", "<bos>", "<eos>"] + list("abcdefghijklmnopqrstuvwxyz") + [" ", "\n", ":", "?", ".", "A", "B", "Q"]
            + [" a", " b", " c", " d", " t", " y", " n", " the", " yes", " no", "the", "Answer", "Question", "in",
               "an", "er", "th", "at", " A", " B", " is", " cat", "cat", "is", "he", "on", "  "])
LL_PREFIX = 1
PY_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())


def ll_encode(text):
    ids, i = [], 0
    while i < len(text):
        best = max((t for t in LL_VOCAB[3:] if text.startswith(t, i)), key=len, default=None)
        if best is None:
            ids.append(0)
            i += 1
        else:
            ids.append(LL_VOCAB.index(best))
            i += len(best)
    return ids


def ll_encode_pair(context, continuation):
    """lm_eval TemplateLM._encode_pair, and HFLM.loglikelihood's empty-context rule."""
    if context == "":
        return [LL_PREFIX], ll_encode(continuation)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = ll_encode(context + continuation)
    ctx = ll_encode(context)
    return ctx, whole[len(ctx):]


def ll_score(cfg, W64, ctx, cont, max_length):
    """HFLM._loglikelihood_tokens for one request: sum of log-softmax over the continuation, is_greedy."""
    inp = (ctx + cont)[-(max_length + 1):][:-1]
    logits = forward(cfg, W64, torch.tensor([inp]))[0]
    rows = F.log_softmax(logits[len(inp) - len(cont):len(inp)], dim=-1)
    target = torch.tensor(cont)
    ll = float(rows.gather(1, target[:, None]).sum()) if cont else 0.0
    greedy = bool((rows.argmax(-1) == target).all()) if cont else True
    return ll, greedy


LL_REQUESTS = [  # raw (context, continuation) pairs
    ("Question: is the cat in?\nAnswer:", " yes"),
    ("the cat is ", "on the hat"),       # trailing space moves to the continuation
    ("the cat is  ", " in"),             # two trailing spaces
    ("", "the cat"),                     # empty context -> prefix token
    ("th", "e cat"),                     # the continuation's first character merges into the context's token
    ("Answer:", " bat in"),             # multi-token continuation
    ("a", "b"),
]

LL_DOCS = [  # multiple-choice documents, lm-eval's target_delimiter " "
    {"context": "Question: is the cat in?\nAnswer:", "choices": ["yes", "no"], "gold": 0},
    {"context": "the cat is ", "choices": ["on", "in the hat", "at a bin"], "gold": 1},
    {"context": "", "choices": ["the cat", "a bat", "B"], "gold": 2},
    {"context": "Q: the cat?\nA. in\nB. on\nAnswer:", "choices": ["A", "B"], "gold": 1},
    {"contexts": ["the cat is in", "the cat is on"], "target": "the hat.", "gold": 1},  # partial (WinoGrande)
    {"context": "Question: is the cat at the bin?\nAnswer:", "choices": ["yes it is", "no", "the cat ate"], "gold": 0},
]


def ll_doc_pairs(doc):
    if "context" in doc:
        return [(doc["context"], " " + c) for c in doc["choices"]], doc["choices"]
    return [(c, " " + doc["target"]) for c in doc["contexts"]], doc["contexts"]


def ll_mean_stderr(xs):
    """lm_eval.api.metrics.mean_stderr: sample_stddev / sqrt(n)."""
    mu = sum(xs) / len(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs))


def ll_model_golden(name, cfg, W32, max_length=None):
    W64 = {k: v.double() for k, v in W32.items()}
    L = max_length or cfg["max_position_embeddings"]
    reqs = []
    for c, t in LL_REQUESTS:
        ci, ti = ll_encode_pair(c, t)
        ll, greedy = ll_score(cfg, W64, ci, ti, L)
        reqs.append({"context_ids": ci, "continuation_ids": ti, "loglikelihood": ll, "is_greedy": greedy})
    samples = []
    for doc in LL_DOCS:
        pairs, norm = ll_doc_pairs(doc)
        scored = [ll_score(cfg, W64, *ll_encode_pair(c, t), L) for c, t in pairs]
        lls = [s[0] for s in scored]
        pred = max(range(len(lls)), key=lambda i: (lls[i], -i))  # numpy argmax: first index of the max
        normed = [l / len(s) for l, s in zip(lls, norm)]
        pred_norm = max(range(len(normed)), key=lambda i: (normed[i], -i))
        samples.append({"loglikelihoods": lls, "is_greedy": [s[1] for s in scored], "gold": doc["gold"],
                        "pred": pred, "pred_norm": pred_norm})
    acc = [float(s["pred"] == s["gold"]) for s in samples]
    acc_norm = [float(s["pred_norm"] == s["gold"]) for s in samples]
    return {"dir": name, "max_length": max_length, "requests": reqs, "samples": samples,
            "acc": sum(acc) / len(acc), "acc_stderr": ll_mean_stderr(acc),
            "acc_norm": sum(acc_norm) / len(acc_norm), "acc_norm_stderr": ll_mean_stderr(acc_norm)}


def build_loglikelihood_golden(models):
    out = OUT / "loglikelihood"
    out.mkdir(parents=True, exist_ok=True)
    golden = {"vocab": LL_VOCAB, "prefix_token": LL_PREFIX, "whitespace": PY_WHITESPACE,
              "requests": [list(r) for r in LL_REQUESTS], "docs": LL_DOCS,
              "models": [ll_model_golden(*m) for m in models]}
    write_json(out / "expected.json", golden, sort_keys=False)
    for m in golden["models"]:
        print(f"loglikelihood {m['dir']} (max_length {m['max_length']}): acc {m['acc']:.3f}, acc_norm {m['acc_norm']:.3f}")


# ------------------------------------------------------------------------------------------------

OWNED = ["qwen2-tied-f32", "qwen2-untied-bf16-headdim16", "llama-gqa-llama3rope-f32",
         "llama-gqa-llama3rope-f32-sharded", "llama-tied-bf16", "lrc-golden", "loglikelihood"]


def main():
    # Remove only what this script owns, so fixtures others add beside these survive a regeneration.
    for owned in OWNED:
        if (OUT / owned).is_dir():
            shutil.rmtree(OUT / owned)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = []

    # (a) Qwen2, tied, q/k/v biases, F32, head_dim = hidden / heads (implicit: no head_dim key).
    cfg_a = qwen2_config(hidden_size=32, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=96, max_position_embeddings=128, rms_norm_eps=1e-6,
                         rope_theta=10000.0, tie_word_embeddings=True, torch_dtype="float32")
    W_a, ids_a, info = build_fixture("qwen2-tied-f32", cfg_a, seed=101, T=9, generation=True)
    manifest.append(info)

    # (b) Qwen2, untied, head_dim 16 != 48 / 4, BF16 on disk.
    cfg_b = qwen2_config(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, vocab_size=80, max_position_embeddings=128,
                         rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False, torch_dtype="bfloat16")
    manifest.append(build_fixture("qwen2-untied-bf16-headdim16", cfg_b, seed=202, T=8)[2])

    # (c) Llama, untied, GQA 4/2, F32, llama3 rope_scaling, plus the same model as a two-shard checkpoint.
    #     With dh = 8, theta 1e4 the wavelengths are 6.3, 63, 628, 6283 against the band edges 32 and 128:
    #     one high-frequency pair (kept), one medium (smoothed), two low (divided by factor).
    cfg_c = llama_config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=64, max_position_embeddings=1024, rms_norm_eps=1e-5,
                         rope_theta=10000.0, tie_word_embeddings=False, torch_dtype="float32",
                         rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                       "original_max_position_embeddings": 128, "rope_type": "llama3"})
    names_c = sorted(make_weights(cfg_c, 303))
    shard1 = [n for n in names_c if n.startswith("model.embed_tokens") or n.startswith("model.layers.0.")]
    shard2 = [n for n in names_c if n not in shard1]
    W_c, _, info = build_fixture("llama-gqa-llama3rope-f32", cfg_c, seed=303, T=12, generation=True,
                         extra_dirs=[("llama-gqa-llama3rope-f32-sharded", [shard1, shard2])])
    manifest.append(info)
    manifest.append({**info, "dir": "llama-gqa-llama3rope-f32-sharded", "sharded": True})

    # (d) Llama, tied, BF16 on disk, rms_norm_eps 1e-6, MHA.
    cfg_d = llama_config(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=72, max_position_embeddings=128, rms_norm_eps=1e-6,
                         rope_theta=500000.0, tie_word_embeddings=True, torch_dtype="bfloat16")
    manifest.append(build_fixture("llama-tied-bf16", cfg_d, seed=404, T=7)[2])

    # LRC golden on teacher (a).
    build_lrc_golden("qwen2-tied-f32", cfg_a, W_a, ids_a)
    manifest.append({"dir": "lrc-golden/folded", "architecture": "Qwen2ForCausalLM", "weights_dtype": "F32",
                     "tied": True, "seq_len": int(ids_a.shape[1]), "generation": False})
    # Log-likelihood golden: the full window, a window of 8 (left truncation), and a Llama.
    build_loglikelihood_golden([("qwen2-tied-f32", cfg_a, W_a), ("qwen2-tied-f32", cfg_a, W_a, 8),
                                ("llama-gqa-llama3rope-f32", cfg_c, W_c)])
    for m in manifest:
        m.setdefault("sharded", False)
    write_json(OUT / "manifest.json", {"tolerance": 1e-4, "fixtures": manifest}, sort_keys=False)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT.relative_to(ROOT)} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
