/**
 * Plain summaries of a value list: mean, sample std, stderr of a mean (lm-eval's), the
 * size-weighted group stderr lm-eval reports for groups like mmlu, quantiles and the mean
 * uncertainty as llama.cpp's perplexity tool prints them.
 */

/** Mean of a numeric array (NaN for an empty one). */
export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** Sample standard deviation (n - 1 denominator, two-pass), as lm-eval's `sample_stddev`; null for n < 2. */
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

/** A sorted copy (ascending) as Float64Array. */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * Quantile of an ascending array as llama.cpp's perplexity tool computes its KLD
 * percentiles: linear interpolation at position f x (count - 1); f <= 0 gives the minimum,
 * f >= 1 the maximum. The median (f = 0.5) is the middle value, or the mean of the two
 * middle values for an even count. Also the percentile rule of the bootstrap intervals.
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
