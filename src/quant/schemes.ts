/**
 * Quantization schemes as data. Names follow auto-round / llm-compressor presets; the
 * formats modules implement the math, this table only says which format and parameters
 * a scheme uses. Add a scheme here, not a branch elsewhere.
 */
import { UserError, didYouMean } from '../errors.ts';

export type WeightKind = 'none' | 'int' | 'mxfp4' | 'nvfp4' | 'fp8';
export type ActivationKind = 'none' | 'fp8' | 'nvfp4';

export interface WeightFormat {
  kind: WeightKind;
  /** Bits per element (16 for none). */
  bits: number;
  /** Elements per scale group along the input dim; -1 = per output channel. */
  groupSize: number;
  /** Integer formats: symmetric (no zero point) or asymmetric. */
  symmetric: boolean;
}

export interface ActivationFormat {
  kind: ActivationKind;
  /** Dynamic (computed per forward) or static (calibrated once). */
  dynamic: boolean;
  /** 'token' = one scale per row of the activation, 'tensor' = one, 'group' = per block. */
  granularity: 'token' | 'tensor' | 'group';
}

export interface Scheme {
  name: string;
  description: string;
  weights: WeightFormat;
  activations: ActivationFormat;
}

const NO_ACT: ActivationFormat = { kind: 'none', dynamic: true, granularity: 'token' };

function intScheme(bits: number): Scheme {
  return {
    name: `W${bits}A16`,
    description: `INT${bits} weights, symmetric, group-wise fp16 scales; 16-bit activations`,
    weights: { kind: 'int', bits, groupSize: 128, symmetric: true },
    activations: NO_ACT,
  };
}

export const SCHEMES: readonly Scheme[] = [
  {
    name: 'BF16',
    description: 'unquantized baseline',
    weights: { kind: 'none', bits: 16, groupSize: -1, symmetric: true },
    activations: NO_ACT,
  },
  intScheme(2),
  intScheme(3),
  intScheme(4),
  intScheme(8),
  {
    name: 'MXFP4A16',
    description: 'OCP MXFP4 weights: E2M1 elements, blocks of 32, E8M0 scales; 16-bit activations',
    weights: { kind: 'mxfp4', bits: 4, groupSize: 32, symmetric: true },
    activations: NO_ACT,
  },
  {
    name: 'NVFP4A16',
    description: 'NVFP4 weights: E2M1 elements, blocks of 16, FP8 E4M3 scales, FP32 global scale; 16-bit activations',
    weights: { kind: 'nvfp4', bits: 4, groupSize: 16, symmetric: true },
    activations: NO_ACT,
  },
  {
    name: 'NVFP4',
    description: 'NVFP4 weights and activations (W4A4), activation block scales computed per forward',
    weights: { kind: 'nvfp4', bits: 4, groupSize: 16, symmetric: true },
    activations: { kind: 'nvfp4', dynamic: true, granularity: 'group' },
  },
  {
    name: 'W8A8-FP8',
    description: 'FP8 E4M3 weights per output channel; activations FP8 dynamic per token',
    weights: { kind: 'fp8', bits: 8, groupSize: -1, symmetric: true },
    activations: { kind: 'fp8', dynamic: true, granularity: 'token' },
  },
  {
    name: 'W8A8-FP8-STATIC',
    description: 'FP8 E4M3 weights per output channel; activations FP8 static per tensor from calibration',
    weights: { kind: 'fp8', bits: 8, groupSize: -1, symmetric: true },
    activations: { kind: 'fp8', dynamic: false, granularity: 'tensor' },
  },
];

export function schemeNames(): string[] {
  return SCHEMES.map((s) => s.name);
}

export function getScheme(name: string): Scheme {
  const s = SCHEMES.find((x) => x.name.toLowerCase() === name.toLowerCase());
  if (!s) throw new UserError(`unknown scheme '${name}'; ${didYouMean(name, schemeNames())}`);
  return s;
}

/** A scheme with per-run overrides applied (group size, symmetry), validated. */
export function withOverrides(scheme: Scheme, o: { groupSize?: number; symmetric?: boolean }): Scheme {
  const w = { ...scheme.weights };
  if (o.groupSize !== undefined) {
    if (w.kind !== 'int') throw new UserError(`scheme ${scheme.name} has a fixed block size ${w.groupSize}; --group-size applies to integer schemes only`);
    if (!(o.groupSize === -1 || (Number.isInteger(o.groupSize) && o.groupSize > 0)))
      throw new UserError(`group size must be a positive integer or -1 (per channel), got ${o.groupSize}`);
    w.groupSize = o.groupSize;
  }
  if (o.symmetric !== undefined) {
    if (w.kind !== 'int') throw new UserError(`scheme ${scheme.name} is symmetric by definition; --asym applies to integer schemes only`);
    w.symmetric = o.symmetric;
  }
  return { ...scheme, weights: w };
}

/** Input width assumed for per-channel scale overhead in bits-per-weight figures. */
export const NOMINAL_IN_FEATURES = 4096;

/**
 * Storage bits per weight element including scale (and zero-point) overhead: int b +
 * 16/G (+ b/G asym), MXFP4 4 + 8/32, NVFP4 4 + 8/16 (the one global scale is negligible),
 * FP8 8 + 32/in. Per-channel scales are charged over NOMINAL_IN_FEATURES inputs.
 */
export function bitsPerWeight(s: Scheme): number {
  const w = s.weights;
  const per = (g: number) => (g === -1 || g === 0 ? NOMINAL_IN_FEATURES : g);
  switch (w.kind) {
    case 'none':
      return 16;
    case 'int':
      return w.bits + 16 / per(w.groupSize) + (w.symmetric ? 0 : w.bits / per(w.groupSize));
    case 'mxfp4':
      return 4 + 8 / 32;
    case 'nvfp4':
      return 4 + 8 / 16;
    case 'fp8':
      return 8 + 32 / per(w.groupSize);
  }
}
