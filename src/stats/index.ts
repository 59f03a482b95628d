/**
 * Statistics for the whole project (a leaf: imports only results/record.ts). Seeded PRNG,
 * summaries and stderrs, the normal distribution, bootstraps and the one paired bootstrap.
 */
export { hashSeed, SplitMix64, uniformSource } from './rng.ts';
export { erf, erfc, normCdf, normalQuantile, twoSidedP, zFor, zTest } from './normal.ts';
export { mean, meanStderr, meanWithUncertainty, pooledGroup, quantileSorted, sampleStd, sorted } from './summary.ts';
export {
  bootstrapStat,
  bootstrapStderr,
  compareMetric,
  DEFAULT_ITERS,
  DEFAULT_PAIRED_ITERS,
  DEFAULT_SEED,
  lmEvalStderr,
  pairable,
  pairedBootstrap,
  pairedMeanStderr,
  type BootstrapOptions,
  type Delta,
  type LmEvalAggregation,
  type PairedBootstrapOptions,
  type PairedBootstrapResult,
} from './bootstrap.ts';
