// `bench quantize --method autoround` end to end through bin/bench.js (tsx registered
// in-process, worker threads bootstrapping their own loader): --json stdout is one JSON
// document, progress goes to stderr, the run record lands in the output directory, the
// checkpoint reads back, and autoround-only flags are refused for RTN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readCompressedCheckpoint } from '../../../src/checkpoint/compressed-tensors.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'bin/bench.js');

test('bench quantize --method autoround --json: JSON on stdout, progress on stderr, record in the checkpoint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ar-cli-'));
  try {
    const out = join(dir, 'ckpt');
    const r = await run(process.execPath, [BIN, 'quantize', '--model', 'stories260k', '--scheme', 'W4A16', '--method', 'autoround', '--recipe', 'light',
      '--iters', '3', '--nsamples', '4', '--seqlen', '600', '--batch-size', '2', '--threads', '2', '--out', out, '--json'], { cwd: ROOT });
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.method, 'autoround');
    assert.equal(summary.quantized.length, 35);
    assert.equal(summary.record.recipe.iters, 3);
    assert.equal(summary.record.recipe.lr, 5e-3);
    assert.equal(summary.record.seqlenCapped, true, 'stories260k has 512 positions: 600 is capped');
    assert.equal(summary.record.recipe.seqlen, 512, 'the record gives the seqlen actually used');
    assert.equal(summary.record.requestedSeqlen, 600);
    assert.equal(summary.record.bestLossPerBlock.length, 5);
    assert.match(r.stderr, /autoround: block 5\/5 iter 3\/3 loss/);
    assert.doesNotMatch(r.stdout, /autoround: block/);
    const rec = JSON.parse(readFileSync(join(out, 'quantization_record.json'), 'utf8'));
    assert.deepEqual(rec.bestLossPerBlock, summary.record.bestLossPerBlock);
    assert.equal(readCompressedCheckpoint(out).quantized.length, 35);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('autoround flags with --method rtn are a one-line user error', async () => {
  const out = join(tmpdir(), `ar-cli-rtn-${process.pid}`);
  await assert.rejects(run(process.execPath, [BIN, 'quantize', '--model', 'stories260k', '--scheme', 'W4A16', '--iters', '5', '--out', out], { cwd: ROOT }), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 2);
    assert.match(e.stderr, /--iters applies to --method autoround only/);
    return true;
  });
  assert.equal(existsSync(out), false);
  await assert.rejects(run(process.execPath, [BIN, 'quantize', '--model', 'stories260k', '--scheme', 'W4A16', '--method', 'autoround', '--iters', 'x', '--out', out], { cwd: ROOT }), /--iters must be an integer, got 'x'/);
});
