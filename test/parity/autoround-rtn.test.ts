/**
 * Real auto-round RTN against ours, and our reader against compressed-tensors on what
 * auto-round writes.
 *
 * auto-round 0.16.1 (the `quant` tool environment) runs pure RTN (`--iters 0
 * --disable_opt_rtn --format llm_compressor --device_map cpu --disable_torch_compile`) on
 * stories260k and synth-llama-h32 for W2/W3/W4/W8A16 at group 32 and 128 where the widths
 * allow (stories260k's 64-wide inputs do not take group 128: auto-round itself refuses),
 * MXFP4A16 and NVFP4A16. Then, per job:
 * - `bench quantize --method rtn --skip-unaligned` (quantizeModel, what the CLI runs) writes
 *   the same scheme, and the stored codes, scales, zero points and global scales are compared
 *   with auto-round's: 0 differing codes, 0 differing scales, the same layers quantized.
 *   Two rules of auto-round's had to be matched (README "auto-round parity"): on a CPU its
 *   integer and NVFP4 RTN quantize the bfloat16 copy of a float32 model (bf16Weights), while
 *   its MXFP4 RTN runs model-free on the float32 weights and stores a negative element that
 *   rounds to zero as -0 (code 8);
 * - compressed-tensors 0.20.1 decompresses auto-round's checkpoint, and our reader's float
 *   weights, rounded to the dtype compressed-tensors computed in, equal it element for element;
 * - auto-round's MXFP4A16 and NVFP4A16 exports declare quantized input activations (W4A4
 *   configs), which the validator refuses for an A16 scheme.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quantizeModel } from '../../src/quant/index.ts';
import { readCompressedWeights } from '../../src/checkpoint/compressed-tensors.ts';
import { validateCompressedTensors } from '../../src/checkpoint/codecs/index.ts';
import { getScheme, withOverrides } from '../../src/quant/schemes.ts';
import { MODELS, RTN_FLAGS, calibrationJsonl, jsonLines, runTool } from './helpers.ts';
import { diffDecompressed, diffStored, exportDir } from './compare.ts';

const work = mkdtempSync(join(tmpdir(), 'parity-rtn-'));
const calib = calibrationJsonl(work);

interface Job { model: keyof typeof MODELS; scheme: string; groupSize?: number; argv: string[]; out: string }
const jobs: Job[] = [];
for (const [model, groups] of [['stories260k', [32]], ['synth', [32, 128]]] as const) {
  for (const g of groups) {
    for (const b of [2, 3, 4, 8]) {
      const out = join(work, `${model}-w${b}g${g}`);
      jobs.push({ model, scheme: `W${b}A16`, groupSize: g, out, argv: ['--model', MODELS[model], '--scheme', `W${b}A16`, '--group_size', String(g), ...RTN_FLAGS, '--output_dir', out] });
    }
  }
  // auto-round's MXFP4/NVFP4 presets quantize activations too; --act_bits 16 makes them A16.
  jobs.push({ model, scheme: 'MXFP4A16', out: join(work, `${model}-mxfp4`), argv: ['--model', MODELS[model], '--scheme', 'MXFP4', '--act_bits', '16', ...RTN_FLAGS, '--output_dir', join(work, `${model}-mxfp4`)] });
  // NVFP4 is not zero-shot in auto-round: it loads calibration even for RTN (weights do not depend on it).
  jobs.push({ model, scheme: 'NVFP4A16', out: join(work, `${model}-nvfp4`), argv: ['--model', MODELS[model], '--scheme', 'NVFP4', '--act_bits', '16', ...RTN_FLAGS, '--dataset', calib, '--nsamples', '2', '--seqlen', '32', '--output_dir', join(work, `${model}-nvfp4`)] });
}

const label = (j: Job) => `${j.model} ${j.scheme}${j.groupSize ? ` g${j.groupSize}` : ''}`;

// One Python process runs every auto-round job (its CLI entry, one import), then one runs
// compressed-tensors over every export.
writeFileSync(join(work, 'jobs.json'), JSON.stringify(jobs.map((j) => j.argv)));
const ran = jsonLines<{ argv: string[]; version: string; error: string | null }>((await runTool('quant', 'autoround_cli.py', [join(work, 'jobs.json')], 1_200_000)).stdout);
const exports = new Map<Job, string>();
for (const [i, j] of jobs.entries()) if (!ran[i]?.error) exports.set(j, exportDir(j.out));
const deqArgs = [...exports].flatMap(([j, dir]) => [dir, `${j.out}.deq.safetensors`]);
const decompressed = jsonLines<{ dir: string; version: string; weights?: Record<string, string>; error?: string }>((await runTool('quant', 'ct_decompress.py', deqArgs, 600_000)).stdout);

test('auto-round 0.16.1 ran every job', () => {
  assert.equal(ran.length, jobs.length);
  for (const [i, r] of ran.entries()) {
    assert.equal(r.version, '0.16.1');
    assert.equal(r.error, null, `${label(jobs[i])}: ${r.error}`);
  }
});

for (const job of jobs) {
  test(`RTN bit-exact against auto-round: ${label(job)}`, async () => {
    const theirs = exports.get(job);
    assert.ok(theirs, 'auto-round produced no checkpoint');
    const scheme = withOverrides(getScheme(job.scheme), { groupSize: job.groupSize });
    if (scheme.weights.kind === 'int') validateCompressedTensors(theirs, { tool: 'auto-round', expect: scheme });
    else assert.throws(() => validateCompressedTensors(theirs, { tool: 'auto-round', expect: scheme }), /input_activations are float4, but \S+ keeps activations at 16 bits/);
    const ours = join(`${job.out}-ours`);
    await quantizeModel(MODELS[job.model], job.scheme, 'rtn', { out: ours, groupSize: job.groupSize, skipUnaligned: true, bf16Weights: scheme.weights.kind !== 'mxfp4' });
    const d = diffStored(ours, theirs);
    assert.deepEqual({ onlyOurs: d.onlyA, onlyTheirs: d.onlyB }, { onlyOurs: [], onlyTheirs: [] }, 'same layers quantized');
    assert.ok(d.layers > 0 && d.elements > 0);
    assert.deepEqual({ codes: d.codes, scales: d.scales, zeros: d.zeros, globalScales: d.globalScales }, { codes: 0, scales: 0, zeros: 0, globalScales: 0 }, `${label(job)} of ${d.elements} codes in ${d.layers} layers: ${d.examples.join('; ')}`);
  });

  test(`our reader equals compressed-tensors on auto-round's checkpoint: ${label(job)}`, () => {
    const dir = exports.get(job);
    assert.ok(dir, 'auto-round produced no checkpoint');
    const ct = decompressed.find((x) => x.dir === dir);
    assert.ok(ct && !ct.error, `compressed-tensors failed: ${ct?.error}`);
    assert.equal(ct.version, '0.20.1');
    const r = diffDecompressed(`${job.out}.deq.safetensors`, readCompressedWeights(dir), ct.weights!);
    assert.deepEqual({ missing: r.missing, extra: r.extra }, { missing: [], extra: [] });
    assert.ok(r.weights > 0);
    assert.equal(r.differing, 0, r.examples.join('; '));
  });
}
