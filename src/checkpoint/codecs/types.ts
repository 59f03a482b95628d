/**
 * One codec per compressed-tensors format. A codec says which of our weight formats it
 * writes, the `weights` args it declares in quantization_config, the tensors (names, dtypes,
 * shapes) it promises per quantized Linear, and how to write and read them. The writer, the
 * reader and the header-only validator (codecs/index.ts) iterate over the codecs; nothing
 * else switches on a format.
 */
import type { DType } from '../dtypes.ts';
import type { TensorToWrite } from '../safetensors.ts';
import type { QuantizedWeight, WeightFormat } from '../../quant/formats/index.ts';

export type Args = Record<string, unknown>;

/** A tensor a codec promises for one layer: `<layer>.<suffix>`. */
export interface TensorSpec {
  suffix: string;
  dtypes: readonly DType[];
  /** Exact shape, or null when only the dtype is fixed. */
  shape: readonly number[] | null;
  /** Exactly one element (a scalar stored as [1] or []). */
  scalar?: boolean;
}

/** What a codec needs to know about one configured layer. */
export interface LayerSpec {
  name: string;
  weights: Args;
  /** The config group's input_activations (null = 16-bit). */
  activations: Args | null;
  rows: number;
  cols: number;
  /** compressed-tensors `version` of the config; null when absent. */
  version: string | null;
}

/** Header access the codecs need (CheckpointTensors implements it). */
export interface TensorHeaders {
  names(): string[];
  has(name: string): boolean;
  info(name: string): { dtype: DType; shape: number[] };
}

export interface TensorData extends TensorHeaders {
  readBytes(name: string): Uint8Array;
  readFloat32(name: string): Float32Array;
}

/** The pieces a codec reads back; dequantizeWeight turns them into float32 weights. */
export type StoredWeight = Omit<QuantizedWeight, 'dequantized'>;

export interface WriteExtras {
  /** Static FP8 activations: the calibrated per-tensor input scale. */
  inputScale?: number;
  /** NVFP4 W4A4: the calibrated input global scale. */
  inputGlobalScale?: number;
}

export interface Codec {
  /** The format name written to quantization_config. */
  format: string;
  /** Other format names this codec reads (older or equivalent spellings). */
  aliases: readonly string[];
  /** Whether this codec stores weights of our format `w`. */
  writes(w: WeightFormat): boolean;
  /** The quantization_config `weights` args for our format `w`. */
  weightArgs(w: WeightFormat): Args;
  /** [rows, cols] of the layer as its own tensors say (the caller checks them against config.json). */
  dims(d: TensorData, name: string, weights: Args, configDims: [number, number] | null): [number, number] | string;
  /** Every tensor this codec promises for the layer; anything missing or different is an error. */
  tensors(l: LayerSpec, h: TensorHeaders): TensorSpec[] | string;
  /** Tensors that must NOT be there (name suffix -> why). */
  forbidden(l: LayerSpec): [string, string][];
  write(name: string, q: QuantizedWeight, extras: WriteExtras): TensorToWrite[];
  read(l: LayerSpec, d: TensorData): StoredWeight;
}

/** Shape of a 2-D tensor as [rows, cols], or an error text. */
export function twoD(h: TensorHeaders, name: string, suffix: string): [number, number] | string {
  const n = `${name}.${suffix}`;
  if (!h.has(n)) return `missing tensor '${suffix}'`;
  const s = h.info(n).shape;
  return s.length === 2 ? [s[0], s[1]] : `tensor '${suffix}' has shape [${s}], expected 2-D`;
}

export function tensor(name: string, suffix: string, dtype: DType, shape: number[], data: Uint8Array): TensorToWrite {
  return { name: `${name}.${suffix}`, dtype, shape, data };
}

export const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Base args every compressed-tensors QuantizationArgs carries (0.18's defaults). */
export function baseArgs(): Args {
  return {
    actorder: null, block_structure: null, dynamic: false, group_size: null, num_bits: 8, observer: 'memoryless_minmax',
    observer_kwargs: {}, scale_dtype: null, strategy: 'tensor', symmetric: true, type: 'int', zp_dtype: null,
  };
}

export const FLOAT_SCALE: readonly DType[] = ['F16', 'BF16', 'F32'];
