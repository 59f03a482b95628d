/**
 * NVFP4 (formats.md §4): E2M1 elements in blocks of 16 along the input dim, one FP8 E4M3
 * scale per block, one FP32 global scale per tensor, a DIVISOR gs = 448·6/amax. Fused
 * layers (q/k/v, gate/up) must share gs: pass `params.globalScale` (the minimum gs of the
 * group, see `fusedGlobalScale`). Float32 operation order follows auto-round's
 * ref_nvfp4_quant (reciprocals, RTN = V 0, β 1):
 *   s8  = fp8(min(gs · (amax_blk·β · fp32(1/6)), 448))
 *   os  = 1 / (s8 · (1/gs))            (0 where s8 = 0: the block dequantizes to 0)
 *   q   = E2M1(clamp(x·os + V, ±6))
 * Dequantization is compressed-tensors' (compressors/nvfp4: dequantize with
 * scale = s8 / gs, the factor vLLM's kernels apply too): deq = q · fp32(s8 / gs). auto-round's
 * own QDQ multiplies by 1/os instead, which differs in the last float32 bits, and after
 * compressed-tensors' bfloat16 cast in about 0.2% of elements; the checkpoint is what is
 * evaluated, so its dequantization is the one we use.
 * A ragged last block is shorter (zeros do not change the block amax).
 */
import { UserError } from '../../errors.ts';
import { e4m3ToF32, f32ToE4m3 } from './floats.ts';
import type { WeightFormat } from '../schemes.ts';
import { E2M1_VALUES, e2m1Code } from './fp4.ts';
import { checkWeightInput, type QuantizedWeight, type QuantParams } from './types.ts';

// tsx turns imported bindings into getter calls; hot loops use module-local aliases.
const e2m1Code_ = e2m1Code;
const E2M1_VALUES_ = E2M1_VALUES;

export const NV_BLOCK = 16;
const F32_MAX = 3.4028234663852886e38;

const SIXTH = Math.fround(1 / 6); // auto-round multiplies by fp32(1/6) rather than dividing
const recip = (x: number) => (x === 0 ? 0 : Math.fround(1 / x));

/**
 * gs = 448·6 · fp32(1/amax), in float32, as auto-round computes it (compressed-tensors
 * divides, 448·6/amax, which can differ in the last bit); 1 for an all-zero tensor,
 * capped at the float32 max.
 */
export function nvfp4GlobalScale(amax: number): number {
  if (!(amax > 0)) return 1;
  const gs = Math.fround(2688 * Math.fround(1 / Math.fround(amax)));
  return Number.isFinite(gs) ? gs : F32_MAX;
}

/** Shared global scale of a fusion group (q/k/v or gate/up): the smallest gs = largest amax. */
export function fusedGlobalScale(amaxes: readonly number[]): number {
  return nvfp4GlobalScale(Math.max(...amaxes));
}

export function absMax(w: Float32Array): number {
  let m = 0;
  for (let i = 0; i < w.length; i++) {
    const a = Math.abs(w[i]);
    if (a > m) m = a;
  }
  return m;
}

/** The per-block multiplier os from the stored block scale and global scale. */
export function nvOutScale(s8: number, gs: number): number {
  return recip(Math.fround(s8 * recip(gs)));
}

export function quantizeNvfp4(w: Float32Array, rows: number, cols: number, fmt: WeightFormat, params: QuantParams = {}, what = 'layer'): QuantizedWeight {
  const G = NV_BLOCK;
  if (fmt.groupSize !== G) throw new UserError(`${what}: NVFP4 uses blocks of ${G}, got group size ${fmt.groupSize}`);
  const ng = Math.ceil(cols / G);
  checkWeightInput(w, rows, cols, ng, params, what);
  const gs = params.globalScale ?? nvfp4GlobalScale(absMax(w));
  if (!(gs > 0) || !Number.isFinite(gs)) throw new UserError(`${what}: NVFP4 global scale must be a positive finite number, got ${gs}`);
  const { v, maxScale } = params;
  const n = rows * cols;
  const codes = new Uint8Array(n);
  const scales = new Float32Array(rows * ng);
  const deq = new Float32Array(n);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < ng; g++) {
      const begin = r * cols + g * G;
      const end = Math.min(begin + G, r * cols + cols);
      let amax = 0;
      for (let i = begin; i < end; i++) amax = Math.max(amax, Math.abs(w[i]));
      const gi = r * ng + g;
      if (maxScale) amax = Math.fround(amax * maxScale[gi]);
      const s = Math.min(Math.fround(gs * Math.fround(amax * SIXTH)), 448);
      const s8 = e4m3ToF32(f32ToE4m3(s));
      scales[gi] = s8;
      const os = nvOutScale(s8, gs);
      const inv = Math.fround(s8 / gs);
      for (let i = begin; i < end; i++) {
        let x = Math.fround(w[i] * os);
        if (v) x = Math.fround(x + v[i]);
        const c = e2m1Code_(x < -6 ? -6 : x > 6 ? 6 : x);
        codes[i] = c;
        deq[i] = Math.fround(E2M1_VALUES_[c] * inv);
      }
    }
  }
  return { fmt, rows, cols, groupSize: G, codes, scales, globalScale: gs, dequantized: deq };
}

export function dequantizeNvfp4(codes: Uint8Array, scales: Float32Array, globalScale: number, rows: number, cols: number): Float32Array {
  const ng = Math.ceil(cols / NV_BLOCK);
  const inv = new Float32Array(scales.length);
  for (let i = 0; i < scales.length; i++) inv[i] = Math.fround(scales[i] / globalScale);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.fround(E2M1_VALUES_[codes[r * cols + c]] * inv[r * ng + Math.floor(c / NV_BLOCK)]);
  return out;
}
