/**
 * Vega-lite specs for the leaderboard charts, built from the leaderboard table. Data is
 * embedded in each spec (values), so a spec renders offline, in the browser or in Node.
 */
import { compareMetric, hashSeed } from '../stats/index.ts';
import { cellKey, type Leaderboard, type LeaderboardRow } from './table.ts';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

export type VegaLiteSpec = Record<string, unknown>;

export interface ChartDef {
  id: string;
  title: string;
  description: string;
  spec: VegaLiteSpec;
}

/**
 * Points not dominated by another: no other point has x <= and y at least as good with
 * one of them strictly better. Returned sorted by x (the frontier line's order).
 */
export function paretoFrontier<T>(points: readonly T[], x: (p: T) => number, y: (p: T) => number, higherIsBetter: boolean): T[] {
  const better = (a: number, b: number) => (higherIsBetter ? a > b : a < b);
  const sorted = [...points].sort((a, b) => x(a) - x(b) || (higherIsBetter ? y(b) - y(a) : y(a) - y(b)));
  const out: T[] = [];
  let best: number | null = null;
  for (const p of sorted) {
    if (best === null || better(y(p), best)) {
      out.push(p);
      best = y(p);
    }
  }
  return out;
}

export function variantLabel(r: Pick<LeaderboardRow, 'method' | 'recipe'>): string {
  return r.recipe ? `${r.method}:${r.recipe}` : r.method;
}

export interface ParetoPoint {
  model: string;
  scheme: string;
  method: string;
  recipe: string | null;
  variant: string;
  bpw: number;
  value: number;
  stderr: number | null;
  metric: string;
  frontier: boolean;
}

/** One point per row with both bits per weight and the value; frontier flagged per model. */
export function paretoPoints(lb: Leaderboard, which: 'average' | 'ppl'): ParetoPoint[] {
  const pts: ParetoPoint[] = [];
  for (const r of lb.rows) {
    const v = which === 'average' ? r.average : r.ppl;
    if (v === null || r.bitsPerWeight === null) continue;
    pts.push({
      model: r.model,
      scheme: r.scheme,
      method: r.method,
      recipe: r.recipe,
      variant: variantLabel(r),
      bpw: r.bitsPerWeight,
      value: v,
      stderr: which === 'average' ? r.averageStderr : r.pplStderr,
      metric: which === 'average' ? 'average accuracy' : (r.pplKey ?? ''),
      frontier: false,
    });
  }
  const models = [...new Set(pts.map((p) => p.model))];
  for (const m of models) {
    const mine = pts.filter((p) => p.model === m);
    for (const p of paretoFrontier(mine, (q) => q.bpw, (q) => q.value, which === 'average')) p.frontier = true;
  }
  return pts;
}

export function paretoSpec(points: readonly ParetoPoint[], which: 'average' | 'ppl'): VegaLiteSpec {
  const yTitle = which === 'average' ? 'average accuracy' : 'perplexity (lower is better)';
  const x = { field: 'bpw', type: 'quantitative', title: 'bits per weight', scale: { zero: false } };
  const y = { field: 'value', type: 'quantitative', title: yTitle, scale: which === 'ppl' ? { type: 'log' } : { zero: false } };
  return {
    $schema: SCHEMA,
    description: `Pareto chart: ${yTitle} against bits per weight; lines join each model's frontier`,
    width: 520,
    height: 320,
    data: { values: points },
    layer: [
      {
        transform: [{ filter: 'datum.frontier' }],
        mark: { type: 'line', strokeWidth: 1.5 },
        encoding: { x, y, color: { field: 'model', type: 'nominal' }, order: { field: 'bpw', type: 'quantitative' } },
      },
      {
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          x,
          y,
          color: { field: 'model', type: 'nominal' },
          shape: { field: 'method', type: 'nominal' },
          tooltip: [
            { field: 'model', type: 'nominal' },
            { field: 'scheme', type: 'nominal' },
            { field: 'variant', type: 'nominal', title: 'method' },
            { field: 'metric', type: 'nominal' },
            { field: 'bpw', type: 'quantitative', format: '.3f' },
            { field: 'value', type: 'quantitative', format: '.4f' },
            { field: 'frontier', type: 'nominal' },
          ],
        },
      },
    ],
  };
}

export interface HeatCell {
  model: string;
  scheme: string;
  bits: number;
  variant: string;
  task: string;
  recovery: number;
}

