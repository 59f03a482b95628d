// The AutoRound block's tuned kernels against plain implementations written here: the
// blocked matrix product and its transposed variants, the inlined exp of the softmax, and the
// whole stories260k forward (head_dim 8: the unrolled attention path) through our block
// against the independent float64 reference model of test/helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expNeg, mmNN, mmNT, mmTNacc, sigmoid } from '../../../src/quant/autoround/kernels.ts';
import { setSimd, simdAttentionAvailable, simdAvailable } from '../../../src/quant/autoround/simd.ts';
import { blockBackward } from '../../../src/quant/autoround/block.ts';
import { blockForward, blockShape, BlockWorkspace, type BlockParams } from '../../../src/quant/autoround/block.ts';
import { mulberry32 } from '../../../src/quant/autoround/optimize.ts';
import { readModelConfig, linearNames } from '../../../src/checkpoint/config.ts';
import { loadWeights, referenceLogits } from '../../helpers/reference-llama.ts';

const rand = mulberry32(99);
const rnd = (n: number): Float64Array => Float64Array.from({ length: n }, () => rand() * 2 - 1);

function naive(a: (i: number, p: number) => number, b: (p: number, j: number) => number, m: number, n: number, k: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) { let s = 0; for (let p = 0; p < k; p++) s += a(i, p) * b(p, j); c[i * n + j] = s; }
  return c;
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

test('mmNT, mmNN and mmTNacc equal a plain triple loop (odd shapes, remainders, accumulate)', () => {
  for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [7, 9, 4], [8, 12, 16], [5, 3, 2]]) {
    const A = rnd(m * k), B = rnd(n * k);
    const C = new Float64Array(m * n);
    mmNT(A, B, C, m, n, k);
    close(C, naive((i, p) => A[i * k + p], (p, j) => B[j * k + p], m, n, k), 1e-14, `mmNT ${m}x${n}x${k}`);
    const C0 = rnd(m * n), acc = C0.slice();
    mmNT(A, B, acc, m, n, k, true);
    const ref = naive((i, p) => A[i * k + p], (p, j) => B[j * k + p], m, n, k).map((x, i) => x + C0[i]);
    close(acc, ref, 1e-14, `mmNT accumulate ${m}x${n}x${k}`);
    const Bkn = rnd(k * n), D = new Float64Array(m * n);
    mmNN(A, Bkn, D, m, n, k);
    close(D, naive((i, p) => A[i * k + p], (p, j) => Bkn[p * n + j], m, n, k), 1e-14, `mmNN ${m}x${n}x${k}`);
    const Akm = rnd(k * m), E = C0.slice();
    mmTNacc(Akm, Bkn, E, m, n, k);
    close(E, naive((i, p) => Akm[p * m + i], (p, j) => Bkn[p * n + j], m, n, k).map((x, i) => x + C0[i]), 1e-14, `mmTNacc ${m}x${n}x${k}`);
  }
});

test('expNeg matches Math.exp to 1e-14 relative on the softmax range, with exact edge cases', () => {
  let worst = 0;
  for (let i = 0; i <= 200000; i++) {
    const x = -i * 5e-4 - (i % 7) * 1e-6;
    const a = expNeg(x), b = Math.exp(x);
    worst = Math.max(worst, Math.abs(a - b) / b);
  }
  assert.ok(worst < 1e-14, `worst relative error ${worst}`);
  assert.equal(expNeg(0), 1);
  assert.equal(expNeg(-0), 1);
  assert.equal(expNeg(-Infinity), 0);
  assert.equal(expNeg(-1000), 0);
  assert.ok(Number.isNaN(expNeg(NaN)));
  assert.equal(expNeg(0.5), Math.exp(0.5));
});

test('stories260k through blockForward (float64) gives the reference model logits', () => {
  const dir = join(fileURLToPath(import.meta.url), '../../../../models/stories260k');
  const cfg = readModelConfig(dir);
  const weights = loadWeights(dir);
  const tokens = [1, 403, 61, 289, 43, 410, 13, 500, 17, 2, 1, 77, 300, 299, 64, 5, 6, 7, 256, 100, 1];
  const T = tokens.length, D = cfg.hiddenSize, V = cfg.vocabSize;
  const s = blockShape(cfg);
  assert.equal(s.headDim, 8, 'this test exercises the unrolled head_dim-8 attention');
  const f64 = (name: string) => Float64Array.from(weights.get(name)!);
  const emb = f64('model.embed_tokens.weight');
  let x = new Float64Array(T * D);
  tokens.forEach((t, i) => x.set(emb.subarray(t * D, (t + 1) * D), i * D));
  const ws = new BlockWorkspace(s, T, Float64Array);
  for (let l = 0; l < cfg.numLayers; l++) {
    const p: BlockParams = {
      ln1: f64(`model.layers.${l}.input_layernorm.weight`), ln2: f64(`model.layers.${l}.post_attention_layernorm.weight`),
      qNorm: null, kNorm: null, bias: [null, null, null], W: linearNames(l).map((n) => f64(`${n}.weight`)),
    };
    blockForward(p, s, ws, x, 0, null, false);
    x = Float64Array.from(ws.y.subarray(0, T * D));
  }
  const norm = f64('model.norm.weight');
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let j = 0; j < D; j++) ss += x[t * D + j] ** 2;
    const r = 1 / Math.sqrt(ss / D + cfg.rmsNormEps);
    for (let v = 0; v < V; v++) { let d = 0; for (let j = 0; j < D; j++) d += x[t * D + j] * r * norm[j] * emb[v * D + j]; logits[t * V + v] = d; }
  }
  const ref = referenceLogits(cfg, weights, tokens);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(logits[i] - ref[i]));
  assert.ok(worst < 1e-9, `max |logit difference| ${worst}`);
});

