/**
 * Integer weights (W2/W3/W4/W8 A16), auto-round's math (formats.md §1.2, §1.3; autoround.md
 * §2): "include zero" min/max per group, full-range symmetric (largest magnitude lands on
 * -2^(b-1), so the scale is negative when the positive side dominates) or asymmetric with an
 * unsigned zero point; scales rounded to their stored dtype (fp16 by default) before use;
 * RNE. A ragged last group is shorter, which equals auto-round's zero padding because zero
 * is always inside [wmin, wmax]. Trainable V, α (minScale), β (maxScale) enter exactly where
 * auto-round's QDQ puts them.
 */
import { UserError } from '../../errors.ts';
import { roundToBf16, roundToF16 } from './floats.ts';
import type { WeightFormat } from '../schemes.ts';
import { checkWeightInput, rne, type QuantizedWeight, type QuantParams, type ScaleDtype } from './types.ts';

// tsx turns imported bindings into getter calls; hot loops use module-local aliases.
const MAGIC = 6755399441055744; // 1.5·2^52: x + MAGIC - MAGIC rounds half to even

export const INT_BITS = [2, 3, 4, 5, 6, 7, 8];

export function scaleRounder(dt: ScaleDtype): (x: number) => number {
  return dt === 'F16' ? roundToF16 : dt === 'BF16' ? roundToBf16 : Math.fround;
}

/** The effective group size (cols for per-channel), validated against the layer width. */
export function intGroupSize(fmt: WeightFormat, cols: number, what = 'layer'): number {
  const g = fmt.groupSize;
  if (g === -1) return cols;
  if (!Number.isInteger(g) || g <= 0) throw new UserError(`${what}: group size must be a positive integer or -1 (per channel), got ${g}`);
  if (g > cols) throw new UserError(`${what}: group size ${g} does not fit the input width ${cols}; use a group size <= ${cols} (e.g. --group-size 32) or -1`);
  return g;
}

export function quantizeInt(w: Float32Array, rows: number, cols: number, fmt: WeightFormat, params: QuantParams = {}, what = 'layer'): QuantizedWeight {
  const bits = fmt.bits;
  if (!INT_BITS.includes(bits)) throw new UserError(`${what}: integer formats support 2..8 bits, got ${bits}`);
  const G = intGroupSize(fmt, cols, what);
  const ng = Math.ceil(cols / G);
  checkWeightInput(w, rows, cols, ng, params, what);
  const dt = params.scaleDtype ?? 'F16';
  const roundS = scaleRounder(dt);
  // auto-round clamps |scale| from below: 1e-5 (1e-8 for fp32 scales), in the scale dtype.
  const thresh = roundS(dt === 'F32' ? 1e-8 : 1e-5);
  const maxFinite = dt === 'F16' ? 65504 : 3.4028234663852886e38;
  const { v, minScale, maxScale } = params;
  const sym = fmt.symmetric;
  const n = rows * cols;
  const codes = sym ? new Int8Array(n) : new Uint8Array(n);
  const zeros = sym ? undefined : new Uint8Array(rows * ng);
  const scales = new Float32Array(rows * ng);
  const deq = new Float32Array(n);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < ng; g++) {
      const begin = r * cols + g * G;
      const end = Math.min(begin + G, r * cols + cols);
      let mn = 0;
      let mx = 0;
      for (let i = begin; i < end; i++) {
        const x = w[i];
        if (x < mn) mn = x;
        else if (x > mx) mx = x;
      }
      const gi = r * ng + g;
      const alpha = minScale ? minScale[gi] : 1;
      const beta = maxScale ? maxScale[gi] : 1;
      let raw: number;
      if (sym) {
        const aNeg = Math.fround(-mn * alpha);
        const aPos = Math.fround(mx * beta);
        raw = Math.fround((aPos < aNeg ? aNeg : -aPos) / 2 ** (bits - 1));
      } else {
        raw = Math.fround(Math.fround(Math.fround(mx * beta) - Math.fround(mn * alpha)) / (2 ** bits - 1));
      }
      if (Math.abs(raw) > maxFinite)
        throw new UserError(`${what}: row ${r} group ${g} has |w| up to ${Math.max(-mn, mx)}, beyond what ${dt} scales can hold; use bf16 or f32 scales (bench quantize --scale-dtype)`);
      let s = roundS(raw);
      s = s < 0 ? Math.min(s, -thresh) : Math.max(s, thresh);
      scales[gi] = s;
      if (sym) symGroup(w, codes as Int8Array, deq, begin, end, s, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, v ?? null);
      else {
        const maxq = 2 ** bits - 1;
        let zp = rne(Math.fround(Math.fround(-mn * alpha) / s));
        zp = zp < 0 ? 0 : zp > maxq ? maxq : zp;
        zeros![gi] = zp;
        asymGroup(w, codes as Uint8Array, deq, begin, end, s, zp, maxq, v ?? null);
      }
    }
  }
  return { fmt, rows, cols, groupSize: G, codes, scales, zeros, scaleDtype: dt, dequantized: deq };
}

