/**
 * `dense`: a targeted layer whose `weight` is stored as ordinary floats (compressed-tensors
 * writes this for layers it quantized and then kept decompressed). Nothing is packed; the
 * reader returns the weight as stored.
 */
import { FLOAT_SCALE, twoD, type Codec } from './types.ts';

export const dense: Codec = {
  format: 'dense',
  aliases: [],
  writes: (w) => w.kind === 'none',
  weightArgs: () => {
    throw new Error('dense layers carry no quantization args');
  },
  dims: (d, name) => twoD(d, name, 'weight'),
  tensors: (l) => [{ suffix: 'weight', dtypes: FLOAT_SCALE, shape: [l.rows, l.cols] }],
  forbidden: () => [['weight_packed', 'its format is dense']],
  write: () => {
    throw new Error('dense layers are copied, not encoded');
  },
  read: () => {
    throw new Error('dense layers are read as floats (decodeLayer)');
  },
};
