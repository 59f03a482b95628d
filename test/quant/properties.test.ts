/**
 * Seeded property tests on random tensors for every format, checked against expectations
 * restated here independently: values on the format's grid, codes in range, the scale
 * each rule prescribes, the nearest grid point chosen (|w − ŵ| within the half-step bound),
 * and all-zero / constant / extreme (±1e30) / denormal groups; ragged last groups included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quantizeWeight, E2M1_VALUES, type QuantizedWeight } from '../../src/quant/formats/index.ts';
import { UserError } from '../../src/errors.ts';
import { e4m3ToF32, roundToBf16, roundToF16 } from '../../src/checkpoint/dtypes.ts';
import type { WeightFormat } from '../../src/quant/schemes.ts';
import { gaussian, rng } from './helpers.ts';

const GRID = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.5, -1, -1.5, -2, -3, -4, -6];
const nearestDist = (x: number) => Math.min(...GRID.map((g) => Math.abs(x - g)));

/** Rows of special groups (cols = 64) followed by random rows. */
function specialTensor(cols: number, withExtreme: boolean): { w: Float32Array; rows: number } {
  const rowsSpec: ((c: number) => number)[] = [
    () => 0,
    () => 0.3,
    () => -7,
    (c) => (c % 3 === 0 ? 1e-40 : -3e-41),
    (c) => (c % 2 ? 1e-3 : -2e-3) * (1 + c / 64),
  ];
  if (withExtreme) rowsSpec.push((c) => (c === 5 ? 1e30 : c === 40 ? -1e30 : Math.sin(c)));
  const rnd = gaussian(12 * cols, 99, 0.05);
  const rows = rowsSpec.length + 12;
  const w = new Float32Array(rows * cols);
  rowsSpec.forEach((f, r) => { for (let c = 0; c < cols; c++) w[r * cols + c] = f(c); });
  w.set(rnd, rowsSpec.length * cols);
  return { w, rows };
}

function groupOf(q: QuantizedWeight, i: number): number {
  const r = Math.floor(i / q.cols);
  return r * Math.ceil(q.cols / q.groupSize) + Math.floor((i % q.cols) / q.groupSize);
}

function checkInt(w: Float32Array, q: QuantizedWeight, dt: 'F16' | 'BF16' | 'F32') {
  const { bits, symmetric } = q.fmt;
  const lo = symmetric ? -(2 ** (bits - 1)) : 0;
  const hi = symmetric ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  const delta = dt === 'F16' ? 2 ** -11 : dt === 'BF16' ? 2 ** -8 : 2 ** -24;
  const round = dt === 'F16' ? roundToF16 : dt === 'BF16' ? roundToBf16 : Math.fround;
  const thresh = round(dt === 'F32' ? 1e-8 : 1e-5);
  const G = q.groupSize;
  const ng = Math.ceil(q.cols / G);
  // Independent restatement of the scale rule per group.
  for (let r = 0; r < q.rows; r++) {
    for (let g = 0; g < ng; g++) {
      const vals = Array.from(w.subarray(r * q.cols + g * G, r * q.cols + Math.min((g + 1) * G, q.cols)));
      const mn = Math.min(0, ...vals);
      const mx = Math.max(0, ...vals);
      let s = symmetric ? round(Math.fround((mx >= -mn ? -mx : -mn) / 2 ** (bits - 1))) : round(Math.fround(Math.fround(mx - mn) / (2 ** bits - 1)));
      if (Math.abs(s) < thresh) s = s < 0 ? -thresh : thresh;
      assert.equal(q.scales[r * ng + g], s, `scale r${r} g${g}`);
    }
  }
  for (let i = 0; i < w.length; i++) {
    const gi = groupOf(q, i);
    const s = q.scales[gi];
    const zp = q.zeros ? q.zeros[gi] : 0;
    const c = q.codes[i];
    assert.ok(Number.isInteger(c) && c >= lo && c <= hi, `code ${c} out of range`);
    assert.equal(q.dequantized[i], Math.fround((c - zp) * s), 'on the grid');
    const err = Math.abs(w[i] - q.dequantized[i]);
    const slop = 2 ** -22 * (Math.abs(w[i]) + Math.abs(q.dequantized[i]));
    const atEnd = c === lo || c === hi;
    const bound = atEnd ? (1 + (2 ** bits) * delta) * Math.abs(s) : 0.5 * Math.abs(s);
    assert.ok(err <= bound + slop, `|w-ŵ| ${err} > ${bound} (w ${w[i]}, code ${c}, scale ${s})`);
  }
}

