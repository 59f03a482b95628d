// The block backward and the QDQ backward against central finite differences, in float64,
// on a small random GQA block. Quantized layers are checked on the smooth surrogate (every
// straight-through op replaced by the identity), which is what the STE backward differentiates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockBackward, blockForward, BlockWorkspace, linearShapes, type BlockParams, type BlockShape } from '../../../src/quant/autoround/block.ts';
import { BlockProblem, mulberry32 } from '../../../src/quant/autoround/optimize.ts';
import { makeQLinear, type QLinear } from '../../../src/quant/autoround/qdq.ts';
import type { WeightFormat } from '../../../src/quant/schemes.ts';

const rand = mulberry32(1234);
const randn = (n: number, sd = 1): Float64Array => Float64Array.from({ length: n }, () => sd * (rand() * 2 - 1) * 1.7);

function makeBlock(s: BlockShape): BlockParams {
  return {
    ln1: Float64Array.from({ length: s.hidden }, () => 0.5 + rand()),
    ln2: Float64Array.from({ length: s.hidden }, () => 0.5 + rand()),
    qNorm: s.qkNorm ? Float64Array.from({ length: s.headDim }, () => 0.5 + rand()) : null,
    kNorm: s.qkNorm ? Float64Array.from({ length: s.headDim }, () => 0.5 + rand()) : null,
    bias: [0, 1, 2].map((i) => (s.bias ? randn(linearShapes(s)[i][0], 0.1) : null)),
    W: linearShapes(s).map(([r, c]) => randn(r * c, 1 / Math.sqrt(c))),
  };
}

const SHAPE: BlockShape = { hidden: 16, inter: 24, nHeads: 4, nKv: 2, headDim: 4, eps: 1e-5, theta: 10000, qkNorm: false, bias: false };

/** Error relative to the tensor's largest gradient (norm-wise, as gradient checks usually
 * measure it): elements with tiny gradients would otherwise compare finite-difference
 * round-off noise (~1e-10 absolute) with itself. */
function relErr(a: number, b: number, scale: number): number {
  return Math.abs(a - b) / Math.max(1e-300, scale);
}
const maxAbs = (a: ArrayLike<number>): number => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i])); return m; };

function checkFloatBlock(s: BlockShape): void {
  const T = 6;
  const p = makeBlock(s);
  const ws = new BlockWorkspace(s, T, Float64Array);
  const x = randn(T * s.hidden);
  const c = randn(T * s.hidden); // loss = Σ c·y, so dL/dy = c
  const loss = (): number => {
    blockForward(p, s, ws, x, 0, null, false);
    let l = 0;
    for (let i = 0; i < c.length; i++) l += c[i] * ws.y[i];
    return l;
  };
  loss();
  const dx = new Float64Array(x.length);
  const dW = p.W.map((w) => new Float64Array(w.length));
  blockBackward(p, s, ws, x, 0, c, dx, 0, dW, null, false);
  const h = 1e-5;
  const fd = (arr: Float64Array, i: number): number => {
    const o = arr[i];
    arr[i] = o + h; const lp = loss();
    arr[i] = o - h; const lm = loss();
    arr[i] = o;
    return (lp - lm) / (2 * h);
  };
  let worst = 0;
  for (let i = 0; i < x.length; i += 3) worst = Math.max(worst, relErr(fd(x, i), dx[i], maxAbs(dx)));
  for (let w = 0; w < 7; w++) {
    const W = p.W[w] as Float64Array;
    for (let i = 0; i < W.length; i += 7) worst = Math.max(worst, relErr(fd(W, i), dW[w][i], maxAbs(dW[w])));
  }
  assert.ok(worst < 1e-6, `worst relative error ${worst}`);
}

test('float block backward (GQA 4 heads / 2 kv heads) matches finite differences for inputs and all 7 weights', () => {
  checkFloatBlock(SHAPE);
});

test('head_dim 8 block (the unrolled attention path of stories260k) backward matches finite differences', () => {
  checkFloatBlock({ ...SHAPE, nHeads: 4, nKv: 2, headDim: 8, hidden: 24 });
});

