// AutoRound on the bundled stories260k: RTN equivalence of the QDQ forward, seeded
// reproducibility, and loss reduction against RTN on a real block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readDecoderLinears } from '../../../src/quant/rtn/index.ts';
import { quantizeWeight } from '../../../src/quant/formats/index.ts';
import { getScheme, withOverrides, type WeightFormat } from '../../../src/quant/schemes.ts';
import { makeQLinear, qdqForward, formatsQuantize } from '../../../src/quant/autoround/qdq.ts';
import { autoRound, getRecipe } from '../../../src/quant/autoround/index.ts';
import { mulberry32 } from '../../../src/quant/autoround/optimize.ts';

const MODEL = join(fileURLToPath(import.meta.url), '../../../../models/stories260k');

const FORMATS: [string, WeightFormat][] = [
  ['W4A16 g32 sym', { kind: 'int', bits: 4, groupSize: 32, symmetric: true }],
  ['W2A16 g32 sym', { kind: 'int', bits: 2, groupSize: 32, symmetric: true }],
  ['W3A16 g32 asym', { kind: 'int', bits: 3, groupSize: 32, symmetric: false }],
  ['W8A16 g32 sym', { kind: 'int', bits: 8, groupSize: 32, symmetric: true }],
  ['MXFP4', { kind: 'mxfp4', bits: 4, groupSize: 32, symmetric: true }],
  ['NVFP4', { kind: 'nvfp4', bits: 4, groupSize: 16, symmetric: true }],
  ['FP8', { kind: 'fp8', bits: 8, groupSize: -1, symmetric: true }],
];

test('QDQ forward with V=0, α=β=1 equals the RTN quantizer exactly (every layer of stories260k)', () => {
  const weights = readDecoderLinears(MODEL);
  for (const [label, fmt] of FORMATS) {
    for (const [name, lw] of weights) {
      const L = makeQLinear(name, fmt, lw.w, lw.rows, lw.cols, Float32Array);
      const own = new Float32Array(lw.w.length);
      qdqForward(L, own, false);
      const rtn = quantizeWeight(lw.w, lw.rows, lw.cols, fmt, { globalScale: fmt.kind === 'nvfp4' ? L.globalScale : undefined }).dequantized;
      let diff = 0;
      for (let i = 0; i < own.length; i++) if (own[i] !== rtn[i]) diff++;
      assert.equal(diff, 0, `${label} ${name}: ${diff} elements differ from RTN`);
    }
  }
});

test('QDQ forward with trained-looking V, α, β equals the formats quantizer given the same parameters', () => {
  const weights = readDecoderLinears(MODEL);
  const rand = mulberry32(7);
  const lw = weights.get('model.layers.1.mlp.down_proj')!;
  for (const [label, fmt] of FORMATS) {
    const L = makeQLinear('down', fmt, lw.w, lw.rows, lw.cols, Float32Array);
    for (let i = 0; i < L.v.length; i++) L.v[i] = Math.fround((rand() - 0.5) * 0.9);
    for (let i = 0; i < L.beta.length; i++) { L.beta[i] = Math.fround(0.6 + 0.4 * rand()); L.alpha[i] = Math.fround(0.6 + 0.4 * rand()); }
    const own = new Float32Array(lw.w.length);
    qdqForward(L, own, false);
    const ref = formatsQuantize(L).dequantized;
    let diff = 0;
    for (let i = 0; i < own.length; i++) if (own[i] !== ref[i]) diff++;
    assert.equal(diff, 0, `${label}: ${diff} of ${own.length} elements differ`);
  }
});

const SMALL = getRecipe('light', { iters: 6, nsamples: 4, seqlen: 64, batchSize: 2 });
const W4 = withOverrides(getScheme('W4A16'), { groupSize: 32 });

test('seeded AutoRound runs are bit-for-bit identical; another seed differs', async () => {
  const a = await autoRound(MODEL, W4, SMALL, { seed: 3, maxBlocks: 2 });
  const b = await autoRound(MODEL, W4, SMALL, { seed: 3, maxBlocks: 2 });
  const c = await autoRound(MODEL, W4, SMALL, { seed: 4, maxBlocks: 2 });
  assert.deepEqual(a.quantized, b.quantized);
  let sameAsOtherSeed = true;
  for (const name of a.quantized) {
    const qa = a.layers.get(name)!, qb = b.layers.get(name)!, qc = c.layers.get(name)!;
    assert.deepEqual(Buffer.from(qa.codes.buffer), Buffer.from(qb.codes.buffer), `${name} codes`);
    assert.deepEqual(Buffer.from(qa.scales.buffer), Buffer.from(qb.scales.buffer), `${name} scales`);
    assert.deepEqual(Buffer.from(qa.dequantized.buffer), Buffer.from(qb.dequantized.buffer), `${name} weights`);
    if (!Buffer.from(qa.dequantized.buffer).equals(Buffer.from(qc.dequantized.buffer))) sameAsOtherSeed = false;
  }
  assert.deepEqual(a.record.bestLossPerBlock, b.record.bestLossPerBlock);
  assert.equal(sameAsOtherSeed, false, 'a different seed should pick other samples and end elsewhere');
});

test('results are bit-for-bit independent of the number of worker threads', async () => {
  // 3 samples per step: lanes of unequal size (2 + 1), the main thread and a worker both busy.
  const r = getRecipe('light', { iters: 4, nsamples: 5, seqlen: 48, batchSize: 3 });
  const one = await autoRound(MODEL, W4, r, { seed: 9, maxBlocks: 2, threads: 1 });
  const two = await autoRound(MODEL, W4, r, { seed: 9, maxBlocks: 2, threads: 2 });
  assert.deepEqual(two.record.bestLossPerBlock, one.record.bestLossPerBlock);
  assert.deepEqual(two.record.actMax, one.record.actMax);
  for (const name of one.quantized) {
    assert.ok(Buffer.from(one.layers.get(name)!.dequantized.buffer).equals(Buffer.from(two.layers.get(name)!.dequantized.buffer)), name);
  }
});

test('a short run lowers the block-output MSE of real stories260k blocks below RTN', async () => {
  const r = await autoRound(MODEL, W4, getRecipe('light', { iters: 12, nsamples: 4, seqlen: 64, batchSize: 4 }), { seed: 1, maxBlocks: 2, measureMse: true });
  const rtn = r.record.rtnMsePerBlock!, ar = r.record.autoroundMsePerBlock!;
  for (let b = 0; b < rtn.length; b++) assert.ok(ar[b] < rtn[b], `block ${b}: AutoRound MSE ${ar[b]} is not below RTN ${rtn[b]}`);
  // The tuned layers are what the formats module writes: dequantized weights differ from RTN.
  assert.ok(r.quantized.length === 14);
});
