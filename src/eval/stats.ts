/**
 * Statistics for evaluation results: a seeded PRNG, standard errors as lm-eval defines
 * them, bootstrap and paired-bootstrap tests over per-item values, a z-test, and
 * quantiles as llama.cpp's perplexity tool computes them for KL divergence.
 *
 * Everything here is deterministic for a given seed: the same items and seed give the
 * same bits on every machine (no Math.random, no Date).
 */
import { aggregate, type MetricItems } from '../results/record.ts';

const MASK64 = (1n << 64n) - 1n;

/**
 * SplitMix64 (Steele, Lea & Flood 2014; the generator Java's SplittableRandom uses and Vigna
 * recommends for seeding). 64-bit state advanced by the golden-ratio constant, then mixed.
 * Chosen because it is tiny, well tested, and has published test vectors (seed 1234567 gives
 * 6457827717110365317, 3203168211198807973, ...), which test/eval/stats.test.ts checks.
 */
export class SplitMix64 {
  private state: bigint;
  constructor(seed: number | bigint) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }
  /** Next 64-bit output as a BigInt in [0, 2^64). */
  nextU64(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }
  /** Uniform double in [0, 1) from the top 53 bits. */
  nextFloat(): number {
    return Number(this.nextU64() >> 11n) / 2 ** 53;
  }
  /** Uniform integer in [0, n) (n < 2^32; multiply-shift on 32 high bits, bias < n / 2^32). */
  nextInt(n: number): number {
    const hi = Number(this.nextU64() >> 32n);
    return Math.floor((hi * n) / 2 ** 32);
  }
}

/** Mean of a numeric array (NaN for an empty one). */
export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** Sample standard deviation (n - 1 denominator), as lm-eval's `sample_stddev`; null for n < 2. */
export function sampleStd(values: ArrayLike<number>): number | null {
  const n = values.length;
  if (n < 2) return null;
  const m = mean(values);
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - m) ** 2;
  return Math.sqrt(ss / (n - 1));
}

/** Standard error of a mean: sample std / sqrt(n) (lm-eval's `mean_stderr`); null for n < 2 ("N/A"). */
export function meanStderr(values: ArrayLike<number>): number | null {
  const s = sampleStd(values);
  return s === null ? null : s / Math.sqrt(values.length);
}

/** lm-eval aggregation names whose stderr this module knows (lm-eval.md §3.4). */
export type LmEvalAggregation = 'mean' | 'perplexity' | 'median' | 'weighted_perplexity' | 'bits_per_byte';

/**
 * The stderr lm-eval reports for a metric with the given aggregation: analytic for `mean`,
 * bootstrap for `perplexity`/`median`, none ("N/A" = null) for the weighted corpus metrics
 * and for n = 1. lm-eval's bootstrap uses Python's random module in chunks; ours uses
 * SplitMix64, so bootstrap values agree with lm-eval only to within bootstrap noise.
 */
export function lmEvalStderr(aggregation: LmEvalAggregation, values: readonly number[], opts: BootstrapOptions = {}): number | null {
  if (values.length < 2) return null;
  switch (aggregation) {
    case 'mean':
      return meanStderr(values);
    case 'perplexity':
      return bootstrapStderr({ aggregation: 'perplexity', values: [...values] }, opts);
    case 'median':
      return bootstrapStat(values, (v) => quantileSorted(sorted(v), 0.5), opts);
    case 'weighted_perplexity':
    case 'bits_per_byte':
      return null;
  }
}

/**
 * lm-eval's size-weighted group aggregation (`weight_by_size: True`, e.g. mmlu): value =
 * sum(v_i n_i) / sum(n_i); stderr = sqrt(pooled variance / sum n_i) with pooled variance
 * sum((n_i - 1) se_i^2 n_i) / (sum n_i - k).
 */
export function pooledGroup(subtasks: readonly { value: number; stderr: number; n: number }[]): { value: number; stderr: number } {
  let nSum = 0;
  let vSum = 0;
  let varSum = 0;
  for (const s of subtasks) {
    nSum += s.n;
    vSum += s.value * s.n;
    varSum += (s.n - 1) * s.stderr ** 2 * s.n;
  }
  return { value: vSum / nSum, stderr: Math.sqrt(varSum / (nSum - subtasks.length) / nSum) };
}

export interface BootstrapOptions {
  /** Number of bootstrap replicates (default 1000). */
  iters?: number;
  /** PRNG seed (default 1234). */
  seed?: number;
}

export const DEFAULT_ITERS = 1000;
export const DEFAULT_SEED = 1234;

/** Fill `idx` with n indices drawn uniformly with replacement. */
function resample(rng: SplitMix64, idx: Int32Array, n: number): void {
  for (let i = 0; i < idx.length; i++) idx[i] = rng.nextInt(n);
}

/**
 * Bootstrap stderr of any metric computed from its items: resample items with replacement
 * `iters` times, recompute with `aggregate`, return the sample std of the replicates.
 * Null when there are fewer than 2 items or iters < 2.
 */
export function bootstrapStderr(items: MetricItems, opts: BootstrapOptions = {}): number | null {
  const n = items.values.length;
  const iters = opts.iters ?? DEFAULT_ITERS;
  if (n < 2 || iters < 2) return null;
  const rng = new SplitMix64(opts.seed ?? DEFAULT_SEED);
  const idx = new Int32Array(n);
  const reps = new Float64Array(iters);
  for (let b = 0; b < iters; b++) {
    resample(rng, idx, n);
    reps[b] = aggregate(items, idx);
  }
  return sampleStd(reps);
}

