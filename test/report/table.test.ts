/**
 * Leaderboard table and chart builders on a small ledger written here; every expected
 * number is worked out by hand in the comments.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResultRecord } from '../../src/results/record.ts';
import { buildLeaderboard, metricKind, schemeBits } from '../../src/report/table.ts';
import { autoroundDeltas, buildCharts, heatmapCells, paretoFrontier, paretoPoints } from '../../src/report/specs.ts';
import { leaderboardMarkdown } from '../../src/report/markdown.ts';

let clock = 0;
function rec(p: Partial<ResultRecord> & Pick<ResultRecord, 'scheme' | 'method' | 'task' | 'metric' | 'value'>): ResultRecord {
  return {
    schema: 1,
    jobId: 'j',
    run: 'r1',
    model: 'm',
    recipe: null,
    suite: 's',
    stderr: null,
    n: 100,
    higherIsBetter: !/perplexity|kld/.test(p.metric),
    bitsPerWeight: p.scheme === 'BF16' ? 16 : 4.125,
    engine: 'onnx',
    timings: { quantSeconds: p.method === 'base' ? null : 3, evalSeconds: 1 },
    provenance: {},
    createdAt: new Date(Date.UTC(2026, 0, 1) + 1000 * clock++).toISOString(),
    ...p,
  };
}

// Model m: base; W4A16 rtn (complete); W4A16 autoround (lacks lastword); an older,
// superseded rtn cloze record.
const OLD = rec({ scheme: 'W4A16', method: 'rtn', task: 'cloze', metric: 'acc', value: 0.1, stderr: 0.01, createdAt: '2025-01-01T00:00:00.000Z' });
const LEDGER: ResultRecord[] = [
  rec({ scheme: 'BF16', method: 'base', task: 'cloze', metric: 'acc', value: 0.6, stderr: 0.05 }),
  rec({ scheme: 'BF16', method: 'base', task: 'lastword', metric: 'acc', value: 0.4, stderr: 0.04 }),
  rec({ scheme: 'BF16', method: 'base', task: 'lastword', metric: 'acc_norm', value: 0.45, stderr: 0.04 }),
  rec({ scheme: 'BF16', method: 'base', task: 'ppl', metric: 'word_perplexity', value: 10, stderr: 0.5 }),
  rec({ scheme: 'BF16', method: 'base', task: 'ppl', metric: 'token_perplexity', value: 5, stderr: 0.2 }),
  rec({ scheme: 'W4A16', method: 'rtn', task: 'cloze', metric: 'acc', value: 0.54, stderr: 0.05 }),
  OLD,
  rec({ scheme: 'W4A16', method: 'rtn', task: 'lastword', metric: 'acc', value: 0.36, stderr: 0.04 }),
  rec({ scheme: 'W4A16', method: 'rtn', task: 'lastword', metric: 'acc_norm', value: 0.3, stderr: 0.04 }),
  rec({ scheme: 'W4A16', method: 'rtn', task: 'ppl', metric: 'word_perplexity', value: 12.5, stderr: 0.6 }),
  rec({ scheme: 'W4A16', method: 'rtn', task: 'kld', metric: 'kld', value: 0.05, stderr: 0.002 }),
  rec({ scheme: 'W4A16', method: 'rtn', task: 'kld', metric: 'same_top_p', value: 0.9, stderr: 0.01 }),
  rec({ scheme: 'W4A16', method: 'autoround', task: 'cloze', metric: 'acc', value: 0.57, stderr: 0.05 }),
  rec({ scheme: 'W4A16', method: 'autoround', task: 'ppl', metric: 'word_perplexity', value: 11, stderr: 0.55 }),
];

test('one row per model x scheme x method x recipe, newest record wins', () => {
  const lb = buildLeaderboard(LEDGER);
  assert.equal(lb.rows.length, 3);
  assert.equal(lb.superseded, 1);
  assert.deepEqual(
    lb.rows.map((r) => [r.scheme, r.method, r.baseline]),
    [
      ['BF16', 'base', true],
      ['W4A16', 'autoround', false],
      ['W4A16', 'rtn', false],
    ],
  );
  const rtn = lb.rows[2];
  assert.equal(rtn.cells['cloze/acc'].value, 0.54); // not the older 0.1
  assert.equal(rtn.bits, 4);
  assert.equal(rtn.bitsPerWeight, 4.125);
  assert.equal(rtn.quantSeconds, 3);
  assert.equal(lb.rows[0].quantSeconds, null);
});

test('average: one accuracy metric per task (acc before acc_norm), fixed task set per model', () => {
  const lb = buildLeaderboard(LEDGER);
  assert.deepEqual(lb.models.m.averageKeys, ['cloze/acc', 'lastword/acc']);
  const [base, ar, rtn] = lb.rows;
  // base: (0.6 + 0.4) / 2 = 0.5; se = sqrt(0.05^2 + 0.04^2) / 2 = sqrt(0.0041) / 2
  assert.ok(Math.abs(base.average! - 0.5) < 1e-12);
  assert.ok(Math.abs(base.averageStderr! - Math.sqrt(0.0041) / 2) < 1e-12);
  // rtn: (0.54 + 0.36) / 2 = 0.45
  assert.ok(Math.abs(rtn.average! - 0.45) < 1e-12);
  // autoround lacks lastword: no average rather than a non-comparable one.
  assert.equal(ar.average, null);
  assert.deepEqual(ar.averageMissing, ['lastword/acc']);
  // Perplexity is never averaged; the chart's perplexity metric prefers word over token.
  assert.equal(lb.models.m.pplKey, 'ppl/word_perplexity');
});

test('recovery: q/b for higher-is-better, b/q for perplexity; ratio of averages', () => {
  const lb = buildLeaderboard(LEDGER);
  const [base, ar, rtn] = lb.rows;
  assert.ok(Math.abs(rtn.recovery! - 0.45 / 0.5) < 1e-12); // 0.9
  assert.ok(Math.abs(rtn.cells['cloze/acc'].recovery! - 0.9) < 1e-12);
  // 10 / 12.5 = 0.8 (perplexity went up by 25% -> 80% recovery)
  assert.ok(Math.abs(rtn.cells['ppl/word_perplexity'].recovery! - 0.8) < 1e-12);
  assert.ok(Math.abs(ar.cells['ppl/word_perplexity'].recovery! - 10 / 11) < 1e-12);
  // Unpaired (no items): delta method r * hypot(se_q/q, se_b/b).
  const want = 0.9 * Math.hypot(0.05 / 0.54, 0.05 / 0.6);
  assert.ok(Math.abs(rtn.cells['cloze/acc'].recoveryStderr! - want) < 1e-12);
  assert.equal(rtn.cells['cloze/acc'].paired, false);
  // Average recovery se: sqrt(se_d1^2 + se_d2^2)/k/avg_b with se_d = hypot(se_q, se_b).
  const sd1 = Math.hypot(0.05, 0.05);
  const sd2 = Math.hypot(0.04, 0.04);
  assert.ok(Math.abs(rtn.recoveryStderr! - Math.hypot(sd1, sd2) / 2 / 0.5) < 1e-12);
  // KLD has no recovery; KLD and top-1 columns come from the kld task.
  assert.equal(rtn.cells['kld/kld'].recovery, null);
  assert.equal(rtn.kld, 0.05);
  assert.equal(rtn.top1, 0.9);
  assert.equal(base.kld, null);
});

test('recovery se from paired items: sd(d)/sqrt(n)/b', () => {
  const items = (values: number[]) => ({ aggregation: 'mean' as const, values });
  const lb = buildLeaderboard([
    rec({ model: 'p', scheme: 'BF16', method: 'base', task: 't', metric: 'acc', value: 0.75, stderr: 0.25, items: items([1, 1, 0, 1]) }),
    rec({ model: 'p', scheme: 'W4A16', method: 'rtn', task: 't', metric: 'acc', value: 0.5, stderr: 0.29, items: items([1, 0, 0, 1]) }),
  ]);
  // d = q - b = [0, -1, 0, 0]: mean -0.25, sd = sqrt((3 * 0.0625 + 0.5625) / 3) = 0.5, se = 0.25
  const c = lb.rows[1].cells['t/acc'];
  assert.equal(c.paired, true);
  assert.ok(Math.abs(c.recovery! - 0.5 / 0.75) < 1e-12);
  assert.ok(Math.abs(c.recoveryStderr! - 0.25 / 0.75) < 1e-12);
});

test('metric kinds and scheme bit widths', () => {
  assert.equal(metricKind('arc_challenge', 'acc_norm,none', true), 'accuracy');
  assert.equal(metricKind('wikitext', 'word_perplexity', false), 'perplexity');
  assert.equal(metricKind('tinystories-ppl', 'bits_per_byte', false), 'perplexity');
  assert.equal(metricKind('kld', 'same_top_p', true), 'kld');
  assert.deepEqual(
    ['W2A16', 'W3A16', 'W4A16', 'W8A16', 'MXFP4A16', 'NVFP4A16', 'NVFP4', 'W8A8-FP8', 'W8A8-FP8-STATIC', 'BF16'].map((s) => schemeBits(s)),
    [2, 3, 4, 8, 4, 4, 4, 8, 8, 16],
  );
});

test('Pareto frontier: not dominated in (fewer bits, better value)', () => {
  const pts = [
    [2, 0.3],
    [3, 0.5],
    [4, 0.45], // dominated by (4, 0.6)
    [4, 0.6],
    [8, 0.6], // dominated by (4, 0.6): more bits, no better
    [16, 0.61],
  ];
  const f = paretoFrontier(pts, (p) => p[0], (p) => p[1], true);
  assert.deepEqual(f, [
    [2, 0.3],
    [3, 0.5],
    [4, 0.6],
    [16, 0.61],
  ]);
  // Lower is better (perplexity): (4, 9) dominates (8, 9.5); (2, 20) is the cheapest.
  const g = paretoFrontier([[8, 9.5], [4, 9], [2, 20], [16, 8.9]], (p) => p[0], (p) => p[1], false);
  assert.deepEqual(g, [[2, 20], [4, 9], [16, 8.9]]);
});

test('chart data: pareto points, heatmap cells, AutoRound - RTN deltas', () => {
  const lb = buildLeaderboard(LEDGER);
  const acc = paretoPoints(lb, 'average');
  // Only base (16, 0.5) and rtn (4.125, 0.45) have averages; both on the frontier.
  assert.deepEqual(
    acc.map((p) => [p.bpw, p.value, p.frontier]),
    [
      [16, 0.5, true],
      [4.125, 0.45, true],
    ],
  );
  const ppl = paretoPoints(lb, 'ppl');
  // autoround (4.125, 11) dominates rtn (4.125, 12.5).
  assert.deepEqual(
    ppl.map((p) => [p.method, p.frontier]),
    [
      ['base', true],
      ['autoround', true],
      ['rtn', false],
    ],
  );
  const heat = heatmapCells(lb).filter((c) => c.variant === 'rtn');
  assert.deepEqual(
    heat.map((c) => [c.task, Math.round(c.recovery * 1e9) / 1e9]),
    [
      ['average', 0.9],
      ['cloze/acc', 0.9],
      ['lastword/acc', 0.9],
      ['ppl/word_perplexity', 0.8],
    ],
  );
  const d = autoroundDeltas(lb);
  // Only cloze/acc and ppl/word_perplexity exist in both rows; no items -> stderr interval.
  assert.deepEqual(
    d.map((x) => x.task),
    ['cloze/acc', 'ppl/word_perplexity'],
  );
  const c = d[0];
  assert.ok(Math.abs(c.delta - 0.03) < 1e-12);
  const half = 1.959963984540054 * Math.hypot(0.05, 0.05);
  assert.ok(Math.abs(c.lo! - (0.03 - half)) < 1e-12 && Math.abs(c.hi! - (0.03 + half)) < 1e-12);
  assert.equal(c.ci, 'stderr');
  const charts = buildCharts(lb, d);
  assert.deepEqual(
    charts.map((x) => x.id),
    ['pareto-accuracy', 'pareto-perplexity', 'recovery-heatmap', 'autoround-vs-rtn'],
  );
  // The frontier layer filters on the flag the builder set.
  const layer = (charts[0].spec.layer as { transform?: { filter: string }[] }[])[0];
  assert.equal(layer.transform![0].filter, 'datum.frontier');
});

test('markdown escapes model names and pipes', () => {
  const lb = buildLeaderboard([rec({ model: '<img src=x onerror=alert(1)>|x', scheme: 'BF16', method: 'base', task: 't', metric: 'acc', value: 0.5 })]);
  const md = leaderboardMarkdown(lb);
  assert.ok(!md.includes('<img'));
  assert.ok(md.includes('&lt;img src=x onerror=alert\\(1\\)&gt;\\|x'));
  // Header, separator, one row: every table line has the same number of unescaped pipes.
  const tableLines = md.split('\n').filter((l) => l.startsWith('|'));
  const pipes = (l: string) => l.replace(/\\\|/g, '').split('|').length;
  assert.equal(tableLines.length, 3);
  assert.ok(tableLines.every((l) => pipes(l) === pipes(tableLines[0])));
});

test('the baseline row recovers exactly 100% with no error bar', () => {
  const base = buildLeaderboard(LEDGER).rows[0];
  assert.equal(base.recovery, 1);
  assert.equal(base.recoveryStderr, null);
  assert.equal(base.cells['ppl/word_perplexity'].recovery, 1);
});
