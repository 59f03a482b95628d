/**
 * Comparing two result records of the same task: the difference of their values with a
 * confidence interval. When both carry per-item values over the same items, the interval
 * comes from a seeded paired bootstrap (the same resampled items for both), which is far
 * tighter than combining two independent stderrs; otherwise it falls back to the normal
 * approximation from the stderrs. Lives in results/ so that report and compare share it
 * without report importing eval.
 */
import type { MetricItems, MetricValue } from './record.ts';

/** mulberry32: tiny, fast, good enough for resampling indices; bit-reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string: derives a per-comparison seed so results do not depend on order. */
export function hashSeed(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export interface Delta {
  /** a.value - b.value */
  delta: number;
  lo: number;
  hi: number;
  /** Standard error of the delta (bootstrap sd, or combined stderrs). */
  stderr: number | null;
  method: 'paired-bootstrap' | 'stderr' | 'none';
}

/** True when both records carry items over the same number of items with the same aggregation. */
export function pairable(a: MetricItems | undefined, b: MetricItems | undefined): boolean {
  if (!a || !b) return false;
  if (a.aggregation !== b.aggregation || a.values.length !== b.values.length || a.values.length < 2) return false;
  if (!!a.weights !== !!b.weights) return false;
  return true;
}

/**
 * Paired bootstrap of aggregate(a) - aggregate(b): resample item indices with
 * replacement, recompute both metrics on the same indices, take the percentile interval.
 */
export function pairedBootstrap(
  a: MetricItems,
  b: MetricItems,
  opts: { resamples?: number; seed?: number; level?: number } = {},
): { lo: number; hi: number; sd: number } {
  const B = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  const rand = mulberry32(opts.seed ?? 0);
  const n = a.values.length;
  // One pass per resample over both runs' sums (same indices), instead of two aggregate()
  // calls: this loop is the report's hot spot (thousands of comparisons).
  const va = Float64Array.from(a.values);
  const vb = Float64Array.from(b.values);
  const wa = a.weights ? Float64Array.from(a.weights) : null;
  const wb = b.weights ? Float64Array.from(b.weights) : null;
  const fin = (agg: MetricItems['aggregation'], sv: number, sw: number) =>
    agg === 'mean' ? sv / sw : agg === 'perplexity' ? Math.exp(-sv / sw) : -sv / sw / Math.LN2;
  const out = new Float64Array(B);
  let s = 0;
  let ss = 0;
  for (let r = 0; r < B; r++) {
    let sa = 0;
    let sb = 0;
    let swa = 0;
    let swb = 0;
    for (let i = 0; i < n; i++) {
      const j = Math.floor(rand() * n);
      sa += va[j];
      sb += vb[j];
      swa += wa ? wa[j] : 1;
      swb += wb ? wb[j] : 1;
    }
    const d = fin(a.aggregation, sa, swa) - fin(b.aggregation, sb, swb);
    out[r] = d;
    s += d;
    ss += d * d;
  }
  out.sort();
  const q = (p: number) => {
    // Linear interpolation between order statistics.
    const x = p * (B - 1);
    const i = Math.floor(x);
    const f = x - i;
    return i + 1 < B ? out[i] * (1 - f) + out[i + 1] * f : out[i];
  };
  const alpha = (1 - level) / 2;
  const mean = s / B;
  const sd = Math.sqrt(Math.max(0, ss / B - mean * mean) * (B / Math.max(1, B - 1)));
  return { lo: q(alpha), hi: q(1 - alpha), sd };
}

/** Normal quantile for the two-sided level (1.959964 for 95%), by bisection on erf. */
export function zFor(level: number): number {
  if (level === 0.95) return 1.959963984540054;
  let lo = 0;
  let hi = 10;
  for (let i = 0; i < 80; i++) {
    const mid = (lo + hi) / 2;
    if (normCdf(mid) - normCdf(-mid) < level) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function normCdf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse for quantiles; use a series/continued-fraction erf.
  return 0.5 * (1 + erf(x / Math.SQRT2));
}

function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = ax;
    let term = ax;
    for (let k = 1; k < 200; k++) {
      term *= (-ax * ax) / k;
      const add = term / (2 * k + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return (sign * 2 * sum) / Math.sqrt(Math.PI);
  }
  return sign * (1 - Math.exp(-ax * ax) / (ax * Math.sqrt(Math.PI)) * (1 - 1 / (2 * ax * ax)));
}

/** a - b with a confidence interval: paired bootstrap when possible, else from stderrs. */
export function compareMetric(
  a: Pick<MetricValue, 'value' | 'stderr' | 'items'>,
  b: Pick<MetricValue, 'value' | 'stderr' | 'items'>,
  opts: { resamples?: number; seed?: number; level?: number } = {},
): Delta {
  const delta = a.value - b.value;
  const level = opts.level ?? 0.95;
  if (pairable(a.items, b.items)) {
    const bs = pairedBootstrap(a.items!, b.items!, opts);
    return { delta, lo: bs.lo, hi: bs.hi, stderr: bs.sd, method: 'paired-bootstrap' };
  }
  if (a.stderr != null && b.stderr != null && Number.isFinite(a.stderr) && Number.isFinite(b.stderr)) {
    const se = Math.sqrt(a.stderr * a.stderr + b.stderr * b.stderr);
    const z = zFor(level);
    return { delta, lo: delta - z * se, hi: delta + z * se, stderr: se, method: 'stderr' };
  }
  return { delta, lo: NaN, hi: NaN, stderr: null, method: 'none' };
}

/** Standard error of mean(a_i - b_i) for paired 'mean' items; null when not pairable. */
export function pairedMeanStderr(a: MetricItems | undefined, b: MetricItems | undefined): number | null {
  if (!pairable(a, b) || a!.aggregation !== 'mean' || a!.weights) return null;
  const n = a!.values.length;
  let s = 0;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = a!.values[i] - b!.values[i];
    s += d;
    ss += d * d;
  }
  const mean = s / n;
  const variance = (ss - n * mean * mean) / (n - 1);
  return Math.sqrt(Math.max(0, variance) / n);
}
