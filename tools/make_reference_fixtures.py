#!/usr/bin/env python3
"""Fixtures for the scale-out hand-off (packages/lrc/fixtures/reference-handoff/**): saves as the reference
PyTorch trainer writes them, and the student its merge produces, with no `transformers` in the loop.

The reference is CURRENTF/LowRankClone at 7b458b2 ("R"). Its CoTrainLM is mirrored here as a tree of plain
torch modules with R's attribute names, so every tensor name comes from `named_parameters()` exactly as in R,
and each `merge_weight` repeats R's formula line for line (cited at each). The teacher weights are the
fixtures of tools/make_nn_fixtures.py (packages/nn/fixtures/<teacher>/model.safetensors).

Per case:
  * the trainable tensors, N(0, 0.25^2) projections and 1 + N(0, 0.1^2) gains, rounded to bf16 (R trains
    and saves in bf16), saved with {"format": "pt"} as `save_pretrained` does: trainable-only (R's
    `CoTrainLM.save_pretrained(only_save_trainable=True)` -> `get_trained_params`), or the full state dict,
    one file or two shards with a model.safetensors.index.json;
  * R's config.json beside the save where the case has one (the teacher config with R's target_* keys);
  * `merged.safetensors`: the merged student in HF names, float32, computed with R's merge formulas from the
    bf16 values upcast to float32 (R merges in bf16; float32 keeps the fixture about the mapping, not rounding).

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/make_reference_fixtures.py
Deterministic (fixed seeds, one thread): rerunning rewrites byte-identical files.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_nn_fixtures import load_safetensors, save_safetensors, write_json  # noqa: E402  (one writer/reader for all fixtures)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = Path(__file__).resolve().parent.parent
TEACHERS = ROOT / "packages" / "nn" / "fixtures"
OUT = ROOT / "packages" / "lrc" / "fixtures" / "reference-handoff"


def frozen_linear(weight, bias=None):
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    lin.weight.data = weight.clone()
    if bias is not None:
        lin.bias.data = bias.clone()
    return lin


class RMSNorm(nn.Module):
    """R's DebugLlamaRMSNorm holds one `weight` (co_train_qwen.py:330-338); only the parameter matters here."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())


class AllAttn(nn.Module):
    """R's per-matrix attention (use_all_attn=1): co_train_qwen.py:73-80, co_train_llama.py:207-214."""

    def __init__(self, T, p, D, d):
        super().__init__()
        b = lambda n: T.get(p + n + ".bias")  # noqa: E731  Qwen2 q/k/v biases (and a Llama attention_bias)
        self.q_proj = frozen_linear(T[p + "q_proj.weight"], b("q_proj"))
        self.k_proj = frozen_linear(T[p + "k_proj.weight"], b("k_proj"))
        self.v_proj = frozen_linear(T[p + "v_proj.weight"], b("v_proj"))
        self.o_proj = frozen_linear(T[p + "o_proj.weight"], b("o_proj"))
        self.zoom_q = nn.Linear(d, D, bias=False)
        self.zoom_k = nn.Linear(d, D, bias=False)
        self.zoom_v = nn.Linear(d, D, bias=False)
        self.zoom_down = nn.Linear(D, d, bias=False)

    def merge_weight(self):
        # R co_train_qwen.py:212-216 (AllAttn.merge_weight), identical in co_train_llama.py:318-322
        self.q_proj.weight.data = (self.q_proj.weight.data @ self.zoom_q.weight.data).contiguous()
        self.k_proj.weight.data = (self.k_proj.weight.data @ self.zoom_k.weight.data).contiguous()
        self.v_proj.weight.data = (self.v_proj.weight.data @ self.zoom_v.weight.data).contiguous()
        self.o_proj.weight.data = (self.zoom_down.weight.data @ self.o_proj.weight.data).contiguous()


