/**
 * The nightly path end to end with real processes: `bench run` on a small embedded
 * matrix, sharded runs merged back, `bench baseline update`, and `bench regress` catching
 * an injected fault in exactly the perturbed cells while an unchanged rerun passes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLedger } from '../../src/results/ledger.ts';
import type { ResultRecord } from '../../src/results/record.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BENCH = join(ROOT, 'bin', 'bench.js');
const tmp = mkdtempSync(join(tmpdir(), 'nightly-'));
const MATRIX = ['--models', 'stories260k', '--schemes', 'BF16,W4A16,W8A16', '--methods', 'rtn', '--suites', 'tinystories-ppl,tinystories-cloze', '--limit', '24', '--threads', '1', '--no-report'];

function bench(args: string[], opts: { expect?: number } = {}) {
  const r = spawnSync(process.execPath, [BENCH, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  if (opts.expect !== undefined) assert.equal(r.status, opts.expect, `bench ${args.join(' ')}\n${r.stderr}\n${r.stdout}`);
  return r;
}

const key = (r: ResultRecord) => `${r.jobId}/${r.task}/${r.metric}`;
const essence = (rs: ResultRecord[]) =>
  rs.map((r) => ({ key: key(r), value: r.value, stderr: r.stderr, n: r.n, items: r.items })).sort((a, b) => (a.key < b.key ? -1 : 1));

test('whole run, shards merged, baseline, regress: faults are caught and named, reruns pass', { timeout: 900_000 }, () => {
  const whole = join(tmp, 'whole');
  bench(['run', ...MATRIX, '--bench-dir', whole, '--run-id', 'all'], { expect: 0 });
  const all = readLedger(join(whole, 'runs', 'all'));
  assert.equal(all.length, 3 * (4 + 2)); // 3 checkpoints x (4 ppl metrics + acc, acc_norm)

  // Shards: disjoint, balanced slices whose merge equals the whole run.
  const shards = join(tmp, 'shards');
  for (const i of [1, 2]) bench(['run', ...MATRIX, '--bench-dir', shards, '--run-id', `s${i}`, '--shard', `${i}/2`], { expect: 0 });
  const s1 = readLedger(join(shards, 'runs', 's1'));
  const s2 = readLedger(join(shards, 'runs', 's2'));
  assert.ok(s1.length > 0 && s2.length > 0);
  assert.equal(new Set([...s1, ...s2].map(key)).size, s1.length + s2.length, 'shards overlap');
  const merged = join(tmp, 'merged');
  bench(['merge', '--out', merged, join(shards, 'runs', 's1'), join(shards, 'runs', 's2')], { expect: 0 });
  assert.deepEqual(essence(readLedger(merged)), essence(all));

  // Baseline from the whole run; an unchanged rerun (fresh cache) passes.
  const baseline = join(tmp, 'baseline.json');
  bench(['baseline', 'update', '--run', join(whole, 'runs', 'all'), '--out', baseline], { expect: 0 });
  const again = join(tmp, 'again');
  bench(['run', ...MATRIX, '--bench-dir', again, '--run-id', 'r'], { expect: 0 });
  const ok = bench(['regress', '--baseline', baseline, '--current', join(again, 'runs', 'r'), '--thresholds', join(ROOT, 'ci', 'thresholds.json'), '--json'], { expect: 0 });
  const okJson = JSON.parse(ok.stdout);
  assert.equal(okJson.counts.regressed, 0);
  assert.equal(okJson.counts.ok, all.length);

  // A run whose W4A16 scales are perturbed: regress exits 1 naming W4A16 cells only.
  const faulty = join(tmp, 'faulty');
  bench(['run', ...MATRIX, '--bench-dir', faulty, '--run-id', 'f', '--fault-perturb-scales', 'W4A16:1.25'], { expect: 0 });
  const out = join(tmp, 'regress-out');
  const bad = bench(['regress', '--baseline', baseline, '--current', join(faulty, 'runs', 'f'), '--thresholds', join(ROOT, 'ci', 'thresholds.json'), '--out', out]);
  assert.equal(bad.status, 1, bad.stderr + bad.stdout);
  const res = JSON.parse(readFileSync(join(out, 'regress.json'), 'utf8'));
  const regressed = res.cells.filter((c: { status: string }) => c.status === 'regressed');
  assert.ok(regressed.length > 0);
  assert.deepEqual([...new Set(regressed.map((c: { scheme: string }) => c.scheme))], ['W4A16']);
  assert.ok(regressed.some((c: { metric: string }) => c.metric === 'word_perplexity'));
  assert.match(bad.stdout, /REGRESSED\s+stories260k\/W4A16\/rtn\/tinystories-ppl\/word_perplexity/);
  const junit = readFileSync(join(out, 'regress.junit.xml'), 'utf8');
  assert.equal((junit.match(/<testcase /g) ?? []).length, all.length);
  assert.match(readFileSync(join(out, 'regress.md'), 'utf8'), /regression/);
  // The fault never reached the shared cache of the faulty bench dir.
  const cacheHit = bench(['run', ...MATRIX, '--bench-dir', faulty, '--run-id', 'clean', '--dry-run']);
  assert.match(cacheHit.stdout, /0 of \d+ jobs already done/);
});

test('bad flags: one-line errors, exit 2', () => {
  for (const [args, msg] of [
    [['run', '--schemes', 'W4A61', '--dry-run'], /unknown scheme 'W4A61'; did you mean 'W4A16'/],
    [['run', '--models', 'stories26k', '--dry-run'], /did you mean 'stories260k'/],
    [['run', '--shard', '3/2', '--dry-run'], /--shard wants i\/n/],
    [['regress', '--baseline', join(tmp, 'nope.json')], /no baseline/],
  ] as [string[], RegExp][]) {
    const r = bench(args);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, msg);
  }
});

test('the nightly workflow calls commands and flags the CLI has', async () => {
  const { parse } = await import('yaml');
  const wf = parse(readFileSync(join(ROOT, 'ci', 'nightly.yml'), 'utf8'));
  assert.ok(wf.on.schedule[0].cron);
  assert.ok(wf.on.workflow_dispatch.inputs.engine.options.includes('vllm'));
  assert.deepEqual(Object.keys(wf.jobs), ['shard', 'merge', 'pages']);
  assert.equal(wf.jobs.merge.needs, 'shard');
  assert.equal(wf.jobs.pages.needs, 'merge');
  assert.deepEqual(wf.jobs.shard.strategy.matrix.shard, [1, 2, 3, 4]);
  const help = (cmd: string) => execFileSync(process.execPath, [BENCH, cmd, '--help'], { cwd: ROOT, encoding: 'utf8' });
  const runs = Object.values(wf.jobs).flatMap((j: any) => (j.steps ?? []).map((s: any) => s.run).filter(Boolean)) as string[];
  const calls = runs.flatMap((r) => [...r.matchAll(/\.\/bin\/bench\.js\s+(\w+)((?:\s+(?:\\\n\s*)?(?:--[\w-]+|[^\s-][^\s]*))*)/g)]);
  assert.ok(calls.length >= 4);
  for (const [, cmd, rest] of calls) {
    const h = help(cmd);
    for (const flag of rest.match(/--[\w-]+/g) ?? []) assert.ok(h.includes(flag), `bench ${cmd} has no ${flag}`);
  }
  assert.deepEqual([...new Set(calls.map((c) => c[1]))].sort(), ['merge', 'regress', 'report', 'run']);
});
