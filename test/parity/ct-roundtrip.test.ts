/**
 * Our checkpoints through compressed-tensors: for every scheme lowbit-bench writes, Python
 * compressed-tensors 0.20.1 (quant tool environment; its model-free per-format compressors)
 * decompresses the checkpoint, and the weights equal what our reader returns, rounded to the
 * dtype compressed-tensors computes in (the scale's dtype: F16 for integer formats, F32 for
 * FP8; bfloat16 for FP4): 0 differing elements.
 *
 * synth-llama-h32 has tool-friendly widths (multiples of 128), so every layer is quantized.
 * stories260k's 172- and 64-wide inputs are a finding: compressed-tensors refuses a padded
 * last group ("tensor column shape must be divisble by the given group_size"), so our
 * default stories260k checkpoints (group 32 over the 172-wide down_proj; FP4 blocks likewise)
 * load in no Python tool; with auto-round's layer selection (--skip-unaligned) they do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quantizeModel, type QuantizeOptions } from '../../src/quant/index.ts';
import { readCompressedCheckpoint } from '../../src/checkpoint/compressed-tensors.ts';
import { readDecoderLinears } from '../../src/quant/rtn/index.ts';
import { MODELS, jsonLines, runTool } from './helpers.ts';
import { diffDecompressed } from './compare.ts';

const work = mkdtempSync(join(tmpdir(), 'parity-ct-'));
// Calibrated activation ranges for the static schemes (RTN does not collect them); any
// positive value gives a valid checkpoint, and decompression does not read them.
const amax = (model: string) => new Map([...readDecoderLinears(model).keys()].map((n, i) => [n, 1 + i / 16]));

interface Case { label: string; model: string; scheme: string; opts: Omit<QuantizeOptions, 'out'>; refused?: RegExp }
const synthAmax = amax(MODELS.synth);
const CASES: Case[] = [
  ...['W2A16', 'W3A16', 'W4A16', 'W8A16'].map((s) => ({ label: `synth ${s} g128`, model: MODELS.synth, scheme: s, opts: {} })),
  { label: 'synth W3A16 g32 asym', model: MODELS.synth, scheme: 'W3A16', opts: { groupSize: 32, asym: true } },
  { label: 'synth W4A16 per channel asym bf16 scales', model: MODELS.synth, scheme: 'W4A16', opts: { groupSize: -1, asym: true, scaleDtype: 'BF16' } },
  { label: 'synth W8A16 g32', model: MODELS.synth, scheme: 'W8A16', opts: { groupSize: 32 } },
  { label: 'synth MXFP4A16', model: MODELS.synth, scheme: 'MXFP4A16', opts: {} },
  { label: 'synth NVFP4A16', model: MODELS.synth, scheme: 'NVFP4A16', opts: {} },
  { label: 'synth NVFP4 (W4A4)', model: MODELS.synth, scheme: 'NVFP4', opts: { inputAmax: synthAmax } },
  { label: 'synth W8A8-FP8', model: MODELS.synth, scheme: 'W8A8-FP8', opts: {} },
  { label: 'synth W8A8-FP8-STATIC', model: MODELS.synth, scheme: 'W8A8-FP8-STATIC', opts: { inputAmax: synthAmax } },
  { label: 'stories260k W4A16 g32, auto-round layer selection', model: MODELS.stories260k, scheme: 'W4A16', opts: { groupSize: 32, skipUnaligned: true } },
  { label: 'stories260k NVFP4A16 (every layer)', model: MODELS.stories260k, scheme: 'NVFP4A16', opts: {}, refused: /divisble by the given group_size 16 but got 172/ },
  { label: 'stories260k W4A16 g32 (models.json default: every layer)', model: MODELS.stories260k, scheme: 'W4A16', opts: { groupSize: 32 }, refused: /divisble by the given group_size 32 but got 172/ },
];

const dirs = new Map<Case, string>();
for (const [i, c] of CASES.entries()) {
  const out = join(work, `case-${i}`);
  await quantizeModel(c.model, c.scheme, 'rtn', { ...c.opts, out });
  dirs.set(c, out);
}
const results = jsonLines<{ dir: string; version: string; weights?: Record<string, string>; error?: string }>(
  (await runTool('quant', 'ct_decompress.py', [...dirs.values()].flatMap((d) => [d, `${d}.deq.safetensors`]), 600_000)).stdout,
);

for (const c of CASES) {
  test(`compressed-tensors decompresses our ${c.label} to our reader's weights`, () => {
    const dir = dirs.get(c)!;
    const ct = results.find((r) => r.dir === dir);
    assert.ok(ct, 'compressed-tensors gave no answer');
    assert.equal(ct.version, '0.20.1');
    if (c.refused) {
      assert.match(ct.error ?? '(it decompressed the checkpoint)', c.refused);
      return;
    }
    assert.equal(ct.error, undefined, ct.error);
    const ours = readCompressedCheckpoint(dir);
    const r = diffDecompressed(`${dir}.deq.safetensors`, ours.weights, ct.weights!);
    assert.deepEqual({ missing: r.missing, extra: r.extra }, { missing: [], extra: [] });
    assert.equal(r.weights, ours.quantized.length);
    assert.ok(r.weights > 0);
    assert.equal(r.differing, 0, `${r.differing} of ${r.elements}: ${r.examples.join('; ')}`);
  });
}
