/** Paired bootstrap and escaping helpers, against independent expectations. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareMetric, mulberry32, pairedBootstrap, pairedMeanStderr, zFor } from '../../src/results/compare.ts';
import { escapeHtml, jsonForScript, slug } from '../../src/report/escape.ts';

test('paired bootstrap of a constant shift has a zero-width interval at the shift', () => {
  const b = { aggregation: 'mean' as const, values: [0.1, 0.5, 0.9, 0.3, 0.7] };
  const a = { aggregation: 'mean' as const, values: b.values.map((x) => x + 0.25) };
  const r = pairedBootstrap(a, b, { resamples: 500, seed: 7 });
  assert.ok(Math.abs(r.lo - 0.25) < 1e-12 && Math.abs(r.hi - 0.25) < 1e-12);
  assert.ok(r.sd < 1e-12);
});

test('paired bootstrap sd matches the analytic paired standard error', () => {
  const rand = mulberry32(123);
  const n = 400;
  const b = Array.from({ length: n }, () => (rand() < 0.6 ? 1 : 0));
  const a = b.map((x) => (rand() < 0.1 ? 1 - x : x));
  const A = { aggregation: 'mean' as const, values: a };
  const B = { aggregation: 'mean' as const, values: b };
  // Bootstrap sd estimates the plug-in se: sd_pop(d)/sqrt(n) = se_sample * sqrt((n-1)/n).
  const want = pairedMeanStderr(A, B)! * Math.sqrt((n - 1) / n);
  const r = pairedBootstrap(A, B, { resamples: 4000, seed: 1 });
  assert.ok(Math.abs(r.sd - want) / want < 0.06, `bootstrap sd ${r.sd} vs analytic ${want}`);
  // 95% percentile interval ~ delta +- 1.96 se.
  const d = a.reduce((s, x, i) => s + x - b[i], 0) / n;
  assert.ok(Math.abs(r.hi - r.lo - 2 * 1.96 * want) / (2 * 1.96 * want) < 0.12);
  assert.ok(r.lo < d && d < r.hi);
  // Seeded: same seed, same bits; another seed, another interval.
  assert.deepEqual(pairedBootstrap(A, B, { resamples: 4000, seed: 1 }), r);
  assert.notDeepEqual(pairedBootstrap(A, B, { resamples: 4000, seed: 2 }), r);
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

test('escaping: HTML text, JSON inside <script>, slugs', () => {
  const x = '<img src=x onerror=alert(1)>';
  assert.equal(escapeHtml(x), '&lt;img src=x onerror=alert(1)&gt;');
  assert.equal(escapeHtml(`"'&`), '&quot;&#39;&amp;');
  const v = { name: '</script><script>alert(1)</script>', sep: '\u2028', amp: '&' };
  const s = jsonForScript(v);
  assert.ok(!/<\/?script/i.test(s) && !s.includes('<') && !s.includes('\u2028'));
  assert.deepEqual(JSON.parse(s), v);
  const sl = slug('../../etc/passwd');
  assert.match(sl, /^[a-z0-9-]+$/);
  assert.notEqual(slug('a b'), slug('a-b'));
});
