/**
 * Element types of safetensors files and exact conversions between them and float32.
 * Rounding is round-to-nearest-even everywhere, as torch's `.to()` does.
 */

export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  F8_E4M3: 1,
} as const;

export type DType = keyof typeof DTYPE_BYTES;

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

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

/** Decode raw little-endian bytes of `dtype` into float32 values. */
export function toFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  // Every supported host is little-endian, so F32 is a plain copy.
  if (dtype === 'F32') return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16BitsToF32(dv.getUint16(i * 2, true));
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(dv.getUint16(i * 2, true));
      break;
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = e4m3ToF32(bytes[i]);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case 'U8':
      for (let i = 0; i < n; i++) out[i] = bytes[i];
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
  }
  return out;
}

/** Encode float values as raw little-endian bytes of `dtype` (rounding as torch does). */
export function fromFloat32(values: ArrayLike<number>, dtype: DType): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const dv = new DataView(out.buffer);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, values[i], true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) dv.setFloat64(i * 8, values[i], true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToF16Bits(values[i]), true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToBf16Bits(values[i]), true);
      break;
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = f32ToE4m3(values[i]);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) dv.setInt8(i, values[i]);
      break;
    case 'U8':
      for (let i = 0; i < n; i++) out[i] = values[i];
      break;
    case 'I16':
      for (let i = 0; i < n; i++) dv.setInt16(i * 2, values[i], true);
      break;
    case 'I32':
      for (let i = 0; i < n; i++) dv.setInt32(i * 4, values[i], true);
      break;
    case 'I64':
      for (let i = 0; i < n; i++) dv.setBigInt64(i * 8, BigInt(Math.trunc(values[i])), true);
      break;
  }
  return out;
}
