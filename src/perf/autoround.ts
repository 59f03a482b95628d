/**
 * `bench perf` entry for AutoRound: wall time per block and in total for stories260k W4A16
 * (group 32: the model is 64 wide) with the default recipe, and the achieved GFLOP/s from an
 * analytic FLOP count of one optimisation step (forward + backward of the block on a batch).
 * Until the perf registry exists this module exports a plain function; register it there.
 */
import { autoRound, getRecipe, type Recipe } from '../quant/autoround/index.ts';
import { blockShape, type BlockShape } from '../quant/autoround/block.ts';
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

export interface AutoRoundPerf {
  scheme: string;
  recipe: Recipe;
  secondsPerBlock: number[];
  totalSeconds: number;
  flopsPerStep: number;
  achievedGflops: number;
}

export async function perfAutoRound(modelDir: string, overrides: Partial<Recipe> = {}, blocks?: number): Promise<AutoRoundPerf> {
  const scheme = withOverrides(getScheme('W4A16'), { groupSize: 32 });
  const recipe = getRecipe('default', overrides);
  const cfg = readModelConfig(modelDir);
  const T = Math.min(recipe.seqlen, cfg.maxPositions);
  const t0 = performance.now();
  const r = await autoRound(modelDir, scheme, recipe, { maxBlocks: blocks }, (p) => {
    if (p.iter % 50 === 0) process.stderr.write(`autoround perf: block ${p.block + 1}/${p.blocks} iter ${p.iter}/${p.iters} loss ${p.loss.toExponential(3)}\n`);
  });
  const totalSeconds = (performance.now() - t0) / 1000;
  const s = blockShape(cfg);
  const flopsPerStep = stepFlops(s, T, Math.min(recipe.batchSize, recipe.nsamples));
  const nb = r.record.secondsPerBlock.length;
  // Optimisation steps dominate; the per-block extra forwards over all samples are counted too.
  const flops = nb * (recipe.iters * flopsPerStep + 2 * recipe.nsamples * blockForwardFlops(s, T));
  return { scheme: scheme.name, recipe, secondsPerBlock: r.record.secondsPerBlock, totalSeconds, flopsPerStep, achievedGflops: flops / totalSeconds / 1e9 };
}
