/**
 * The optional MatMulNBits (int4) path scores the same as the float32 fake-quant graph
 * fed the same dequantized weights, and as the float64 reference on those weights.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { OnnxEngine } from '../../src/engines/onnx/engine.ts';
import type { Int4Linear } from '../../src/engines/onnx/nbits.ts';
import { UserError } from '../../src/errors.ts';
import { linearNames, readModelConfig, type ModelConfig } from '../../src/checkpoint/config.ts';
import { referenceLogprobs, loadWeights } from '../helpers/reference-llama.ts';
import { baseConfig, rng, writeRandomModel } from './fixtures.ts';

/** Round half to even (JS Math.round rounds halves up). */
const rne = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** A plain int4 RTN written here: symmetric (codes -8..7, scale amax/7.5) or asymmetric (zero points). */
function quantize(w: Float32Array, out: number, inF: number, groupSize: number, asym: boolean): { spec: Int4Linear; deq: Float32Array } {
  const blocks = Math.ceil(inF / groupSize);
  const codes = new Int8Array(out * inF);
  const scales = new Float32Array(out * blocks);
  const zeroPoints = asym ? new Int8Array(out * blocks) : undefined;
  const deq = new Float32Array(out * inF);
  for (let n = 0; n < out; n++) {
    for (let b = 0; b < blocks; b++) {
      const lo = b * groupSize;
      const hi = Math.min(inF, lo + groupSize);
      let mn = 0;
      let mx = 0;
      for (let k = lo; k < hi; k++) {
        mn = Math.min(mn, w[n * inF + k]);
        mx = Math.max(mx, w[n * inF + k]);
      }
      const s = Math.fround(asym ? (mx - mn) / 15 || 1e-8 : Math.max(-mn, mx) / 7.5 || 1e-8);
      const zp = asym ? Math.min(7, Math.max(-8, rne(-8 - mn / s))) : 0;
      scales[n * blocks + b] = s;
      if (zeroPoints) zeroPoints[n * blocks + b] = zp;
      for (let k = lo; k < hi; k++) {
        const q = Math.min(7, Math.max(-8, rne(w[n * inF + k] / s + zp)));
        codes[n * inF + k] = q;
        deq[n * inF + k] = Math.fround((q - zp) * s);
      }
    }
  }
  return { spec: { groupSize, codes, scales, zeroPoints }, deq };
}

function quantizeModel(cfg: ModelConfig, weights: ReadonlyMap<string, Float32Array>, groupSize: number, asymEvery = 0) {
  const int4 = new Map<string, Int4Linear>();
  const deqWeights = new Map<string, Float32Array>();
  let i = 0;
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const module of linearNames(l)) {
      const w = weights.get(`${module}.weight`)!;
      const inF = module.endsWith('down_proj') ? cfg.intermediateSize : module.endsWith('o_proj') ? cfg.numHeads * cfg.headDim : cfg.hiddenSize;
      const { spec, deq } = quantize(w, w.length / inF, inF, groupSize, asymEvery > 0 && i++ % asymEvery === 0);
      int4.set(module, spec);
      deqWeights.set(`${module}.weight`, deq);
    }
  }
  return { int4, deqWeights };
}

