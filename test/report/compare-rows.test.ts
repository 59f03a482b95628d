import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareRecords } from '../../src/report/compare.ts';
import type { ResultRecord } from '../../src/results/record.ts';

function rec(over: Partial<ResultRecord>): ResultRecord {
  return {
    schema: 1, jobId: 'j', run: 'r', model: 'm', scheme: 'W4A16', method: 'rtn', recipe: null, suite: 's', task: 't', metric: 'acc',
    value: 0, stderr: null, n: 0, higherIsBetter: true, bitsPerWeight: 4.5, engine: 'onnx', timings: { quantSeconds: null, evalSeconds: 0 },
    provenance: {}, createdAt: '', ...over,
  };
}
const acc = (values: number[]) => ({ value: values.reduce((a, b) => a + b, 0) / values.length, n: values.length, items: { aggregation: 'mean' as const, values } });

test('delta vs BF16, recovery and AutoRound vs RTN on the same items', () => {
  const n = 200;
  const base = Array.from({ length: n }, (_, i) => (i % 4 === 0 ? 0 : 1)); // 0.75
  const rtn = base.map((v, i) => (i % 8 === 1 ? 0 : v)); // loses 25 -> 0.625
  const ar = base.map((v, i) => (i % 40 === 1 ? 0 : v)); // loses 5 -> 0.725
  const rows = compareRecords([
    rec({ scheme: 'BF16', method: 'base', ...acc(base) }),
    rec({ method: 'rtn', ...acc(rtn) }),
    rec({ method: 'autoround', recipe: 'default', ...acc(ar) }),
  ]);
  assert.deepEqual(rows.map((r) => r.method), ['base', 'rtn', 'autoround:default']);
  const [b, r, a] = rows;
  assert.equal(b.recovery, 1);
  assert.equal(b.vsBase, null);
  assert.ok(Math.abs(r.vsBase!.delta - (0.625 - 0.75)) < 1e-12);
  assert.ok(Math.abs(r.recovery! - 0.625 / 0.75) < 1e-12);
  assert.equal(r.vsBase!.method, 'paired-bootstrap');
  // Every resampled RTN delta is <= 0: the interval lies below 0.
  assert.ok(r.vsBase!.hi <= 0 && r.vsBase!.lo < r.vsBase!.delta);
  // AutoRound wins 20 items and loses none against RTN: significant, verdict better.
  assert.ok(Math.abs(a.vsRtn!.delta - 0.1) < 1e-12);
  assert.ok(a.vsRtn!.lo > 0);
  assert.equal(a.verdict, 'better');
});

test('lower-is-better and stderr-only comparisons', () => {
  const rows = compareRecords([
    rec({ scheme: 'BF16', method: 'base', metric: 'word_perplexity', higherIsBetter: false, value: 10, stderr: 0.5 }),
    rec({ method: 'rtn', metric: 'word_perplexity', higherIsBetter: false, value: 12.5, stderr: 0.5 }),
    rec({ method: 'autoround', recipe: 'light', metric: 'word_perplexity', higherIsBetter: false, value: 12, stderr: 0.5 }),
  ]);
  const [, r, a] = rows;
  assert.equal(r.recovery, 10 / 12.5);
  // z interval: -0.5 ± 1.959964 * sqrt(0.5) = [-1.8859, 0.8859]: a tie.
  assert.equal(a.vsRtn!.method, 'stderr');
  assert.ok(Math.abs(a.vsRtn!.lo - (-0.5 - 1.959963984540054 * Math.SQRT1_2)) < 1e-9);
  assert.equal(a.verdict, 'tie');
});
