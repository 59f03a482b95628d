/**
 * `float-quantized`: FP8 E4M3 weights stored as `weight` with a float `weight_scale` per
 * output channel ([rows, 1]) or per tensor; static activations add the calibrated
 * `input_scale`. `naive-quantized` is compressed-tensors' name for the same tensors when
 * activations are not float-quantized.
 */
import { fromFloat32 } from '../dtypes.ts';
import type { WeightFormat } from '../../quant/formats/index.ts';
import { baseArgs, FLOAT_SCALE, tensor, twoD, type Codec, type TensorSpec } from './types.ts';

export const floatQuantized: Codec = {
  format: 'float-quantized',
  aliases: ['naive-quantized'],
  writes: (w) => w.kind === 'fp8',
  weightArgs: (w: WeightFormat) => ({ ...baseArgs(), num_bits: 8, type: 'float', strategy: w.groupSize === 0 ? 'tensor' : 'channel' }),
  dims(d, name, weights) {
    if (weights.type !== 'float' || weights.num_bits !== 8) return `weights ${String(weights.type)}${String(weights.num_bits)} are not float8`;
    if (weights.strategy !== 'channel' && weights.strategy !== 'tensor') return `FP8 weight strategy '${String(weights.strategy)}' is not supported (channel or tensor)`;
    return twoD(d, name, 'weight');
  },
  tensors(l) {
    const specs: TensorSpec[] = [
      { suffix: 'weight', dtypes: ['F8_E4M3'], shape: [l.rows, l.cols] },
      l.weights.strategy === 'channel' ? { suffix: 'weight_scale', dtypes: FLOAT_SCALE, shape: [l.rows, 1] } : { suffix: 'weight_scale', dtypes: FLOAT_SCALE, shape: null, scalar: true },
    ];
    if (l.activations && l.activations.dynamic === false) specs.push({ suffix: 'input_scale', dtypes: FLOAT_SCALE, shape: null, scalar: true });
    return specs;
  },
  forbidden: () => [],
  write(name, q, extras) {
    const out = [
      tensor(name, 'weight', 'F8_E4M3', [q.rows, q.cols], q.codes as Uint8Array),
      tensor(name, 'weight_scale', 'F32', q.scales.length === 1 ? [1] : [q.rows, 1], fromFloat32(q.scales, 'F32')),
    ];
    if (extras.inputScale !== undefined) out.push(tensor(name, 'input_scale', 'F32', [1], fromFloat32([extras.inputScale], 'F32')));
    return out;
  },
  read(l, d) {
    const { name, rows, cols } = l;
    const tensorWise = l.weights.strategy === 'tensor';
    return { fmt: { kind: 'fp8', bits: 8, groupSize: tensorWise ? 0 : -1, symmetric: true }, rows, cols, groupSize: cols, codes: d.readBytes(`${name}.weight`), scales: d.readFloat32(`${name}.weight_scale`) };
  },
};