test('MatMulNBits path = fake-quant Gemm path = float64 reference on the dequantized weights (padded groups, zero points, Qwen2 biases)', async (t) => {
  // intermediate 40 with group 16: the down_proj rows end in a short, padded group.
  const m = writeRandomModel(baseConfig({ model_type: 'qwen2', num_key_value_heads: 2, tie_word_embeddings: false }), 21);
  const { int4, deqWeights } = quantizeModel(m.config, m.weights, 16, 3);
  const fake = await OnnxEngine.open(m.dir, { weights: deqWeights, batchSize: 3 });
  const nbits = await OnnxEngine.open(m.dir, { int4, batchSize: 3 });
  const r = rng(8);
  const seqs = [20, 7, 13].map((n) => Array.from({ length: n }, () => Math.floor(r() * m.config.vocabSize)));
  const a = await fake.topLogprobs(seqs.map((tokens) => ({ tokens, k: 5 })));
  const b = await nbits.topLogprobs(seqs.map((tokens) => ({ tokens, k: 5 })));
  const all = new Map([...m.weights, ...deqWeights]);
  let maxAB = 0;
  seqs.forEach((tokens, s) => {
    const ref = referenceLogprobs(m.config, all, tokens);
    const V = m.config.vocabSize;
    for (let i = 0; i < tokens.length - 1; i++) {
      const want = ref[i * V + tokens[i + 1]];
      assert.ok(Math.abs(a[s].targetLogprobs[i] - want) < 1e-5, `fake-quant seq ${s} pos ${i}`);
      assert.ok(Math.abs(b[s].targetLogprobs[i] - want) < 1e-5, `MatMulNBits seq ${s} pos ${i}`);
      maxAB = Math.max(maxAB, Math.abs(a[s].targetLogprobs[i] - b[s].targetLogprobs[i]));
    }
    assert.deepEqual([...b[s].ids], [...a[s].ids], `top-5 ids of seq ${s}`);
  });
  t.diagnostic(`max |MatMulNBits - fake-quant| target log-prob: ${maxAB.toExponential(2)}`);
  await fake.close();
  await nbits.close();
});

test('int4 inputs are validated with one-line UserErrors', async () => {
  const m = writeRandomModel(baseConfig(), 22);
  const { int4, deqWeights } = quantizeModel(m.config, m.weights, 16);
  const q = int4.get('model.layers.0.self_attn.q_proj')!;
  await assert.rejects(OnnxEngine.open(m.dir, { int4: new Map([['model.layers.0.self_attn.q_proj', { ...q, groupSize: 24 }]]) }), UserError);
  await assert.rejects(OnnxEngine.open(m.dir, { int4: new Map([['model.layers.0.self_attn.q_proj', { ...q, scales: q.scales.subarray(1) }]]) }), UserError);
  await assert.rejects(OnnxEngine.open(m.dir, { int4: new Map([['lm_head', q]]) }), UserError);
  await assert.rejects(
    OnnxEngine.open(m.dir, { int4, weights: new Map([['model.layers.0.self_attn.q_proj.weight', deqWeights.get('model.layers.0.self_attn.q_proj.weight')!]]) }),
    UserError,
  );
});

const STORIES = new URL('../../models/stories260k', import.meta.url).pathname;
test('stories260k W4 group 32: MatMulNBits and fake-quant give the same rolling log-likelihood', { skip: !existsSync(`${STORIES}/model.safetensors`) && 'models/stories260k missing' }, async (t) => {
  const weights = loadWeights(STORIES);
  const { int4, deqWeights } = quantizeModel(readModelConfig(STORIES), weights, 32);
  const fake = await OnnxEngine.open(STORIES, { weights: deqWeights, maxLength: 64 });
  const nbits = await OnnxEngine.open(STORIES, { int4, maxLength: 64 });
  const r = rng(30);
  const docs = [150, 90].map((n) => ({ tokens: Array.from({ length: n }, () => 3 + Math.floor(r() * 500)) }));
  const [a, b] = [await fake.loglikelihoodRolling(docs), await nbits.loglikelihoodRolling(docs)];
  docs.forEach((_, d) => {
    assert.ok(Math.abs(a[d].logprob - b[d].logprob) < 1e-4, `doc ${d}: ${a[d].logprob} vs ${b[d].logprob}`);
    a[d].tokenLogprobs.forEach((v, i) => assert.ok(Math.abs(v - b[d].tokenLogprobs[i]) < 1e-5, `doc ${d} token ${i}`));
  });
  t.diagnostic(`rolling log-likelihood fake-quant ${a[0].logprob.toFixed(6)} vs MatMulNBits ${b[0].logprob.toFixed(6)}`);
  await fake.close();
  await nbits.close();
});
