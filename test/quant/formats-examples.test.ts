/** Every worked example of formats.md and compressed-tensors.md: codes, scales, dequantized values, packed bytes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  quantizeWeight, packInt32, unpackInt32, packFp4, unpackFp4, e2m1Code, E2M1_VALUES, e8m0Byte,
  quantizeActivations, nvfp4GlobalScale,
} from '../../src/quant/formats/index.ts';
import type { WeightFormat } from '../../src/quant/schemes.ts';
import { e4m3ToF32, f32ToE4m3 } from '../../src/checkpoint/dtypes.ts';

const W8 = Float32Array.from([0.21, -0.37, 0.05, 0.44, -0.12, 0.3, -0.02, 0.16]);
const intFmt = (bits: number, symmetric: boolean, groupSize = 8): WeightFormat => ({ kind: 'int', bits, groupSize, symmetric });
const close = (got: ArrayLike<number>, want: number[], tol: number, msg = '') => {
  assert.equal(got.length, want.length, msg);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol, `${msg}[${i}]: ${got[i]} vs ${want[i]}`);
};

test('formats.md §1.6: auto-round symmetric full-range RTN (fp16 scales, negative when + side dominates)', () => {
  const table: [number, number, number[], number[]][] = [
    [2, -0.219970703125, [-1, 1, 0, -2, 1, -1, 0, -1], [0.21997, -0.21997, 0, 0.43994, -0.21997, 0.21997, 0, 0.21997]],
    [3, -0.1099853515625, [-2, 3, 0, -4, 1, -3, 0, -1], [0.21997, -0.32996, 0, 0.43994, -0.10999, 0.32996, 0, 0.10999]],
    [4, -0.05499267578125, [-4, 7, -1, -8, 2, -5, 0, -3], [0.21997, -0.38495, 0.05499, 0.43994, -0.10999, 0.27496, 0, 0.16498]],
    [8, -0.003437042236328125, [-61, 108, -15, -128, 35, -87, 6, -47], [0.20966, -0.3712, 0.05156, 0.43994, -0.1203, 0.29902, -0.02062, 0.16154]],
  ];
  for (const [bits, scale, q, deq] of table) {
    const r = quantizeWeight(W8, 1, 8, intFmt(bits, true));
    assert.equal(r.scales[0], scale, `W${bits} scale`);
    assert.deepEqual(Array.from(r.codes), q, `W${bits} codes`);
    close(r.dequantized, deq, 6e-6, `W${bits} deq`);
  }
  // Mirror: negative side dominates -> positive scale, same codes.
  const neg = quantizeWeight(W8.map((x) => -x), 1, 8, intFmt(4, true));
  assert.equal(neg.scales[0], 0.05499267578125);
  assert.deepEqual(Array.from(neg.codes), [-4, 7, -1, -8, 2, -5, 0, -3]);
});

test('formats.md §1.6: auto-round asymmetric RTN (unsigned zero points)', () => {
  const table: [number, number, number, number[], number[]][] = [
    [2, 0.27001953125, 1, [2, 0, 1, 3, 1, 2, 1, 2], [0.27002, -0.27002, 0, 0.54004, 0, 0.27002, 0, 0.27002]],
    [3, 0.11572265625, 3, [5, 0, 3, 7, 2, 6, 3, 4], [0.23145, -0.34717, 0, 0.46289, -0.11572, 0.34717, 0, 0.11572]],
    [4, 0.053985595703125, 7, [11, 0, 8, 15, 5, 13, 7, 10], [0.21594, -0.3779, 0.05399, 0.43188, -0.10797, 0.32391, 0, 0.16196]],
    [8, 0.0031757354736328125, 117, [183, 0, 133, 255, 79, 211, 111, 167], [0.2096, -0.37156, 0.05081, 0.43825, -0.12068, 0.29852, -0.01905, 0.15879]],
  ];
  for (const [bits, scale, zp, q, deq] of table) {
    const r = quantizeWeight(W8, 1, 8, intFmt(bits, false));
    assert.equal(r.scales[0], scale, `W${bits} scale`);
    assert.equal(r.zeros![0], zp, `W${bits} zp`);
    assert.deepEqual(Array.from(r.codes), q, `W${bits} codes`);
    close(r.dequantized, deq, 6e-6, `W${bits} deq`);
  }
});

test('autoround.md §2: where V and β enter the symmetric QDQ', () => {
  const V = Float32Array.from([0.3, -0.2, 0, 0.1, 0.45, -0.4, 0, 0]);
  const sse = (d: Float32Array) => d.reduce((a, x, i) => a + (x - W8[i]) ** 2, 0);
  const cases: [Float32Array | undefined, number, number, number[], number][] = [
    [V, 1, -0.05499267578125, [-4, 7, -1, -8, 3, -6, 0, -3], 3.693e-3],
    [undefined, 0.9, -0.04949951171875, [-4, 7, -1, -8, 2, -6, 0, -3], 3.6154e-3],
    [V, 0.9, -0.04949951171875, [-4, 7, -1, -8, 3, -6, 0, -3], 3.9865e-3],
  ];
  for (const [v, beta, scale, q, want] of cases) {
    const r = quantizeWeight(W8, 1, 8, intFmt(4, true), { v, maxScale: Float32Array.of(beta), minScale: Float32Array.of(1) });
    assert.equal(r.scales[0], scale);
    assert.deepEqual(Array.from(r.codes), q);
    assert.ok(Math.abs(sse(r.dequantized) - want) < 1e-7, `SSE ${sse(r.dequantized)} vs ${want}`);
  }
});

test('formats.md §2: E2M1 rounding check vector (ties to even, saturate at 6)', () => {
  const xs = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.26, 2.6, 5.1, 6.4, 7.9];
  const want = [0, 1, 1, 2, 2, 4, 4, 0.5, 3, 6, 6, 6];
  assert.deepEqual(xs.map((x) => E2M1_VALUES[e2m1Code(x)]), want);
  assert.deepEqual(xs.map((x) => E2M1_VALUES[e2m1Code(-x)]), want.map((x) => -x || 0));
  assert.deepEqual([-0.5, -3, -6].map(e2m1Code), [9, 13, 15]);
});

test('formats.md §3.3: MXFP4 OCP floor rule, blocks A and B', () => {
  const blockA = [7.2, -3.3, 1.3, 0.26, -0.74, 2.5, -5.1, 0];
  const blockB = [6.5, -1.25, 0.8, -2.9, 3.6, -0.3, 4.9, 0.1];
  const w = new Float32Array(64);
  w.set(blockA, 0);
  w.set(blockB, 32);
  const r = quantizeWeight(w, 1, 64, { kind: 'mxfp4', bits: 4, groupSize: 32, symmetric: true });
  assert.deepEqual(Array.from(r.scales), [1, 1]);
  assert.deepEqual(Array.from(r.scales, e8m0Byte), [127, 127]);
  assert.deepEqual(Array.from(r.dequantized.subarray(0, 8)), [6, -3, 1.5, 0.5, -0.5, 2, -6, 0]);
  assert.deepEqual(Array.from(r.dequantized.subarray(32, 40)), [6, -1, 1, -3, 4, -0.5, 4, 0]);
  assert.ok(r.dequantized.subarray(8, 32).every((x) => x === 0));
});

test('formats.md §4.3: NVFP4 two blocks: global scale, FP8 block scales, codes, deq, packed bytes', () => {
  const row0 = [0.012, -0.034, 0.051, 0.007, -0.09, 0.023, 0.0, -0.015, 0.044, 0.031, -0.006, 0.018, -0.027, 0.062, -0.048, 0.009];
  const row1 = [0.3, -0.12, 0.045, -0.21, 0.075, 0.15, -0.06, 0.018, -0.285, 0.09, 0.24, -0.03, 0.105, -0.165, 0.012, 0.195];
  const r = quantizeWeight(Float32Array.from([...row0, ...row1]), 2, 16, { kind: 'nvfp4', bits: 4, groupSize: 16, symmetric: true });
  assert.equal(r.globalScale, 8960);
  assert.deepEqual(Array.from(r.scales, f32ToE4m3), [0x70, 0x7e]);
  assert.deepEqual(Array.from(r.codes.subarray(0, 16)), [2, 12, 6, 1, 15, 3, 0, 10, 5, 4, 9, 3, 12, 6, 13, 1]);
  assert.deepEqual(Array.from(r.codes.subarray(16)), [7, 12, 2, 14, 3, 5, 10, 1, 15, 4, 6, 9, 4, 13, 0, 6]);
  close(r.dequantized.subarray(0, 16), [0.014286, -0.028571, 0.057143, 0.007143, -0.085714, 0.021429, 0, -0.014286, 0.042857, 0.028571, -0.007143, 0.021429, -0.028571, 0.057143, -0.042857, 0.007143], 1e-6);
  close(r.dequantized.subarray(16), [0.3, -0.1, 0.05, -0.2, 0.075, 0.15, -0.05, 0.025, -0.3, 0.1, 0.2, -0.025, 0.1, -0.15, 0, 0.2], 1e-6);
  const bytes = Array.from(packFp4(r.codes as Uint8Array, 2, 16), (b) => b.toString(16).padStart(2, '0')).join(' ');
  assert.equal(bytes, 'c2 16 3f a0 45 39 6c 1d c7 e2 53 1a 4f 96 d4 60');
  assert.equal(nvfp4GlobalScale(0.3), 8960);
});

test('formats.md §5.4: FP8 per tensor', () => {
  const x = Float32Array.from([0.5, -1.7, 3.14159, 0.001, -12.0, 7.77]);
  const r = quantizeWeight(x, 1, 6, { kind: 'fp8', bits: 8, groupSize: 0, symmetric: true });
  assert.equal(r.scales[0], Math.fround(12 / 448));
  assert.deepEqual(Array.from(r.codes), [0x59, 0xe8, 0x6f, 0x12, 0xfe, 0x79]);
  assert.deepEqual(Array.from(r.codes, e4m3ToF32), [18, -64, 120, 0.0390625, -448, 288]);
  close(r.dequantized, [0.482143, -1.714286, 3.214286, 0.001046, -12.0, 7.714286], 1e-6);
  // Per channel on one row is the same thing; static activations with the same scale too.
  assert.deepEqual(quantizeWeight(x, 1, 6, { kind: 'fp8', bits: 8, groupSize: -1, symmetric: true }).dequantized, r.dequantized);
  assert.deepEqual(quantizeActivations(x, 1, 6, { kind: 'fp8', dynamic: false, granularity: 'tensor' }, { scale: Math.fround(12 / 448) }), r.dequantized);
  assert.deepEqual(quantizeActivations(x, 1, 6, { kind: 'fp8', dynamic: true, granularity: 'token' }), r.dequantized);
});

const hex = (a: Int32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (w) => '0x' + w.toString(16).toUpperCase().padStart(8, '0'));
const u = (codes: number[], bits: number) => codes.map((c) => c + 2 ** (bits - 1));

test('compressed-tensors.md §3.1: int32 packing examples (W4, W2, W8, W3 legacy and dense, zero points)', () => {
  assert.deepEqual(hex(packInt32(u([-4, 7, -1, -8, 2, -5, 0, -3], 4), 1, 8, 4, 'dense')), ['0x583A07F4']);
  const row0 = [-4, 7, -1, -8, 2, -5, 0, -3, -8, 1, 0, -3, 5, -2, 0, 4];
  const row1 = [5, -3, -2, 6, -8, 0, 2, -5, 6, -8, 4, -2, 2, 3, -5, 1];
  const p = packInt32(u([...row0, ...row1], 4), 2, 16, 4, 'dense');
  assert.deepEqual(Array.from(p), [1480198132, -932358000, 981526109, -1816499186]);
  assert.deepEqual(Array.from(unpackInt32(p, 2, 16, 4, 'dense'), (x) => x - 8), [...row0, ...row1]);
  assert.deepEqual(hex(packInt32(u([-1, 1, 0, -2, 1, -1, 0, -1, -2, -1, 0, 1, 1, 0, -1, -2], 2), 1, 16, 2, 'dense')), ['0x1BE4672D']);
  assert.deepEqual(hex(packInt32(u([-61, 108, -15, -128], 8), 1, 4, 8, 'legacy')), ['0x0071EC43']);
  const w3 = u([-2, 3, 0, -4, 1, -3, 0, -1, 2, -2, 3, 1], 3);
  assert.deepEqual(hex(packInt32(w3, 1, 12, 3, 'legacy')), ['0x1670D13A', '0x0000002F']);
  assert.deepEqual(hex(packInt32(w3, 1, 12, 3, 'dense')), ['0xD670D13A', '0x0000000B']);
  assert.deepEqual(Array.from(unpackInt32(packInt32(w3, 1, 12, 3, 'dense'), 1, 12, 3, 'dense')), w3);
  assert.deepEqual(Array.from(unpackInt32(packInt32(w3, 1, 12, 3, 'legacy'), 1, 12, 3, 'legacy')), w3);
  // Zero points: 8 rows x 1 group packed down dim 0 = one row of 8 values.
  assert.deepEqual(hex(packInt32(u([-1, 0, 2, -3, 7, -8, 1, 4], 4), 1, 8, 4, 'dense')), ['0xC90F5A87']);
});

test('compressed-tensors.md §4: FP4 nibble packing', () => {
  const codes = Uint8Array.from([1.0, -0.5, 6.0, -3.0].map(e2m1Code));
  assert.deepEqual(Array.from(codes), [2, 9, 7, 13]);
  assert.deepEqual(Array.from(packFp4(codes, 1, 4)), [0x92, 0xd7]);
  assert.deepEqual(Array.from(unpackFp4(Uint8Array.of(0x92, 0xd7), 1, 4)), [2, 9, 7, 13]);
});

test('exact ties round half to even (not half up): W4 sym, scale 1/8', () => {
  // -1 dominates -> scale +0.125 (exact in fp16); w/scale = [-8, 2.5, 0.5, 3.5, -1.5, 1.5, -2.5, -0.5]
  const w = Float32Array.from([-1, 0.3125, 0.0625, 0.4375, -0.1875, 0.1875, -0.3125, -0.0625]);
  const r = quantizeWeight(w, 1, 8, intFmt(4, true));
  assert.equal(r.scales[0], 0.125);
  assert.deepEqual(Array.from(r.codes), [-8, 2, 0, 4, -2, 2, -2, 0]);
  // asym: scale fp16(1.4375/15), zero point round(1/scale) = round(10.43..) = 10
  const a = quantizeWeight(Float32Array.from([-1, 0.4375, 0, 0, 0, 0, 0, 0]), 1, 8, intFmt(4, false));
  assert.equal(a.zeros![0], 10);
});

test('NVFP4 activations: the §4.3 rows as activations with input global scale 8960 give the worked deq', () => {
  const x = Float32Array.from([0.012, -0.034, 0.051, 0.007, -0.09, 0.023, 0.0, -0.015, 0.044, 0.031, -0.006, 0.018, -0.027, 0.062, -0.048, 0.009, 0.3, -0.12, 0.045, -0.21, 0.075, 0.15, -0.06, 0.018, -0.285, 0.09, 0.24, -0.03, 0.105, -0.165, 0.012, 0.195]);
  const d = quantizeActivations(x, 2, 16, { kind: 'nvfp4', dynamic: true, granularity: 'group' }, { globalScale: 8960 });
  close(d.subarray(16), [0.3, -0.1, 0.05, -0.2, 0.075, 0.15, -0.05, 0.025, -0.3, 0.1, 0.2, -0.025, 0.1, -0.15, 0, 0.2], 1e-6);
  close(d.subarray(0, 4), [0.014286, -0.028571, 0.057143, 0.007143], 1e-6);
  // A calibrated global scale smaller than the dynamic one (act_amax 0.6 > 0.3): row1 block scale 224.
  const d2 = quantizeActivations(x, 2, 16, { kind: 'nvfp4', dynamic: true, granularity: 'group' }, { globalScale: 4480 });
  assert.ok(Math.abs(d2[16] - 0.3) < 1e-6); // 0.3 / (224/4480) = 6 -> 6 * 0.05
});

test('FP8 per-token activations: one scale per row (amax/448)', () => {
  const x = Float32Array.from([0.5, -1.7, 3.14159, 0.001, -12.0, 7.77, 1, 2, 3, 4, 5, 6]);
  const d = quantizeActivations(x, 2, 6, { kind: 'fp8', dynamic: true, granularity: 'token' });
  close(d.subarray(0, 6), [0.482143, -1.714286, 3.214286, 0.001046, -12.0, 7.714286], 1e-6);
  // row 2: scale 6/448; 1/(6/448) = 74.67 -> 72 (spacing 8 in [64,128)) -> 72*6/448 = 0.964286
  close(d.subarray(6, 7), [0.964286], 1e-6);
  assert.equal(d[11], 6);
});

test('MXFP4 exponent edge cases as auto-round computes them: all-zero block e = -1; float32 log2 just below 2^3', () => {
  const fmt = { kind: 'mxfp4' as const, bits: 4, groupSize: 32, symmetric: true };
  assert.deepEqual(Array.from(quantizeWeight(new Float32Array(32), 1, 32, fmt).scales, e8m0Byte), [126]);
  // 8·(1 − 2^-24) is below 8, but its float32 log2 rounds to 3.0 -> e = 3 − 2 = 1, so the
  // element maps to 4 (no saturation) instead of 6·1 (OCP's exact floor would give e = 0).
  const w = new Float32Array(32);
  w[0] = Math.fround(8 * (1 - 2 ** -24));
  const q = quantizeWeight(w, 1, 32, fmt);
  assert.equal(q.scales[0], 2);
  assert.equal(q.dequantized[0], 8);
});
