/**
 * Real lm-eval (the `eval` tool environment: lm-eval 0.4.13, transformers 5.25.0,
 * compressed-tensors 0.20.1) against our numbers on the same documents:
 *
 * - both BOS conventions: `lm_eval --model hf` with add_bos_token=False equals our default
 *   ('prefix') and with add_bos_token=True equals our 'document' convention;
 * - lm-eval hf on our own compressed-tensors checkpoints (W4A16 and NVFP4A16 RTN) equals
 *   `bench eval` on them;
 * - `lm_eval --model local-completions` against a `bench serve` process equals the embedded
 *   engine, for rolling perplexity and for a multiple-choice suite's acc and acc_norm.
 *
 * The first 20 scored stories (501-520) hold four documents longer than the 512-token window,
 * so rolling windows are compared too. lm-eval computes in float32 (bfloat16 for FP4
 * checkpoints), ours in float32 with float64 sums: hence 1e-4 relative for hf, and 1e-6 for
 * local-completions, where lm-eval only sums the log-probabilities our server returns.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readLmEvalResults } from '../../src/engines/lmeval/index.ts';
import { evaluateByEngine, type EvalEngine } from '../../src/eval/by-engine.ts';
import { loadSuite, type Suite } from '../../src/matrix/suites.ts';
import type { MetricValue } from '../../src/results/record.ts';
import { requireToolEnv } from '../helpers/toolenv.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const STORIES = join(ROOT, 'models', 'stories260k');
const SYNTH = join(ROOT, 'models', 'synth-llama-h32');
const BENCH = join(ROOT, 'bin', 'bench.js');
const tmp = mkdtempSync(join(tmpdir(), 'lmeval-real-'));
const LIMIT = 20;

/** lm_eval of the built `eval` environment (LOWBIT_LMEVAL_COMMAND overrides it, as everywhere). */
async function lmEvalEnv(): Promise<NodeJS.ProcessEnv> {
  if (process.env.LOWBIT_LMEVAL_COMMAND) return process.env;
  const env = await requireToolEnv('eval');
  return { ...process.env, LOWBIT_LMEVAL_COMMAND: JSON.stringify([env.bin('lm_eval')]) };
}

