/**
 * Exact conversions between float32 and the narrow float formats the quantizers store
 * (bfloat16, float16, float8_e4m3fn), round to nearest even as torch's `.to()` does. Here in
 * the formats leaf so that quantization math imports nothing above it; checkpoint/dtypes.ts
 * re-exports them for tensor I/O.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> bfloat16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** float32 -> IEEE half bits, round to nearest even, overflow to inf. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflows to (signed) zero even after rounding
    mant |= 0x800000;
    const shift = 14 - e; // 24-bit mantissa down to a subnormal half
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m; // m may carry into the exponent field: that is the correct result
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into exponent/inf: correct
  return h;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Round a float to the nearest float16 value (as a number). */
export function roundToF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}

/** Round a float to the nearest bfloat16 value (as a number). */
export function roundToBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}

/** float8_e4m3fn byte -> value. No infinities; 0x7f/0xff are NaN; max 448. */
export function e4m3ToF32(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >>> 3) & 0xf;
  const mant = b & 7;
  if (exp === 0xf && mant === 7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

const E4M3_TABLE = Float64Array.from({ length: 128 }, (_, i) => e4m3ToF32(i));

/**
 * value -> float8_e4m3fn byte, round to nearest even, saturating to ±448 (torch's cast
 * after clamping, which is what the quantizers do; callers clamp first anyway).
 */
export function f32ToE4m3(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.abs(x);
  if (a >= 448) return sign | 0x7e;
  // Binary search the positive codes 0..126 (monotone), then round half to even.
  let lo = 0;
  let hi = 126;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (E4M3_TABLE[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - E4M3_TABLE[lo];
  const dh = E4M3_TABLE[hi] - a;
  const code = dl < dh ? lo : dh < dl ? hi : (lo & 1 ? hi : lo);
  return sign | code;
}
