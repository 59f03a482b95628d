#!/usr/bin/env bash
# The test command (README's second command; .ci/run calls it). On a fresh machine it
# installs what the tests need: npm packages, Debian's chromium for the browser test, and the
# Python tool environments (auto-round, llm-compressor, lm-eval) the equality tests run, and a one-node Slurm cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
# The real tools the tests check against: pinned Python environments, built once per machine
# under ~/.cache/lowbit-bench/envs (harness/envs/README.md); a second run installs nothing.
./bin/bench.js env
# A one-node Slurm cluster for test/slurm/ (Debian's slurm-wlm and munge, started by hand);
# stopped again however the tests end.
bash scripts/slurm/up.sh
trap 'bash scripts/slurm/down.sh' EXIT
npm test
