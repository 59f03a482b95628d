#!/bin/bash
# Our native AutoRound against real auto-round 0.16.1 on stories260k, default recipe (200 iters,
# 128 samples of 512 tokens, batch 8, seed 42), W4A16 group 32, auto-round's layer selection,
# the same calibration text (stories 1-500, as jsonl lines of consecutive stories): wall time of
# each run back to back with the load average, then tinystories-ppl of each checkpoint.
#   bash scripts/compare-autoround.sh [SCHEME] [WORKDIR]     (needs: ./bin/bench.js env quant)
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-W4A16}
M=${2:-$(mktemp -d)}
AR=$( (./bin/bench.js env --check --json || true) | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const e=JSON.parse(s).find(x=>x.name==="quant");console.log(e.dir+"/bin/auto-round")})')
node --import tsx -e "
import { readFileSync, writeFileSync } from 'node:fs';
import { calibrationStories, defaultCalibrationFile } from './src/quant/calibration.ts';
const st = calibrationStories(readFileSync(defaultCalibrationFile(), 'utf8'));
const lines = []; let cur = [];
for (const s of st) { cur.push(s); if (cur.join('\n').length > 2600) { lines.push(cur.join('\n')); cur = []; } }
if (cur.length) lines.push(cur.join('\n'));
writeFileSync('$M/calib.jsonl', lines.map((text) => JSON.stringify({ text })).join('\n') + '\n');"
echo "real auto-round $S: start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "real auto-round wall %e s" env HF_HUB_OFFLINE=1 "$AR" --model models/stories260k --scheme "$S" --group_size 32 \
  --iters 200 --nsamples 128 --seqlen 512 --batch_size 8 --seed 42 --dataset "$M/calib.jsonl" \
  --format llm_compressor --device_map cpu --disable_torch_compile --output_dir "$M/ar" > "$M/ar.log" 2>&1
echo "  end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "native AutoRound $S: start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "native wall %e s" ./bin/bench.js quantize --model models/stories260k --scheme "$S" --method autoround \
  --group-size 32 --skip-unaligned --recipe default --seqlen 512 --out "$M/native" --force > "$M/native.log" 2>&1
echo "  end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
for d in "$(dirname "$(find "$M/ar" -name config.json | head -1)")" "$M/native"; do
  ./bin/bench.js eval --model "$d" --suite tinystories-ppl --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s).metrics.find(x=>x.metric==="token_perplexity");console.log(process.argv[1], "token_perplexity", m.value, "±", m.stderr)})' "$d"
done
