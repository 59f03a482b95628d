"""What transformers' modeling code makes of a config.json, for test/families/config.test.ts.

    python hf_config.py IN.json OUT.json
IN: a list of config.json dicts (tiny sizes). Each is saved as DIR/config.json, loaded with
AutoConfig.from_pretrained and instantiated as a model; OUT lists, read off the built modules:
head_dim, kv heads, q/k/v and o_proj biases, q/k norms, RMSNorm eps, tied lm_head, each
layer's sliding window, and the rotary embedding's inv_freq buffer.
"""
import json
import os
import sys
import tempfile

import torch
from transformers import AutoConfig, AutoModelForCausalLM

out = []
for raw in json.load(open(sys.argv[1])):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(raw, f)
        cfg = AutoConfig.from_pretrained(d)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    layers = model.model.layers
    attn = layers[0].self_attn
    windows = []
    for layer in layers:
        a = layer.self_attn
        # Qwen2/Qwen3 keep the window on the attention module; Mistral reads it from the config.
        w = a.sliding_window if hasattr(a, "sliding_window") else getattr(model.config, "sliding_window", None)
        windows.append(w)
    out.append({
        "head_dim": attn.head_dim,
        "kv_heads": attn.k_proj.out_features // attn.head_dim,
        "qkv_bias": attn.q_proj.bias is not None,
        "o_bias": attn.o_proj.bias is not None,
        "qk_norm": hasattr(attn, "q_norm"),
        "eps": layers[0].input_layernorm.variance_epsilon,
        "tied": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "windows": windows,
        "inv_freq": model.model.rotary_emb.inv_freq.tolist(),
    })
json.dump(out, open(sys.argv[2], "w"))
