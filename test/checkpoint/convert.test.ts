/**
 * The converted stories260k checkpoint computes what llama2.c computes. A float64 forward
 * with run.c's semantics (adjacent-pair RoPE, KV cache, one token at a time) over the
 * ORIGINAL stories260K.bin, written here, is checked against the known greedy story; then
 * the HF-layout reference forward (test/helpers/reference-llama.ts) over the converted
 * safetensors must give the same logits. Finally the converter must reproduce the
 * committed files byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readModelConfig } from '../../src/checkpoint/config.ts';
import { convertStories260k } from '../../scripts/convert-stories260k.ts';
import { loadWeights, referenceLogits } from '../helpers/reference-llama.ts';

const REPO = resolve(import.meta.dirname, '..', '..');
const FIXTURES = join(REPO, '..', 'shared', 'fixtures');
const MODEL = join(REPO, 'models', 'stories260k');
const DATA = join(REPO, 'suites', 'data');

// ---- llama2.c's stories260K.bin and run.c's forward, in float64 ----------------------------

const bin = readFileSync(join(FIXTURES, 'stories260k', 'stories260K.bin'));
const [dim, hidden, nLayers, nHeads, nKv, vocab, seqLen] = Array.from({ length: 7 }, (_, i) => bin.readInt32LE(4 * i));
const hs = dim / nHeads;
const kvDim = nKv * hs;
let cursor = 28;
function take(n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = bin.readFloatLE(cursor + 4 * i);
  cursor += 4 * n;
  return a;
}
const W = {
  emb: take(vocab * dim),
  rmsAtt: take(nLayers * dim),
  wq: take(nLayers * dim * dim),
  wk: take(nLayers * kvDim * dim),
  wv: take(nLayers * kvDim * dim),
  wo: take(nLayers * dim * dim),
  rmsFfn: take(nLayers * dim),
  w1: take(nLayers * hidden * dim),
  w2: take(nLayers * dim * hidden),
  w3: take(nLayers * hidden * dim),
  rmsFinal: take(dim),
};

/** xout = W[layer] x, with W[layer] (n x d) starting at `off` in the block `w`. */
function matmul(w: Float64Array, off: number, x: Float64Array, n: number): Float64Array {
  const d = x.length;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += w[off + i * d + j] * x[j];
    out[i] = s;
  }
  return out;
}

function rmsnorm(x: Float64Array, w: Float64Array, off: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const k = 1 / Math.sqrt(ss / x.length + 1e-5);
  return x.map((v, i) => v * k * w[off + i]);
}

/** run.c's Transformer state: a KV cache filled one position at a time. */
function llama2c() {
  const keyCache = new Float64Array(nLayers * seqLen * kvDim);
  const valueCache = new Float64Array(nLayers * seqLen * kvDim);
  return (token: number, pos: number): Float64Array => {
    const x = W.emb.slice(token * dim, (token + 1) * dim);
    for (let l = 0; l < nLayers; l++) {
      const xb = rmsnorm(x, W.rmsAtt, l * dim);
      const q = matmul(W.wq, l * dim * dim, xb, dim);
      const k = matmul(W.wk, l * kvDim * dim, xb, kvDim);
      const v = matmul(W.wv, l * kvDim * dim, xb, kvDim);
      // RoPE on adjacent pairs (i, i+1), frequency from the index within the head
      for (let i = 0; i < dim; i += 2) {
        const freq = 1 / Math.pow(10000, (i % hs) / hs);
        const fcr = Math.cos(pos * freq);
        const fci = Math.sin(pos * freq);
        for (const vec of i < kvDim ? [q, k] : [q]) {
          const v0 = vec[i];
          const v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      const loff = l * seqLen * kvDim;
      keyCache.set(k, loff + pos * kvDim);
      valueCache.set(v, loff + pos * kvDim);
      const att = new Float64Array(dim);
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / (nHeads / nKv));
        const scores = new Float64Array(pos + 1);
        for (let t = 0; t <= pos; t++) {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[h * hs + i] * keyCache[loff + t * kvDim + kvh * hs + i];
          scores[t] = s / Math.sqrt(hs);
        }
        const max = Math.max(...scores);
        let sum = 0;
        for (let t = 0; t <= pos; t++) sum += scores[t] = Math.exp(scores[t] - max);
        for (let t = 0; t <= pos; t++) {
          for (let i = 0; i < hs; i++) att[h * hs + i] += (scores[t] / sum) * valueCache[loff + t * kvDim + kvh * hs + i];
        }
      }
      const o = matmul(W.wo, l * dim * dim, att, dim);
      for (let i = 0; i < dim; i++) x[i] += o[i];
      const xb2 = rmsnorm(x, W.rmsFfn, l * dim);
      const h1 = matmul(W.w1, l * hidden * dim, xb2, hidden);
      const h3 = matmul(W.w3, l * hidden * dim, xb2, hidden);
      for (let i = 0; i < hidden; i++) h1[i] = (h1[i] / (1 + Math.exp(-h1[i]))) * h3[i];
      const y = matmul(W.w2, l * dim * hidden, h1, dim);
      for (let i = 0; i < dim; i++) x[i] += y[i];
    }
    return matmul(W.emb, 0, rmsnorm(x, W.rmsFinal, 0), vocab); // classifier tied to the embedding
  };
}