class MLP(nn.Module):
    """R's per-matrix FFN (use_in_out_mlp=0): co_train_qwen.py:285-290, co_train_llama.py:325-331."""

    def __init__(self, T, p, D, d):
        super().__init__()
        self.gate_proj = frozen_linear(T[p + "gate_proj.weight"])
        self.up_proj = frozen_linear(T[p + "up_proj.weight"])
        self.down_proj = frozen_linear(T[p + "down_proj.weight"])
        self.zoom_up = nn.Linear(D, d, bias=False)
        self.zoom_gate = nn.Linear(D, d, bias=False)
        self.zoom_down = nn.Linear(D, d, bias=False)

    def merge_weight(self):
        # R co_train_qwen.py:324-327 (MLP.merge_weight), identical in co_train_llama.py:374-377
        self.gate_proj.weight.data = self.zoom_gate(self.gate_proj.weight.data).contiguous()
        self.up_proj.weight.data = self.zoom_up(self.up_proj.weight.data).contiguous()
        self.down_proj.weight.data = self.zoom_down(self.down_proj.weight.data.T).T.contiguous()


class CustomLayer(nn.Module):
    """R co_train_qwen.py:364-386, co_train_llama.py:455-: the teacher layer plus the student gains."""

    def __init__(self, T, i, D, d):
        super().__init__()
        p = f"model.layers.{i}."
        self.self_attn = AllAttn(T, p + "self_attn.", D, d)
        self.mlp = MLP(T, p + "mlp.", D, d)
        self.input_layernorm = RMSNorm(T[p + "input_layernorm.weight"])
        self.post_attention_layernorm = RMSNorm(T[p + "post_attention_layernorm.weight"])
        self.target_input_layernorm = RMSNorm(torch.ones(d))
        self.target_post_attention_layernorm = RMSNorm(torch.ones(d))

    def merge_weight(self):
        # R co_train_qwen.py:446-448 (CustomLayer.merge_weight), identical in co_train_llama.py:535-537
        self.input_layernorm.weight.data = self.target_input_layernorm.weight.data
        self.post_attention_layernorm.weight.data = self.target_post_attention_layernorm.weight.data


class Model(nn.Module):
    """R co_train_qwen.py:461-472, co_train_llama.py:550-556: embedding projection `zoom`, `target_norm`."""

    def __init__(self, T, L, D, d):
        super().__init__()
        self.embed_tokens = nn.Embedding(*T["model.embed_tokens.weight"].shape)
        self.embed_tokens.weight.data = T["model.embed_tokens.weight"].clone()
        self.layers = nn.ModuleList([CustomLayer(T, i, D, d) for i in range(L)])
        self.norm = RMSNorm(T["model.norm.weight"])
        self.zoom = nn.Linear(D, d, bias=False)
        self.target_norm = RMSNorm(torch.ones(d))

    def merge_weight(self):
        # R co_train_qwen.py:477-479 (Model.merge_weight), identical in co_train_llama.py:566-568
        self.embed_tokens.weight.data = self.zoom(self.embed_tokens.weight.data).contiguous()
        self.norm.weight.data = self.target_norm.weight.data


class CoTrainLM(nn.Module):
    """R co_train_qwen.py:627-635, co_train_llama.py:717-724: a separate LM-head projection unless tied."""

    def __init__(self, T, cfg, d, tie_word_emb_proj):
        super().__init__()
        D, L = cfg["hidden_size"], cfg["num_hidden_layers"]
        self.tie_word_emb_proj = tie_word_emb_proj
        self.model = Model(T, L, D, d)
        # R's convert_ckpt.py gives a tied teacher a separate lm_head cloned from the embedding before merging,
        # so Model.merge_weight and CoTrainLM.merge_weight do not both rewrite one shared tensor.
        self.lm_head = frozen_linear(T["lm_head.weight"] if "lm_head.weight" in T else T["model.embed_tokens.weight"])
        if not tie_word_emb_proj:
            self.zoom_down = nn.Linear(D, d, bias=False)
        # R freeze_original_model (co_train_qwen.py:753-762): trainable = names containing "zoom" or "target".
        for n, prm in self.named_parameters():
            prm.requires_grad = "zoom" in n or "target" in n

    def merge_weight(self):
        # R co_train_qwen.py:646-651 (CoTrainLM.merge_weight), identical in co_train_llama.py:736-741
        if not self.tie_word_emb_proj:
            self.lm_head.weight.data = self.zoom_down(self.lm_head.weight.data).contiguous()
        else:
            self.lm_head.weight.data = self.model.zoom(self.lm_head.weight.data).contiguous()


