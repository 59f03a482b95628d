/**
 * `pack-quantized`: integer weights of 1..8 bits packed into int32 words along the input
 * dim, group-wise (or per-channel) float scales, the original shape in `weight_shape`, and
 * for asymmetric schemes unsigned zero points packed along dim 0 ([words, groups]).
 * Packing is dense from compressed-tensors 0.18 (3-bit codes may straddle words); older
 * versions pack whole codes per word ("legacy"); identical for 2/4/8 bits. A config with no
 * `version` (auto-round writes none) is read by the packed width.
 */
import { fromFloat32 } from '../dtypes.ts';
import { packInt32, packedWords, unpackInt32, type PackLayout, type ScaleDtype, type WeightFormat } from '../../quant/formats/index.ts';
import { baseArgs, bytesOf, FLOAT_SCALE, tensor, type Codec, type LayerSpec, type TensorHeaders } from './types.ts';

function versionAtLeast(v: string | null, want: string): boolean | null {
  if (v === null) return null;
  const a = v.split(/[.+-]/).map((x) => parseInt(x, 10));
  const b = want.split('.').map((x) => parseInt(x, 10));
  for (let i = 0; i < 3; i++) if ((a[i] || 0) !== b[i]) return (a[i] || 0) > b[i];
  return true;
}

function groupSize(l: { weights: Record<string, unknown>; cols: number }): number | string {
  const strategy = l.weights.strategy;
  if (strategy === 'channel') return l.cols;
  const G = l.weights.group_size;
  if (strategy === 'group' && typeof G === 'number' && Number.isInteger(G) && G > 0) return G;
  return `strategy ${String(strategy)} with group_size ${String(G)} is not supported`;
}

/** Dense (>= 0.18) or legacy packing for this layer, from the version or else the stored width. */
function layout(l: LayerSpec, h: TensorHeaders): PackLayout {
  const bits = l.weights.num_bits as number;
  const newer = versionAtLeast(l.version, '0.18.0');
  if (newer !== null) return newer ? 'dense' : 'legacy';
  const p = `${l.name}.weight_packed`;
  const w = h.has(p) ? h.info(p).shape[1] : undefined;
  return w !== packedWords(l.cols, bits, 'dense') && w === packedWords(l.cols, bits, 'legacy') ? 'legacy' : 'dense';
}

const bitsOf = (w: Record<string, unknown>) => w.num_bits as number;

