"""Seeded random models of the Llama 3, Qwen3, Qwen2 and Mistral families, built with transformers.

Run in the `eval` tool environment (transformers 5.25.0, torch 2.13.0; see harness/envs/README.md):

    python scripts/family_models.py --out DIR [--tokenizer models/stories260k] [--tokens tokens.json]

Each family's config is the real checkpoint's config.json (as published on the Hugging Face Hub)
scaled down in width and depth, keeping every switch that changes the math: RoPE theta and
Llama 3 rope scaling, q/k RMSNorm, tied or untied lm_head, the GQA ratio, q/k/v biases, an
explicit head_dim that differs from hidden/heads. The vocabulary is stories260k's (512 tokens),
whose tokenizer files are copied in. Weights are re-drawn from a seeded generator with scales
that keep every layer's contribution visible (transformers' init would leave the residual
stream almost unchanged, which hides errors).

For each family FAM two directories are written:
  DIR/FAM         save_pretrained output: transformers 5 layout (`rope_parameters`)
  DIR/FAM-legacy  the same weights with the scaled config in the published layout
                  (`rope_theta` + `rope_scaling`), checked to give identical logits

With --tokens (a JSON list of token-id lists), DIR/reference.json gets, per family and
sequence, transformers' log-softmax over the vocabulary at every position (float32, CPU, eager
attention), and each decoder layer's input and output hidden states as seen by forward hooks.
"""

import argparse
import json
import math
import os
import shutil

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

SEED = 1234
VOCAB = 512  # stories260k
BOS, EOS = 1, 2

# Published configs, scaled: width and depth shrink, every switch stays.
FAMILIES = {
    # meta-llama/Llama-3.2-1B: hidden 2048, 32 heads / 8 kv heads, head_dim 64, 16 layers, tied.
    "llama3": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": BOS, "eos_token_id": EOS,
        "head_dim": 32, "hidden_act": "silu", "hidden_size": 128, "initializer_range": 0.02,
        "intermediate_size": 512, "max_position_embeddings": 131072, "mlp_bias": False,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 1, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "use_cache": True, "vocab_size": VOCAB,
    },
    # Qwen/Qwen3-0.6B: hidden 1024, 16 heads / 8 kv heads, head_dim 128 (q width 2048 != hidden), 28 layers, tied.
    "qwen3": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": BOS, "eos_token_id": EOS,
        "head_dim": 64, "hidden_act": "silu", "hidden_size": 128, "initializer_range": 0.02,
        "intermediate_size": 384, "max_position_embeddings": 40960, "max_window_layers": 28,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
        "use_sliding_window": False, "vocab_size": VOCAB,
    },
    # Qwen/Qwen2.5-0.5B: hidden 896, 14 heads / 2 kv heads (head_dim 64 = hidden/heads), 24 layers, tied.
    "qwen2": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "attention_dropout": 0.0, "bos_token_id": BOS, "eos_token_id": EOS, "hidden_act": "silu",
        "hidden_size": 112, "initializer_range": 0.02, "intermediate_size": 608,
        "max_position_embeddings": 32768, "max_window_layers": 24, "num_attention_heads": 7,
        "num_hidden_layers": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
        "use_mrope": False, "use_sliding_window": False, "vocab_size": VOCAB,
    },
    # mistralai/Mistral-7B-v0.3: hidden 4096, 32 heads / 8 kv heads, 32 layers, untied, no sliding window.
    "mistral": {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral",
        "attention_dropout": 0.0, "bos_token_id": BOS, "eos_token_id": EOS, "hidden_act": "silu",
        "hidden_size": 128, "initializer_range": 0.02, "intermediate_size": 448,
        "max_position_embeddings": 32768, "num_attention_heads": 4, "num_hidden_layers": 2,
        "num_key_value_heads": 1, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": None,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": VOCAB,
    },
}


def randomize(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or name.startswith("lm_head"):
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / math.sqrt(p.shape[1])))
            else:  # Linear [out, in]
                p.copy_(torch.randn(p.shape, generator=g) * (0.6 / math.sqrt(p.shape[1])))


def load(path: str) -> torch.nn.Module:
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def build(out: str, tokenizer_dir: str) -> None:
    torch.manual_seed(SEED)
    for i, (fam, legacy) in enumerate(FAMILIES.items()):
        d, dl = os.path.join(out, fam), os.path.join(out, fam + "-legacy")
        for path in (d, dl):
            os.makedirs(path, exist_ok=True)
        with open(os.path.join(dl, "config.json"), "w") as f:
            json.dump(legacy, f, indent=2)
        cfg = AutoConfig.from_pretrained(dl)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        randomize(model, SEED + i)
        model.save_pretrained(d)
        shutil.copy(os.path.join(d, "model.safetensors"), os.path.join(dl, "model.safetensors"))
        for path in (d, dl):
            for name in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(tokenizer_dir, name), os.path.join(path, name))
        # Both layouts must describe the same model to transformers itself.
        ids = torch.arange(3, 40).unsqueeze(0)
        with torch.no_grad():
            a, b = load(d)(ids).logits, load(dl)(ids).logits
        if not torch.equal(a, b):
            raise SystemExit(f"{fam}: the transformers 5 and legacy configs give different logits")


def reference(out: str, sequences: list[list[int]]) -> None:
    result = {"transformers": transformers.__version__, "torch": torch.__version__, "families": {}}
    for fam in FAMILIES:
        model = load(os.path.join(out, fam))
        layers = model.model.layers
        seqs = []
        for ids in sequences:
            captured = [None] * len(layers)

            def hook(idx):
                def fn(module, args, kwargs, output):
                    x = kwargs.get("hidden_states", args[0] if args else None)
                    y = output[0] if isinstance(output, tuple) else output
                    captured[idx] = (x[0].detach().clone(), y[0].detach().clone())
                return fn

            handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
            try:
                with torch.no_grad():
                    logits = model(torch.tensor([ids])).logits[0]
            finally:
                for h in handles:
                    h.remove()
            logp = torch.log_softmax(logits.float(), dim=-1)
            seqs.append({
                "ids": ids,
                "logprobs": logp.flatten().tolist(),
                "layers": [{"input": x.flatten().tolist(), "output": y.flatten().tolist()} for x, y in captured],
            })
        result["families"][fam] = seqs
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(result, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "..", "models", "stories260k"))
    ap.add_argument("--tokens", help="JSON list of token-id lists to score")
    a = ap.parse_args()
    torch.set_num_threads(1)
    build(a.out, a.tokenizer)
    if a.tokens:
        with open(a.tokens) as f:
            reference(a.out, json.load(f))


if __name__ == "__main__":
    main()
