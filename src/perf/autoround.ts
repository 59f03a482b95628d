/**
 * `bench perf` entry for AutoRound: wall time per block and in total for stories260k W4A16
 * (group 32: the model is 64 wide) with the default recipe, and the achieved GFLOP/s of the
 * block forward/backward (analytic FLOP count) against a peak measured in the same run: the
 * float32 SIMD matrix kernel on a compute-bound 256³ product, times the threads used.
 */
import { availableParallelism } from 'node:os';
import { autoRound, getRecipe, type Recipe } from '../quant/autoround/index.ts';
import { blockShape, type BlockShape } from '../quant/autoround/block.ts';
import { mmNT } from '../quant/autoround/kernels.ts';
import { simdAttentionAvailable, simdAvailable } from '../quant/autoround/simd.ts';
import { readModelConfig } from '../checkpoint/config.ts';
import { getScheme, withOverrides } from '../quant/schemes.ts';

/** FLOPs of one sample's forward (Linear products + causal attention), multiply-add = 2. */
export function blockForwardFlops(s: BlockShape, T: number): number {
  const qd = s.nHeads * s.headDim, kd = s.nKv * s.headDim;
  const linear = 2 * T * (s.hidden * (2 * qd + 2 * kd) + 3 * s.hidden * s.inter);
  const pairs = (T * (T + 1)) / 2; // causal
  const attention = 2 * 2 * s.nHeads * pairs * s.headDim; // scores and weighted sum
  return linear + attention;
}

/** One iteration: forward + backward (≈ 2× forward: input and weight gradients) per sample. */
export function stepFlops(s: BlockShape, T: number, batch: number): number {
  return 3 * blockForwardFlops(s, T) * batch;
}

/** Single-thread GFLOP/s of the float32 matrix kernel on a compute-bound shape (~0.3 s). */
export function kernelPeakGflops(): number {
  const n = 256;
  const A = new Float32Array(n * n).map((_, i) => Math.sin(i)), B = new Float32Array(n * n).map((_, i) => Math.cos(i)), C = new Float32Array(n * n);
  mmNT(A, B, C, n, n, n);
  let reps = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 300) { mmNT(A, B, C, n, n, n); reps++; }
  return (2 * n * n * n * reps) / ((performance.now() - t0) / 1000) / 1e9;
}

export interface AutoRoundPerf {
  scheme: string;
  recipe: Recipe;
  threads: number;
  simd: boolean;
  secondsPerBlock: number[];
  totalSeconds: number;
  flopsPerStep: number;
  achievedGflops: number;
  peakGflops: number;
  fractionOfPeak: number;
}

export async function perfAutoRound(modelDir: string, o: { overrides?: Partial<Recipe>; blocks?: number; threads?: number; log?: (line: string) => void } = {}): Promise<AutoRoundPerf> {
  const scheme = withOverrides(getScheme('W4A16'), { groupSize: 32 });
  const recipe = getRecipe('default', o.overrides);
  const cfg = readModelConfig(modelDir);
  const T = Math.min(recipe.seqlen, cfg.maxPositions);
  const threads = o.threads ?? Math.min(8, availableParallelism());
  const peak = kernelPeakGflops() * threads;
  const t0 = performance.now();
  const r = await autoRound(modelDir, scheme, recipe, { maxBlocks: o.blocks, threads }, (p) => {
    if (p.iter % 50 === 0) o.log?.(`autoround perf: block ${p.block + 1}/${p.blocks} iter ${p.iter}/${p.iters} loss ${p.loss.toExponential(3)}`);
  });
  const totalSeconds = (performance.now() - t0) / 1000;
  const s = blockShape(cfg);
  const flopsPerStep = stepFlops(s, T, Math.min(recipe.batchSize, recipe.nsamples));
  const nb = r.record.secondsPerBlock.length;
  // Optimisation steps dominate; the per-block forwards over all samples (float reference and
  // quantized inputs of the next block) are counted too.
  const flops = nb * (recipe.iters * flopsPerStep + 2 * recipe.nsamples * blockForwardFlops(s, T));
  const achievedGflops = flops / totalSeconds / 1e9;
  return {
    scheme: scheme.name, recipe, threads, simd: simdAvailable() && simdAttentionAvailable(), secondsPerBlock: r.record.secondsPerBlock, totalSeconds,
    flopsPerStep, achievedGflops, peakGflops: peak, fractionOfPeak: achievedGflops / peak,
  };
}
