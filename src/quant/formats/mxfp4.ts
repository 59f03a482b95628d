/**
 * MXFP4 (formats.md §3): blocks of 32 along the input dim share an E8M0 scale 2^e; E2M1
 * elements. We use the OCP "floor" rule as auto-round's `mx_fp` computes it (so AutoRound
 * and RTN agree): e = floor(log2(amax·β)) - 2 (log2 in float32), clamped to [-127, 127];
 * x/2^e (+V) rounded to E2M1 RNE and saturated at ±6; a negative element that rounds to 0 is
 * stored as -0 (code 8), as compressed-tensors packs it.
 * A ragged last block is shorter (same as zero padding: zeros do not change the amax).
 * compressed-tensors' own observer rounds amax to a power of two first (round-pow2), so
 * its RTN can pick e + 1 where we pick e; both are valid MXFP4 and our reader decodes either.
 */
import { UserError } from '../../errors.ts';
import type { WeightFormat } from '../schemes.ts';
import { E2M1_VALUES, e2m1CodeSignedZero } from './fp4.ts';
import { checkWeightInput, floorLog2, type QuantizedWeight, type QuantParams } from './types.ts';

// tsx turns imported bindings into getter calls; hot loops use module-local aliases.
const e2m1Code_ = e2m1CodeSignedZero;
const E2M1_VALUES_ = E2M1_VALUES;

export const MX_BLOCK = 32;
const EMAX_E2M1 = 2;

/**
 * The shared exponent of a block with max magnitude `amax` (already multiplied by β), as
 * auto-round's quant_mx computes it: floor of a FLOAT32 log2, so an amax within a float32
 * rounding of log2 below 2^k (e.g. 7.9999995) counts as 2^k; an all-zero block uses
 * log2 = 1 (e = -1, harmless: its elements are all 0).
 */
export function mxSharedExponent(amax: number): number {
  const e = (amax > 0 ? Math.floor(Math.fround(Math.log2(amax))) : 1) - EMAX_E2M1;
  return e < -127 ? -127 : e > 127 ? 127 : e;
}

export function quantizeMxfp4(w: Float32Array, rows: number, cols: number, fmt: WeightFormat, params: QuantParams = {}, what = 'layer'): QuantizedWeight {
  const G = MX_BLOCK;
  if (fmt.groupSize !== G) throw new UserError(`${what}: MXFP4 uses blocks of ${G}, got group size ${fmt.groupSize}`);
  const ng = Math.ceil(cols / G);
  checkWeightInput(w, rows, cols, ng, params, what);
  const { v, maxScale } = params;
  const n = rows * cols;
  const codes = new Uint8Array(n);
  const scales = new Float32Array(rows * ng);
  const deq = new Float32Array(n);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < ng; g++) {
      const begin = r * cols + g * G;
      const end = Math.min(begin + G, r * cols + cols);
      let amax = 0;
      for (let i = begin; i < end; i++) amax = Math.max(amax, Math.abs(w[i]));
      const gi = r * ng + g;
      if (maxScale) amax = Math.fround(amax * maxScale[gi]);
      const e = mxSharedExponent(amax);
      const X = 2 ** e;
      const inv = 2 ** -e; // w * 2^-e is exact in float64, so this equals fround(w / X)
      scales[gi] = X;
      for (let i = begin; i < end; i++) {
        let x = Math.fround(w[i] * inv);
        if (v) x = Math.fround(x + v[i]);
        const c = e2m1Code_(x);
        codes[i] = c;
        deq[i] = Math.fround(E2M1_VALUES_[c] * X);
      }
    }
  }
  return { fmt, rows, cols, groupSize: G, codes, scales, dequantized: deq };
}

/** E8M0 byte of a power-of-two scale: log2(X) + 127. */
export function e8m0Byte(X: number): number {
  return floorLog2(X) + 127;
}

export function e8m0Value(byte: number): number {
  if (byte === 255) throw new UserError('E8M0 scale byte 255 is NaN; the checkpoint is corrupt');
  return 2 ** (byte - 127);
}

export function dequantizeMxfp4(codes: Uint8Array, scales: Float32Array, rows: number, cols: number): Float32Array {
  const ng = Math.ceil(cols / MX_BLOCK);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.fround(E2M1_VALUES_[codes[r * cols + c]] * scales[r * ng + Math.floor(c / MX_BLOCK)]);
  return out;
}
