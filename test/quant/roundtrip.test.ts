/**
 * For every scheme: quantize -> write compressed-tensors -> read -> dequantize gives exactly
 * the quantizer's dequantized weights (bit for bit), the untouched tensors and files are
 * copied byte for byte, and quantization_config describes what was written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quantizeModel, readCompressedCheckpoint, rtnQuantizeModel } from '../../src/quant/index.ts';
import { getScheme, withOverrides, schemeNames } from '../../src/quant/schemes.ts';
import { linearNames } from '../../src/checkpoint/config.ts';
import { CheckpointTensors } from '../../src/checkpoint/tensors.ts';
import { makeTinyModel, TINY } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'ct-rt-'));
const model = makeTinyModel(join(root, 'model'), 7);
const allLinears = Array.from({ length: TINY.layers }, (_, i) => linearNames(i)).flat();
const amax = new Map(allLinears.map((n, i) => [n, 1.5 + i / 8]));

const cases: { scheme: string; groupSize?: number; asym?: boolean; scaleDtype?: 'F16' | 'BF16' | 'F32' }[] = [
  ...['W2A16', 'W3A16', 'W4A16', 'W8A16'].flatMap((s) => [
    { scheme: s, groupSize: 32 },
    { scheme: s, groupSize: 32, asym: true },
    { scheme: s, groupSize: 64, scaleDtype: 'BF16' as const },
    { scheme: s, groupSize: -1, asym: true },
  ]),
  { scheme: 'W3A16', groupSize: 48, asym: true, scaleDtype: 'F32' },
  { scheme: 'MXFP4A16' },
  { scheme: 'NVFP4A16' },
  { scheme: 'NVFP4' },
  { scheme: 'W8A8-FP8' },
  { scheme: 'W8A8-FP8-STATIC' },
];

test('every quantized scheme appears in the round-trip cases', () => {
  const covered = new Set(cases.map((c) => c.scheme));
  assert.deepEqual(schemeNames().filter((s) => s !== 'BF16' && !covered.has(s)), []);
});

for (const c of cases) {
  const label = `${c.scheme} g${c.groupSize ?? 'default'}${c.asym ? ' asym' : ''}${c.scaleDtype ? ' ' + c.scaleDtype : ''}`;
  test(`round trip is bit-exact: ${label}`, async () => {
    const out = join(root, label.replace(/\W+/g, '_'));
    const sum = await quantizeModel(model, c.scheme, 'rtn', { out, groupSize: c.groupSize, asym: c.asym, scaleDtype: c.scaleDtype, inputAmax: amax });
    assert.deepEqual(sum.quantized, allLinears);
    const scheme = withOverrides(getScheme(c.scheme), { groupSize: c.groupSize, symmetric: c.asym ? false : undefined });
    const direct = rtnQuantizeModel(model, scheme, { scaleDtype: sum.scaleDtype ?? undefined });
    const ck = readCompressedCheckpoint(out);
    assert.deepEqual(ck.quantized, [...allLinears].sort());
    for (const n of allLinears) {
      const want = direct.layers.get(n)!.dequantized;
      const got = ck.weights.get(`${n}.weight`)!;
      assert.equal(Buffer.compare(Buffer.from(got.buffer), Buffer.from(want.buffer)), 0, `${n}: dequantized weights differ`);
      assert.deepEqual(ck.formats.get(n), scheme.weights);
    }
    // Untouched tensors byte-identical; quantized layers have no plain `weight` unless FP8.
    const src = CheckpointTensors.open(model);
    const dst = CheckpointTensors.open(out);
    for (const n of src.names()) {
      const layer = n.replace(/\.weight$/, '');
      if (allLinears.includes(layer)) {
        if (scheme.weights.kind !== 'fp8') assert.ok(!dst.has(n), `${n} should be replaced`);
        continue;
      }
      assert.deepEqual(dst.readBytes(n), src.readBytes(n), n);
    }
    src.close();
    dst.close();
    assert.equal(readFileSync(join(out, 'tokenizer.json'), 'utf8'), readFileSync(join(model, 'tokenizer.json'), 'utf8'));
    const qc = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config;
    assert.equal(qc.quant_method, 'compressed-tensors');
    assert.deepEqual(qc.ignore, ['lm_head']);
    // Activation settings.
    const act = ck.activations.get(allLinears[0])!;
    if (c.scheme === 'NVFP4') assert.equal(act.inputGlobalScale, Math.fround(2688 * Math.fround(1 / 1.5)));
    else if (c.scheme === 'W8A8-FP8-STATIC') assert.equal(act.inputScale, Math.fround(1.5 / 448));
    else if (c.scheme === 'W8A8-FP8') assert.deepEqual([act.kind, act.dynamic, act.strategy], ['fp8', true, 'token']);
    else assert.equal(act.kind, 'none');
    assert.ok(!readdirSync(root).some((f) => f.includes('.tmp-')), 'no temporary directory left behind');
  });
}

test('NVFP4: fused q/k/v and gate/up share one global scale (the smallest)', () => {
  const q = rtnQuantizeModel(model, getScheme('NVFP4A16'));
  const gs = (n: string) => q.layers.get(`model.layers.0.${n}`)!.globalScale!;
  assert.equal(gs('self_attn.q_proj'), gs('self_attn.k_proj'));
  assert.equal(gs('self_attn.k_proj'), gs('self_attn.v_proj'));
  assert.equal(gs('mlp.gate_proj'), gs('mlp.up_proj'));
  // k_proj has the widest weights (std 0.2), so it sets the q/k/v scale: 2688 / amax(k).
  const k = CheckpointTensors.open(model);
  const kw = k.readFloat32('model.layers.0.self_attn.k_proj.weight');
  k.close();
  assert.equal(gs('self_attn.q_proj'), Math.fround(2688 * Math.fround(1 / kw.reduce((m, x) => Math.max(m, Math.abs(x)), 0))));
  assert.notEqual(gs('self_attn.o_proj'), gs('self_attn.q_proj'));
});

test('skip-unaligned and ignore leave layers in full precision and list them in ignore', async () => {
  const out = join(root, 'skip');
  const sum = await quantizeModel(model, 'W4A16', 'rtn', { out, groupSize: 32, skipUnaligned: true, ignore: ['model.layers.1.self_attn.o_proj'] });
  const unaligned = allLinears.filter((n) => /gate_proj|up_proj|down_proj/.test(n));
  assert.deepEqual(sum.skipped.map((s) => s.name).sort(), [...unaligned, 'model.layers.1.self_attn.o_proj'].sort());
  const ck = readCompressedCheckpoint(out);
  assert.equal(ck.quantized.length, allLinears.length - unaligned.length - 1);
  const qc = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config;
  assert.deepEqual(qc.ignore, ['lm_head', ...[...unaligned, 'model.layers.1.self_attn.o_proj'].sort()]);
  const dst = CheckpointTensors.open(out);
  assert.equal(dst.info('model.layers.0.mlp.down_proj.weight').dtype, 'F32');
  dst.close();
});

test('bf16 models get bf16 scales by default (what vLLM loads the scale as)', async () => {
  const bf = makeTinyModel(join(root, 'bf16model'), 3, 'BF16');
  const out = join(root, 'bf16out');
  const sum = await quantizeModel(bf, 'W4A16', 'rtn', { out, groupSize: 32 });
  assert.equal(sum.scaleDtype, 'BF16');
  const dst = CheckpointTensors.open(out);
  assert.equal(dst.info('model.layers.0.self_attn.q_proj.weight_scale').dtype, 'BF16');
  dst.close();
  assert.ok(existsSync(join(out, 'config.json')));
});

const stories = join(import.meta.dirname, '..', '..', 'models', 'stories260k');
test('stories260k through the CLI: group size 32 by default, 172-wide layers padded, bit-exact read back', { skip: !existsSync(join(stories, 'config.json')) && 'models/stories260k not converted yet' }, async () => {
  const { spawnSync } = await import('node:child_process');
  const out = join(root, 'stories-w4');
  const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'bench.js'), 'quantize', '--model', 'stories260k', '--scheme', 'W4A16', '--out', out, '--json'], { encoding: 'utf8', cwd: join(import.meta.dirname, '..', '..') });
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.groupSize, 32);
  assert.equal(s.quantized.length, 35);
  const dst = CheckpointTensors.open(out);
  assert.deepEqual(dst.info('model.layers.0.mlp.down_proj.weight_scale').shape, [64, 6]); // ceil(172/32)
  assert.deepEqual(dst.info('model.layers.0.mlp.down_proj.weight_packed').shape, [64, 22]); // 172*4/32 = 21.5 -> 22 words
  dst.close();
  const direct = rtnQuantizeModel(stories, withOverrides(getScheme('W4A16'), { groupSize: 32 }), { scaleDtype: 'F16' });
  const ck = readCompressedCheckpoint(out);
  for (const [n, q] of direct.layers) assert.deepEqual(ck.weights.get(`${n}.weight`), q.dequantized, n);
});

test('RTN refuses static-activation schemes without calibrated ranges, before doing any work', async () => {
  const out = join(root, 'nvfp4-nocal');
  await assert.rejects(quantizeModel(model, 'NVFP4', 'rtn', { out }), /calibrated ranges, which RTN does not collect/);
  await assert.rejects(quantizeModel(model, 'W8A8-FP8-STATIC', 'rtn', { out }), /W8A8-FP8 \(dynamic\)/);
  assert.ok(!existsSync(out));
});