/** Recovery of each task's primary metric (and the average) for every quantized row. */
export function heatmapCells(lb: Leaderboard): HeatCell[] {
  const out: HeatCell[] = [];
  for (const r of lb.rows) {
    if (r.baseline) continue;
    const spec = lb.models[r.model];
    const keys = [...spec.averageKeys, ...(spec.pplKey ? [spec.pplKey] : [])];
    const base = { model: r.model, scheme: r.scheme, bits: r.bits ?? 0, variant: variantLabel(r) };
    if (r.recovery !== null) out.push({ ...base, task: 'average', recovery: r.recovery });
    for (const k of keys) {
      const c = r.cells[k];
      if (c && c.recovery !== null) out.push({ ...base, task: k, recovery: c.recovery });
    }
  }
  return out;
}

export function heatmapSpec(cells: readonly HeatCell[]): VegaLiteSpec {
  return {
    $schema: SCHEMA,
    description: 'Recovery vs BF16 per task and scheme (100% = no loss)',
    data: { values: cells },
    facet: { row: { field: 'model', type: 'nominal' }, column: { field: 'variant', type: 'nominal', title: 'method' } },
    spec: {
      width: { step: 44 },
      height: { step: 22 },
      layer: [
        {
          mark: 'rect',
          encoding: {
            x: { field: 'scheme', type: 'nominal', sort: { field: 'bits', order: 'descending' } },
            y: { field: 'task', type: 'nominal', title: 'task / metric' },
            color: {
              field: 'recovery',
              type: 'quantitative',
              title: 'recovery',
              scale: { scheme: 'redyellowgreen', domainMid: 1 },
              legend: { format: '.0%' },
            },
            tooltip: [
              { field: 'model', type: 'nominal' },
              { field: 'scheme', type: 'nominal' },
              { field: 'variant', type: 'nominal', title: 'method' },
              { field: 'task', type: 'nominal' },
              { field: 'recovery', type: 'quantitative', format: '.2%' },
            ],
          },
        },
        {
          mark: { type: 'text', fontSize: 9 },
          encoding: {
            x: { field: 'scheme', type: 'nominal', sort: { field: 'bits', order: 'descending' } },
            y: { field: 'task', type: 'nominal' },
            text: { field: 'recovery', type: 'quantitative', format: '.0%' },
          },
        },
      ],
    },
  };
}

export interface DeltaPoint {
  model: string;
  scheme: string;
  bits: number;
  recipe: string | null;
  task: string;
  higherIsBetter: boolean;
  autoround: number;
  rtn: number;
  delta: number;
  lo: number | null;
  hi: number | null;
  ci: string;
}

export interface DeltaOptions {
  seed?: number;
  resamples?: number;
  level?: number;
}

/**
 * AutoRound - RTN per model x scheme x recipe for each task's primary metric: paired
 * bootstrap over items (seeded per comparison, so order does not matter) when both runs
 * carry the same items, else the normal interval from the two stderrs.
 */
export function autoroundDeltas(lb: Leaderboard, opts: DeltaOptions = {}): DeltaPoint[] {
  const out: DeltaPoint[] = [];
  const byKey = new Map<string, LeaderboardRow>();
  for (const r of lb.rows) byKey.set(JSON.stringify([r.model, r.scheme, r.method, r.recipe]), r);
  for (const ar of lb.rows) {
    if (ar.method !== 'autoround') continue;
    // RTN has no tuning recipe: pair with the RTN row of the same recipe, else the plain one.
    const rtn = byKey.get(JSON.stringify([ar.model, ar.scheme, 'rtn', ar.recipe])) ?? byKey.get(JSON.stringify([ar.model, ar.scheme, 'rtn', null]));
    if (!rtn) continue;
    const spec = lb.models[ar.model];
    const keys = [...spec.averageKeys, ...(spec.pplKey ? [spec.pplKey] : [])];
    for (const k of keys) {
      const a = ar.cells[k];
      const b = rtn.cells[k];
      if (!a || !b) continue;
      const ra = ar.records.find((r) => cellKey(r.task, r.metric) === k)!;
      const rb = rtn.records.find((r) => cellKey(r.task, r.metric) === k)!;
      const d = compareMetric(ra, rb, {
        seed: hashSeed(JSON.stringify([ar.model, ar.scheme, ar.recipe, k]), opts.seed ?? 0),
        resamples: opts.resamples ?? 2000,
        level: opts.level ?? 0.95,
      });
      out.push({
        model: ar.model,
        scheme: ar.scheme,
        bits: ar.bits ?? 0,
        recipe: ar.recipe,
        task: k,
        higherIsBetter: a.higherIsBetter,
        autoround: a.value,
        rtn: b.value,
        delta: d.delta,
        lo: Number.isFinite(d.lo) ? d.lo : null,
        hi: Number.isFinite(d.hi) ? d.hi : null,
        ci: d.method,
      });
    }
  }
  return out;
}

