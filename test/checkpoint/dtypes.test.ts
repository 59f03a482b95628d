import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16BitsToF32,
  e4m3ToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToE4m3,
  f32ToF16Bits,
} from '../../src/checkpoint/dtypes.ts';

test('float16 spec vectors (IEEE 754 binary16)', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [2 ** -14, 0x0400], [2 ** -24, 0x0001],
    [0.5, 0x3800], [0, 0x0000], [-0, 0x8000], [Infinity, 0x7c00], [1 / 3, 0x3555], [0.1, 0x2e66],
    [65520, 0x7c00], // exactly halfway to 2^16 rounds to even = overflow to inf
    [65519, 0x7bff],
    [2 ** -25, 0x0000], // halfway to the smallest subnormal: ties to even (zero)
    [2 ** -25 * 1.0000001, 0x0001],
  ];
  for (const [x, bits] of cases) assert.equal(f32ToF16Bits(x), bits, `f16(${x})`);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
});

test('float16: every finite half round-trips, and every midpoint rounds to the even neighbour', () => {
  for (let h = 0; h < 0x7c00; h++) {
    const x = f16BitsToF32(h);
    assert.equal(f32ToF16Bits(x), h);
    assert.equal(f32ToF16Bits(-x), h | 0x8000);
    if (h + 1 < 0x7c00) {
      const mid = (x + f16BitsToF32(h + 1)) / 2; // exact in float32: 12 significant bits
      const even = h % 2 === 0 ? h : h + 1;
      if (f32ToF16Bits(mid) !== even) assert.fail(`midpoint after 0x${h.toString(16)} rounded to ${f32ToF16Bits(mid)}`);
    }
  }
});

test('bfloat16 vectors and round-to-nearest-even', () => {
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(f32ToBf16Bits(Math.PI), 0x4049); // 3.140625
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0)
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even)
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
});

test('float8 e4m3fn: spec values, saturation, ties to even', () => {
  assert.equal(e4m3ToF32(0x7e), 448);
  assert.equal(e4m3ToF32(0x38), 1);
  assert.equal(e4m3ToF32(0x01), 2 ** -9);
  assert.equal(e4m3ToF32(0x08), 2 ** -6);
  assert.ok(Number.isNaN(e4m3ToF32(0x7f)));
  assert.equal(f32ToE4m3(1), 0x38);
  assert.equal(f32ToE4m3(-448), 0xfe);
  assert.equal(f32ToE4m3(1000), 0x7e);
  // 1.0625 is halfway between 1 (mantissa 0, even) and 1.125 (mantissa 1): rounds to 1
  assert.equal(f32ToE4m3(1.0625), 0x38);
  // 1.1875 halfway between 1.125 (odd) and 1.25 (even)
  assert.equal(f32ToE4m3(1.1875), 0x3a);
  // 464 is halfway between 448 and the (non-existent) 480: saturates to 448
  assert.equal(f32ToE4m3(464), 0x7e);
  for (let b = 0; b < 256; b++) {
    if ((b & 0x7f) === 0x7f) continue;
    assert.equal(f32ToE4m3(e4m3ToF32(b)), b === 0x80 ? 0x80 : b);
  }
});