test('Qwen-style block (q/k norms and q/k/v biases) backward matches finite differences', () => {
  checkFloatBlock({ ...SHAPE, qkNorm: true, bias: true });
});

const FORMATS: [string, WeightFormat][] = [
  ['int4 sym', { kind: 'int', bits: 4, groupSize: 8, symmetric: true }],
  ['int3 asym', { kind: 'int', bits: 3, groupSize: 8, symmetric: false }],
  ['int2 sym per-channel', { kind: 'int', bits: 2, groupSize: -1, symmetric: true }],
  ['mxfp4', { kind: 'mxfp4', bits: 4, groupSize: 8, symmetric: true }],
  ['nvfp4', { kind: 'nvfp4', bits: 4, groupSize: 8, symmetric: true }],
  ['fp8', { kind: 'fp8', bits: 8, groupSize: -1, symmetric: true }],
];

for (const [label, fmt] of FORMATS) {
  test(`QDQ backward (${label}) through the block loss matches finite differences for V, α, β`, () => {
    const s = SHAPE;
    const T = 5, n = 2;
    const p = makeBlock(s);
    const shapes = linearShapes(s);
    const layers: QLinear[] = shapes.map(([r, c], i) => {
      const L = makeQLinear(`l${i}`, fmt, p.W[i], r, c, Float64Array);
      // Off the kinks: clip factors inside (0.5, 0.95), V small.
      for (let k = 0; k < L.beta.length; k++) { L.beta[k] = 0.5 + 0.45 * rand(); L.alpha[k] = 0.5 + 0.45 * rand(); }
      for (let k = 0; k < L.v.length; k++) L.v[k] = 0.3 * (rand() - 0.5);
      return L;
    });
    const X = randn(n * T * s.hidden);
    const Y = randn(n * T * s.hidden);
    const pr = new BlockProblem(p, s, layers, T, null, Float64Array, true);
    const idx = [0, 1];
    const denom = 1; // plain sum of squares: larger gradients, same code path
    const loss = (): number => { pr.refreshWeights(); return pr.lossAndGrad(X, Y, idx, denom, false); };
    pr.refreshWeights();
    pr.lossAndGrad(X, Y, idx, denom, true);
    // V lives on the scale of w/s (up to 448 for FP8), α/β on [0,1]: step accordingly.
    const fd = (arr: Float64Array | Float32Array, i: number, h = 1e-6): number => {
      const o = arr[i];
      arr[i] = o + h; const lp = loss();
      arr[i] = o - h; const lm = loss();
      arr[i] = o;
      return (lp - lm) / (2 * h);
    };
    let worst = 0, checked = 0, nonzero = 0, worstAt = '';
    const track = (what: string, a: number, b: number, sc: number): void => { const e = relErr(a, b, sc); if (e > worst) { worst = e; worstAt = `${what} fd=${a} an=${b} scale=${sc}`; } };
    for (let li = 0; li < 7; li++) {
      const L = layers[li];
      for (let i = 0; i < L.v.length; i += 11) { track(`V${li}[${i}]`, fd(L.v, i, fmt.kind === 'fp8' ? 1e-4 : 1e-6), pr.gV[li][i], maxAbs(pr.gV[li])); checked++; if (pr.gV[li][i] !== 0) nonzero++; }
      const tuned: [Float64Array | Float32Array, Float64Array | Float32Array][] = [[L.beta, pr.gBeta[li]]];
      if (fmt.kind === 'int') tuned.push([L.alpha, pr.gAlpha[li]]);
      for (const [param, grad] of tuned) {
        for (let i = 0; i < param.length; i += 3) { track(`${param === L.beta ? 'beta' : 'alpha'}${li}[${i}]`, fd(param, i), grad[i], maxAbs(grad)); checked++; if (grad[i] !== 0) nonzero++; }
      }
    }
    if (process.env.DBG) console.log(label, worst, worstAt);
    assert.ok(nonzero > checked / 2, `too few non-zero gradients (${nonzero}/${checked})`);
    assert.ok(worst < 1e-6, `worst relative error ${worst}`);
  });
}
