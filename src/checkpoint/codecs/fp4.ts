/**
 * The two FP4 pack formats: E2M1 codes two per byte (low nibble first) in `weight_packed`
 * [rows, cols/2] U8, one scale per block along the input dim.
 * - `mxfp4-pack-quantized` (OCP MX): blocks of 32, E8M0 scales stored as their exponent byte (U8).
 * - `nvfp4-pack-quantized`: blocks of 16, FP8 E4M3 scales, an FP32 `weight_global_scale`
 *   (a divisor); W4A4 adds the calibrated `input_global_scale`.
 */
import { e4m3ToF32, fromFloat32 } from '../dtypes.ts';
import { e8m0Byte, e8m0Value, packFp4, unpackFp4, type WeightFormat } from '../../quant/formats/index.ts';
import { baseArgs, tensor, twoD, type Args, type Codec } from './types.ts';

function fp4Dims(d: Parameters<Codec['dims']>[0], name: string, weights: Args, block: number): [number, number] | string {
  if (weights.type !== 'float' || weights.num_bits !== 4 || weights.group_size !== block) return `weights ${String(weights.type)}${String(weights.num_bits)} group ${String(weights.group_size)} are not float4 in blocks of ${block}`;
  const p = twoD(d, name, 'weight_packed');
  return typeof p === 'string' ? p : [p[0], p[1] * 2];
}

export const mxfp4PackQuantized: Codec = {
  format: 'mxfp4-pack-quantized',
  aliases: [],
  writes: (w) => w.kind === 'mxfp4',
  weightArgs: (w: WeightFormat) => ({ ...baseArgs(), num_bits: 4, type: 'float', strategy: 'group', group_size: w.groupSize, scale_dtype: 'torch.uint8' }),
  dims: (d, name, weights) => fp4Dims(d, name, weights, 32),
  tensors: (l) => [
    { suffix: 'weight_packed', dtypes: ['U8'], shape: [l.rows, l.cols / 2] },
    { suffix: 'weight_scale', dtypes: ['U8'], shape: [l.rows, Math.ceil(l.cols / 32)] },
  ],
  forbidden: () => [],
  write: (name, q) => [
    tensor(name, 'weight_packed', 'U8', [q.rows, q.cols / 2], packFp4(q.codes as Uint8Array, q.rows, q.cols)),
    tensor(name, 'weight_scale', 'U8', [q.rows, Math.ceil(q.cols / 32)], Uint8Array.from(q.scales, e8m0Byte)),
  ],
  read(l, d) {
    const { name, rows, cols } = l;
    const codes = unpackFp4(d.readBytes(`${name}.weight_packed`), rows, cols);
    const scales = Float32Array.from(d.readBytes(`${name}.weight_scale`), e8m0Value);
    return { fmt: { kind: 'mxfp4', bits: 4, groupSize: 32, symmetric: true }, rows, cols, groupSize: 32, codes, scales };
  },
};

export const nvfp4PackQuantized: Codec = {
  format: 'nvfp4-pack-quantized',
  aliases: [],
  writes: (w) => w.kind === 'nvfp4',
  weightArgs: (w: WeightFormat) => ({ ...baseArgs(), num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: w.groupSize, scale_dtype: 'torch.float8_e4m3fn' }),
  dims: (d, name, weights) => fp4Dims(d, name, weights, 16),
  tensors: (l) => [
    { suffix: 'weight_packed', dtypes: ['U8'], shape: [l.rows, l.cols / 2] },
    { suffix: 'weight_scale', dtypes: ['F8_E4M3'], shape: [l.rows, Math.ceil(l.cols / 16)] },
    { suffix: 'weight_global_scale', dtypes: ['F32'], shape: null, scalar: true },
    ...(l.activations ? [{ suffix: 'input_global_scale', dtypes: ['F32'] as const, shape: null, scalar: true }] : []),
  ],
  forbidden: () => [],
  write(name, q, extras) {
    const out = [
      tensor(name, 'weight_packed', 'U8', [q.rows, q.cols / 2], packFp4(q.codes as Uint8Array, q.rows, q.cols)),
      tensor(name, 'weight_scale', 'F8_E4M3', [q.rows, Math.ceil(q.cols / 16)], fromFloat32(q.scales, 'F8_E4M3')),
      tensor(name, 'weight_global_scale', 'F32', [1], fromFloat32([q.globalScale!], 'F32')),
    ];
    if (extras.inputGlobalScale !== undefined) out.push(tensor(name, 'input_global_scale', 'F32', [1], fromFloat32([extras.inputGlobalScale], 'F32')));
    return out;
  },
  read(l, d) {
    const { name, rows, cols } = l;
    const codes = unpackFp4(d.readBytes(`${name}.weight_packed`), rows, cols);
    const scales = Float32Array.from(d.readBytes(`${name}.weight_scale`), e4m3ToF32);
    const globalScale = d.readFloat32(`${name}.weight_global_scale`)[0];
    return { fmt: { kind: 'nvfp4', bits: 4, groupSize: 16, symmetric: true }, rows, cols, groupSize: 16, codes, scales, globalScale };
  },
};