let n = 0;
async function score(engine: EvalEngine, dir: string, suite: Suite, o: { bos?: 'prefix' | 'document'; limit?: number } = {}) {
  const r = await evaluateByEngine(suite, { engine, dir, limit: o.limit ?? LIMIT, bos: o.bos, workDir: join(tmp, `${engine}-${++n}`), env: await lmEvalEnv(), threads: 1 });
  return r;
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

function assertClose(theirs: MetricValue[], ours: MetricValue[], metrics: string[], tol: number, what: string): void {
  for (const m of metrics) {
    const t = theirs.find((x) => x.metric === m);
    const o = ours.find((x) => x.metric === m);
    assert.ok(t && o, `${what}: ${m} missing`);
    assert.ok(rel(t!.value, o!.value) <= tol, `${what} ${m}: lm-eval ${t!.value} vs ours ${o!.value} (rel ${rel(t!.value, o!.value).toExponential(2)} > ${tol})`);
  }
}

const PPL = ['word_perplexity', 'byte_perplexity', 'bits_per_byte'];

test('BOS conventions: lm-eval hf add_bos_token=False equals ours (prefix), =True equals our document convention', async () => {
  const suite = loadSuite('tinystories-ppl');
  for (const bos of ['prefix', 'document'] as const) {
    const theirs = await score('lmeval-hf', STORIES, suite, { bos });
    const ours = await score('onnx', STORIES, suite, { bos });
    assert.equal(theirs.provenance.addBosToken, bos === 'document');
    assert.equal(theirs.provenance.bos, bos);
    // lm-eval 0.4.13 records model_args as the parsed object.
    assert.equal((theirs.provenance.model_args as Record<string, unknown>).add_bos_token, bos === 'document');
    assert.equal(theirs.provenance.lm_eval_version, '0.4.13');
    for (const m of ours.metrics) assert.equal(m.extra?.bosInDocument, bos === 'document' ? 1 : 0);
    assertClose(theirs.metrics, ours.metrics, PPL, 1e-4, `BOS ${bos}`);
  }
});

test('the recorded full runs of real lm-eval hf (stories 501-1000) equal ours under each convention', async () => {
  // harness/fixtures/lmeval/results_v0.4.13_hf_*.json: lm_eval 0.4.13 --model hf on the
  // bundled stories260k (commands in that folder's README); ours recomputed here.
  const suite = loadSuite('tinystories-ppl');
  for (const [file, bos] of [['results_v0.4.13_hf_ppl_prefix.json', 'prefix'], ['results_v0.4.13_hf_ppl_document.json', 'document']] as const) {
    const rec = readLmEvalResults(join(ROOT, 'harness/fixtures/lmeval', file));
    assert.equal((rec.provenance.model_args as Record<string, unknown>).add_bos_token, bos === 'document');
    const theirs = rec.metrics.map((m) => ({ ...m, task: suite.name }));
    const ours = (await evaluateByEngine(suite, { engine: 'onnx', dir: STORIES, bos, workDir: tmp, threads: 1 })).metrics;
    assert.equal(ours[0].n, 500);
    assertClose(theirs, ours, PPL, 1e-4, `full ${bos}`);
  }
});

test('lm-eval hf reads our W4A16 and NVFP4A16 RTN checkpoints and equals bench eval', async () => {
  const { execFileSync } = await import('node:child_process');
  const suite = loadSuite('tinystories-ppl');
  for (const scheme of ['W4A16', 'NVFP4A16']) {
    const out = join(tmp, `ckpt-${scheme}`);
    // --skip-unaligned: compressed-tensors cannot decompress a padded last group (harness/README.md).
    execFileSync(process.execPath, [BENCH, 'quantize', '--model', 'stories260k', '--scheme', scheme, ...(scheme === 'W4A16' ? ['--group-size', '32'] : []), '--skip-unaligned', '--out', out], { stdio: 'ignore' });
    const theirs = await score('lmeval-hf', out, suite);
    const ours = await score('onnx', out, suite);
    assert.equal(theirs.provenance.dtype, scheme === 'NVFP4A16' ? 'bfloat16' : 'float32');
    // NVFP4: transformers only loads FP4 checkpoints in bfloat16, so lm-eval computes the whole
    // forward pass in bfloat16 (8-bit mantissa); the difference is lm-eval's rounding, not the
    // checkpoint (harness/README.md "lm-eval hf on our checkpoints").
    assertClose(theirs.metrics, ours.metrics, PPL, scheme === 'NVFP4A16' ? 5e-3 : 1e-4, scheme);
  }
});

test('lm-eval local-completions against bench serve equals the embedded engine (perplexity 1e-6; cloze acc, acc_norm)', async () => {
  // synth-llama-h32 has 1024 positions, so bench serve runs with max_model_len = 512 + 2 and
  // lm-eval's rolling window (max_length - 2) is the suite's 512.
  const ppl = loadSuite('tinystories-ppl');
  const theirs = await score('lmeval-completions', SYNTH, ppl, { limit: 8 });
  const ours = await score('onnx', SYNTH, ppl, { limit: 8 });
  assertClose(theirs.metrics, ours.metrics, PPL, 1e-6, 'local-completions ppl');
  const cloze = loadSuite('tinystories-cloze');
  const tc = await score('lmeval-completions', SYNTH, cloze, { limit: 25 });
  const oc = await score('onnx', SYNTH, cloze, { limit: 25 });
  for (const m of ['acc', 'acc_norm']) {
    const t = tc.metrics.find((x) => x.metric === m)!;
    const o = oc.metrics.find((x) => x.metric === m)!;
    assert.equal(t.value, o.value, `cloze ${m}`);
    assert.equal(t.n, 25);
  }
  assert.equal(tc.provenance.addBosToken, true, "cloze follows the tokenizer's add_bos_token");
});
