/**
 * Bootstrap statistics over per-item values: the stderr of any metric, lm-eval's stderr
 * rules, and the ONE paired bootstrap every comparison uses (regress gates, report deltas).
 * Seeded SplitMix64 throughout: the same items and seed give the same bits everywhere.
 */
import { aggregate, type Aggregation, type MetricItems, type MetricValue } from '../results/record.ts';
import { twoSidedP, zFor } from './normal.ts';
import { SplitMix64 } from './rng.ts';
import { meanStderr, quantileSorted, sampleStd, sorted } from './summary.ts';

export interface BootstrapOptions {
  /** Number of bootstrap replicates (default 1000; 2000 for paired comparisons). */
  iters?: number;
  /** PRNG seed (default 1234). */
  seed?: number;
}

export const DEFAULT_ITERS = 1000;
export const DEFAULT_PAIRED_ITERS = 2000;
export const DEFAULT_SEED = 1234;

/** Fill `idx` with n indices drawn uniformly with replacement. */
function resample(rng: SplitMix64, idx: Int32Array, n: number): void {
  rng.fillInts(idx, n);
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

export interface PairedBootstrapOptions extends BootstrapOptions {
  /** The interval is the percentile interval at level 1 - alpha (default 0.05). */
  alpha?: number;
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

/** The metric from its sums, exactly as aggregate() finishes it. */
function finish(agg: Aggregation, sv: number, sw: number, n: number): number {
  return agg === 'mean' ? sv / n : agg === 'perplexity' ? Math.exp(-sv / sw) : -sv / sw / Math.LN2;
}

/**
 * Paired bootstrap of aggregate(b) - aggregate(a) over the same items: each replicate
 * draws ONE set of item indices and recomputes both metrics on it, so item-level
 * correlation (the same hard questions) cancels out of the noise. Each replicate equals
 * aggregate(b, idx) - aggregate(a, idx) bit for bit, but both runs' sums come from one pass
 * over block-drawn indices (the report runs ~1000 of these).
 */
export function pairedBootstrap(a: MetricItems, b: MetricItems, opts: PairedBootstrapOptions = {}): PairedBootstrapResult {
  const n = a.values.length;
  if (b.values.length !== n) throw new Error(`paired bootstrap needs the same items in both runs (${n} vs ${b.values.length})`);
  if (a.aggregation !== b.aggregation) throw new Error(`paired bootstrap of different aggregations (${a.aggregation} vs ${b.aggregation})`);
  if (n < 2) throw new Error('paired bootstrap needs at least 2 items');
  for (const it of [a, b]) {
    if (it.weights && it.weights.length !== n) throw new Error(`paired bootstrap: ${it.weights.length} weights for ${n} values`);
  }
  const iters = opts.iters ?? DEFAULT_PAIRED_ITERS;
  if (!Number.isInteger(iters) || iters < 2) throw new RangeError(`paired bootstrap needs an integer iters >= 2, got ${iters}`);
  const alpha = opts.alpha ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`paired bootstrap alpha must be in (0, 1), got ${alpha}`);
  const agg = a.aggregation;
  const rng = new SplitMix64(opts.seed ?? DEFAULT_SEED);
  const va = Float64Array.from(a.values);
  const vb = Float64Array.from(b.values);
  // aggregate() ignores weights for 'mean'; for ratio metrics a missing weight counts 1.
  const ratio = agg !== 'mean';
  const wa = ratio && a.weights ? Float64Array.from(a.weights) : null;
  const wb = ratio && b.weights ? Float64Array.from(b.weights) : null;
  const idx = new Int32Array(n);
  const reps = new Float64Array(iters);
  let le = 0;
  let ge = 0;
  for (let r = 0; r < iters; r++) {
    resample(rng, idx, n);
    let sa = 0;
    let sb = 0;
    let swa = n;
    let swb = n;
    if (wa === null && wb === null) {
      for (let i = 0; i < n; i++) {
        const j = idx[i];
        sa += va[j];
        sb += vb[j];
      }
    } else {
      swa = 0;
      swb = 0;
      for (let i = 0; i < n; i++) {
        const j = idx[i];
        sa += va[j];
        sb += vb[j];
        swa += wa === null ? 1 : wa[j];
        swb += wb === null ? 1 : wb[j];
      }
    }
    const d = finish(agg, sb, swb, n) - finish(agg, sa, swa, n);
    reps[r] = d;
    if (d <= 0) le++;
    if (d >= 0) ge++;
  }
  const stderr = sampleStd(reps) ?? 0;
  reps.sort();
  return {
    diff: aggregate(b) - aggregate(a),
    stderr,
    ci: [quantileSorted(reps, alpha / 2), quantileSorted(reps, 1 - alpha / 2)],
    p: Math.min(1, (2 * (Math.min(le, ge) + 1)) / (iters + 1)),
    iters,
  };
}

/** True when both carry items over the same number (>= 2) of items, same aggregation, both weighted or both not. */
export function pairable(a: MetricItems | undefined, b: MetricItems | undefined): boolean {
  if (!a || !b) return false;
  if (a.aggregation !== b.aggregation || a.values.length !== b.values.length || a.values.length < 2) return false;
  return !!a.weights === !!b.weights;
}

export interface Delta {
  /** a.value - b.value */
  delta: number;
  lo: number;
  hi: number;
  /** Standard error of the delta (bootstrap sd, or combined stderrs). */
  stderr: number | null;
  /** Two-sided p-value for "no difference" (paired bootstrap or z-test); null without one. */
  p: number | null;
  method: 'paired-bootstrap' | 'stderr' | 'none';
}

/**
 * a - b with a confidence interval at `level` (default 0.95): the paired bootstrap when both
 * carry pairable items (far tighter: shared item difficulty cancels), else the normal
 * approximation from the two stderrs, else no interval (NaN bounds).
 */
export function compareMetric(
  a: Pick<MetricValue, 'value' | 'stderr' | 'items'>,
  b: Pick<MetricValue, 'value' | 'stderr' | 'items'>,
  opts: { resamples?: number; seed?: number; level?: number } = {},
): Delta {
  const delta = a.value - b.value;
  const level = opts.level ?? 0.95;
  if (pairable(a.items, b.items)) {
    // pairedBootstrap measures its second argument minus its first.
    const bs = pairedBootstrap(b.items!, a.items!, { iters: opts.resamples ?? DEFAULT_PAIRED_ITERS, seed: opts.seed, alpha: 1 - level });
    return { delta, lo: bs.ci[0], hi: bs.ci[1], stderr: bs.stderr, p: bs.p, method: 'paired-bootstrap' };
  }
  if (a.stderr != null && b.stderr != null && Number.isFinite(a.stderr) && Number.isFinite(b.stderr)) {
    const se = Math.sqrt(a.stderr * a.stderr + b.stderr * b.stderr);
    const z = zFor(level);
    const p = se > 0 ? twoSidedP(delta / se) : delta === 0 ? 1 : 0;
    return { delta, lo: delta - z * se, hi: delta + z * se, stderr: se, p, method: 'stderr' };
  }
  return { delta, lo: NaN, hi: NaN, stderr: null, p: null, method: 'none' };
}

/** Standard error of mean(a_i - b_i) for paired unweighted 'mean' items; null when not pairable. */
export function pairedMeanStderr(a: MetricItems | undefined, b: MetricItems | undefined): number | null {
  if (!pairable(a, b) || a!.aggregation !== 'mean' || a!.weights) return null;
  const n = a!.values.length;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = a!.values[i] - b!.values[i];
  return meanStderr(d);
}