/** Bootstrap stderr of an arbitrary statistic of a plain value list. */
export function bootstrapStat(values: readonly number[], stat: (v: Float64Array) => number, opts: BootstrapOptions = {}): number | null {
  const n = values.length;
  const iters = opts.iters ?? DEFAULT_ITERS;
  if (n < 2 || iters < 2) return null;
  const rng = new SplitMix64(opts.seed ?? DEFAULT_SEED);
  const idx = new Int32Array(n);
  const buf = new Float64Array(n);
  const reps = new Float64Array(iters);
  for (let b = 0; b < iters; b++) {
    resample(rng, idx, n);
    for (let i = 0; i < n; i++) buf[i] = values[idx[i]];
    reps[b] = stat(buf);
  }
  return sampleStd(reps);
}

export interface PairedBootstrapResult {
  /** aggregate(b) - aggregate(a) on the full item set. */
  diff: number;
  /** Sample std of the replicate differences. */
  stderr: number;
  /** Percentile confidence interval of the difference at level 1 - alpha. */
  ci: [number, number];
  /**
   * Two-sided p-value for "no difference": 2 x the smaller tail share of replicates on
   * either side of 0, with the (count + 1) / (iters + 1) correction so it is never 0; capped at 1.
   */
  p: number;
  iters: number;
}

/**
 * Paired bootstrap of the difference between two runs over the same items: each replicate
 * draws ONE set of item indices and recomputes both metrics on it, so item-level
 * correlation (the same hard questions) cancels out of the noise.
 */
export function pairedBootstrap(a: MetricItems, b: MetricItems, opts: BootstrapOptions & { alpha?: number } = {}): PairedBootstrapResult {
  const n = a.values.length;
  if (b.values.length !== n) throw new Error(`paired bootstrap needs the same items in both runs (${n} vs ${b.values.length})`);
  if (a.aggregation !== b.aggregation) throw new Error(`paired bootstrap of different aggregations (${a.aggregation} vs ${b.aggregation})`);
  if (n < 2) throw new Error('paired bootstrap needs at least 2 items');
  const iters = opts.iters ?? DEFAULT_ITERS;
  const alpha = opts.alpha ?? 0.05;
  const rng = new SplitMix64(opts.seed ?? DEFAULT_SEED);
  const idx = new Int32Array(n);
  const reps = new Float64Array(iters);
  let le = 0;
  let ge = 0;
  for (let r = 0; r < iters; r++) {
    resample(rng, idx, n);
    const d = aggregate(b, idx) - aggregate(a, idx);
    reps[r] = d;
    if (d <= 0) le++;
    if (d >= 0) ge++;
  }
  const s = sorted(reps);
  const p = Math.min(1, (2 * (Math.min(le, ge) + 1)) / (iters + 1));
  return {
    diff: aggregate(b) - aggregate(a),
    stderr: sampleStd(reps) ?? 0,
    ci: [quantileSorted(s, alpha / 2), quantileSorted(s, 1 - alpha / 2)],
    p,
    iters,
  };
}

/** Two-sided z-test of the difference of two independent estimates with stderrs. */
export function zTest(a: number, seA: number, b: number, seB: number): { diff: number; se: number; z: number; p: number } {
  const diff = b - a;
  const se = Math.sqrt(seA * seA + seB * seB);
  const z = se > 0 ? diff / se : diff === 0 ? 0 : Math.sign(diff) * Infinity;
  return { diff, se, z, p: twoSidedP(z) };
}

/** Two-sided normal p-value, P(|Z| >= |z|) = erfc(|z| / sqrt 2). */
export function twoSidedP(z: number): number {
  return erfc(Math.abs(z) / Math.SQRT2);
}

/**
 * Complementary error function (Numerical Recipes' Chebyshev fit `erfcc`, fractional
 * error below 1.2e-7 everywhere): plenty for p-values.
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** A sorted copy (ascending) as Float64Array. */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values as ArrayLike<number>).sort();
}

/**
 * Quantile of an ascending array as llama.cpp's perplexity tool computes its KLD
 * percentiles: linear interpolation at position f x (count - 1); f <= 0 gives the minimum,
 * f >= 1 the maximum. The median (f = 0.5) is the middle value, or the mean of the two
 * middle values for an even count.
 */
export function quantileSorted(s: ArrayLike<number>, f: number): number {
  const n = s.length;
  if (n === 0) return NaN;
  if (f <= 0) return s[0];
  if (f >= 1) return s[n - 1];
  const pos = f * (n - 1);
  const lo = Math.floor(pos);
  const frac = pos - lo;
  const hi = Math.min(lo + 1, n - 1);
  return (1 - frac) * s[lo] + frac * s[hi];
}

/** Mean and its uncertainty as llama.cpp prints them: sqrt((mean of squares - mean^2) / (count - 1)). */
export function meanWithUncertainty(values: ArrayLike<number>): { mean: number; stderr: number | null } {
  const n = values.length;
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    s += values[i];
    s2 += values[i] * values[i];
  }
  const m = s / n;
  return { mean: m, stderr: n > 1 ? Math.sqrt(Math.max(0, s2 / n - m * m) / (n - 1)) : null };
}
