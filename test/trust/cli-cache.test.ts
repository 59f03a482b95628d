/**
 * The must-shows of the cache, with the real CLI, quantizer and ONNX engine on the bundled
 * model, in a private copy of the project whose one suite scores 8 stories (so a full run
 * is quick):
 *   --limit 5 then a full run recomputes, and each result says which items it covers;
 *   a flipped bit in a cached checkpoint (same size, same mtime) is detected, the
 *   checkpoint recomputed, and the published numbers equal those of a clean cache.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readLedger } from '../../src/results/ledger.ts';
import type { ResultRecord } from '../../src/results/record.ts';
import { bench, ROOT, tmp } from './helpers.ts';

function project(): string {
  const p = tmp('trust-project-');
  for (const f of ['models.json', 'models.schema.json']) cpSync(join(ROOT, f), join(p, f));
  cpSync(join(ROOT, 'models', 'stories260k'), join(p, 'models', 'stories260k'), { recursive: true });
  cpSync(join(ROOT, 'suites'), join(p, 'suites'), { recursive: true });
  const ppl = JSON.parse(readFileSync(join(p, 'suites', 'tinystories-ppl.json'), 'utf8'));
  writeFileSync(join(p, 'suites', 'tiny-ppl.json'), JSON.stringify({ ...ppl, name: 'tiny-ppl', split: { from: 501, to: 508 } }));
  return p;
}

const run = (p: string, runId: string, ...more: string[]) => {
  const r = bench(['run', '--models', 'stories260k', '--methods', 'rtn', '--suites', 'tiny-ppl', '--threads', '1', '--no-report', '--json', '--run-id', runId, ...more], { cwd: p, timeoutMs: 600_000 });
  assert.equal(r.status, 0, r.stderr);
  return { summary: JSON.parse(r.stdout).summary, stderr: r.stderr, records: readLedger(join(p, '.bench', 'runs', runId)) };
};
const ppl = (rs: ResultRecord[]) => rs.find((r) => r.metric === 'token_perplexity')!;

test('--limit 5 then a full run recomputes; coverage says which items each result covers', { timeout: 600_000 }, () => {
  const p = project();
  const smoke = run(p, 'smoke', '--schemes', 'BF16', '--limit', '5');
  assert.deepEqual([smoke.summary.ran, smoke.summary.cached], [1, 0]);
  const full = run(p, 'full', '--schemes', 'BF16');
  assert.deepEqual([full.summary.ran, full.summary.cached], [1, 0], 'the full run does not reuse the 5-item result');
  assert.equal(ppl(smoke.records).n, 5);
  assert.equal(ppl(full.records).n, 8, 'stories 501-508');
  assert.deepEqual({ ...ppl(smoke.records).coverage, dataSha256: '' }, { items: 5, limit: 5, dataSha256: '' });
  assert.deepEqual({ ...ppl(full.records).coverage, dataSha256: '' }, { items: 8, limit: null, dataSha256: '' });
  assert.equal(ppl(smoke.records).coverage!.dataSha256, ppl(full.records).coverage!.dataSha256, 'same data, different item sets');
  assert.notEqual(ppl(smoke.records).value, ppl(full.records).value);
  // Each stays cached under its own identity.
  const again = run(p, 'again', '--schemes', 'BF16', '--limit', '5');
  assert.deepEqual([again.summary.ran, again.summary.cached], [0, 1]);
  assert.equal(ppl(again.records).value, ppl(smoke.records).value);
  // Resuming the smoke run without --limit would mix item sets in one cell: refused.
  const mixed = bench(['run', '--models', 'stories260k', '--methods', 'rtn', '--suites', 'tiny-ppl', '--schemes', 'BF16', '--no-report', '--run-id', 'smoke'], { cwd: p });
  assert.equal(mixed.status, 2, mixed.stderr);
  assert.match(mixed.stderr, /^bench: error: run smoke holds tiny-ppl results .* over the first 5 items .*; one run never mixes item sets/m);
});

test('a cached checkpoint with one flipped bit is detected, recomputed, and never published', { timeout: 600_000 }, () => {
  const p = project();
  const first = run(p, 'a', '--schemes', 'W4A16', '--limit', '3');
  assert.deepEqual([first.summary.ran, first.summary.failed.length], [2, 0]);
  const ckpts = readdirSync(join(p, '.bench', 'cache', 'ckpt')).filter((n) => !n.startsWith('.'));
  assert.equal(ckpts.length, 1);
  const file = join(p, '.bench', 'cache', 'ckpt', ckpts[0], 'model.safetensors');
  const intact = readFileSync(file);
  const st = statSync(file);
  const b = Buffer.from(intact);
  b[b.length >> 1] ^= 0x01;
  writeFileSync(file, b);
  utimesSync(file, st.atimeMs / 1000, st.mtimeMs / 1000);
  assert.equal(statSync(file).size, st.size);
  assert.ok(Math.abs(statSync(file).mtimeMs - st.mtimeMs) < 1e-3, 'same mtime: only a content check can tell');

  // --limit 4 needs a new eval, which must read the checkpoint.
  const second = run(p, 'b', '--schemes', 'W4A16', '--limit', '4');
  assert.match(second.stderr, /warning: stories260k W4A16 rtn: ckpt [0-9a-f]{12}: model\.safetensors does not match its recorded sha256 .*; removing it and recomputing/);
  assert.deepEqual([second.summary.ran, second.summary.failed.length], [2, 0], 'quantize and eval ran again');
  assert.ok(readFileSync(file).equals(intact), 'RTN recomputed the intact checkpoint');
  // What was published equals a run on a clean cache.
  const clean = bench(['run', '--models', 'stories260k', '--methods', 'rtn', '--suites', 'tiny-ppl', '--threads', '1', '--no-report', '--run-id', 'ref', '--schemes', 'W4A16', '--limit', '4', '--bench-dir', join(p, 'clean')], { cwd: p, timeoutMs: 600_000 });
  assert.equal(clean.status, 0, clean.stderr);
  const ref = readLedger(join(p, 'clean', 'runs', 'ref'));
  const essence = (rs: ResultRecord[]) => rs.map((r) => [r.jobId, r.metric, r.value, r.stderr, r.n, r.coverage]);
  assert.deepEqual(essence(second.records), essence(ref));
});
