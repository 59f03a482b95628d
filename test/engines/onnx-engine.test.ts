/**
 * The ONNX engine against the independent float64 forward pass of test/helpers/reference-llama.ts,
 * on random small models covering each architecture feature, and on the bundled
 * stories260k model (greedy decoding must reproduce the known story).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { OnnxEngine } from '../../src/engines/onnx/engine.ts';
import { UserError } from '../../src/errors.ts';
import { rollingWindows } from '../../src/engines/rolling.ts';
import { CheckpointTensors } from '../../src/checkpoint/tensors.ts';
import { readModelConfig } from '../../src/checkpoint/config.ts';
import type { ModelConfig } from '../../src/checkpoint/config.ts';
import type { ActQuant } from '../../src/engines/onnx/actquant.ts';
import { referenceLogprobs } from '../helpers/reference-llama.ts';
import { baseConfig, reference64, rng, writeRandomModel } from './fixtures.ts';

/** The shared float64 reference forward (test/helpers), as one log-softmax row per position. */
function reference(cfg: ModelConfig, weights: ReadonlyMap<string, Float32Array>, tokens: readonly number[]): Float64Array[] {
  const flat = referenceLogprobs(cfg, new Map(weights), [...tokens]);
  const V = cfg.vocabSize;
  return tokens.map((_, i) => flat.subarray(i * V, (i + 1) * V));
}

const TOL = 1e-5;
/**
 * Full-distribution check: float32 logits carry a few ulps of their magnitude, so far-tail
 * log-probs (e.g. -16.7, ulp 1.9e-6) get a tolerance relative to their size.
 */
const near = (got: number, want: number) => Math.abs(got - want) <= TOL * Math.max(1, Math.abs(want));

const VARIANTS: [string, Record<string, unknown>][] = [
  ['llama MHA, tied head', {}],
  ['GQA (4 heads, 2 kv heads)', { num_key_value_heads: 2 }],
  ['Qwen3 q/k norm, head_dim 16 != hidden/heads, GQA', { model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], head_dim: 16, num_key_value_heads: 1 }],
  ['Qwen2 q/k/v biases, untied lm_head', { model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: false, rope_theta: 1000000 }],
  ['Mistral, rope_theta 1e6, eps 1e-6', { model_type: 'mistral', rope_theta: 1000000, rms_norm_eps: 1e-6, num_key_value_heads: 2 }],
];

const randomTokens = (r: () => number, n: number, V: number) => Array.from({ length: n }, () => Math.floor(r() * V));
const argmax = (row: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[b]) b = i;
  return b;
};

for (const [label, over] of VARIANTS) {
  test(`${label}: target log-probs and full top-k equal the float64 reference`, async () => {
    const m = writeRandomModel(baseConfig(over), 17);
    const V = m.config.vocabSize;
    const engine = await OnnxEngine.open(m.dir, { batchSize: 2 });
    const r = rng(23);
    const seqs = [randomTokens(r, 24, V), randomTokens(r, 9, V), randomTokens(r, 2, V)];
    const res = await engine.topLogprobs(seqs.map((tokens) => ({ tokens, k: V })));
    seqs.forEach((tokens, s) => {
      const ref = reference(m.config, m.weights, tokens);
      const out = res[s];
      assert.equal(out.positions, tokens.length - 1);
      for (let i = 0; i < out.positions; i++) {
        assert.ok(Math.abs(out.targetLogprobs[i] - ref[i][tokens[i + 1]]) < TOL, `seq ${s} pos ${i}`);
        const ids = out.ids.subarray(i * V, (i + 1) * V);
        assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: V }, (_, j) => j), 'k = vocab lists every token once');
        for (let j = 0; j < V; j++) {
          assert.ok(near(out.logprobs[i * V + j], ref[i][ids[j]]), `seq ${s} pos ${i} rank ${j}: ${out.logprobs[i * V + j]} vs ${ref[i][ids[j]]}`);
          if (j > 0) assert.ok(out.logprobs[i * V + j] <= out.logprobs[i * V + j - 1], `sorted, most likely first (pos ${i} rank ${j})`);
        }
      }
    });
    await engine.close();
  });
}

