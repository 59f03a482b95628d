/**
 * Public face of the weight formats: one entry point that AutoRound and RTN share.
 * RTN is `quantizeWeight(w, rows, cols, fmt)`; AutoRound passes its trainable V, α, β.
 */
import { UserError } from '../../errors.ts';
import type { WeightFormat } from '../schemes.ts';
import { dequantizeFp8, quantizeFp8 } from './fp8.ts';
import { dequantizeInt, quantizeInt } from './int.ts';
import { dequantizeMxfp4, quantizeMxfp4 } from './mxfp4.ts';
import { dequantizeNvfp4, quantizeNvfp4 } from './nvfp4.ts';
import type { QuantizedWeight, QuantParams } from './types.ts';

export type { QuantizedWeight, QuantParams, ScaleDtype, WeightFormat } from './types.ts';
export { rne, groupsPerRow } from './types.ts';
export { quantizeInt, dequantizeInt, packInt32, unpackInt32, packedWords, intGroupSize, type PackLayout } from './int.ts';
export { E2M1_VALUES, e2m1Code, packFp4, unpackFp4 } from './fp4.ts';
export { quantizeMxfp4, dequantizeMxfp4, mxSharedExponent, e8m0Byte, e8m0Value, MX_BLOCK } from './mxfp4.ts';
export { quantizeNvfp4, dequantizeNvfp4, nvfp4GlobalScale, fusedGlobalScale, absMax, NV_BLOCK } from './nvfp4.ts';
export { quantizeFp8, dequantizeFp8, fp8Scale, FP8_MAX } from './fp8.ts';
export { quantizeActivations, type ActivationParams } from './activations.ts';

export function quantizeWeight(w: Float32Array, rows: number, cols: number, fmt: WeightFormat, params?: QuantParams, what = 'layer'): QuantizedWeight {
  switch (fmt.kind) {
    case 'int':
      return quantizeInt(w, rows, cols, fmt, params, what);
    case 'mxfp4':
      return quantizeMxfp4(w, rows, cols, fmt, params, what);
    case 'nvfp4':
      return quantizeNvfp4(w, rows, cols, fmt, params, what);
    case 'fp8':
      return quantizeFp8(w, rows, cols, fmt, params, what);
    case 'none':
      throw new UserError(`${what}: format 'none' (BF16) is not quantized`);
  }
}

/** Dequantize from the stored pieces of a QuantizedWeight (what the checkpoint reader has). */
export function dequantizeWeight(q: Omit<QuantizedWeight, 'dequantized'>): Float32Array {
  switch (q.fmt.kind) {
    case 'int':
      return dequantizeInt(q.codes, q.scales, q.zeros, q.rows, q.cols, q.groupSize);
    case 'mxfp4':
      return dequantizeMxfp4(q.codes as Uint8Array, q.scales, q.rows, q.cols);
    case 'nvfp4':
      return dequantizeNvfp4(q.codes as Uint8Array, q.scales, q.globalScale!, q.rows, q.cols);
    case 'fp8':
      return dequantizeFp8(q.codes as Uint8Array, q.scales, q.rows, q.cols);
    case 'none':
      throw new Error('nothing to dequantize');
  }
}
