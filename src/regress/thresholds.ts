/**
 * Regression thresholds (`ci/thresholds.json`): defaults, per-metric and per-cell
 * overrides. A cell key is `model/scheme/method/suite/metric`; a pattern may use `*` for
 * any one part. More specific layers win: defaults < metrics[metric] < cells[pattern].
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../errors.ts';

export interface Gate {
  /** Significance level of the noise test. */
  alpha: number;
  /** Smallest change worth reporting, in the metric's units. */
  minAbsDelta: number;
  /** Smallest change worth reporting, relative to the baseline value. */
  minRelDelta: number;
  /** Floor: quantized score ÷ base score (base ÷ quantized for lower-is-better). */
  minRecovery: number;
  /** Floor for perplexity-type metrics: quantized ÷ base. */
  maxPerplexityRatio: number;
}

const GateSchema = z
  .object({
    alpha: z.number().gt(0).lt(1),
    minAbsDelta: z.number().min(0),
    minRelDelta: z.number().min(0),
    minRecovery: z.number().min(0),
    maxPerplexityRatio: z.number().min(1),
  })
  .partial()
  .strict();

const ThresholdsSchema = z
  .object({
    $comment: z.string().optional(),
    defaults: GateSchema.optional(),
    metrics: z.record(z.string(), GateSchema).optional(),
    cells: z.record(z.string().regex(/^[^/]+(\/[^/]+){4}$/, 'cell keys are model/scheme/method/suite/metric'), GateSchema).optional(),
  })
  .strict();

export type Thresholds = z.infer<typeof ThresholdsSchema>;

export const BUILTIN_GATE: Gate = { alpha: 0.01, minAbsDelta: 0, minRelDelta: 0, minRecovery: 0, maxPerplexityRatio: Infinity };

export function parseThresholds(json: unknown, where: string): Thresholds {
  const r = ThresholdsSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(`${where}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

export function loadThresholds(path: string): Thresholds {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(`${path}: cannot read thresholds file; pass --thresholds PATH or create it`);
  }
  try {
    return parseThresholds(JSON.parse(text), path);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

function matches(pattern: string, key: string): boolean {
  const p = pattern.split('/');
  const k = key.split('/');
  return p.length === k.length && p.every((part, i) => part === '*' || part === k[i]);
}

/** The gate for one cell: defaults, then the metric's entry, then matching cell patterns (fewest wildcards last). */
export function gateFor(t: Thresholds, cellKey: string, metric: string): Gate {
  const cells = Object.entries(t.cells ?? {})
    .filter(([pattern]) => matches(pattern, cellKey))
    .sort(([a], [b]) => b.split('*').length - a.split('*').length);
  return Object.assign({}, BUILTIN_GATE, t.defaults, t.metrics?.[metric], ...cells.map(([, g]) => g));
}