test('loglikelihood = sum of reference log-probs of the continuation; isGreedy and truncation', async () => {
  const m = writeRandomModel(baseConfig({ num_key_value_heads: 2 }), 3);
  const V = m.config.vocabSize;
  const engine = await OnnxEngine.open(m.dir, { batchSize: 3 });
  const r = rng(4);
  const ctx = [1, ...randomTokens(r, 10, V)];
  // A greedy continuation of 3 tokens, chosen by the reference.
  const greedy: number[] = [];
  for (let i = 0; i < 3; i++) {
    const ref = reference(m.config, m.weights, [...ctx, ...greedy]);
    greedy.push(argmax(ref[ref.length - 1]));
  }
  const notGreedy = [...greedy];
  notGreedy[1] = (notGreedy[1] + 1) % V;
  const longCtx = [1, ...randomTokens(r, 40, V)]; // 40 + 1 + 3 > L + 1 = 25: left-truncated
  const cont = randomTokens(r, 3, V);
  const [g, ng, trunc] = await engine.loglikelihood([
    { context: ctx, continuation: greedy },
    { context: ctx, continuation: notGreedy },
    { context: longCtx, continuation: cont },
  ]);
  const check = (got: { logprob: number; tokenLogprobs: Float64Array }, whole: number[], n: number) => {
    const ref = reference(m.config, m.weights, whole);
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const pos = whole.length - n - 1 + j;
      assert.ok(Math.abs(got.tokenLogprobs[j] - ref[pos][whole[pos + 1]]) < TOL, `token ${j}`);
      sum += ref[pos][whole[pos + 1]];
    }
    assert.ok(Math.abs(got.logprob - sum) < 3 * TOL, `sum ${got.logprob} vs ${sum}`);
  };
  check(g, [...ctx, ...greedy], 3);
  check(ng, [...ctx, ...notGreedy], 3);
  // lm-eval keeps the last L+1 tokens (L = 24 here): the model sees the last 24 of them.
  check(trunc, [...longCtx, ...cont].slice(-25), 3);
  assert.equal(g.isGreedy, true);
  assert.equal(ng.isGreedy, false);
  await assert.rejects(engine.loglikelihood([{ context: [], continuation: [3] }]), UserError);
  await assert.rejects(engine.loglikelihood([{ context: [1], continuation: [V] }]), UserError);
  await engine.close();
});

test('batch size, padding and threads do not change results; repeated runs are bit-identical', async () => {
  const m = writeRandomModel(baseConfig({ num_key_value_heads: 2, hidden_size: 64, intermediate_size: 172, max_position_embeddings: 64 }), 8);
  const V = m.config.vocabSize;
  const r = rng(12);
  const reqs = Array.from({ length: 11 }, () => ({ context: [1, ...randomTokens(r, Math.floor(r() * 40), V)], continuation: randomTokens(r, 1 + Math.floor(r() * 6), V) }));
  const run = async (batchSize: number, threads: number) => {
    const e = await OnnxEngine.open(m.dir, { batchSize, threads });
    const out = (await e.loglikelihood(reqs)).map((o) => [...o.tokenLogprobs]);
    await e.close();
    return out;
  };
  const base = await run(1, 1);
  assert.deepEqual(await run(1, 1), base, 'same settings: identical bits');
  // Observed with onnxruntime 1.30 on x86-64: bit-identical for every combination below.
  // The assertion allows a few float32 ulps, which a different GEMM kernel could introduce.
  for (const [bs, th] of [[4, 1], [11, 1], [3, 2]]) {
    const got = await run(bs, th);
    got.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - base[i][j]) <= 2e-6, `batch ${bs} threads ${th}: request ${i} token ${j}`)));
  }
});

