/** compareMetric and the paired bootstrap as the report uses them (moved from test/report/compare.test.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareMetric, pairable, pairedBootstrap, pairedMeanStderr, quantileSorted, SplitMix64, uniformSource, zFor } from '../../src/stats/index.ts';

/** The report's old call shape: a - b with lo/hi/sd, now one pairedBootstrap (b - a) underneath. */
function pairedAminusB(a: { aggregation: 'mean' | 'perplexity'; values: number[]; weights?: number[] }, b: typeof a, o: { resamples: number; seed: number }) {
  const d = compareMetric({ value: 0, stderr: null, items: a }, { value: 0, stderr: null, items: b }, o);
  return { lo: d.lo, hi: d.hi, sd: d.stderr! };
}

test('paired bootstrap of a constant shift has a zero-width interval at the shift', () => {
  const b = { aggregation: 'mean' as const, values: [0.1, 0.5, 0.9, 0.3, 0.7] };
  const a = { aggregation: 'mean' as const, values: b.values.map((x) => x + 0.25) };
  const r = pairedAminusB(a, b, { resamples: 500, seed: 7 });
  assert.ok(Math.abs(r.lo - 0.25) < 1e-12 && Math.abs(r.hi - 0.25) < 1e-12);
  assert.ok(r.sd < 1e-12);
});

test('paired bootstrap sd matches the analytic paired standard error', () => {
  const rand = uniformSource(123);
  const n = 400;
  const b = Array.from({ length: n }, () => (rand() < 0.6 ? 1 : 0));
  const a = b.map((x) => (rand() < 0.1 ? 1 - x : x));
  const A = { aggregation: 'mean' as const, values: a };
  const B = { aggregation: 'mean' as const, values: b };
  // Bootstrap sd estimates the plug-in se: sd_pop(d)/sqrt(n) = se_sample * sqrt((n-1)/n).
  const want = pairedMeanStderr(A, B)! * Math.sqrt((n - 1) / n);
  const r = pairedAminusB(A, B, { resamples: 4000, seed: 1 });
  assert.ok(Math.abs(r.sd - want) / want < 0.06, `bootstrap sd ${r.sd} vs analytic ${want}`);
  // 95% percentile interval ~ delta +- 1.96 se.
  const d = a.reduce((s, x, i) => s + x - b[i], 0) / n;
  assert.ok(Math.abs(r.hi - r.lo - 2 * 1.96 * want) / (2 * 1.96 * want) < 0.12);
  assert.ok(r.lo < d && d < r.hi);
  // Seeded: same seed, same bits; another seed, another interval.
  assert.deepEqual(pairedAminusB(A, B, { resamples: 4000, seed: 1 }), r);
  assert.notDeepEqual(pairedAminusB(A, B, { resamples: 4000, seed: 2 }), r);
});

test('paired bootstrap of perplexity resamples documents with their weights', () => {
  // Identical log-likelihoods, weights scaled: ppl_a = exp(-sum ll / sum 2w) = sqrt(ppl_b) on every resample.
  const ll = [-10, -30, -20, -5];
  const w = [5, 10, 8, 2];
  const A = { aggregation: 'perplexity' as const, values: ll, weights: w.map((x) => 2 * x) };
  const B = { aggregation: 'perplexity' as const, values: ll, weights: w };
  const r = compareMetric({ value: Math.exp(65 / 50), stderr: null, items: A }, { value: Math.exp(65 / 25), stderr: null, items: B }, { seed: 3, resamples: 300 });
  assert.equal(r.method, 'paired-bootstrap');
  assert.ok(r.hi < 0 && r.lo < r.hi);
});

test('fallback interval from stderrs; z for 95% and 90%', () => {
  const r = compareMetric({ value: 0.6, stderr: 0.03 }, { value: 0.5, stderr: 0.04 });
  assert.equal(r.method, 'stderr');
  assert.ok(Math.abs(r.stderr! - 0.05) < 1e-12);
  assert.ok(Math.abs(r.lo - (0.1 - 1.959963984540054 * 0.05)) < 1e-12);
  assert.ok(Math.abs(zFor(0.9) - 1.6448536269514722) < 1e-9);
  assert.equal(compareMetric({ value: 1, stderr: null }, { value: 0, stderr: 0.1 }).method, 'none');
});


test('compareMetric is a - b: its interval is the mirror of pairedBootstrap(a, b), computed by hand', () => {
  const g = new SplitMix64(4);
  const b: number[] = Array.from({ length: 60 }, () => (g.nextFloat() < 0.5 ? 1 : 0));
  const a: number[] = b.map((x) => (g.nextFloat() < 0.2 ? 1 : x)); // a is better
  const A = { aggregation: 'mean' as const, values: a };
  const B = { aggregation: 'mean' as const, values: b };
  const va = a.reduce((s, x) => s + x, 0) / 60;
  const vb = b.reduce((s, x) => s + x, 0) / 60;
  const d = compareMetric({ value: va, stderr: null, items: A }, { value: vb, stderr: null, items: B }, { resamples: 300, seed: 9, level: 0.9 });
  // Direct: replicates of mean_a - mean_b on shared draws, percentile interval at 5% / 95%.
  const rng = new SplitMix64(9);
  const reps: number[] = [];
  for (let r = 0; r < 300; r++) {
    let sa = 0;
    let sb = 0;
    for (let i = 0; i < 60; i++) {
      const j = rng.nextInt(60);
      sa += a[j];
      sb += b[j];
    }
    reps.push(sa / 60 - sb / 60);
  }
  reps.sort((x, y) => x - y);
  assert.equal(d.method, 'paired-bootstrap');
  assert.ok(Math.abs(d.delta - (va - vb)) < 1e-15 && d.delta > 0);
  assert.ok(Math.abs(d.lo - quantileSorted(reps, 0.05)) < 1e-12, `${d.lo} vs ${quantileSorted(reps, 0.05)}`);
  assert.ok(Math.abs(d.hi - quantileSorted(reps, 0.95)) < 1e-12);
  // Same p as the b - a bootstrap: the two-sided rule is symmetric.
  assert.equal(d.p, pairedBootstrap(B, A, { iters: 300, seed: 9, alpha: 0.1 }).p);
});

test('pairable and pairedMeanStderr: same length, aggregation and weighting; se of paired differences', () => {
  const m = (values: number[], weights?: number[]) => ({ aggregation: 'mean' as const, values, weights });
  assert.equal(pairable(m([1, 0]), m([1, 1])), true);
  assert.equal(pairable(m([1, 0]), m([1])), false);
  assert.equal(pairable(m([1]), m([1])), false);
  assert.equal(pairable(m([1, 0], [1, 1]), m([1, 1])), false);
  assert.equal(pairable(m([1, 0]), { aggregation: 'perplexity', values: [1, 1] }), false);
  assert.equal(pairable(undefined, m([1, 0])), false);
  // d = [0, 1, 0, 1]: mean 0.5, sample var 1/3, se = sqrt(1/3 / 4).
  assert.ok(Math.abs(pairedMeanStderr(m([1, 1, 0, 1]), m([1, 0, 0, 0]))! - Math.sqrt(1 / 12)) < 1e-15);
  assert.equal(pairedMeanStderr(m([1, 1], [1, 1]), m([1, 0], [1, 1])), null);
});
