/**
 * FP8 E4M3 weights (formats.md §5): symmetric, scale = amax·β / 448 per output channel
 * (groupSize -1) or per tensor (groupSize 0), clipped below at vLLM's 1/(448·512) as
 * auto-round does; q = e4m3(clamp(x/scale + V, ±448)) with RNE; deq = q·scale. Scales stay
 * float32 (stored F32, so nothing to round).
 */
import { UserError } from '../../errors.ts';
import { e4m3ToF32 } from './floats.ts';
import type { WeightFormat } from '../schemes.ts';
import { checkWeightInput, type QuantizedWeight, type QuantParams } from './types.ts';

// tsx turns imported bindings into getter calls; hot loops use module-local aliases.
const MAGIC = 6755399441055744; // 1.5·2^52: x + MAGIC - MAGIC rounds half to even

export const FP8_MAX = 448;
export const FP8_MIN_SCALE = Math.fround(1 / (448 * 512));

/** Scale for a given amax, in float32. */
export function fp8Scale(amax: number): number {
  const s = Math.fround(Math.fround(amax) / FP8_MAX);
  return s < FP8_MIN_SCALE ? FP8_MIN_SCALE : s;
}

/** The e4m3 byte of x at a given scale (plus rounding offset v), saturating at ±448. */
export function fp8Byte(x: number, scale: number, v = 0): number {
  let y = Math.fround(x / scale);
  if (v) y = Math.fround(y + v);
  return e4m3Fast(y < -FP8_MAX ? -FP8_MAX : y > FP8_MAX ? FP8_MAX : y);
}

export function quantizeFp8(w: Float32Array, rows: number, cols: number, fmt: WeightFormat, params: QuantParams = {}, what = 'layer'): QuantizedWeight {
  const perTensor = fmt.groupSize === 0;
  if (!perTensor && fmt.groupSize !== -1) throw new UserError(`${what}: FP8 weights are per channel (-1) or per tensor (0), got group size ${fmt.groupSize}`);
  // α/β are per scale: one per row, or one for the whole tensor.
  checkWeightInput(w, rows, cols, perTensor ? 1 / rows : 1, params, what);
  const { v, maxScale } = params;
  const codes = new Uint8Array(rows * cols);
  const deq = new Float32Array(rows * cols);
  const nScales = perTensor ? 1 : rows;
  const scales = new Float32Array(nScales);
  const span = perTensor ? rows * cols : cols;
  for (let k = 0; k < nScales; k++) {
    let amax = 0;
    for (let i = k * span; i < (k + 1) * span; i++) amax = Math.max(amax, Math.abs(w[i]));
    if (maxScale) amax = Math.fround(amax * maxScale[k]);
    const s = fp8Scale(amax);
    scales[k] = s;
    for (let i = k * span; i < (k + 1) * span; i++) {
      const b = fp8Byte(w[i], s, v ? v[i] : 0);
      codes[i] = b;
      deq[i] = E4M3_VALUES[b] * s;
    }
  }
  return { fmt, rows, cols, groupSize: cols, codes, scales, dequantized: deq };
}

export function dequantizeFp8(codes: Uint8Array, scales: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const perTensor = scales.length === 1;
  for (let r = 0; r < rows; r++) {
    const s = scales[perTensor ? 0 : r];
    for (let c = 0; c < cols; c++) out[r * cols + c] = E4M3_VALUES[codes[r * cols + c]] * s;
  }
  return out;
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
/** e4m3 value of every byte (NaN for 0x7f/0xff). */
export const E4M3_VALUES = Float32Array.from({ length: 256 }, (_, b) => e4m3ToF32(b));

/**
 * float32 -> float8_e4m3fn byte, RNE, for |y| <= 448 (callers clamp): the hot-loop version
 * of dtypes.ts f32ToE4m3 (tested equal to it), by bit manipulation instead of a search.
 */
export function e4m3Fast(y: number): number {
  const sign = y < 0 ? 0x80 : 0;
  const a = y < 0 ? -y : y;
  if (a < 0.015625) return sign | (a * 512 + MAGIC - MAGIC); // subnormals (code 8 = 2^-6 carries right)
  f32buf[0] = a;
  const b = u32buf[0];
  let m = (b & 0x7fffff) >>> 20;
  const rest = b & 0xfffff;
  if (rest > 0x80000 || (rest === 0x80000 && (m & 1) !== 0)) m++;
  return sign | ((((b >>> 23) - 120) << 3) + m); // exponent bias 127 -> 7; mantissa carry rolls into it
}
