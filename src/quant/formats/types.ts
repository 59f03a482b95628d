/**
 * Shared shapes of the weight quantizers. A weight is W[rows=out, cols=in], row-major;
 * groups run along `cols` (formats.md §0). Every quantizer returns the codes and scales
 * it would store and the dequantized weight it implies, computed with the same float32
 * operations the reader uses, so a checkpoint round trip is bit-exact.
 */
import { UserError } from '../../errors.ts';
import type { WeightFormat } from '../schemes.ts';

export type { WeightFormat };

/** dtype of stored integer-format scales; the quantizer rounds its scales to it. */
export type ScaleDtype = 'F16' | 'BF16' | 'F32';

/**
 * Trainable parameters (AutoRound). RTN is all defaults: V = 0, α = β = 1, own global
 * scale. `v` has one entry per weight element (rows*cols, unpadded); `minScale` (α) and
 * `maxScale` (β) one per group (rows * groupsPerRow), row-major.
 */
export interface QuantParams {
  v?: Float32Array;
  minScale?: Float32Array;
  maxScale?: Float32Array;
  /** NVFP4: the FP32 global scale (a divisor, 448*6/amax) shared across fused layers. */
  globalScale?: number;
  /** Integer formats: dtype the scales are rounded to (auto-round's scale_dtype). Default F16. */
  scaleDtype?: ScaleDtype;
}

export interface QuantizedWeight {
  fmt: WeightFormat;
  rows: number;
  cols: number;
  /** Elements per scale group along cols (int: the group size, or cols for per-channel). */
  groupSize: number;
  /**
   * One code per element, row-major.
   * int sym: Int8Array, signed [-2^(b-1), 2^(b-1)-1]; int asym: Uint8Array, unsigned
   * [0, 2^b-1] (auto-round's convention); mxfp4/nvfp4: Uint8Array E2M1 codes 0..15
   * (bit 3 = sign); fp8: Uint8Array float8_e4m3fn bytes.
   */
  codes: Int8Array | Uint8Array;
  /**
   * Scale values as stored, decoded, [rows, groupsPerRow]: int: the (possibly negative)
   * scale; mxfp4: 2^e; nvfp4: the FP8 block scale s8 (divide by globalScale); fp8: per-row.
   */
  scales: Float32Array;
  /** int asym only: unsigned zero points [rows, groupsPerRow]. */
  zeros?: Uint8Array;
  /** nvfp4 only: FP32 global scale (divisor). */
  globalScale?: number;
  /** int only: the dtype the scales were rounded to. */
  scaleDtype?: ScaleDtype;
  /** The dequantized weight, rows*cols float32. */
  dequantized: Float32Array;
}

/**
 * Round half to even (torch.round); Math.round rounds halves toward +inf. Adding and
 * subtracting 1.5·2^52 makes the FPU round to an integer in its own (RNE) mode: exact for
 * |x| < 2^51, branch-free. Larger |x| are already integers.
 */
export const RNE_MAGIC = 6755399441055744;
export function rne(x: number): number {
  return Math.abs(x) < 2 ** 51 ? x + RNE_MAGIC - RNE_MAGIC : x;
}

/** floor(log2(x)) for finite x > 0, exact (Math.log2 may be off by an ulp near 2^k). */
export function floorLog2(x: number): number {
  let e = Math.floor(Math.log2(x));
  if (2 ** e > x) e--;
  else if (2 ** (e + 1) <= x) e++;
  return e;
}

export function groupsPerRow(cols: number, groupSize: number): number {
  return groupSize === -1 ? 1 : Math.ceil(cols / groupSize);
}

/** Validate the shared inputs of a weight quantizer; throws a one-line UserError. */
export function checkWeightInput(w: Float32Array, rows: number, cols: number, nGroups: number, params: QuantParams | undefined, what: string): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 || cols <= 0)
    throw new UserError(`${what}: weight shape [${rows}, ${cols}] must be positive integers`);
  if (w.length !== rows * cols) throw new UserError(`${what}: weight has ${w.length} elements but shape [${rows}, ${cols}] needs ${rows * cols}`);
  for (let i = 0; i < w.length; i++) {
    if (!Number.isFinite(w[i])) throw new UserError(`${what}: weight element [${Math.floor(i / cols)}, ${i % cols}] is ${w[i]}; quantize only finite weights (check the source checkpoint)`);
  }
  if (params?.v && params.v.length !== w.length) throw new UserError(`${what}: rounding offsets v have ${params.v.length} elements, expected ${w.length} (one per weight)`);
  const ng = rows * nGroups;
  if (params?.minScale && params.minScale.length !== ng) throw new UserError(`${what}: minScale has ${params.minScale.length} entries, expected ${ng} (one per group)`);
  if (params?.maxScale && params.maxScale.length !== ng) throw new UserError(`${what}: maxScale has ${params.maxScale.length} entries, expected ${ng} (one per group)`);
}