test('loglikelihoodRolling scores each token once over lm-eval windows (L = 8)', async () => {
  const m = writeRandomModel(baseConfig(), 5);
  const V = m.config.vocabSize;
  const engine = await OnnxEngine.open(m.dir, { maxLength: 8, batchSize: 4 });
  const r = rng(6);
  const docs = [randomTokens(r, 30, V), randomTokens(r, 3, V), []];
  const res = await engine.loglikelihoodRolling(docs.map((tokens) => ({ tokens })));
  docs.forEach((doc, d) => {
    let total = 0;
    const per = new Float64Array(doc.length);
    for (const w of rollingWindows(doc, 8, 1)) {
      const ref = reference(m.config, m.weights, w.tokens.slice(0, -1));
      for (let j = 0; j < w.scoredCount; j++) {
        const pos = w.contextLength - 1 + j;
        per[w.scoredStart + j] = ref[pos][w.tokens[pos + 1]];
        total += per[w.scoredStart + j];
      }
    }
    assert.equal(res[d].tokenLogprobs.length, doc.length);
    per.forEach((v, i) => assert.ok(Math.abs(res[d].tokenLogprobs[i] - v) < TOL, `doc ${d} token ${i}`));
    assert.ok(Math.abs(res[d].logprob - total) < 1e-4, `doc ${d}: ${res[d].logprob} vs ${total}`);
  });
  assert.equal(res[2].logprob, 0);
  await engine.close();
});

test('generateGreedy follows the reference argmax', async () => {
  const m = writeRandomModel(baseConfig({ model_type: 'qwen3', head_dim: 8, num_key_value_heads: 2 }), 9);
  const engine = await OnnxEngine.open(m.dir);
  const prompt = [1, 5, 9];
  const got = await engine.generateGreedy(prompt, 6);
  const seq = [...prompt];
  for (let i = 0; i < 6; i++) {
    const ref = reference(m.config, m.weights, seq);
    seq.push(argmax(ref[ref.length - 1]));
  }
  assert.deepEqual(got, seq.slice(prompt.length));
  await assert.rejects(engine.generateGreedy(prompt, 30), UserError);
  await engine.close();
});

test('weights overrides replace checkpoint tensors by name; unknown names are a UserError', async () => {
  const m = writeRandomModel(baseConfig({ num_key_value_heads: 2 }), 10);
  const r = rng(1);
  const name = 'model.layers.1.mlp.down_proj.weight';
  const changed = m.weights.get(name)!.map(() => (r() * 2 - 1) * 0.5);
  const engine = await OnnxEngine.open(m.dir, { weights: new Map([[name, changed]]) });
  const tokens = [1, 7, 30, 2, 44, 18, 5];
  const [got] = await engine.topLogprobs([{ tokens, k: 1 }]);
  const refNew = reference(m.config, new Map([...m.weights, [name, changed]]), tokens);
  const refOld = reference(m.config, m.weights, tokens);
  let movedFromOld = 0;
  for (let i = 0; i < tokens.length - 1; i++) {
    assert.ok(Math.abs(got.targetLogprobs[i] - refNew[i][tokens[i + 1]]) < TOL, `pos ${i}`);
    movedFromOld = Math.max(movedFromOld, Math.abs(got.targetLogprobs[i] - refOld[i][tokens[i + 1]]));
  }
  assert.ok(movedFromOld > 1e-3, 'the override was actually used');
  await engine.close();
  await assert.rejects(OnnxEngine.open(m.dir, { weights: new Map([['model.layers.9.mlp.down_proj.weight', changed]]) }), UserError);
  await assert.rejects(OnnxEngine.open(m.dir, { weights: new Map([[name, changed.subarray(1)]]) }), UserError);
  await assert.rejects(OnnxEngine.open(m.dir, { actQuant: new Map([['model.layers.0.mlp.nope', { kind: 'fp8', dynamic: true, granularity: 'token' }]]) }), UserError);
});

const ACT_CASES: [string, ActQuant][] = [
  ['FP8 dynamic per-token', { kind: 'fp8', dynamic: true, granularity: 'token' }],
  ['FP8 static per-tensor', { kind: 'fp8', dynamic: false, granularity: 'tensor', staticScale: 4 / 448 }],
  ['NVFP4 static global scale', { kind: 'nvfp4', dynamic: false, granularity: 'tensor', staticScale: (448 * 6) / 5 }],
  ['NVFP4 dynamic per-token global scale', { kind: 'nvfp4', dynamic: true, granularity: 'token' }],
];

