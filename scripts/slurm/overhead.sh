#!/usr/bin/env bash
# Overhead of one Slurm job on this cluster: submit -> start -> done for a trivial batch
# job, N times one after another (default 10). Prints the mean and max of each step and
# the load average. Run with the cluster up (scripts/slurm/up.sh).
set -euo pipefail
n=${1:-10}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
now() { date +%s.%N; }
sub=(); start=(); done_=()
for i in $(seq 1 "$n"); do
  t0=$(now)
  id=$(sbatch --parsable -o /dev/null --wrap "date +%s.%N > $dir/start-$i")
  while squeue -h -j "$id" -t PD,R,CG,CF 2>/dev/null | grep -q .; do sleep 0.05; done
  t2=$(now)
  sub+=("$t0"); start+=("$(cat "$dir/start-$i")"); done_+=("$t2")
done
python3 - "$n" "${sub[@]}" "${start[@]}" "${done_[@]}" <<'PY'
import sys
n = int(sys.argv[1]); v = list(map(float, sys.argv[2:]))
s, st, d = v[:n], v[n:2 * n], v[2 * n:]
a = [st[i] - s[i] for i in range(n)]; b = [d[i] - st[i] for i in range(n)]; c = [d[i] - s[i] for i in range(n)]
f = lambda xs: f"mean {sum(xs) / len(xs):.2f} s, max {max(xs):.2f} s"
print(f"{n} trivial jobs: submit->start {f(a)}; start->done (seen by squeue) {f(b)}; submit->done {f(c)}")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
