/**
 * Calibration in the form the external tools read: the jsonl we write holds the calibration
 * stories in order, each line long enough, and the real auto-round 0.16.1 loader (environment
 * `quant`, auto_round.calib_dataset.get_dataset) turns it into exactly nsamples samples of
 * seqlen tokens; HF calibration specs honour the split and refuse a revision by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { loadTokenizer } from '../../src/checkpoint/tokenizer.ts';
import { UserError } from '../../src/errors.ts';
import { calibrationStories, defaultCalibrationFile } from '../../src/quant/calibration.ts';
import { hfCalibrationSpec, writeCalibrationJsonl } from '../../src/quant/external/index.ts';
import { requireToolEnv } from '../helpers/toolenv.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const MODEL = join(ROOT, 'models', 'synth-llama-h32');
const tmp = mkdtempSync(join(tmpdir(), 'calib-test-'));

test('the calibration jsonl: the calibration stories in order, every line at least seqlen tokens', async () => {
  const file = join(tmp, 'c.jsonl');
  const w = await writeCalibrationJsonl(MODEL, file, { seqlen: 64, nsamples: 4 });
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
  assert.equal(lines.length, w.lines);
  const tok = await loadTokenizer(MODEL);
  for (const l of lines) assert.ok(tok.encode(l, { addBos: true }).length > 64);
  const stories = calibrationStories(readFileSync(defaultCalibrationFile(), 'utf8'));
  // stories joined by newlines, in order from the first; only the last short group is left out
  const all = stories.join('\n');
  const written = lines.join('\n');
  assert.ok(all.startsWith(written), 'stories 1.. in order, never the scored ones');
  assert.ok(written.length > 0.98 * all.length);
  await assert.rejects(writeCalibrationJsonl(MODEL, join(tmp, 'd.jsonl'), { seqlen: 512, nsamples: 400 }), (e: unknown) => e instanceof UserError && /fewer than nsamples 400; lower the recipe's nsamples or seqlen/.test((e as Error).message));
});

test('the real auto-round loader reads our jsonl into exactly nsamples samples of seqlen tokens', async () => {
  const quant = await requireToolEnv('quant');
  const file = join(tmp, 'ar.jsonl');
  await writeCalibrationJsonl(MODEL, file, { seqlen: 128, nsamples: 8 });
  const code = [
    'import sys, json',
    'from transformers import AutoTokenizer',
    'from auto_round.calib_dataset import get_dataset',
    'tok = AutoTokenizer.from_pretrained(sys.argv[1])',
    'ds = get_dataset(tok, 128, dataset_name=sys.argv[2], seed=42, nsamples=8)',
    'print(json.dumps([len(x) for x in ds["input_ids"]]))',
  ].join('\n');
  const r = await execa(quant.python, ['-c', code, MODEL, file], { env: { AR_DISABLE_DATASET_SUBPROCESS: '1', HF_HUB_OFFLINE: '1' }, timeout: 300_000 });
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), Array(8).fill(128));
});

test('HF calibration: split passed on, a revision auto-round cannot pin refused by name', () => {
  assert.equal(hfCalibrationSpec({ hf: 'NeelNanda/pile-10k', revision: 'main', split: 'train' }), 'NeelNanda/pile-10k');
  assert.equal(hfCalibrationSpec({ hf: 'HuggingFaceH4/ultrachat_200k', revision: 'main', split: 'train_sft' }), 'HuggingFaceH4/ultrachat_200k:split=train_sft');
  assert.throws(() => hfCalibrationSpec({ hf: 'NeelNanda/pile-10k', revision: 'abc123', split: 'train' }), /revision abc123: auto-round's dataset loaders take no revision/);
  assert.throws(() => hfCalibrationSpec({ hf: 'NeelNanda/pile-10k', revision: 'main', split: 'test' }), /split test: auto-round's loader for it reads only "train"/);
});