export const packQuantized: Codec = {
  format: 'pack-quantized',
  aliases: [],
  writes: (w) => w.kind === 'int',
  weightArgs(w: WeightFormat) {
    const channel = w.groupSize === -1;
    return { ...baseArgs(), num_bits: w.bits, type: 'int', symmetric: w.symmetric, strategy: channel ? 'channel' : 'group', group_size: channel ? null : w.groupSize, zp_dtype: w.symmetric ? null : 'torch.int8' };
  },
  dims(d, name, weights, configDims) {
    const bits = bitsOf(weights);
    if (!Number.isInteger(bits) || bits < 1 || bits > 8) return `num_bits ${bits} is not 1..8`;
    const n = `${name}.weight_shape`;
    if (!d.has(n)) return "missing tensor 'weight_shape'";
    const info = d.info(n);
    if (!['I64', 'I32'].includes(info.dtype) || info.shape.length !== 1 || info.shape[0] !== 2) return `tensor 'weight_shape' is ${info.dtype} [${info.shape}], expected I64 [2]`;
    const [rows, cols] = d.readFloat32(n);
    return [rows, cols];
  },
  tensors(l, h) {
    const bits = bitsOf(l.weights);
    const G = groupSize(l);
    if (typeof G === 'string') return G;
    const ng = Math.ceil(l.cols / G);
    const lay = layout(l, h);
    const specs = [
      { suffix: 'weight_packed', dtypes: ['I32'] as const, shape: [l.rows, packedWords(l.cols, bits, lay)] },
      { suffix: 'weight_scale', dtypes: FLOAT_SCALE, shape: [l.rows, ng] },
      { suffix: 'weight_shape', dtypes: ['I64', 'I32'] as const, shape: [2] },
    ];
    if (l.weights.symmetric === false) specs.push({ suffix: 'weight_zero_point', dtypes: ['I32'], shape: [packedWords(l.rows, bits, lay), ng] });
    return specs;
  },
  forbidden: (l) => (l.weights.symmetric === false ? [] : [['weight_zero_point', 'the scheme is symmetric (vLLM refuses zero points for symmetric schemes)']]),
  write(name, q) {
    if (q.fmt.kind !== 'int') throw new Error(`pack-quantized cannot store ${q.fmt.kind}`);
    const { rows, cols } = q;
    const b = q.fmt.bits;
    const ng = Math.ceil(cols / q.groupSize);
    const sym = !q.zeros;
    // Stored values: signed codes + 2^(b-1); auto-round's unsigned asym codes already are.
    const stored = sym ? Uint8Array.from(q.codes as Int8Array, (c) => c + 2 ** (b - 1)) : (q.codes as Uint8Array);
    const out = [
      tensor(name, 'weight_packed', 'I32', [rows, packedWords(cols, b, 'dense')], bytesOf(packInt32(stored, rows, cols, b, 'dense'))),
      tensor(name, 'weight_scale', q.scaleDtype ?? 'F16', [rows, ng], fromFloat32(q.scales, q.scaleDtype ?? 'F16')),
      tensor(name, 'weight_shape', 'I64', [2], fromFloat32([rows, cols], 'I64')),
    ];
    if (!sym) {
      const zt = new Uint8Array(rows * ng); // [ng, rows]: zero points pack along dim 0
      for (let r = 0; r < rows; r++) for (let g = 0; g < ng; g++) zt[g * rows + r] = q.zeros![r * ng + g];
      const W = packedWords(rows, b, 'dense');
      const packed = new Int32Array(packInt32(zt, ng, rows, b, 'dense').buffer);
      const tr = new Int32Array(W * ng);
      for (let g = 0; g < ng; g++) for (let k = 0; k < W; k++) tr[k * ng + g] = packed[g * W + k];
      out.push(tensor(name, 'weight_zero_point', 'I32', [W, ng], bytesOf(tr)));
    }
    return out;
  },
  read(l, d) {
    const { name, rows, cols } = l;
    const bits = bitsOf(l.weights);
    const G = groupSize(l) as number;
    const ng = Math.ceil(cols / G);
    const lay = layout(l, d);
    const stored = unpackInt32(new Int32Array(d.readBytes(`${name}.weight_packed`).slice().buffer), rows, cols, bits, lay);
    const sym = l.weights.symmetric !== false;
    let codes: Int8Array | Uint8Array = stored;
    let zeros: Uint8Array | undefined;
    if (sym) {
      codes = Int8Array.from(stored, (u) => u - 2 ** (bits - 1));
    } else {
      const W = packedWords(rows, bits, lay);
      const zp = new Int32Array(d.readBytes(`${name}.weight_zero_point`).slice().buffer);
      const tr = new Int32Array(W * ng);
      for (let k = 0; k < W; k++) for (let g = 0; g < ng; g++) tr[g * W + k] = zp[k * ng + g];
      const zt = unpackInt32(tr, ng, rows, bits, lay); // [ng, rows]
      zeros = new Uint8Array(rows * ng);
      for (let g = 0; g < ng; g++) for (let r = 0; r < rows; r++) zeros[r * ng + g] = zt[g * rows + r];
    }
    const fmt: WeightFormat = { kind: 'int', bits, groupSize: l.weights.strategy === 'channel' ? -1 : G, symmetric: sym };
    const scaleDtype = d.info(`${name}.weight_scale`).dtype as ScaleDtype;
    return { fmt, rows, cols, groupSize: G, codes, zeros, scales: d.readFloat32(`${name}.weight_scale`), scaleDtype };
  },
};
