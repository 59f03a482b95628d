#!/usr/bin/env python3
"""Quantize a Hugging Face causal LM with llm-compressor and save a compressed-tensors
checkpoint that vLLM loads. Driven by lowbit-bench (src/quant/external/llmcompressor.ts)
through execa with an argv array; never through a shell.

method autoround: AutoRoundModifier (SignRound tuning per decoder layer, needs auto-round)
method rtn:       QuantizationModifier (round-to-nearest; static FP8 and NVFP4 still calibrate)

Calibration never goes through llm-compressor's dataset registry (which knows none of the
names auto-round does): it is built with auto-round's `get_dataset` from `--dataset`, a local
jsonl of {"text": ...} lines written by lowbit-bench (or, without --dataset, auto-round's
default selection), tokenized, cut to --seqlen, shuffled with --seed, --nsamples kept; the
tokenized Dataset object is what `oneshot` receives.

Progress goes to stderr as `[lowbit] <stage>` lines (plus auto-round's own per-block loss
lines); the last stdout line is a JSON summary with the tool versions.
Checked against llmcompressor 0.14.0.1 (with auto-round 0.15.1, compressed-tensors 0.19.0).
"""
import argparse
import json
import sys
import time


def log(msg):
    print(f"[lowbit] {msg}", file=sys.stderr, flush=True)


def version_of(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001 - version lookup must never fail the job
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--scheme", required=True, help="preset: W4A16, W8A16, W2A16, W3A16, W4A16_ASYM, MXFP4A16, MXFP4, NVFP4A16, NVFP4, FP8, FP8_DYNAMIC")
    p.add_argument("--method", required=True, choices=["autoround", "rtn"])
    p.add_argument("--output-dir", required=True)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--nsamples", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dataset", default=None, help="local jsonl of {\"text\": ...} lines (or an auto-round dataset spec); default: auto-round's pile-10k selection")
    p.add_argument("--device", default=None, help="cpu: no torch.compile, tuning on the CPU")
    p.add_argument("--ignore", action="append", default=None)
    a = p.parse_args()
    ignore = a.ignore or ["lm_head"]

    t0 = time.time()
    log("stage: load")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from llmcompressor import oneshot

    torch.manual_seed(a.seed)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(a.model)

    needs_data = a.method == "autoround" or a.scheme in ("FP8", "NVFP4")
    ds = None
    if needs_data:
        log("stage: calibration data")
        from auto_round.calib_dataset import get_dataset
        kw = {"dataset_name": a.dataset} if a.dataset else {}
        ds = get_dataset(tokenizer=tokenizer, seqlen=a.seqlen, seed=a.seed, nsamples=a.nsamples, **kw)
        if len(ds) < a.nsamples:
            raise ValueError(f"calibration gave {len(ds)} samples of {a.seqlen} tokens, fewer than --nsamples {a.nsamples}")
        ds = ds.select(range(a.nsamples))

    if a.method == "autoround":
        from llmcompressor.modifiers.autoround import AutoRoundModifier
        extra = {"enable_torch_compile": False} if a.device == "cpu" else {}
        recipe = AutoRoundModifier(targets="Linear", scheme=a.scheme, ignore=ignore, iters=a.iters, batch_size=a.batch_size, **extra)
    else:
        from llmcompressor.modifiers.quantization import QuantizationModifier
        recipe = QuantizationModifier(targets="Linear", scheme=a.scheme, ignore=ignore)

    log(f"stage: quantize scheme={a.scheme} method={a.method}")
    kwargs = dict(model=model, recipe=recipe)
    if ds is not None:
        kwargs.update(dataset=ds, max_seq_length=a.seqlen, num_calibration_samples=a.nsamples, shuffle_calibration_samples=False)
    oneshot(**kwargs)

    log("stage: save")
    model.save_pretrained(a.output_dir, save_compressed=True)
    tokenizer.save_pretrained(a.output_dir)
    summary = {
        "tool": "llm-compressor",
        "versions": {k: version_of(k) for k in ("llmcompressor", "compressed-tensors", "auto-round", "transformers", "torch")},
        "scheme": a.scheme,
        "method": a.method,
        "output_dir": a.output_dir,
        "seconds": round(time.time() - t0, 3),
    }
    log("stage: done")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
