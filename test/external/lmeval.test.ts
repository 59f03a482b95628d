/**
 * lm-eval results ingestion against the harness fixtures (written from lm-eval.md §5.2's
 * structure; see harness/fixtures/lmeval/README.md), and `runLmEval` against a fake
 * `lm_eval` process that writes where lm-eval writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { findResultsFile, parseLmEvalResults, readLmEvalResults, runLmEval } from '../../src/engines/lmeval/index.ts';
import { ToolError, UserError } from '../../src/errors.ts';

const FIX = resolve(import.meta.dirname, '../../harness/fixtures/lmeval');
const FAKE = resolve(import.meta.dirname, 'fixtures/fake-lmeval.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'lmeval-test-'));

test('v0.4.9.2 vllm results: values, stderrs (N/A -> null), n, direction, group n from subtasks', () => {
  const r = readLmEvalResults(join(FIX, 'results_v0.4.9.2_vllm.json'));
  const get = (task: string, metric: string) => {
    const m = r.metrics.find((x) => x.task === task && x.metric === metric);
    assert.ok(m, `${task} ${metric}`);
    return m!;
  };
  const arc = get('arc_challenge', 'acc');
  assert.equal(arc.value, 0.5546075085324232);
  assert.equal(arc.n, 1172);
  assert.equal(arc.higherIsBetter, true);
  // the file's stderr, which for a mean of 0/1 values is sqrt(p(1-p)/(n-1)) (lm-eval.md §3.4)
  assert.ok(Math.abs(arc.stderr! - Math.sqrt((0.5546075085324232 * (1 - 0.5546075085324232)) / 1171)) < 1e-15);
  assert.deepEqual(arc.extra, { nOriginal: 1172, numFewshot: 0 });
  assert.equal(get('arc_challenge', 'acc_norm').value, 0.5708191126279863);
  const wiki = get('wikitext', 'word_perplexity');
  assert.deepEqual([wiki.value, wiki.stderr, wiki.n, wiki.higherIsBetter], [11.0217, null, 62, false]);
  assert.equal(get('wikitext', 'bits_per_byte').higherIsBetter, false);
  const lam = get('lambada_openai', 'perplexity');
  assert.deepEqual([lam.value, lam.stderr, lam.higherIsBetter], [3.9812, 0.0871, false]);
  const mmlu = get('mmlu', 'acc');
  assert.equal(mmlu.n, 100 + 135, 'group n = sum of its subtasks');
  assert.ok(Math.abs(mmlu.value - (0.45 * 100 + 0.6 * 135) / 235) < 1e-15);
  assert.equal(get('mmlu_anatomy', 'acc').n, 135);
  assert.equal(r.metrics.filter((m) => m.metric.includes('stderr')).length, 0);
  assert.equal(r.metrics.length, 2 + 2 + 2 + 1 + 1 + 1 + 3);
  assert.equal(r.provenance.lm_eval_version, '0.4.9.2');
  assert.equal(r.provenance.backend, 'vllm');
  assert.match(String(r.provenance.model_args), /add_bos_token=False/);
});

test('older layout (no lm_eval_version, start/end_time) parses; filters other than none are kept in the name', () => {
  const r = readLmEvalResults(join(FIX, 'results_v0.4.5_vllm.json'));
  assert.equal(r.provenance.lm_eval_version, null);
  assert.equal(r.provenance.git_hash, 'a1b2c3d');
  assert.deepEqual(r.metrics.map((m) => `${m.task}/${m.metric}=${m.value}/${m.n}`), [
    'arc_easy/acc=0.8333333333333334/2376', 'arc_easy/acc_norm=0.8047138047138047/2376', 'piqa/acc=0.7671381936887922/1838',
  ]);
  const f = parseLmEvalResults({ results: { gsm8k: { 'exact_match,strict-match': 0.5, 'exact_match_stderr,strict-match': 0.1, alias: 'gsm8k' } } });
  assert.deepEqual([f.metrics[0].metric, f.metrics[0].value, f.metrics[0].stderr, f.metrics[0].n], ['exact_match/strict-match', 0.5, 0.1, 0]);
  assert.throws(() => parseLmEvalResults({ nope: 1 }), UserError);
  assert.throws(() => parseLmEvalResults({ results: { a: { alias: 'a' } } }), /no numeric metrics/);
});

test('findResultsFile picks the newest results_*.json of the sanitized model folder', () => {
  const out = join(tmp, 'find');
  const d = join(out, '__ckpt__run1');
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'results_2025-01-31T14-05-09.123456.json'), '{}');
  writeFileSync(join(d, 'results_2025-02-01T10-00-00.000001.json'), '{}');
  writeFileSync(join(d, 'samples_arc_easy_2025-02-01T10-00-00.000001.jsonl'), '');
  const old = new Date('2025-01-31T14:05:09Z');
  utimesSync(join(d, 'results_2025-01-31T14-05-09.123456.json'), old, old);
  assert.equal(findResultsFile(out, '/ckpt/run1'), join(d, 'results_2025-02-01T10-00-00.000001.json'));
  assert.throws(() => findResultsFile(out, '/ckpt/run1', Date.now() + 60_000), /no new results file/);
  assert.throws(() => findResultsFile(out, 'other'), /no results folder/);
});

test('runLmEval runs the tool with an argv array, finds and ingests its results; failures give one line + log', async () => {
  const out = join(tmp, `run dir "q"; x`);
  const log = join(tmp, 'logs', 'lmeval.log');
  let pid: number | undefined;
  const r = await runLmEval(
    { backend: 'vllm', pretrained: `/ckpt/my model "q"; x`, tasks: ['arc_challenge'], outputPath: out, addBosToken: true, command: FAKE },
    { logPath: log, env: { FAKE_RESULTS: join(FIX, 'results_v0.4.9.2_vllm.json') }, timeoutMs: 20_000, onSpawn: (p) => (pid = p) },
  );
  assert.ok(pid);
  assert.throws(() => process.kill(pid!, 0), /ESRCH/, 'lm_eval child reaped');
  assert.ok(r.resultsPath.startsWith(join(out, '__ckpt__my model __q__; x')));
  assert.equal(r.metrics.find((m) => m.task === 'arc_challenge' && m.metric === 'acc')!.value, 0.5546075085324232);
  assert.deepEqual(r.provenance.argv, r.argv);
  assert.match(readFileSync(log, 'utf8'), /\|Tasks\|Version\|/);
  try {
    await runLmEval({ backend: 'vllm', pretrained: 'm', tasks: ['arc_chalenge'], outputPath: out, addBosToken: true, command: FAKE }, { logPath: log, env: { FAKE_MODE: 'fail' } });
    assert.fail('expected failure');
  } catch (e) {
    assert.ok(e instanceof ToolError, 'a failing tool is a ToolError (exit 3), not a usage error');
    assert.equal(e.exitCode, 3);
    assert.match(e.message, /^lm_eval exited with code 1: ValueError: Tasks not found: arc_chalenge.*log: .*lmeval\.log$/);
  }
});
