"""Decompress compressed-tensors checkpoints with compressed-tensors itself.

usage: python ct_decompress.py CHECKPOINT_DIR OUT.safetensors [CHECKPOINT_DIR OUT.safetensors ...]

For each checkpoint, compressed-tensors' own model-free dequantizer
(compressed_tensors.entrypoints.convert.converters.CompressedTensorsDequantizer, the
per-format compressor's `decompress`) turns every targeted module's packed tensors back
into `<module>.weight`. Only those weights are written, in the dtype compressed-tensors
computed them in (the scale's dtype for integer formats, bfloat16 for FP4), so the caller
can compare without a second rounding. One JSON line per checkpoint on stdout: the version,
each weight's dtype; a checkpoint compressed-tensors refuses gives {"error": ...} instead.
"""
import glob
import json
import os
import sys

import compressed_tensors
import torch
from compressed_tensors.compressors import BaseCompressor
from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import CompressedTensorsDequantizer
from compressed_tensors.utils import match_quantizable_tensors
from safetensors.torch import load_file, save_file


def tensors_of(ckpt: str) -> dict:
    out = {}
    for f in sorted(glob.glob(os.path.join(ckpt, "*.safetensors"))):
        out.update(load_file(f))
    return out


def main(argv: list) -> None:
    if len(argv) % 2:
        raise SystemExit("usage: ct_decompress.py DIR OUT.safetensors [DIR OUT.safetensors ...]")
    for ckpt, out in zip(argv[0::2], argv[1::2]):
        try:
            # Its config parsing and scheme formats; the per-module loop below is its
            # `process`, keeping each weight in the dtype decompress returned.
            deq = CompressedTensorsDequantizer(ckpt, dtype=torch.float32)
            raw = tensors_of(ckpt)
            native = {}
            for scheme in deq.quant_config.config_groups.values():
                comp = BaseCompressor.get_value_from_registry(scheme.format)
                names = comp.compression_param_names(scheme)
                for module, _ in match_quantizable_tensors(raw, ignore=deq.quant_config.ignore, targets=scheme.targets, param_targets=[names[0]]):
                    sd = {p: raw[f"{module}.{p}"] for p in names if f"{module}.{p}" in raw}
                    if names[0] == "weight" and "weight_scale" not in sd:
                        # Model-free matching sees tensor names, not module classes: for the
                        # FP8 formats (root param `weight`) an embedding or norm matches
                        # "Linear" too. A module with no scale is not quantized; skip it as
                        # the model-based path (class Linear) would.
                        continue
                    missing = [p for p in names if p not in sd]
                    if missing:
                        raise KeyError(f"{module}: missing {missing}")
                    native[f"{module}.weight"] = comp.decompress(sd, scheme)["weight"].contiguous()
            save_file(native, out)
            print(json.dumps({"dir": ckpt, "version": compressed_tensors.__version__, "weights": {k: str(v.dtype).removeprefix("torch.") for k, v in sorted(native.items())}}), flush=True)
        except Exception as e:  # noqa: BLE001 - reported per checkpoint, the caller asserts on it
            print(json.dumps({"dir": ckpt, "version": compressed_tensors.__version__, "error": f"{type(e).__name__}: {e}"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