// Hot loops, kept small and monomorphic so V8 optimizes them. Codes are read back from the
// typed array for the dequantized value: rne can return -0, a stored code cannot.
function symGroup(w: Float32Array, codes: Int8Array, deq: Float32Array, begin: number, end: number, s: number, lo: number, hi: number, v: Float32Array | null): void {
  for (let i = begin; i < end; i++) {
    let x = Math.fround(w[i] / s);
    if (v !== null) x = Math.fround(x + v[i]);
    x = x < lo ? lo : x > hi ? hi : x;
    codes[i] = x + MAGIC - MAGIC; // RNE (x is clamped, so small)
    deq[i] = codes[i] * s;
  }
}

function asymGroup(w: Float32Array, codes: Uint8Array, deq: Float32Array, begin: number, end: number, s: number, zp: number, maxq: number, v: Float32Array | null): void {
  const lo = -zp;
  const hi = maxq - zp;
  for (let i = begin; i < end; i++) {
    let x = Math.fround(w[i] / s);
    if (v !== null) x = Math.fround(x + v[i]);
    x = x < lo ? lo : x > hi ? hi : x;
    codes[i] = x + MAGIC - MAGIC + zp;
    deq[i] = (codes[i] - zp) * s;
  }
}

/** Dequantize stored integer codes: sym q*s; asym (q - zp)*s (same float32 ops as quantizeInt). */
export function dequantizeInt(codes: Int8Array | Uint8Array, scales: Float32Array, zeros: Uint8Array | undefined, rows: number, cols: number, groupSize: number): Float32Array {
  const ng = Math.ceil(cols / groupSize);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const gi = r * ng + Math.floor(c / groupSize);
      const i = r * cols + c;
      out[i] = Math.fround((zeros ? codes[i] - zeros[gi] : codes[i]) * scales[gi]);
    }
  }
  return out;
}

/**
 * int32 packing of unsigned b-bit values along each row, least-significant bits first
 * (compressed-tensors.md §3). 'dense' = compressed-tensors >= 0.18 (elements may straddle
 * words); 'legacy' = <= 0.17 (floor(32/b) per word, top bits zero). Identical for b = 2, 4, 8.
 */
export type PackLayout = 'dense' | 'legacy';

export function packedWords(cols: number, bits: number, layout: PackLayout): number {
  return layout === 'dense' ? Math.ceil((cols * bits) / 32) : Math.ceil(cols / Math.floor(32 / bits));
}

export function packInt32(u: ArrayLike<number>, rows: number, cols: number, bits: number, layout: PackLayout): Int32Array {
  const W = packedWords(cols, bits, layout);
  const out = new Uint32Array(rows * W);
  const per = Math.floor(32 / bits);
  for (let r = 0; r < rows; r++) {
    const base = r * W;
    for (let c = 0; c < cols; c++) {
      const x = u[r * cols + c] >>> 0;
      let word: number;
      let off: number;
      if (layout === 'dense') {
        const p = c * bits;
        word = p >>> 5;
        off = p & 31;
        if (off + bits > 32) out[base + word + 1] |= x >>> (32 - off);
      } else {
        word = Math.floor(c / per);
        off = (c % per) * bits;
      }
      out[base + word] |= x << off;
    }
  }
  return new Int32Array(out.buffer);
}

export function unpackInt32(packed: Int32Array, rows: number, cols: number, bits: number, layout: PackLayout): Uint8Array {
  const W = packedWords(cols, bits, layout);
  if (packed.length !== rows * W) throw new Error(`packed length ${packed.length} != ${rows}x${W}`);
  const words = new Uint32Array(packed.buffer, packed.byteOffset, packed.length);
  const mask = (1 << bits) - 1;
  const per = Math.floor(32 / bits);
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * W;
    for (let c = 0; c < cols; c++) {
      let x: number;
      if (layout === 'dense') {
        const p = c * bits;
        const word = p >>> 5;
        const off = p & 31;
        x = words[base + word] >>> off;
        if (off + bits > 32) x |= words[base + word + 1] << (32 - off);
      } else {
        x = words[base + Math.floor(c / per)] >>> ((c % per) * bits);
      }
      out[r * cols + c] = x & mask;
    }
  }
  return out;
}

/** Signed codes -> unsigned storage values (+2^(b-1)), as compressed-tensors packs them. */
export function offsetCodes(codes: Int8Array, bits: number): Uint8Array {
  const out = new Uint8Array(codes.length);
  const off = 2 ** (bits - 1);
  for (let i = 0; i < codes.length; i++) out[i] = codes[i] + off;
  return out;
}

/** Transpose a row-major [rows, cols] byte matrix (zero points pack along dim 0). */
export function transposeU8(a: Uint8Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}