function checkMx(w: Float32Array, q: QuantizedWeight) {
  const ng = Math.ceil(q.cols / 32);
  for (let r = 0; r < q.rows; r++) {
    for (let g = 0; g < ng; g++) {
      let amax = 0;
      for (let c = g * 32; c < Math.min((g + 1) * 32, q.cols); c++) amax = Math.max(amax, Math.abs(w[r * q.cols + c]));
      // Exact floor(log2), except auto-round's float32 log2 may round up to the next integer.
      let e = 0;
      const a = amax > 0 ? amax : 2;
      while (2 ** e > a) e--;
      while (2 ** (e + 1) <= a) e++;
      if (Math.fround(Math.log2(a)) === e + 1) e++;
      assert.equal(q.scales[r * ng + g], 2 ** Math.max(-127, e - 2), `MX scale r${r} g${g} amax ${amax}`);
    }
  }
  for (let i = 0; i < w.length; i++) {
    const X = q.scales[groupOf(q, i)];
    const x = w[i] / X;
    const v = E2M1_VALUES[q.codes[i]];
    assert.equal(q.dequantized[i], Math.fround(v * X));
    assert.ok(Math.abs(x - v) <= nearestDist(x) + 1e-6 * Math.abs(x), `MX not nearest: ${x} -> ${v}`);
  }
}

function checkNv(w: Float32Array, q: QuantizedWeight) {
  const gs = q.globalScale!;
  let tmax = 0;
  for (const x of w) tmax = Math.max(tmax, Math.abs(x));
  // 2688/amax within float32 rounding (auto-round multiplies by fp32(1/amax)).
  if (tmax === 0) assert.equal(gs, 1);
  else assert.ok(Math.abs(gs - Math.min(2688 / tmax, 3.4028234663852886e38)) <= gs * 2 ** -22, `gs ${gs} vs ${2688 / tmax}`);
  const ng = Math.ceil(q.cols / 16);
  let sawMax = false;
  for (let gi = 0; gi < q.rows * ng; gi++) {
    const s8 = q.scales[gi];
    assert.ok(s8 >= 0 && s8 <= 448 && e4m3ToF32(Math.round(0)) === 0);
    if (s8 === 448) sawMax = true;
  }
  assert.ok(sawMax || tmax === 0, 'the block holding the tensor amax gets s8 = 448');
  for (let i = 0; i < w.length; i++) {
    const s8 = q.scales[groupOf(q, i)];
    const v = E2M1_VALUES[q.codes[i]];
    if (s8 === 0) {
      assert.equal(q.dequantized[i], 0);
      continue;
    }
    const e = s8 / gs;
    const x = Math.max(-6, Math.min(6, w[i] / e));
    assert.ok(Math.abs(q.dequantized[i] - v * e) <= 1e-6 * Math.abs(v * e), 'NV on the grid');
    assert.ok(Math.abs(x - v) <= nearestDist(x) + 1e-5 * (1 + Math.abs(x)), `NV not nearest: ${x} -> ${v}`);
  }
}

function checkFp8(w: Float32Array, q: QuantizedWeight) {
  for (let r = 0; r < q.rows; r++) {
    let amax = 0;
    for (let c = 0; c < q.cols; c++) amax = Math.max(amax, Math.abs(w[r * q.cols + c]));
    const s = q.scales[r];
    assert.equal(s, Math.max(Math.fround(Math.fround(amax) / 448), Math.fround(1 / (448 * 512))));
    for (let c = 0; c < q.cols; c++) {
      const i = r * q.cols + c;
      const v = e4m3ToF32(q.codes[i]);
      assert.ok(Math.abs(v) <= 448 && !Number.isNaN(v));
      assert.equal(q.dequantized[i], Math.fround(v * s));
      const x = w[i] / s;
      const bound = Math.max(Math.abs(x) * 2 ** -4, 2 ** -10) * (1 + 1e-6);
      assert.ok(Math.abs(x - v) <= bound, `FP8 ${x} -> ${v}`);
    }
  }
}

const int = (bits: number, groupSize: number, symmetric: boolean): WeightFormat => ({ kind: 'int', bits, groupSize, symmetric });

test('int: every bits x group x symmetry x scale dtype, special and random groups, ragged last group', () => {
  for (const cols of [64, 172]) {
    for (const dt of ['F16', 'BF16', 'F32'] as const) {
      const { w, rows } = specialTensor(cols, dt !== 'F16');
      for (const bits of [2, 3, 4, 8]) {
        for (const g of [32, 48, -1]) {
          for (const sym of [true, false]) {
            const q = quantizeWeight(w, rows, cols, int(bits, g, sym), { scaleDtype: dt });
            checkInt(w, q, dt);
          }
        }
      }
    }
  }
});

