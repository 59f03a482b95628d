/**
 * Reading the float tensors a model needs, checked against what the architecture
 * expects: a float dtype (an F32 norm relabelled I32 has the right byte count and would
 * load as integers), the exact shape (not only the element count: [256,128] embeddings
 * are not [512,64]), and only finite values (one NaN weight makes every score NaN).
 * The finite scan is one pass over data that has just been read.
 */
import { UserError } from '../errors.ts';
import type { DType } from './dtypes.ts';
import { printable } from './json.ts';
import type { CheckpointTensors } from './tensors.ts';

/** Dtypes a dense (unquantized) weight may be stored in. */
export const FLOAT_WEIGHT_DTYPES: readonly DType[] = ['F32', 'BF16', 'F16', 'F64'];

/** Index of the first NaN or ±Inf value, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN; every finite v gives 0
  }
  return -1;
}

/** A flat index as a position in `shape`, e.g. 70 in [8, 64] -> "[1, 6]". */
export function position(flat: number, shape: readonly number[]): string {
  const idx: number[] = new Array(shape.length).fill(0);
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d] || 1;
    idx[d] = rest % n;
    rest = Math.floor(rest / n);
  }
  return `[${idx.join(', ')}]`;
}

/**
 * Throw a UserError naming `what` if any value is NaN or infinite. `what` names the tensor
 * (and the file), `why` says what makes it unusable.
 */
export function requireFinite(values: ArrayLike<number>, shape: readonly number[], what: string, fix = 'the checkpoint is corrupt; re-download or re-export it'): void {
  const i = firstNonFinite(values);
  if (i < 0) return;
  const v = values[i];
  throw new UserError(printable(`${what} has ${Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'} at ${position(i, shape)}; ${fix}`, 600));
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * A dense float tensor of `ckpt` that the architecture needs with shape `dims`: dtype,
 * shape and every value checked, decoded to float32.
 */
export function readFloatWeight(ckpt: CheckpointTensors, name: string, dims: readonly number[]): Float32Array {
  const info = ckpt.info(name);
  const where = `${ckpt.dir}: tensor '${name}'`;
  if (!FLOAT_WEIGHT_DTYPES.includes(info.dtype))
    throw new UserError(printable(`${where} is ${info.dtype}, expected a float dtype (${FLOAT_WEIGHT_DTYPES.join(', ')}); the checkpoint is corrupt or not an unquantized weight`, 600));
  if (!sameShape(info.shape, dims))
    throw new UserError(printable(`${where} has shape [${info.shape.join(', ')}], config.json implies [${dims.join(', ')}]; weights and config.json disagree`, 600));
  const values = ckpt.readFloat32(name);
  requireFinite(values, dims, where);
  return values;
}
