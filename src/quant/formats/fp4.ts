/**
 * FP4 E2M1 elements (formats.md §2): magnitudes [0, 0.5, 1, 1.5, 2, 3, 4, 6], sign in bit
 * 3, round to nearest with ties to the even code, saturating at ±6. Packing
 * (compressed-tensors.md §4): two elements per byte, even column in the low nibble.
 */
import { UserError } from '../../errors.ts';

// tsx turns imported bindings into getter calls; hot loops use module-local aliases.

/** Value of each 4-bit code 0..15 (code 8 is -0). */
export const E2M1_VALUES = Float32Array.from([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]);

/**
 * Nearest E2M1 code, ties to even, saturating at ±6: the magnitude code counts the
 * decision thresholds of formats.md §2 that |x| passes (strict where the tie goes down,
 * inclusive where it goes up). Comparisons summed as 0/1 compile without branches, which
 * matters on random data. A negative x that rounds to zero is code 0 (auto-round's NVFP4
 * packer drops the sign of zero); e2m1CodeSignedZero keeps it.
 */
export function e2m1Code(x: number): number {
  const a = x < 0 ? -x : x;
  const m = +(a > 0.25) + +(a >= 0.75) + +(a > 1.25) + +(a >= 1.75) + +(a > 2.5) + +(a >= 3.5) + +(a > 5);
  return m + 8 * (+(x < 0) & +(m > 0));
}

/**
 * As e2m1Code, but a negative x that rounds to zero is -0 (code 8), as compressed-tensors'
 * pack_fp4_to_uint8 (torch.signbit of the rounded value) stores it; auto-round's MXFP4
 * export (model-free, compressed-tensors packing) writes this.
 */
export function e2m1CodeSignedZero(x: number): number {
  const c = e2m1Code(x);
  return c === 0 && (x < 0 || Object.is(x, -0)) ? 8 : c;
}

/** Pack per-element codes [rows, cols] into bytes [rows, cols/2]; cols must be even. */
export function packFp4(codes: Uint8Array, rows: number, cols: number): Uint8Array {
  if (cols % 2 !== 0) throw new UserError(`FP4 packing needs an even input width, got ${cols}`);
  const out = new Uint8Array((rows * cols) / 2);
  for (let i = 0, j = 0; j < out.length; i += 2, j++) out[j] = (codes[i] & 15) | ((codes[i + 1] & 15) << 4);
  return out;
}

export function unpackFp4(bytes: Uint8Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows * cols);
  for (let j = 0, i = 0; j < bytes.length; j++, i += 2) {
    out[i] = bytes[j] & 15;
    out[i + 1] = bytes[j] >>> 4;
  }
  return out;
}
