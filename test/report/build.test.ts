/** buildReport end to end on a synthetic run, and the CLI around it. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { buildReport } from '../../src/report/index.ts';
import { UserError } from '../../src/errors.ts';
import { synthLedger, XSS_MODEL } from '../../scripts/synth-ledger.ts';

const tmp = mkdtempSync(join(tmpdir(), 'report-build-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const run = join(tmp, 'run');
synthLedger({ out: run, rows: 45, seed: 5, items: 20 });

/** Distinct (model, scheme, method, recipe) straight from the ledger lines. */
function expectedRows(dir: string): Set<string> {
  const lines = readFileSync(join(dir, 'ledger.jsonl'), 'utf8').trim().split('\n');
  return new Set(lines.map((l) => JSON.parse(l)).map((r) => JSON.stringify([r.model, r.scheme, r.method, r.recipe])));
}

test('writes the site, markdown, JSON and SVG charts', async () => {
  const out = join(tmp, 'site');
  const s = await buildReport([run], out);
  const want = expectedRows(run);
  assert.equal(s.rows, want.size);
  for (const f of ['index.html', 'provenance.html', 'leaderboard.md', 'leaderboard.json', 'app.js', 'charts.js', 'lib/vega.min.js', 'lib/vega-lite.min.js', 'lib/vega-embed.min.js']) {
    assert.ok(existsSync(join(out, f)), f);
  }
  const json = JSON.parse(readFileSync(join(out, 'leaderboard.json'), 'utf8'));
  assert.equal(json.rows.length, want.size);
  assert.deepEqual(new Set(json.rows.map((r: { model: string; scheme: string; method: string; recipe: string | null }) => JSON.stringify([r.model, r.scheme, r.method, r.recipe]))), want);
  assert.deepEqual(s.charts, ['pareto-accuracy', 'pareto-perplexity', 'recovery-heatmap', 'autoround-vs-rtn']);
  // AutoRound vs RTN intervals came from paired items (the synthetic rows carry them).
  assert.ok(json.deltas.length > 0 && json.deltas.every((d: { ci: string }) => d.ci === 'paired-bootstrap'));
  for (const id of s.charts) {
    const svg = readFileSync(join(out, 'charts', `${id}.svg`), 'utf8');
    assert.match(svg, /^<svg/);
    assert.match(svg, /class="mark-(symbol|rect|line|rule)/, `${id}.svg has marks`);
    assert.ok(!svg.includes('<img'), `${id}.svg escapes the model name`);
  }
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.ok(!html.includes(XSS_MODEL) && !html.includes('<script>window.__xss'));
  assert.ok(!/https?:\/\/(?!vega\.github\.io\/schema)/.test(html), 'no external URLs besides the schema id');
  // Rebuilding replaces the previous report; a folder we did not write is refused.
  await buildReport([run], out, { noSvg: true });
  assert.ok(!existsSync(join(out, 'charts', 'pareto-accuracy.svg')));
  const foreign = join(tmp, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'keep.txt'), 'x');
  await assert.rejects(buildReport([run], foreign), UserError);
  assert.ok(existsSync(join(foreign, 'keep.txt')));
});

test('seeded: two builds give identical leaderboard.json', async () => {
  await buildReport([run], join(tmp, 'a'), { noSvg: true, seed: 9 });
  await buildReport([run], join(tmp, 'b'), { noSvg: true, seed: 9 });
  assert.equal(readFileSync(join(tmp, 'a', 'leaderboard.json'), 'utf8'), readFileSync(join(tmp, 'b', 'leaderboard.json'), 'utf8'));
});

test('bad records are skipped and reported, not fatal; bad run.json is untrusted data', async () => {
  const dir = join(tmp, 'bad');
  mkdirSync(dir);
  writeFileSync(join(dir, 'run.json'), '[1,2');
  writeFileSync(
    join(dir, 'ledger.jsonl'),
    [
      JSON.stringify({ model: 'm', scheme: 'BF16', method: 'base', task: 't', metric: 'acc', value: 0.5 }),
      JSON.stringify({ model: 'm', scheme: 'W4A16', method: 'rtn', task: 't', metric: 'acc', value: 'NaN' }),
      JSON.stringify({ model: 7 }),
    ].join('\n') + '\n',
  );
  const s = await buildReport([dir], join(tmp, 'bad-site'), { noSvg: true });
  assert.equal(s.rows, 1);
  assert.equal(s.skipped, 3); // two records + run.json
});

const exec = promisify(execFile);

test('CLI: --json on stdout alone; missing runs dir is a one-line error, exit 2', async () => {
  const out = join(tmp, 'cli-site');
  const r = await exec('./bin/bench.js', ['report', '--runs', run, '--out', out, '--no-svg', '--json']);
  const j = JSON.parse(r.stdout);
  assert.equal(j.rows, expectedRows(run).size);
  assert.match(r.stderr, /leaderboard rows/);
  await assert.rejects(exec('./bin/bench.js', ['report', '--runs', join(tmp, 'nope'), '--out', out]), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 2);
    assert.equal(e.stderr.trim().split('\n').length, 1);
    assert.match(e.stderr, /does not exist/);
    return true;
  });
});

test('several runs: a folder of run dirs is expanded, the newest record wins across runs', async () => {
  const parent = join(tmp, 'runs');
  mkdirSync(parent);
  const line = (value: number, createdAt: string, run: string) =>
    JSON.stringify({ model: 'm', scheme: 'W4A16', method: 'rtn', recipe: null, task: 't', metric: 'acc', value, stderr: 0.01, n: 10, higherIsBetter: true, run, createdAt }) + '\n';
  mkdirSync(join(parent, 'r1'));
  mkdirSync(join(parent, 'r2'));
  // r2 sorts after r1 but its record is older: createdAt decides, not directory order.
  writeFileSync(join(parent, 'r1', 'ledger.jsonl'), line(0.7, '2026-02-01T00:00:00Z', 'r1'));
  writeFileSync(join(parent, 'r2', 'ledger.jsonl'), line(0.2, '2026-01-01T00:00:00Z', 'r2'));
  const out = join(tmp, 'runs-site');
  const s = await buildReport([parent], out, { noSvg: true });
  assert.equal(s.rows, 1);
  const json = JSON.parse(readFileSync(join(out, 'leaderboard.json'), 'utf8'));
  assert.equal(json.rows[0].cells['t/acc'].value, 0.7);
  assert.equal(json.superseded, 1);
  assert.deepEqual(json.runs.map((r: { id: string }) => r.id), ['r1', 'r2']);
});
