"""Token ids from transformers' AutoTokenizer, for test/families/tokenizers.test.ts.

    python hf_tokenize.py IN.json OUT.json
IN: {"dirs": [tokenizer dirs], "texts": [strings]}.
OUT: {dir: {"class": ..., "bos_token_id": ..., "with": [[ids]], "without": [[ids]]}}, where
"with" is tokenizer(text)["input_ids"] (special tokens added as the tokenizer's config says)
and "without" uses add_special_tokens=False, and "decoded" is decode(with, skip_special_tokens=True).
"""
import json
import sys

import transformers
from transformers import AutoTokenizer

spec = json.load(open(sys.argv[1], encoding="utf-8"))
out = {"transformers": transformers.__version__}
for d in spec["dirs"]:
    tok = AutoTokenizer.from_pretrained(d)
    with_special = [tok(t)["input_ids"] for t in spec["texts"]]
    out[d] = {
        "class": type(tok).__name__,
        "bos_token_id": tok.bos_token_id,
        "with": with_special,
        "without": [tok(t, add_special_tokens=False)["input_ids"] for t in spec["texts"]],
        "decoded": [tok.decode(ids, skip_special_tokens=True) for ids in with_special],
    }
json.dump(out, open(sys.argv[2], "w", encoding="utf-8"))
