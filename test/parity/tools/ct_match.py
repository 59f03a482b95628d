"""compressed-tensors' own answer to "does this targets/ignore entry match this Linear?".

usage: python ct_match.py CASES.json   (a list of [module_name, entry])
Prints {"results": [booleans]}: compressed_tensors.utils.match.is_match for a
torch.nn.Linear registered under that name (name match, `re:` match, or class name).
"""
import json
import sys

import torch
from compressed_tensors.utils.match import is_match

with open(sys.argv[1]) as f:
    cases = json.load(f)
linear = torch.nn.Linear(2, 2)
print(json.dumps({"results": [bool(is_match(name, linear, entry)) for name, entry in cases]}))