/** run.c's decode over tok512.bin: drop the leading space after BOS, <0xNN> is byte NN. */
function runCDecode(ids: number[]): string {
  const tok = readFileSync(join(FIXTURES, 'stories260k', 'tok512.bin'));
  const pieces: Buffer[] = [];
  for (let off = 4, i = 0; i < 512; i++) {
    const len = tok.readInt32LE(off + 4);
    pieces.push(tok.subarray(off + 8, off + 8 + len));
    off += 8 + len;
  }
  const out: Buffer[] = [];
  for (let i = 1; i < ids.length; i++) {
    let p = pieces[ids[i]];
    if (ids[i - 1] === 1 && p[0] === 0x20) p = p.subarray(1);
    const m = /^<0x([0-9A-F]{2})>$/.exec(p.toString('latin1'));
    out.push(m ? Buffer.from([parseInt(m[1], 16)]) : p);
  }
  return Buffer.concat(out).toString('utf8');
}

function argmax(a: Float64Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

// ---- tests ---------------------------------------------------------------------------------

test('llama2.c forward over the original weights greedy-decodes the known story', () => {
  assert.deepEqual([dim, hidden, nLayers, nHeads, nKv, vocab, seqLen], [64, 172, 5, 8, 4, 512, 512]);
  const step = llama2c();
  const ids = [1, 403, 407, 261, 378];
  let logits: Float64Array = new Float64Array(0);
  for (let pos = 0; pos < ids.length; pos++) logits = step(ids[pos], pos);
  for (let n = 0; n < 40; n++) {
    ids.push(argmax(logits));
    logits = step(ids[ids.length - 1], ids.length - 1);
  }
  assert.equal(
    runCDecode(ids),
    'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.',
  );
});

test('config.json carries the llama2.c header', () => {
  const c = readModelConfig(MODEL);
  assert.deepEqual(
    [c.architecture, c.modelType, c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.vocabSize, c.maxPositions],
    ['LlamaForCausalLM', 'llama', 64, 172, 5, 8, 4, 8, 512, 512],
  );
  assert.deepEqual([c.rmsNormEps, c.ropeTheta, c.tieWordEmbeddings, c.bosTokenId, c.eosTokenId, c.qkNorm, c.attentionBias], [1e-5, 10000, true, 1, 2, false, false]);
  assert.equal(c.raw.torch_dtype, 'float32');
  assert.equal(c.raw.hidden_act, 'silu');
});

test('HF reference forward on the converted safetensors equals the llama2.c forward (1e-9)', () => {
  const config = readModelConfig(MODEL);
  const weights = loadWeights(MODEL);
  assert.equal(weights.has('lm_head.weight'), false, 'classifier must be tied, not stored');
  assert.equal(weights.size, 2 + 9 * 5);
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (const len of [1, 17, 48]) {
    const tokens = Array.from({ length: len }, () => Math.floor(rand() * 512));
    const ref = referenceLogits(config, weights, tokens);
    const step = llama2c();
    let maxDiff = 0;
    tokens.forEach((t, pos) => {
      const orig = step(t, pos);
      for (let v = 0; v < vocab; v++) maxDiff = Math.max(maxDiff, Math.abs(orig[v] - ref[pos * vocab + v]));
    });
    assert.ok(maxDiff < 1e-9, `length ${len}: max |logit difference| ${maxDiff}`);
  }
});

test('the converter reproduces the committed files byte for byte', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'conv260k-'));
  try {
    convertStories260k({ fixtures: FIXTURES, out: join(tmp, 'model'), dataOut: join(tmp, 'data') });
    for (const [mine, committed] of [
      [join(tmp, 'model'), MODEL],
      [join(tmp, 'data'), DATA],
    ]) {
      // suites/data also holds other bundled data sets; compare what the converter wrote
      const names = readdirSync(mine).sort();
      for (const n of names) assert.ok(readFileSync(join(mine, n)).equals(readFileSync(join(committed, n))), `${n} differs`);
    }
    assert.deepEqual(readdirSync(join(tmp, 'model')).sort(), [
      'LICENSE',
      'PROVENANCE.md',
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('a fixture with other bytes is refused with a UserError naming the sha256', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'conv260k-bad-'));
  try {
    for (const f of ['stories260k/stories260K.bin', 'stories260k/tok512.bin', 'tinystories/tinystories_validation_first1000.txt']) {
      mkdirSync(join(tmp, 'fx', f, '..'), { recursive: true });
      copyFileSync(join(FIXTURES, f), join(tmp, 'fx', f));
    }
    const tok = readFileSync(join(tmp, 'fx', 'stories260k', 'tok512.bin'));
    tok[100] ^= 1;
    writeFileSync(join(tmp, 'fx', 'stories260k', 'tok512.bin'), tok);
    assert.throws(() => convertStories260k({ fixtures: join(tmp, 'fx'), out: join(tmp, 'm'), dataOut: join(tmp, 'd') }), {
      name: 'UserError',
      message: /tok512\.bin: sha256 [0-9a-f]{64} .*differs from the expected 037cb335/,
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
