/**
 * The result record: one metric of one evaluated checkpoint. Ledgers are JSON lines of
 * these; reports, comparisons and regression checks read nothing else. Every value
 * carries its uncertainty, and where items were scored one by one, the per-item values
 * travel with it so that two runs can be compared item for item (paired tests).
 */

/** How a metric's value is computed from its per-item values. */
export type Aggregation =
  /** value = mean(values) (accuracy, KLD, top-1 agreement). */
  | 'mean'
  /** value = exp(-sum(values) / sum(weights)): values are log-likelihoods, weights counts. */
  | 'perplexity'
  /** value = -sum(values) / sum(weights) / ln 2: log-likelihoods per byte, in bits. */
  | 'bits_per_unit';

export interface MetricItems {
  aggregation: Aggregation;
  /** Per-item values, in item order (same order in every run of the same suite). */
  values: number[];
  /** Per-item weights for ratio metrics (token, word or byte counts). */
  weights?: number[];
}

/** A metric as a task computes it, before it is stamped with job identity. */
export interface MetricValue {
  task: string;
  metric: string;
  value: number;
  /** Standard error of `value`; null where none is defined. */
  stderr: number | null;
  /** Number of items (documents, questions) behind the value. */
  n: number;
  higherIsBetter: boolean;
  items?: MetricItems;
  /** Extra numbers worth keeping (token/word/byte counts, median, p99 ...). */
  extra?: Record<string, number>;
}

export type Method = 'base' | 'rtn' | 'autoround' | (string & {});

export interface ResultRecord extends MetricValue {
  schema: 1;
  /** Content hash of everything that determines this result. */
  jobId: string;
  /** Run that produced the record. */
  run: string;
  model: string;
  /** Scheme name as the registry spells it (e.g. W4A16, NVFP4A16, BF16). */
  scheme: string;
  method: Method;
  recipe: string | null;
  suite: string;
  /** Effective bits per weight of the quantized Linear layers, scale overhead included. */
  bitsPerWeight: number;
  engine: string;
  timings: { quantSeconds: number | null; evalSeconds: number; peakMemoryMB?: number };
  /** Versions, seeds, BOS policy, recipe values, hashes, host, dates. */
  provenance: Record<string, unknown>;
  createdAt: string;
  coverage?: { items: number; limit: number | null; dataSha256: string };
}

/** Recompute a metric from its items (used for bootstrap resampling). */
export function aggregate(items: MetricItems, index?: ArrayLike<number>): number {
  const n = index ? index.length : items.values.length;
  let sv = 0;
  let sw = 0;
  for (let i = 0; i < n; i++) {
    const j = index ? index[i] : i;
    sv += items.values[j];
    sw += items.weights ? items.weights[j] : 1;
  }
  switch (items.aggregation) {
    case 'mean':
      return sv / n;
    case 'perplexity':
      return Math.exp(-sv / sw);
    case 'bits_per_unit':
      return -sv / sw / Math.LN2;
  }
}
