"""llm-compressor RTN (QuantizationModifier, no calibration data) for several presets in one process.

usage: python llmc_rtn.py MODEL_DIR OUT_ROOT PRESET [PRESET ...]

Each preset (compressed-tensors' names: W4A16, W8A16, MXFP4A16, NVFP4A16, FP8_DYNAMIC) is
applied with `oneshot(model, recipe=QuantizationModifier(targets="Linear", scheme=PRESET,
ignore=["lm_head"]))` to a fresh float32 copy of the model, and saved compressed to
OUT_ROOT/PRESET. One JSON line per preset on stdout (versions, error).
"""
import json
import os
import sys
import time
from importlib.metadata import version

import torch
from transformers import AutoModelForCausalLM


def main(model_dir: str, out_root: str, presets: list) -> None:
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier

    for preset in presets:
        t0 = time.perf_counter()
        out = os.path.join(out_root, preset)
        try:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
            oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme=preset, ignore=["lm_head"]))
            model.save_pretrained(out, save_compressed=True)
            err = None
        except Exception as e:  # noqa: BLE001 - reported per preset, the caller asserts on it
            err = f"{type(e).__name__}: {e}"
        print(json.dumps({"preset": preset, "out": out, "llmcompressor": version("llmcompressor"), "compressed-tensors": version("compressed-tensors"), "seconds": round(time.perf_counter() - t0, 3), "error": err}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: llmc_rtn.py MODEL_DIR OUT_ROOT PRESET [PRESET ...]")
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