// Float64 quantizers written here from formats.md §2, §4.1, §5.2 (grids by enumeration).
const E4M3: number[] = [];
for (let c = 0; c <= 0x7e; c++) E4M3.push((c >> 3) === 0 ? (c & 7) * 2 ** -9 : (1 + (c & 7) / 8) * 2 ** ((c >> 3) - 7));
const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
const onGrid = (grid: number[], v: number) => {
  const a = Math.min(Math.abs(v), grid[grid.length - 1]);
  let best = 0;
  for (let i = 1; i < grid.length; i++) if (Math.abs(grid[i] - a) < Math.abs(grid[best] - a)) best = i;
  return Math.sign(v) * grid[best];
};
function quantizeRow(q: ActQuant, row: Float64Array): Float64Array {
  let amax = 0;
  for (const v of row) amax = Math.max(amax, Math.abs(v));
  if (q.kind === 'fp8') {
    const s = q.dynamic ? Math.max(amax / 448, 1 / (448 * 512)) : q.staticScale!;
    return row.map((v) => onGrid(E4M3, v / s) * s);
  }
  const gs = q.dynamic ? (448 * 6) / amax : q.staticScale!;
  const out = new Float64Array(row.length);
  for (let b = 0; b < row.length; b += 16) {
    const blk = row.subarray(b, b + 16);
    let bmax = 0;
    for (const v of blk) bmax = Math.max(bmax, Math.abs(v));
    const s8 = onGrid(E4M3, (gs * bmax) / 6) || 0.125;
    const e = s8 / gs;
    blk.forEach((v, i) => (out[b + i] = onGrid(E2M1, v / e) * e));
  }
  return out;
}

for (const [label, q] of ACT_CASES) {
  test(`${label} activation quantization is applied to every listed Linear input`, async (t) => {
    const m = writeRandomModel(baseConfig({ num_key_value_heads: 2 }), 11);
    const modules = [...m.weights.keys()].filter((n) => /_proj\.weight$/.test(n)).map((n) => n.slice(0, -'.weight'.length));
    const actQuant = new Map(modules.map((n) => [n, q]));
    const engine = await OnnxEngine.open(m.dir, { actQuant });
    const tokens = [1, 17, 3, 29, 40, 8, 12, 55];
    const [got] = await engine.topLogprobs([{ tokens, k: 1 }]);
    // The shared reference has no activation hook, so this uses fixtures.ts's float64 forward.
    const ref = reference64(m.config, m.weights, tokens, (module, row) => (actQuant.has(module) ? quantizeRow(q, row) : row));
    const plain = reference(m.config, m.weights, tokens);
    let maxErr = 0;
    let maxMove = 0;
    for (let i = 0; i < tokens.length - 1; i++) {
      maxErr = Math.max(maxErr, Math.abs(got.targetLogprobs[i] - ref[i][tokens[i + 1]]));
      maxMove = Math.max(maxMove, Math.abs(plain[i][tokens[i + 1]] - ref[i][tokens[i + 1]]));
    }
    t.diagnostic(`max |engine - quantized reference| = ${maxErr.toExponential(2)}; quantization moved log-probs by up to ${maxMove.toFixed(3)}`);
    // float32 vs float64 activations could flip an element to a neighbouring grid value, so
    // the bound is looser than for the plain forward (observed: a few 1e-6).
    assert.ok(maxMove > 20 * maxErr, `quantization moves log-probs by ${maxMove}, engine error ${maxErr}`);
    assert.ok(maxErr < 1e-3, `engine vs quantized reference: ${maxErr}`);
    await engine.close();
  });
}

