import { test } from 'node:test';
import assert from 'node:assert/strict';
import { regress } from '../../src/regress/compare.ts';
import { gateFor, parseThresholds } from '../../src/regress/thresholds.ts';
import { renderJUnit, renderMarkdown } from '../../src/regress/render.ts';
import type { ResultRecord } from '../../src/results/record.ts';

function rec(over: Partial<ResultRecord>): ResultRecord {
  return {
    schema: 1, jobId: 'j', run: 'r', model: 'm', scheme: 'W4A16', method: 'rtn', recipe: null, suite: 's', task: 't',
    metric: 'acc', value: 0.5, stderr: null, n: 100, higherIsBetter: true, bitsPerWeight: 4.5, engine: 'onnx',
    timings: { quantSeconds: 1, evalSeconds: 1 }, provenance: {}, createdAt: '2026-01-01T00:00:00Z', ...over,
  };
}

const none = parseThresholds({}, 'test');

test('z-test from stderrs: a worked case', () => {
  // delta = -0.08, se = sqrt(0.02^2 + 0.02^2) = 0.028284, z = -2.828, p = 2(1 - Phi(2.828)) = 0.00468
  const r = regress([rec({ value: 0.6, stderr: 0.02 })], [rec({ value: 0.52, stderr: 0.02 })], none);
  const c = r.cells[0];
  assert.equal(c.test, 'z');
  assert.ok(Math.abs(c.p! - 0.004678) < 2e-5, String(c.p));
  assert.equal(c.status, 'regressed');
  assert.equal(r.failed, true);
  // delta = -0.03: z = -1.0607, p = 0.2888 -> noise
  const ok = regress([rec({ value: 0.6, stderr: 0.02 })], [rec({ value: 0.57, stderr: 0.02 })], none);
  assert.ok(Math.abs(ok.cells[0].p! - 0.2888) < 1e-3);
  assert.equal(ok.cells[0].status, 'ok');
  assert.equal(ok.failed, false);
});

test('paired test over items: flipped answers are caught, an identical rerun is not', () => {
  const n = 400;
  const base: number[] = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 0 : 1));
  const worse = base.map((v, i) => (i % 10 === 1 && v === 1 ? 0 : v)); // 40 correct answers lost
  const items = (values: number[]) => ({ aggregation: 'mean' as const, values });
  const mk = (values: number[]) => rec({ value: values.reduce((a, b) => a + b, 0) / n, stderr: 0.02, items: items(values) });
  const r = regress([mk(base)], [mk(worse)], none);
  assert.equal(r.cells[0].test, 'paired-bootstrap');
  // Every replicate difference is <= 0 (only losses), so p = 2 * (0 + 1) / (iters + 1).
  assert.ok(r.cells[0].p! < 0.002);
  assert.equal(r.cells[0].status, 'regressed');
  // A smaller loss: 13 answers (i = 1 mod 20, not 0 mod 3). Paired, it is 13 losses and no
  // gains (sign-test p = 2^-12); unpaired, delta 0.0325 against se 0.028 is noise (p = 0.25).
  const slightly = base.map((v, i) => (i % 20 === 1 && v === 1 ? 0 : v));
  assert.equal(base.reduce((a, b) => a + b, 0) - slightly.reduce((a, b) => a + b, 0), 13);
  const paired = regress([mk(base)], [mk(slightly)], none);
  assert.equal(paired.cells[0].status, 'regressed');
  const unpaired = regress([rec({ value: mk(base).value, stderr: 0.02 })], [rec({ value: mk(slightly).value, stderr: 0.02 })], none);
  assert.equal(unpaired.cells[0].status, 'ok');
  const same = regress([mk(base)], [mk(base)], none);
  assert.equal(same.cells[0].status, 'ok');
  assert.equal(same.cells[0].p, 1);
});

test('direction: perplexity up is bad, perplexity down is an improvement', () => {
  const up = regress([rec({ metric: 'word_perplexity', higherIsBetter: false, value: 10 })], [rec({ metric: 'word_perplexity', higherIsBetter: false, value: 10.5 })], none);
  assert.equal(up.cells[0].test, 'exact');
  assert.equal(up.cells[0].status, 'regressed');
  const down = regress([rec({ metric: 'word_perplexity', higherIsBetter: false, value: 10 })], [rec({ metric: 'word_perplexity', higherIsBetter: false, value: 9.5 })], none);
  assert.equal(down.cells[0].status, 'improved');
  assert.equal(down.failed, false);
});

