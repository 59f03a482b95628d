/**
 * Write a synthetic run directory (ledger.jsonl + run.json) with realistic structure, for
 * report benchmarks and browser tests. Seeded: the same arguments give the same bytes.
 *
 *   node --import tsx scripts/synth-ledger.ts --out /tmp/run1 [--records 10000 | --rows 1000] [--seed 1] [--items 40]
 *
 * Models: 'stories260k', an XSS-named model ('<img src=x onerror=alert(1)>'), then
 * 'synth-NNN'. Each model has a BF16 baseline and 9 schemes x {rtn, autoround}; the third
 * model's AutoRound rows carry a recipe with a '</script>' breakout attempt. Per-item
 * values are paired across rows (one latent difficulty per item), as in real runs.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { appendRecords } from '../src/results/ledger.ts';
import type { MetricItems, ResultRecord } from '../src/results/record.ts';
import { uniformSource as mulberry32 } from '../src/stats/index.ts'; // SplitMix64 since src/stats; local name kept

export const XSS_MODEL = '<img src=x onerror=alert(1)>';
export const XSS_RECIPE = 'iters=200 </script><script>window.__xss=1</script>';

const SCHEMES: [name: string, bpw: number, loss: number][] = [
  ['W8A16', 8.125, 0.002],
  ['W8A8-FP8', 8.0, 0.003],
  ['W8A8-FP8-STATIC', 8.0, 0.004],
  ['W4A16', 4.125, 0.02],
  ['MXFP4A16', 4.25, 0.035],
  ['NVFP4A16', 4.5, 0.025],
  ['NVFP4', 4.5, 0.045],
  ['W3A16', 3.125, 0.08],
  ['W2A16', 2.125, 0.25],
];

export interface SynthOptions {
  out: string;
  records?: number;
  rows?: number;
  seed?: number;
  items?: number;
}

export function synthLedger(o: SynthOptions): { records: number; rows: number } {
  const seed = o.seed ?? 1;
  const K = o.items ?? 40;
  const rand = mulberry32(seed);
  const runId = `synth-${seed}`;
  rmSync(o.out, { recursive: true, force: true });
  mkdirSync(o.out, { recursive: true });
  const t0 = Date.UTC(2026, 10, 1, 0, 0, 0);
  const out: ResultRecord[] = [];
  let rows = 0;
  const done = () => (o.rows !== undefined ? rows >= o.rows : out.length >= (o.records ?? 1000));

  for (let mi = 0; !done(); mi++) {
    const model = mi === 0 ? 'stories260k' : mi === 1 ? XSS_MODEL : `synth-${String(mi).padStart(3, '0')}`;
    // Latent per-item difficulty shared by every row of the model: makes items paired.
    const u = Float64Array.from({ length: K }, () => rand());
    const docLen = Float64Array.from({ length: K }, () => 50 + Math.floor(rand() * 200));
    const pCloze = 0.45 + 0.3 * rand();
    const pLast = 0.3 + 0.3 * rand();
    const nllBase = 1.2 + rand();
    const variants: [scheme: string, method: string, recipe: string | null, bpw: number, loss: number][] = [['BF16', 'base', null, 16, 0]];
    for (const [s, bpw, loss] of SCHEMES) {
      variants.push([s, 'rtn', null, bpw, loss]);
      variants.push([s, 'autoround', mi === 2 ? XSS_RECIPE : null, bpw, loss * 0.6]);
    }
    for (const [scheme, method, recipe, bpw, loss] of variants) {
      if (done()) break;
      rows++;
      const jobId = createHash('sha256').update(JSON.stringify([model, scheme, method, recipe])).digest('hex').slice(0, 16);
      const quantSeconds = method === 'base' ? null : method === 'rtn' ? 0.5 + rand() : 20 + 40 * rand();
      const stamp = (m: Omit<ResultRecord, 'schema' | 'jobId' | 'run' | 'model' | 'scheme' | 'method' | 'recipe' | 'suite' | 'bitsPerWeight' | 'engine' | 'timings' | 'provenance' | 'createdAt'>): void => {
        out.push({
          schema: 1,
          jobId,
          run: runId,
          model,
          scheme,
          method,
          recipe,
          suite: 'tinystories',
          bitsPerWeight: bpw,
          engine: 'onnx',
          timings: { quantSeconds, evalSeconds: 1 + rand() },
          provenance: { versions: { lowbitBench: '0.1.0', onnxruntime: '1.30.0', node: 'v20' }, seed, bos: 'prepend' },
          createdAt: new Date(t0 + out.length * 1000).toISOString(),
          ...m,
        });
      };
      const acc = (task: string, metric: string, p: number) => {
        const values: number[] = Array.from(u, (x) => (x < p - (rand() < 0.05 ? 0.1 : 0) ? 1 : 0));
        const items: MetricItems = { aggregation: 'mean', values };
        const v = values.reduce((a, b) => a + b, 0) / K;
        stamp({ task, metric, value: v, stderr: Math.sqrt((v * (1 - v)) / (K - 1)), n: K, higherIsBetter: true, items });
      };
      acc('tinystories-cloze', 'acc', pCloze * (1 - loss));
      acc('tinystories-cloze', 'acc_norm', Math.min(0.99, pCloze * 1.05 * (1 - loss)));
      acc('tinystories-lastword', 'acc', pLast * (1 - loss));
      // Rolling log-likelihoods per document: value = exp(-sum ll / sum count).
      const nll = nllBase * (1 + 2 * loss);
      const ll = Array.from(u, (x, i) => -docLen[i] * nll * (0.8 + 0.4 * x + 0.02 * rand()));
      const ppl = (task: string, metric: string, unit: number, aggregation: MetricItems['aggregation']) => {
        const weights = Array.from(docLen, (d) => Math.round(d * unit));
        const items: MetricItems = { aggregation, values: ll, weights };
        const sv = ll.reduce((a, b) => a + b, 0);
        const sw = weights.reduce((a, b) => a + b, 0);
        const value = aggregation === 'perplexity' ? Math.exp(-sv / sw) : -sv / sw / Math.LN2;
        stamp({ task, metric, value, stderr: value * 0.02, n: K, higherIsBetter: false, items });
      };
      ppl('tinystories-ppl', 'token_perplexity', 1, 'perplexity');
      ppl('tinystories-ppl', 'word_perplexity', 0.8, 'perplexity');
      ppl('tinystories-ppl', 'byte_perplexity', 4.1, 'perplexity');
      ppl('tinystories-ppl', 'bits_per_byte', 4.1, 'bits_per_unit');
      stamp({ task: 'tinystories-lastword', metric: 'perplexity', value: Math.exp(nll * 1.5), stderr: 0.3, n: K, higherIsBetter: false });
      if (method !== 'base') {
        const kv = Array.from(u, (x) => loss * 2 * (0.2 + x) * (0.9 + 0.2 * rand()));
        const kmean = kv.reduce((a, b) => a + b, 0) / K;
        const sorted = [...kv].sort((a, b) => a - b);
        stamp({ task: 'kld', metric: 'kld', value: kmean, stderr: kmean * 0.05, n: K, higherIsBetter: false, items: { aggregation: 'mean', values: kv } });
        stamp({ task: 'kld', metric: 'kld_median', value: sorted[K >> 1], stderr: null, n: K, higherIsBetter: false });
        stamp({ task: 'kld', metric: 'kld_p99', value: sorted[Math.floor(0.99 * (K - 1))], stderr: null, n: K, higherIsBetter: false });
        stamp({ task: 'kld', metric: 'kld_max', value: sorted[K - 1], stderr: null, n: K, higherIsBetter: false });
        const t1: number[] = Array.from(u, (x) => (x > loss * 3 ? 1 : 0));
        const tv = t1.reduce((a, b) => a + b, 0) / K;
        stamp({ task: 'kld', metric: 'same_top_p', value: tv, stderr: Math.sqrt((tv * (1 - tv)) / (K - 1)), n: K, higherIsBetter: true, items: { aggregation: 'mean', values: t1 } });
      }
    }
  }
  const records = o.rows !== undefined ? out : out.slice(0, o.records ?? 1000);
  appendRecords(o.out, records);
  writeFileSync(
    join(o.out, 'run.json'),
    JSON.stringify(
      {
        id: runId,
        started: new Date(t0).toISOString(),
        finished: new Date(t0 + records.length * 1000).toISOString(),
        versions: { lowbitBench: '0.1.0', node: 'v20.20.2', onnxruntime: '1.30.0' },
        seeds: { calibration: seed, bootstrap: 0 },
        host: { name: 'synth-host', os: 'linux', note: '<b>not bold</b>' },
        hardware: { cpu: 'synthetic 2-core', gpu: null },
        recipe: { iters: 200, nsamples: 128, seqlen: 512, lr: 0.005 },
      },
      null,
      2,
    ) + '\n',
  );
  return { records: records.length, rows };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, records: { type: 'string' }, rows: { type: 'string' }, seed: { type: 'string' }, items: { type: 'string' } },
  });
  if (!values.out) {
    process.stderr.write('usage: synth-ledger.ts --out DIR [--records N | --rows R] [--seed S] [--items K]\n');
    process.exit(2);
  }
  const r = synthLedger({
    out: values.out,
    records: values.records ? Number(values.records) : undefined,
    rows: values.rows ? Number(values.rows) : undefined,
    seed: values.seed ? Number(values.seed) : undefined,
    items: values.items ? Number(values.items) : undefined,
  });
  process.stderr.write(`wrote ${values.out}: ${r.records} records, ${r.rows} leaderboard rows\n`);
}
