/**
 * The result record: one metric of one evaluated checkpoint. Ledgers are JSON lines of
 * these; reports, comparisons and regression checks read nothing else. Every value
 * carries its uncertainty, and where items were scored one by one, the per-item values
 * travel with it so that two runs can be compared item for item (paired tests).
 */
import { z } from 'zod';

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

/**
 * Which items a result covers: two results are comparable only over the same item set.
 * Absent in records written before it existed (old ledgers still load).
 */
export interface Coverage {
  /** Items (documents, questions, stories) actually scored. */
  items: number;
  /** `--limit` the job ran with; null = the whole suite. */
  limit: number | null;
  /** sha256 identity of the suite's data files as the job read them (see matrix/plan.ts `dataSha256`). */
  dataSha256: string;
}

/** Two results cover the same item set: the same --limit over the same data. Unknown coverage matches nothing. */
export function sameItemSet(a: Pick<Coverage, 'limit' | 'dataSha256'> | undefined, b: Pick<Coverage, 'limit' | 'dataSha256'> | undefined): boolean {
  return !!a && !!b && a.limit === b.limit && a.dataSha256 === b.dataSha256;
}

/** An item set in words, for messages. */
export function describeItemSet(c: Pick<Coverage, 'limit' | 'dataSha256'> | undefined): string {
  return !c ? 'an unrecorded item set' : `${c.limit === null ? 'every item' : `the first ${c.limit} items`} of data ${c.dataSha256.slice(0, 12)}`;
}

/** A leaderboard cell: one suite of one checkpoint (model, scheme, method, recipe). */
export function cellKey(r: { model: string; scheme: string; method: string; recipe: string | null; suite: string }): string {
  return [r.model, r.scheme, r.method, r.recipe ?? '', r.suite].join('\u0000');
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
  /** The item set behind the value; every record written since coverage existed has it. */
  coverage?: Coverage;
  timings: { quantSeconds: number | null; evalSeconds: number; peakMemoryMB?: number };
  /** Versions, seeds, BOS policy, recipe values, hashes, host, dates. */
  provenance: Record<string, unknown>;
  createdAt: string;
}

// Schemas of the above, for data that comes back from disk (cache files, ledgers).
// z.number() refuses NaN and ±Infinity, so a validated value is always finite.
const count = z.number().int().nonnegative();

export const coverageSchema = z.object({
  items: count,
  limit: z.number().int().positive().nullable(),
  dataSha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const metricItemsSchema = z.object({
  aggregation: z.enum(['mean', 'perplexity', 'bits_per_unit']),
  values: z.array(z.number()),
  weights: z.array(z.number()).optional(),
}).refine((it) => !it.weights || it.weights.length === it.values.length, { message: 'weights and values differ in length' });

export const metricValueSchema = z.object({
  task: z.string().min(1),
  metric: z.string().min(1),
  value: z.number(),
  stderr: z.number().nonnegative().nullable(),
  n: count,
  higherIsBetter: z.boolean(),
  items: metricItemsSchema.optional(),
  extra: z.record(z.string(), z.number()).optional(),
});

/** One line of a ledger. `coverage` is optional so that ledgers written before it still load. */
export const resultRecordSchema = metricValueSchema.extend({
  schema: z.literal(1),
  jobId: z.string(),
  run: z.string(),
  model: z.string().min(1),
  scheme: z.string().min(1),
  method: z.string().min(1),
  recipe: z.string().nullable(),
  suite: z.string(),
  bitsPerWeight: z.number(),
  engine: z.string(),
  coverage: coverageSchema.optional(),
  timings: z.object({ quantSeconds: z.number().nullable(), evalSeconds: z.number(), peakMemoryMB: z.number().optional() }),
  provenance: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
});

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