test('practical minimum: a tiny relative change does not alarm', () => {
  const t = parseThresholds({ metrics: { word_perplexity: { minRelDelta: 0.01 } } }, 'test');
  const r = regress([rec({ metric: 'word_perplexity', higherIsBetter: false, value: 10 })], [rec({ metric: 'word_perplexity', higherIsBetter: false, value: 10.05 })], t);
  assert.equal(r.cells[0].status, 'ok');
});

test('added and missing cells are reported, missing fails unless allowed', () => {
  const r = regress([rec({ task: 'a' })], [rec({ task: 'b' })], none);
  assert.deepEqual(r.cells.map((c) => [c.task, c.status]), [['a', 'missing'], ['b', 'added']]);
  assert.equal(r.failed, true);
  assert.equal(regress([rec({ task: 'a' })], [rec({ task: 'b' })], none, { allowMissing: true }).failed, false);
});

test('floors against each run\'s own BF16 base: new breaches fail, standing ones are noted', () => {
  // A change too small to count by itself (minAbsDelta 0.1) that newly crosses the floor.
  const t = parseThresholds({ defaults: { minRecovery: 0.9 }, metrics: { acc: { minAbsDelta: 0.1 } } }, 'test');
  const baseAcc = rec({ scheme: 'BF16', method: 'base', value: 0.8 });
  const r = regress([baseAcc, rec({ value: 0.75 })], [baseAcc, rec({ value: 0.7 })], t);
  const cell = r.cells.find((c) => c.method === 'rtn')!;
  assert.equal(cell.status, 'regressed');
  assert.deepEqual(cell.reasons, ['recovery 87.5% < floor 90.0%']);
  // The same value in baseline and current: below the floor in both, noted, not failed.
  const standing = regress([baseAcc, rec({ value: 0.7 })], [baseAcc, rec({ value: 0.7 })], t);
  const sc = standing.cells.find((c) => c.method === 'rtn')!;
  assert.equal(sc.status, 'ok');
  assert.deepEqual(sc.reasons, ['recovery 87.5% < floor 90.0% (as in the baseline)']);
  assert.equal(standing.failed, false);
  const ppl = (scheme: string, method: string, value: number) => rec({ scheme, method, value, metric: 'word_perplexity', higherIsBetter: false });
  const t2 = parseThresholds({ defaults: { maxPerplexityRatio: 1.5 }, metrics: { word_perplexity: { minRelDelta: 0.5 } } }, 't');
  const r2 = regress([ppl('BF16', 'base', 10), ppl('W2A16', 'rtn', 14)], [ppl('BF16', 'base', 10), ppl('W2A16', 'rtn', 16)], t2);
  const c2 = r2.cells.find((c) => c.scheme === 'W2A16')!;
  assert.equal(c2.status, 'regressed');
  assert.match(c2.reasons.join(), /1.6x base > ceiling 1.5x/);
});

test('threshold layering: defaults < metric < cell pattern', () => {
  const t = parseThresholds({
    defaults: { alpha: 0.05, minRecovery: 0.9 },
    metrics: { acc: { alpha: 0.01 } },
    cells: { 'm/W2A16/*/*/*': { minRecovery: 0.3 }, 'm/W2A16/rtn/t/acc': { minRecovery: 0.2 } },
  }, 't');
  assert.deepEqual([gateFor(t, 'm/W4A16/rtn/t/acc', 'acc').alpha, gateFor(t, 'm/W4A16/rtn/t/acc', 'acc').minRecovery], [0.01, 0.9]);
  assert.equal(gateFor(t, 'm/W2A16/autoround/t/acc', 'acc').minRecovery, 0.3);
  assert.equal(gateFor(t, 'm/W2A16/rtn/t/acc', 'acc').minRecovery, 0.2);
  assert.throws(() => parseThresholds({ defaults: { alpha: 2 } }, 'ci/thresholds.json'), /ci\/thresholds.json: defaults.alpha/);
  assert.throws(() => parseThresholds({ cells: { 'a/b': {} } }, 'x'), /x: cells\.a\/b/);
});

test('JUnit has one test case per cell, failures for regressed; markdown escapes', () => {
  const r = regress([rec({ value: 0.6 }), rec({ task: 'x<y>|z', value: 0.5 })], [rec({ value: 0.5 }), rec({ task: 'x<y>|z', value: 0.5 })], none);
  const x = renderJUnit(r);
  assert.equal((x.match(/<testcase /g) ?? []).length, 2);
  assert.equal((x.match(/<failure /g) ?? []).length, 1);
  assert.match(x, /name="m\/W4A16\/rtn\/x&lt;y&gt;\|z\/acc"/);
  assert.match(renderMarkdown(r), /x&lt;y&gt;\\\|z/);
});