test('sigmoid equals 1/(1+exp(-z)) on both signs', () => {
  for (let z = -60; z <= 60; z += 0.0371) {
    const ref = 1 / (1 + Math.exp(-z));
    assert.ok(Math.abs(sigmoid(z) - ref) <= 1e-15 + 1e-14 * ref, `z=${z}`);
  }
});

test('float32 matrix products on the WebAssembly SIMD kernel equal a float64 triple loop to float32 precision', () => {
  assert.ok(simdAvailable(), 'WebAssembly SIMD is available on Node 20');
  for (const [m, n, k] of [[2, 4, 4], [7, 8, 12], [64, 172, 64], [33, 36, 512]]) {
    const A = Float32Array.from(rnd(m * k)), B = Float32Array.from(rnd(n * k));
    const C0 = Float32Array.from(rnd(m * n)), C = C0.slice();
    mmNT(A, B, C, m, n, k, true);
    const ref = naive((i, p) => A[i * k + p], (p, j) => B[j * k + p], m, n, k).map((x, i) => x + C0[i]);
    for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(C[i] - ref[i]) <= 2e-7 * Math.sqrt(k) * (1 + Math.abs(ref[i])) * 4, `${m}x${n}x${k}[${i}]: ${C[i]} vs ${ref[i]}`);
  }
});

test('float32 block (SIMD attention, head_dim 8, T not a multiple of 4) matches the float64 block forward and backward', () => {
  assert.ok(simdAttentionAvailable());
  const s = { hidden: 64, inter: 172, nHeads: 8, nKv: 4, headDim: 8, eps: 1e-5, theta: 10000, qkNorm: false, bias: false };
  const shapes: [number, number][] = [[64, 64], [32, 64], [32, 64], [64, 64], [172, 64], [172, 64], [64, 172]];
  const base = { ln1: rnd(64).map((x) => 1 + 0.3 * x), ln2: rnd(64).map((x) => 1 + 0.3 * x), W: shapes.map(([r, c]) => rnd(r * c).map((x) => (x * 1.7) / Math.sqrt(c))) };
  for (const T of [37, 130]) {
    const X = rnd(T * 64).map((x) => 2 * x), dy = rnd(T * 64);
    const run = (ctor: Float32ArrayConstructor | Float64ArrayConstructor) => {
      const p: BlockParams = { ln1: ctor.from(base.ln1), ln2: ctor.from(base.ln2), qNorm: null, kNorm: null, bias: [null, null, null], W: base.W.map((w) => ctor.from(w)) };
      const ws = new BlockWorkspace(s, T, ctor);
      blockForward(p, s, ws, ctor.from(X), 0, null, false);
      const y = Float64Array.from(ws.y);
      const dW = base.W.map((w) => new ctor(w.length));
      blockBackward(p, s, ws, ctor.from(X), 0, ctor.from(dy), null, 0, dW, null, false);
      return { y, dW };
    };
    const a = run(Float32Array), ref = run(Float64Array);
    const rel = (x: ArrayLike<number>, r: ArrayLike<number>) => { let m = 0, sc = 0; for (let i = 0; i < r.length; i++) { m = Math.max(m, Math.abs(x[i] - r[i])); sc = Math.max(sc, Math.abs(r[i])); } return m / sc; };
    assert.ok(rel(a.y, ref.y) < 1e-4, `T=${T} y: ${rel(a.y, ref.y)}`);
    for (let i = 0; i < 7; i++) assert.ok(rel(a.dW[i], ref.dW[i]) < 3e-4, `T=${T} dW${i}: ${rel(a.dW[i], ref.dW[i])}`);
    // and the JS float32 path agrees as well (same tolerance), so turning SIMD off changes nothing material
    setSimd(false);
    const b = run(Float32Array);
    setSimd(true);
    assert.ok(rel(b.y, ref.y) < 1e-4);
  }
});
