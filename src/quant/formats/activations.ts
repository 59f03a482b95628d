/**
 * Activation quantization as plain functions (quantize then dequantize, float32): the test
 * oracle for the ONNX engine's in-graph emulation. Rows are tokens, cols are features.
 *  - fp8 dynamic per token: scale = max(amax_row/448, 1/(448·512)) per row.
 *  - fp8 static per tensor: the calibrated scale (act_amax/448), given.
 *  - nvfp4: the calibrated input global scale (448·6/act_amax) given, or computed from x
 *    when absent; FP8 block scales per 16 features computed on the fly, as for weights.
 */
import { UserError } from '../../errors.ts';
import { e4m3ToF32 } from './floats.ts';
import type { ActivationFormat } from '../schemes.ts';
import { fp8Byte, fp8Scale } from './fp8.ts';
import { NV_BLOCK, quantizeNvfp4 } from './nvfp4.ts';

export interface ActivationParams {
  /** fp8 static: the per-tensor scale (act_amax / 448). */
  scale?: number;
  /** nvfp4: the input global scale (448·6 / act_amax). */
  globalScale?: number;
}

export function quantizeActivations(x: Float32Array, rows: number, cols: number, act: ActivationFormat, p: ActivationParams = {}): Float32Array {
  if (x.length !== rows * cols) throw new UserError(`activations have ${x.length} elements, shape [${rows}, ${cols}] needs ${rows * cols}`);
  if (act.kind === 'none') return Float32Array.from(x);
  if (act.kind === 'nvfp4') {
    return quantizeNvfp4(x, rows, cols, { kind: 'nvfp4', bits: 4, groupSize: NV_BLOCK, symmetric: true }, { globalScale: p.globalScale }, 'activations').dequantized;
  }
  const out = new Float32Array(x.length);
  if (act.granularity === 'tensor') {
    if (act.dynamic) throw new UserError('fp8 per-tensor activations are static here; use per-token dynamic');
    const s = p.scale;
    if (s === undefined || !(s > 0) || !Number.isFinite(s)) throw new UserError(`static fp8 activations need a positive calibrated scale, got ${s}`);
    for (let i = 0; i < x.length; i++) out[i] = Math.fround(e4m3ToF32(fp8Byte(x[i], s)) * s);
    return out;
  }
  if (act.granularity !== 'token') throw new UserError(`fp8 activations per ${act.granularity} are not supported (use token or tensor)`);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(x[r * cols + c]));
    const s = fp8Scale(amax);
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      out[i] = Math.fround(e4m3ToF32(fp8Byte(x[i], s)) * s);
    }
  }
  return out;
}