export function deltaSpec(points: readonly DeltaPoint[]): VegaLiteSpec {
  const y = { field: 'scheme', type: 'nominal', sort: { field: 'bits', order: 'descending' } };
  return {
    $schema: SCHEMA,
    description: 'AutoRound minus RTN per scheme with 95% intervals (paired bootstrap over items where available)',
    data: { values: points },
    facet: { column: { field: 'task', type: 'nominal', title: 'task / metric (AutoRound − RTN)' } },
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: 200,
      height: { step: 14 },
      layer: [
        { mark: { type: 'rule', color: '#888', strokeDash: [3, 3] }, encoding: { x: { datum: 0, type: 'quantitative' } } },
        {
          transform: [{ filter: 'datum.lo != null && datum.hi != null' }],
          mark: 'rule',
          encoding: {
            y,
            yOffset: { field: 'model', type: 'nominal' },
            x: { field: 'lo', type: 'quantitative', title: 'delta' },
            x2: { field: 'hi' },
            color: { field: 'model', type: 'nominal' },
          },
        },
        {
          mark: { type: 'point', filled: true },
          encoding: {
            y,
            yOffset: { field: 'model', type: 'nominal' },
            x: { field: 'delta', type: 'quantitative', title: 'delta' },
            color: { field: 'model', type: 'nominal' },
            tooltip: [
              { field: 'model', type: 'nominal' },
              { field: 'scheme', type: 'nominal' },
              { field: 'task', type: 'nominal' },
              { field: 'autoround', type: 'quantitative', format: '.4f' },
              { field: 'rtn', type: 'quantitative', format: '.4f' },
              { field: 'delta', type: 'quantitative', format: '.4f' },
              { field: 'lo', type: 'quantitative', format: '.4f' },
              { field: 'hi', type: 'quantitative', format: '.4f' },
              { field: 'ci', type: 'nominal', title: 'interval from' },
              { field: 'higherIsBetter', type: 'nominal', title: 'higher is better' },
            ],
          },
        },
      ],
    },
  };
}

/**
 * Every chart of the leaderboard (charts with no data are left out). `deltas` are the
 * AutoRound - RTN comparisons (autoroundDeltas), computed once by the caller.
 */
export function buildCharts(view: Leaderboard, deltas: readonly DeltaPoint[]): ChartDef[] {
  const charts: ChartDef[] = [];
  const acc = paretoPoints(view, 'average');
  if (acc.length)
    charts.push({ id: 'pareto-accuracy', title: 'Average accuracy vs bits per weight', description: 'Pareto frontier per model (line); higher and further left is better.', spec: paretoSpec(acc, 'average') });
  const ppl = paretoPoints(view, 'ppl');
  if (ppl.length)
    charts.push({ id: 'pareto-perplexity', title: 'Perplexity vs bits per weight', description: `Pareto frontier per model (line); lower and further left is better. Metric per model: ${[...new Set(ppl.map((p) => `${p.model}: ${p.metric}`))].join('; ')}.`, spec: paretoSpec(ppl, 'ppl') });
  const heat = heatmapCells(view);
  if (heat.length) charts.push({ id: 'recovery-heatmap', title: 'Recovery vs BF16 per task and scheme', description: 'quantized ÷ base (higher-is-better) or base ÷ quantized (perplexity); 100% = no loss.', spec: heatmapSpec(heat) });
  if (deltas.length)
    charts.push({ id: 'autoround-vs-rtn', title: 'AutoRound − RTN per scheme', description: '95% intervals: paired bootstrap over items where both runs carry per-item values (percentile interval; seed and resample count in leaderboard.json), else normal interval from the two stderrs. For perplexity, negative is better.', spec: deltaSpec(deltas) });
  return charts;
}
