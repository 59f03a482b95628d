#!/usr/bin/env bash
# The nightly in miniature (run by .ci/run after the tests): a small embedded matrix with
# the `ci` AutoRound recipe, checked by `bench regress` against the committed baseline
# reports/ci-baseline.json. `--update-baseline` rewrites that baseline from a fresh run.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR="${BENCH_DIR:-$(mktemp -d)/bench}"
MATRIX=(--models stories260k --schemes BF16,W2A16,W4A16,NVFP4A16 --methods rtn,autoround --recipe ci
        --suites tinystories-ppl,tinystories-cloze,kld --limit 100)
start=$(date +%s)
./bin/bench.js run "${MATRIX[@]}" --bench-dir "$BENCH_DIR" --run-id nightly-mini --report-out "$BENCH_DIR/site"
if [ "${1:-}" = "--update-baseline" ]; then
  ./bin/bench.js baseline update --run "$BENCH_DIR/runs/nightly-mini" --out reports/ci-baseline.json
else
  ./bin/bench.js regress --baseline reports/ci-baseline.json --current "$BENCH_DIR/runs/nightly-mini" \
    --thresholds ci/thresholds.json --out "$BENCH_DIR/regress"
fi
echo "nightly in miniature: $(( $(date +%s) - start )) s wall"