test('int with fp16 scales refuses weights whose scale overflows fp16 (one-line error)', () => {
  const { w, rows } = specialTensor(64, true);
  assert.throws(() => quantizeWeight(w, rows, 64, int(4, 32, true)), (e: unknown) => e instanceof UserError && /beyond what F16 scales can hold/.test(e.message));
});

test('int with random V, α, β: codes in range and values on the grid', () => {
  const r = rng(5);
  const w = gaussian(16 * 172, 3, 0.02);
  for (const sym of [true, false]) {
    const ng = 16 * Math.ceil(172 / 32);
    const v = Float32Array.from({ length: w.length }, () => r() - 0.5);
    const a = Float32Array.from({ length: ng }, () => 0.5 + r() / 2);
    const b = Float32Array.from({ length: ng }, () => 0.5 + r() / 2);
    const q = quantizeWeight(w, 16, 172, int(4, 32, sym), { v, minScale: a, maxScale: b });
    for (let i = 0; i < w.length; i++) {
      const gi = groupOf(q, i);
      assert.ok(q.codes[i] >= (sym ? -8 : 0) && q.codes[i] <= (sym ? 7 : 15));
      assert.equal(q.dequantized[i], Math.fround((q.codes[i] - (q.zeros ? q.zeros[gi] : 0)) * q.scales[gi]));
    }
    // β < 1 shrinks the scale relative to RTN.
    const rtn = quantizeWeight(w, 16, 172, int(4, 32, sym));
    for (let gi = 0; gi < ng; gi++) assert.ok(Math.abs(q.scales[gi]) <= Math.abs(rtn.scales[gi]) * (1 + 2 ** -10));
  }
});

test('MXFP4: OCP floor scale, nearest E2M1, special groups and ragged last block', () => {
  for (const cols of [64, 172]) {
    const { w, rows } = specialTensor(cols, true);
    checkMx(w, quantizeWeight(w, rows, cols, { kind: 'mxfp4', bits: 4, groupSize: 32, symmetric: true }));
  }
  for (const seed of [1, 2, 3]) {
    const w = gaussian(8 * 256, seed, 10 ** (seed - 2));
    checkMx(w, quantizeWeight(w, 8, 256, { kind: 'mxfp4', bits: 4, groupSize: 32, symmetric: true }));
  }
});

test('NVFP4: global scale, FP8 block scales, nearest E2M1, special groups and ragged last block', () => {
  for (const cols of [64, 172]) {
    for (const extreme of [false, true]) {
      const { w, rows } = specialTensor(cols, extreme);
      checkNv(w, quantizeWeight(w, rows, cols, { kind: 'nvfp4', bits: 4, groupSize: 16, symmetric: true }));
    }
  }
  for (const seed of [4, 5]) {
    const w = gaussian(8 * 256, seed, 0.03);
    checkNv(w, quantizeWeight(w, 8, 256, { kind: 'nvfp4', bits: 4, groupSize: 16, symmetric: true }));
  }
  const zero = new Float32Array(32);
  const qz = quantizeWeight(zero, 2, 16, { kind: 'nvfp4', bits: 4, groupSize: 16, symmetric: true });
  assert.ok(qz.dequantized.every((x) => x === 0));
});

test('FP8: per-channel scale amax/448 (floored at 1/(448*512)), RNE e4m3, special rows', () => {
  for (const cols of [64, 172]) {
    const { w, rows } = specialTensor(cols, true);
    checkFp8(w, quantizeWeight(w, rows, cols, { kind: 'fp8', bits: 8, groupSize: -1, symmetric: true }));
  }
});

test('bad input: non-finite weights, wrong parameter lengths, misfit group sizes are one-line UserErrors', () => {
  const bad = (fn: () => unknown, re: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof UserError && !e.message.includes('\n') && re.test(e.message));
  bad(() => quantizeWeight(Float32Array.of(1, NaN), 1, 2, int(4, -1, true)), /\[0, 1\] is NaN/);
  bad(() => quantizeWeight(new Float32Array(64), 1, 64, int(4, 128, true)), /group size 128 does not fit the input width 64/);
  bad(() => quantizeWeight(new Float32Array(64), 1, 64, int(4, 32, true), { v: new Float32Array(3) }), /rounding offsets v have 3 elements, expected 64/);
  bad(() => quantizeWeight(new Float32Array(64), 1, 64, int(4, 32, true), { maxScale: new Float32Array(1) }), /maxScale has 1 entries, expected 2/);
  bad(() => quantizeWeight(new Float32Array(64), 1, 64, { kind: 'mxfp4', bits: 4, groupSize: 16, symmetric: true }), /MXFP4 uses blocks of 32/);
  bad(() => quantizeWeight(new Float32Array(6), 2, 4, int(4, -1, true)), /6 elements but shape \[2, 4\] needs 8/);
});