test('the local float64 forward (fixtures.ts) agrees with the shared reference', () => {
  const m = writeRandomModel(baseConfig({ model_type: 'qwen3', head_dim: 16, num_key_value_heads: 2 }), 2);
  const tokens = [1, 4, 9, 16, 25, 36];
  const a = reference64(m.config, m.weights, tokens);
  const b = reference(m.config, m.weights, tokens);
  a.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - b[i][j]) < 1e-9, `pos ${i} token ${j}`)));
});

const STORIES = new URL('../../models/stories260k', import.meta.url).pathname;
const haveStories = existsSync(`${STORIES}/model.safetensors`);

test('stories260k: greedy decoding of BOS + "Once upon a time" reproduces the known story', { skip: !haveStories && 'models/stories260k not converted yet' }, async () => {
  const { loadTokenizer } = await import('../../src/checkpoint/tokenizer.ts');
  const engine = await OnnxEngine.open(STORIES);
  const prompt = [1, 403, 407, 261, 378];
  const out = await engine.generateGreedy(prompt, 40);
  const tok = await loadTokenizer(STORIES);
  assert.equal(
    tok.decode([...prompt, ...out]),
    'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.',
  );
  await engine.close();
});

test('stories260k: target log-probs and k = vocab top-k equal the float64 reference', { skip: !haveStories && 'models/stories260k not converted yet' }, async () => {
  const config = readModelConfig(STORIES);
  const ck = CheckpointTensors.open(STORIES);
  const weights = new Map(ck.names().map((n) => [n, ck.readFloat32(n)]));
  ck.close();
  const V = config.vocabSize;
  const engine = await OnnxEngine.open(STORIES, { batchSize: 2 });
  const r = rng(77);
  const seqs = [[1, ...randomTokens(r, 47, V)], [1, 403, 407, 261, 378, 11, 90], [1, ...randomTokens(r, 20, V)]];
  const res = await engine.topLogprobs(seqs.map((tokens) => ({ tokens, k: V })));
  seqs.forEach((tokens, s) => {
    const ref = reference(config, weights, tokens);
    for (let i = 0; i < tokens.length - 1; i++) {
      assert.ok(near(res[s].targetLogprobs[i], ref[i][tokens[i + 1]]), `seq ${s} pos ${i}`);
      for (let j = 0; j < V; j++) assert.ok(near(res[s].logprobs[i * V + j], ref[i][res[s].ids[i * V + j]]), `seq ${s} pos ${i} rank ${j}`);
    }
  });
  const [ll] = await engine.loglikelihood([{ context: seqs[1].slice(0, 5), continuation: seqs[1].slice(5) }]);
  const ref = reference(config, weights, seqs[1]);
  assert.ok(Math.abs(ll.logprob - (ref[4][11] + ref[5][90])) < 2 * TOL, `${ll.logprob} vs ${ref[4][11] + ref[5][90]}`);
  await engine.close();
});

test('config features the graph does not implement are refused, not silently ignored', async () => {
  // Refused when config.json is read (src/checkpoint/config.ts), by name.
  for (const [over, named] of [
    [{ rope_scaling: { rope_type: 'yarn', factor: 8 } }, /RoPE type "yarn"/],
    [{ hidden_act: 'gelu' }, /hidden_act "gelu"/],
    [{ mlp_bias: true }, /mlp_bias/],
  ] as const) {
    assert.throws(() => writeRandomModel(baseConfig(over), 1), (e: unknown) => e instanceof UserError && named.test(e.message) && /not supported/.test(e.message), JSON.stringify(over));
  }
  // A sliding window only changes results past its length: refused by the engine for a longer window.
  const sw = writeRandomModel(baseConfig({ model_type: 'mistral', sliding_window: 8 }), 1);
  await assert.rejects(OnnxEngine.open(sw.dir), (e: unknown) => e instanceof UserError && /sliding_window 8 .*not supported by the embedded ONNX engine/.test(e.message));
  // A sliding window longer than every sequence changes nothing, and rope_scaling null is the default.
  const ok = writeRandomModel(baseConfig({ model_type: 'mistral', sliding_window: 4096, rope_scaling: null }), 1);
  await (await OnnxEngine.open(ok.dir)).close();
});
