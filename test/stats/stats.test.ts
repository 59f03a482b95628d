/** Summaries, lm-eval stderrs, bootstraps and the paired bootstrap (moved from test/eval/stats.test.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { aggregate, type MetricItems } from '../../src/results/record.ts';
import {
  bootstrapStderr,
  lmEvalStderr,
  meanStderr,
  meanWithUncertainty,
  pairedBootstrap,
  pooledGroup,
  quantileSorted,
  SplitMix64,
} from '../../src/stats/index.ts';

const close = (a: number, b: number, tol: number, msg?: string) => assert.ok(Math.abs(a - b) <= tol, `${msg ?? ''} ${a} vs ${b} (tol ${tol})`);

test('stderr of a mean: lm-eval worked example [1,0,1,1] -> 0.25; n = 1 -> N/A', () => {
  close(meanStderr([1, 0, 1, 1])!, 0.25, 1e-15);
  // For 0/1 values: sqrt(p(1-p)/(n-1)).
  const v = [1, 1, 0, 1, 0, 0, 1, 1, 1, 0];
  close(meanStderr(v)!, Math.sqrt((0.6 * 0.4) / 9), 1e-15);
  assert.equal(meanStderr([1]), null);
  assert.equal(lmEvalStderr('mean', [1]), null);
  assert.equal(lmEvalStderr('weighted_perplexity', [1, 2, 3]), null);
  assert.equal(lmEvalStderr('bits_per_byte', [1, 2, 3]), null);
});

test('size-weighted group (mmlu): 0.5 (n=100) and 0.7 (n=300) -> 0.65 with pooled stderr', () => {
  const se = (p: number, n: number) => Math.sqrt((p * (1 - p)) / (n - 1));
  const g = pooledGroup([
    { value: 0.5, stderr: se(0.5, 100), n: 100 },
    { value: 0.7, stderr: se(0.7, 300), n: 300 },
  ]);
  close(g.value, 0.65, 1e-15);
  // By hand: (99 * 0.25/99 * 100 + 299 * 0.21/299 * 300) = 25 + 63 = 88; 88 / 398 / 400.
  close(g.stderr, Math.sqrt(88 / 398 / 400), 1e-12);
  close(g.stderr, 0.0235106, 1e-6);
});

test('bootstrap stderr of a mean approaches the analytic stderr; deterministic per seed', () => {
  const rng = new SplitMix64(99);
  const values = Array.from({ length: 400 }, () => (rng.nextFloat() < 0.3 ? 1 : 0));
  const items: MetricItems = { aggregation: 'mean', values };
  const boot = bootstrapStderr(items, { iters: 2000, seed: 5 })!;
  const analytic = meanStderr(values)!;
  assert.ok(Math.abs(boot / analytic - 1) < 0.08, `bootstrap ${boot} vs analytic ${analytic}`);
  assert.equal(bootstrapStderr(items, { iters: 2000, seed: 5 }), boot);
  assert.notEqual(bootstrapStderr(items, { iters: 2000, seed: 6 }), boot);
  assert.equal(bootstrapStderr({ aggregation: 'mean', values: [1] }), null);
  assert.equal(bootstrapStderr(items, { iters: 0 }), null);
});

test('bootstrap of a ratio metric equals a direct resampling computation', () => {
  const items: MetricItems = { aggregation: 'perplexity', values: [-20, -40, -13, -7, -31], weights: [5, 15, 4, 2, 9] };
  const B = 300;
  const rng = new SplitMix64(42);
  const reps: number[] = [];
  for (let b = 0; b < B; b++) {
    let sv = 0;
    let sw = 0;
    for (let i = 0; i < 5; i++) {
      const j = rng.nextInt(5);
      sv += items.values[j];
      sw += items.weights![j];
    }
    reps.push(Math.exp(-sv / sw));
  }
  const m = reps.reduce((a, b) => a + b, 0) / B;
  const sd = Math.sqrt(reps.reduce((a, r) => a + (r - m) ** 2, 0) / (B - 1));
  close(bootstrapStderr(items, { iters: B, seed: 42 })!, sd, 1e-12);
});

test('paired bootstrap equals a direct computation with the same draws', () => {
  const a = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0];
  const b = [1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1];
  const B = 500;
  const res = pairedBootstrap({ aggregation: 'mean', values: a }, { aggregation: 'mean', values: b }, { iters: B, seed: 3, alpha: 0.1 });
  // Direct: same generator, one index set per replicate for both runs.
  const rng = new SplitMix64(3);
  const d: number[] = [];
  for (let r = 0; r < B; r++) {
    let sa = 0;
    let sb = 0;
    for (let i = 0; i < a.length; i++) {
      const j = rng.nextInt(a.length);
      sa += a[j];
      sb += b[j];
    }
    d.push((sb - sa) / a.length);
  }
  const s = [...d].sort((x, y) => x - y);
  const q = (f: number) => {
    const pos = f * (B - 1);
    const lo = Math.floor(pos);
    return s[lo] + (pos - lo) * (s[Math.min(lo + 1, B - 1)] - s[lo]);
  };
  const le = d.filter((x) => x <= 0).length;
  const ge = d.filter((x) => x >= 0).length;
  close(res.diff, 3 / 12, 1e-15);
  close(res.ci[0], q(0.05), 1e-12);
  close(res.ci[1], q(0.95), 1e-12);
  close(res.p, Math.min(1, (2 * (Math.min(le, ge) + 1)) / (B + 1)), 1e-15);
  const m = d.reduce((x, y) => x + y, 0) / B;
  close(res.stderr, Math.sqrt(d.reduce((x, y) => x + (y - m) ** 2, 0) / (B - 1)), 1e-12);
  // b >= a item by item, so no replicate can be negative; p is then driven by the ties at 0.
  assert.ok(res.ci[0] >= 0);
});

test('paired bootstrap: identical runs give p = 1; a constant shift is significant with zero spread', () => {
  const a = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2];
  const same = pairedBootstrap({ aggregation: 'mean', values: a }, { aggregation: 'mean', values: [...a] }, { iters: 200 });
  assert.equal(same.diff, 0);
  assert.equal(same.p, 1);
  const shifted = pairedBootstrap({ aggregation: 'mean', values: a }, { aggregation: 'mean', values: a.map((x) => x + 0.25) }, { iters: 200 });
  close(shifted.diff, 0.25, 1e-12);
  close(shifted.stderr, 0, 1e-12);
  close(shifted.p, 2 / 201, 1e-15);
  assert.throws(() => pairedBootstrap({ aggregation: 'mean', values: [1, 2] }, { aggregation: 'mean', values: [1] }));
});

test('quantiles as llama.cpp: linear interpolation at f x (n - 1), median = middle', () => {
  const s = [1, 2, 3, 4];
  assert.equal(quantileSorted(s, 0.5), 2.5); // mean of the two middle values
  close(quantileSorted(s, 0.9), 3.7, 1e-12); // pos 2.7 -> 3 + 0.7
  assert.equal(quantileSorted(s, 0), 1);
  assert.equal(quantileSorted(s, 1), 4);
  assert.equal(quantileSorted([10, 20, 30, 40, 50], 0.25), 20); // pos 1
  assert.equal(quantileSorted([10, 20, 30, 40, 50], 0.5), 30);
  close(quantileSorted([10, 20, 30, 40, 50], 0.99), 49.6, 1e-12); // pos 3.96
});

test('llama.cpp mean uncertainty on the toy KLD values', () => {
  const u = meanWithUncertainty([0.026812, 0.393574]);
  close(u.mean, 0.210193, 1e-9);
  // sqrt((mean sq - mean^2) / (n - 1)) = |a - b| / 2 for two values.
  close(u.stderr!, (0.393574 - 0.026812) / 2, 1e-12);
});

/** Replicates computed the slow, obvious way: aggregate() on one shared index set per replicate. */
function directPaired(a: MetricItems, b: MetricItems, B: number, seed: number): number[] {
  const rng = new SplitMix64(seed);
  const n = a.values.length;
  const out: number[] = [];
  for (let r = 0; r < B; r++) {
    const idx = Array.from({ length: n }, () => rng.nextInt(n));
    out.push(aggregate(b, idx) - aggregate(a, idx));
  }
  return out;
}

