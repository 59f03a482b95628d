#!/usr/bin/env bash
# Stops exactly what scripts/slurm/up.sh started (listed in $STATE/started), by pid from the
# pidfiles, after cancelling jobs left in the queue. Daemons up.sh found running are left alone.
set -euo pipefail
STATE=${LOWBIT_SLURM_STATE:-/run/lowbit-slurm}
[ -f "$STATE/started" ] || exit 0
started=$(cat "$STATE/started")
has() { grep -qx "$1" <<<"$started"; }

# Jobs left on the cluster this script's controller runs would outlive it in its state: cancel them.
if has slurmctld && command -v scancel >/dev/null; then
  squeue -h -o '%A' 2>/dev/null | sort -u | xargs -r scancel --quiet 2>/dev/null || true
fi
pids=()
for d in slurmd slurmctld; do
  if has "$d" && [ -f "$STATE/$d.pid" ]; then pids+=("$(cat "$STATE/$d.pid")"); fi
done
if has munged && [ -f /run/munge/munged.pid ]; then pids+=("$(cat /run/munge/munged.pid)"); fi
# Stop them together (each needs ~2 s to exit), then wait for every one.
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then echo "slurm/down.sh: process $p did not stop within 10 s" >&2; exit 1; fi
done
rm -f "$STATE/started"
