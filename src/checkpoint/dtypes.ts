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

import { bf16BitsToF32, e4m3ToF32, f16BitsToF32, f32ToBf16Bits, f32ToE4m3, f32ToF16Bits } from '../quant/formats/floats.ts';

// The narrow-float conversions live in the formats leaf (quantization math needs them too).
export { bf16BitsToF32, e4m3ToF32, f16BitsToF32, f32ToBf16Bits, f32ToE4m3, f32ToF16Bits, roundToBf16, roundToF16 } from '../quant/formats/floats.ts';

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
