/**
 * Our reader against compressed-tensors on what real llm-compressor writes: llm-compressor
 * 0.14.0.1 (the `llmcompressor` tool environment, compressed-tensors 0.19.0) quantizes
 * synth-llama-h32 with RTN presets W4A16, W8A16, MXFP4A16, NVFP4A16 and FP8_DYNAMIC
 * (QuantizationModifier, no calibration data); compressed-tensors 0.19.0 decompresses each
 * checkpoint, and our reader's weights, rounded to the dtype it computed in, are equal
 * element for element. Our header-only validator accepts each for the matching scheme.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateCompressedTensors } from '../../src/checkpoint/codecs/index.ts';
import { readCompressedCheckpoint } from '../../src/checkpoint/compressed-tensors.ts';
import { getScheme } from '../../src/quant/schemes.ts';
import { MODELS, jsonLines, runTool } from './helpers.ts';
import { diffDecompressed } from './compare.ts';

const work = mkdtempSync(join(tmpdir(), 'parity-llmc-'));
const PRESETS: Record<string, string> = { W4A16: 'W4A16', W8A16: 'W8A16', MXFP4A16: 'MXFP4A16', NVFP4A16: 'NVFP4A16', FP8_DYNAMIC: 'W8A8-FP8' };
const ran = jsonLines<{ preset: string; out: string; llmcompressor: string; 'compressed-tensors': string; error: string | null }>(
  (await runTool('llmcompressor', 'llmc_rtn.py', [MODELS.synth, work, ...Object.keys(PRESETS)], 900_000)).stdout,
);
const ok = ran.filter((r) => !r.error);
const decompressed = jsonLines<{ dir: string; version: string; weights?: Record<string, string>; error?: string }>(
  (await runTool('llmcompressor', 'ct_decompress.py', ok.flatMap((r) => [r.out, `${r.out}.deq.safetensors`]), 600_000)).stdout,
);

for (const [preset, ours] of Object.entries(PRESETS)) {
  test(`our reader equals compressed-tensors on llm-compressor's ${preset}`, () => {
    const r = ran.find((x) => x.preset === preset);
    assert.ok(r, 'llm-compressor gave no answer');
    assert.equal(r.error, null, r.error ?? '');
    assert.deepEqual([r.llmcompressor, r['compressed-tensors']], ['0.14.0.1', '0.19.0']);
    const v = validateCompressedTensors(r.out, { tool: 'llm-compressor', expect: getScheme(ours) });
    const ckpt = readCompressedCheckpoint(r.out);
    assert.deepEqual(ckpt.quantized, v.quantized);
    const ct = decompressed.find((x) => x.dir === r.out);
    assert.ok(ct && !ct.error, `compressed-tensors failed: ${ct?.error}`);
    const d = diffDecompressed(`${r.out}.deq.safetensors`, ckpt.weights, ct.weights!);
    assert.deepEqual({ missing: d.missing, extra: d.extra }, { missing: [], extra: [] });
    assert.equal(d.weights, 28);
    assert.equal(d.differing, 0, `${d.differing} of ${d.elements}: ${d.examples.join('; ')}`);
  });
}