def merge(module):
    if hasattr(module, "merge_weight"):
        module.merge_weight()


# name, teacher fixture, d, tie_word_emb_proj, how it is saved, R config.json eps (None: no config.json), seed
CASES = [
    ("qwen2-tied", "qwen2-tied-f32", 16, True, "trainable", 1e-6, 11),
    ("qwen2-untied-full", "qwen2-untied-bf16-headdim16", 24, False, "full", None, 12),
    ("llama-untied-sharded", "llama-gqa-llama3rope-f32", 16, False, "sharded", 1e-5, 13),
    ("llama-tied", "llama-tied-bf16", 24, True, "trainable", None, 14),
]


def build_case(name, teacher, d, tie, save, eps, seed):
    cfg = json.loads((TEACHERS / teacher / "config.json").read_text())
    T = load_safetensors(TEACHERS / teacher / "model.safetensors")
    m = CoTrainLM(T, cfg, d, tie)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if not p.requires_grad:
                continue
            v = torch.randn(p.shape, generator=g) * (0.1 if "target" in n else 0.25) + (1.0 if "target" in n else 0.0)
            p.data = v.to(torch.bfloat16).float()  # R holds them in bf16
    # R get_trained_params (co_train_qwen.py:779-784) for the trainable-only save; the full state dict otherwise.
    trainable = {n: p.detach().to(torch.bfloat16) for n, p in m.named_parameters() if p.requires_grad}
    full = {n: p.detach().to(torch.bfloat16) for n, p in m.named_parameters()}
    d_out = OUT / name
    d_out.mkdir(parents=True)
    meta = {"format": "pt"}
    if save == "trainable":
        save_safetensors(d_out / "model.safetensors", trainable, meta)
        checkpoint = "model.safetensors" if eps is None else "."
    elif save == "full":
        save_safetensors(d_out / "full.safetensors", full, meta)
        checkpoint = "full.safetensors"
    else:
        first = sorted(n for n in trainable if n == "model.zoom.weight" or n.startswith("model.layers.0."))
        shards = [first, sorted(n for n in trainable if n not in first)]
        weight_map = {}
        for j, names in enumerate(shards):
            fname = f"model-{j + 1:05d}-of-{len(shards):05d}.safetensors"
            save_safetensors(d_out / fname, {k: trainable[k] for k in names}, meta)
            weight_map.update({k: fname for k in names})
        total = sum(t.numel() * t.element_size() for t in trainable.values())
        write_json(d_out / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
        checkpoint = "model.safetensors.index.json"
    if eps is not None:
        # What R's save_pretrained writes beside the weights: the teacher config with R's custom keys
        # (hf_trainer.py config.set_custom_kwargs; CustomConfig.set_custom_kwargs, co_train_qwen.py:53-70).
        rcfg = dict(cfg, target_hidden_size=d, target_rms_norm_eps=eps, tie_word_emb_proj=tie, use_all_attn=True, use_in_out_mlp=False)
        write_json(d_out / "config.json", rcfg)
    with torch.no_grad():
        m.apply(merge)  # post-order, as R's convert_ckpt.py `model.apply(merge)`: layers and Model before CoTrainLM
    merged = {}
    for n, p in m.named_parameters():
        if "zoom" in n or "target" in n or (n == "lm_head.weight" and tie and cfg["tie_word_embeddings"]):
            continue  # R's convert drops lm_head when tied (convert_ckpt.py, `del state_dict["lm_head.weight"]`)
        merged[n] = p.detach().float().contiguous()
    save_safetensors(d_out / "merged.safetensors", merged)
    back = load_safetensors(d_out / "merged.safetensors")
    assert all(torch.equal(back[k], merged[k]) for k in merged)
    return {
        "name": name, "teacher": teacher, "checkpoint": checkpoint, "hidden_size": d, "tie_word_emb_proj": tie,
        "save": save, "config_eps": eps, "student_tied": bool(tie and cfg["tie_word_embeddings"]),
    }


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    cases = [build_case(*c) for c in CASES]
    write_json(OUT / "manifest.json", {"reference": "CURRENTF/LowRankClone@7b458b2", "cases": cases})
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {len(cases)} cases to {OUT.relative_to(ROOT)} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