test('paired bootstrap of weighted ratio metrics equals aggregate() on the same draws, bit for bit', () => {
  const a: MetricItems = { aggregation: 'perplexity', values: [-20, -40, -13, -7, -31, -22], weights: [5, 15, 4, 2, 9, 7] };
  const b: MetricItems = { aggregation: 'perplexity', values: [-21, -39, -15, -7, -35, -22], weights: [5, 15, 4, 2, 9, 7] };
  const B = 400;
  const d = directPaired(a, b, B, 11).sort((x, y) => x - y);
  const res = pairedBootstrap(a, b, { iters: B, seed: 11, alpha: 0.2 });
  assert.equal(res.ci[0], quantileSorted(d, 0.1));
  assert.equal(res.ci[1], quantileSorted(d, 0.9));
  close(res.diff, Math.exp(139 / 42) - Math.exp(133 / 42), 1e-12); // sums -139 and -133 over 42 tokens
  // bits_per_unit with weights on one side only (a missing weight counts 1, as in aggregate()).
  const c: MetricItems = { aggregation: 'bits_per_unit', values: [-20, -40, -13, -7], weights: [10, 30, 9, 5] };
  const e: MetricItems = { aggregation: 'bits_per_unit', values: [-2, -4, -1.3, -0.7] };
  const d2 = directPaired(c, e, 100, 2).sort((x, y) => x - y);
  const r2 = pairedBootstrap(c, e, { iters: 100, seed: 2 });
  assert.equal(r2.ci[0], quantileSorted(d2, 0.025));
  assert.equal(r2.ci[1], quantileSorted(d2, 0.975));
});

test('paired bootstrap of a weighted mean ignores the weights, as aggregate() does', () => {
  // aggregate() defines 'mean' as the plain mean: weights must not turn it into a weighted one.
  const a: MetricItems = { aggregation: 'mean', values: [1, 0, 0, 1, 1], weights: [100, 1, 1, 1, 1] };
  const b: MetricItems = { aggregation: 'mean', values: [1, 1, 0, 1, 1], weights: [100, 1, 1, 1, 1] };
  const d = directPaired(a, b, 300, 5).sort((x, y) => x - y);
  const res = pairedBootstrap(a, b, { iters: 300, seed: 5 });
  close(res.diff, 0.2, 1e-15);
  assert.equal(res.ci[0], quantileSorted(d, 0.025));
  assert.equal(res.ci[1], quantileSorted(d, 0.975));
});

test('paired bootstrap rejects unpaired input', () => {
  const m = (values: number[]): MetricItems => ({ aggregation: 'mean', values });
  assert.throws(() => pairedBootstrap(m([1, 2]), { aggregation: 'perplexity', values: [1, 2] }), /different aggregations/);
  assert.throws(() => pairedBootstrap(m([1]), m([1])), /at least 2/);
  assert.throws(() => pairedBootstrap({ aggregation: 'perplexity', values: [1, 2], weights: [1] }, { aggregation: 'perplexity', values: [1, 2] }), /weights/);
  assert.throws(() => pairedBootstrap(m([1, 2]), m([1, 2]), { iters: 1 }), RangeError);
});
