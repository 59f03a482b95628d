/**
 * Optional 4-bit path: a Linear as onnxruntime's `MatMulNBits` (com.microsoft) with packed
 * int4 codes and per-group scales, instead of a float32 Gemm on dequantized weights. Both
 * paths use the same dequantized values w = (q - zp) · scale, so they must score the same
 * (test/engines/nbits.test.ts checks it); this one stores 4 bits per weight.
 */
import { DT } from './proto.ts';
import type { GraphBuilder } from './graph.ts';

export interface Int4Linear {
  /** Group size along the input features (MatMulNBits block_size: a power of two >= 16). */
  groupSize: number;
  /** Signed codes in -8..7, [out, in] row-major. */
  codes: Int8Array;
  /** Per-group scales, [out, ceil(in / groupSize)]. */
  scales: Float32Array;
  /** Optional signed per-group zero points in -8..7 (asymmetric schemes); default 0. */
  zeroPoints?: Int8Array;
}

export const NBITS_DOMAIN = { domain: 'com.microsoft', version: 1 };

/** Check shapes and ranges; returns a problem description or null. */
export function checkInt4(spec: Int4Linear, out: number, inF: number): string | null {
  const g = spec.groupSize;
  if (!Number.isInteger(g) || g < 16 || (g & (g - 1)) !== 0) return `group size ${g} must be a power of two >= 16 for MatMulNBits`;
  const blocks = Math.ceil(inF / g);
  if (spec.codes.length !== out * inF) return `${spec.codes.length} codes, expected ${out}x${inF}`;
  if (spec.scales.length !== out * blocks) return `${spec.scales.length} scales, expected ${out}x${blocks}`;
  if (spec.zeroPoints && spec.zeroPoints.length !== out * blocks) return `${spec.zeroPoints.length} zero points, expected ${out}x${blocks}`;
  for (const q of spec.codes) if (q < -8 || q > 7) return `code ${q} outside -8..7`;
  for (const z of spec.zeroPoints ?? []) if (z < -8 || z > 7) return `zero point ${z} outside -8..7`;
  return null;
}

/**
 * y = x · Wᵀ with W given as int4 codes. MatMulNBits reads unsigned nibbles (low nibble
 * first within a byte) and, without zero points, subtracts 8: a signed code q is stored as
 * q + 8. The padded tail of a short last group holds the zero code and never contributes.
 */
export function matMulNBits(g: GraphBuilder, x: string, name: string, spec: Int4Linear, out: number, inF: number): string {
  const bs = spec.groupSize;
  const blocks = Math.ceil(inF / bs);
  const blob = bs / 2;
  const packed = new Uint8Array(out * blocks * blob);
  for (let n = 0; n < out; n++) {
    for (let k = 0; k < blocks * bs; k++) {
      const b = Math.floor(k / bs);
      const zp = spec.zeroPoints ? spec.zeroPoints[n * blocks + b] : 0;
      // Padding gets the code equal to the zero point, i.e. weight 0.
      const u = (k < inF ? spec.codes[n * inF + k] : zp) + 8;
      const j = k % bs;
      packed[(n * blocks + b) * blob + (j >> 1)] |= j & 1 ? u << 4 : u;
    }
  }
  const inputs = [x, g.tensor(`${name}.qweight`, DT.UINT8, [out, blocks, blob], packed), g.weight(`${name}.scales`, [out * blocks], spec.scales)];
  if (spec.zeroPoints) {
    const perRow = Math.ceil(blocks / 2);
    const zp = new Uint8Array(out * perRow);
    for (let n = 0; n < out; n++) {
      for (let b = 0; b < blocks; b++) zp[n * perRow + (b >> 1)] |= (spec.zeroPoints[n * blocks + b] + 8) << (b & 1 ? 4 : 0);
    }
    inputs.push(g.tensor(`${name}.qzeros`, DT.UINT8, [out * perRow], zp));
  }
  return g.op('MatMulNBits', inputs, { K: { int: inF }, N: { int: out }, bits: { int: 4 }, block_size: { int: bs } }, undefined, NBITS_DOMAIN.domain);
}
