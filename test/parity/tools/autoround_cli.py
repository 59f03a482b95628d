"""Run several auto-round CLI invocations in one Python process.

usage: python autoround_cli.py JOBS.json

JOBS.json is a list of argv lists, each exactly what would follow `auto-round` on a command
line. Each is handed to auto-round's own CLI entry (auto_round.cli.main.start, what the
`auto-round` console script runs), so parsing, recipe defaults and export are the tool's;
only the interpreter start and the torch/transformers import are paid once instead of per
job. auto-round's log goes to stderr as usual; one JSON line per job on stdout.
"""
import json
import sys
import time

import auto_round
from auto_round.cli.main import start


def main(path: str) -> None:
    with open(path) as f:
        jobs = json.load(f)
    for argv in jobs:
        t0 = time.perf_counter()
        try:
            start(argv=list(argv))
            err = None
        except SystemExit as e:  # the CLI exits on bad arguments
            err = f"SystemExit({e.code})"
        except Exception as e:  # noqa: BLE001 - reported per job, the caller asserts on it
            err = f"{type(e).__name__}: {e}"
        print(json.dumps({"argv": argv, "version": auto_round.__version__, "seconds": round(time.perf_counter() - t0, 3), "error": err}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1]) if len(sys.argv) == 2 else sys.exit("usage: autoround_cli.py JOBS.json")
