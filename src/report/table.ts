/**
 * The leaderboard table: one row per model x scheme x method x recipe, one cell per
 * task metric, plus the derived columns (average, recovery vs the BF16 baseline, KLD,
 * top-1 agreement). Pure: records in, plain data out; renderers only format it.
 *
 * Definitions (also printed on every page, see DEFINITIONS):
 * - When the same row, task and metric appear in several runs, the newest record
 *   (createdAt, then ledger order) wins.
 * - Average: unweighted mean over tasks of ONE accuracy-type metric per task (the first
 *   of ACCURACY_METRICS the task reports: acc before acc_norm, as Intel's AutoRound tables
 *   do). The task set is fixed per model (every accuracy task any row of that model
 *   has); a row missing one of them gets no average rather than a non-comparable one.
 *   Perplexity, KLD and top-1 agreement never enter the average.
 * - Recovery per metric: quantized / base when higher is better, base / quantized when
 *   lower is better (perplexity, bits per byte); 100% = no loss. Recovery of the average
 *   is the ratio of averages (Red Hat model-card convention), not the mean of ratios.
 */
import * as aq from 'arquero';
import { pairedMeanStderr } from '../stats/index.ts';
import type { ResultRecord } from '../results/record.ts';

/** Accuracy-type metric names, in order of preference for the average. */
export const ACCURACY_METRICS = ['acc', 'acc_norm', 'exact_match', 'mc2', 'mc1', 'em', 'f1'] as const;
/** Perplexity-type metric names, in order of preference for the perplexity chart. */
export const PERPLEXITY_METRICS = ['word_perplexity', 'token_perplexity', 'byte_perplexity', 'perplexity', 'bits_per_byte'] as const;

export const DEFINITIONS = {
  average:
    'Average = unweighted mean over tasks of one accuracy-type metric per task (acc if reported, else acc_norm, else exact_match/mc2/mc1). The task set is fixed per model; a row missing any of its tasks shows no average. Perplexity, KLD and top-1 agreement are never averaged. ± = sqrt(sum of squared stderrs)/k (tasks independent).',
  recovery:
    'Recovery vs BF16 = quantized ÷ base for higher-is-better metrics, base ÷ quantized for perplexity-type (lower-is-better) metrics; 100% = no loss, >100% is within noise or a real gain. The leaderboard column is the ratio of the averages (not the mean of per-task ratios). ± = se of the paired per-item difference ÷ base where both runs have per-item values, else the delta-method combination of the two stderrs.',
  kld: 'KLD = mean KL(base ‖ quantized) of the next-token distribution per token; top-1 = fraction of tokens whose argmax matches the base model (llama.cpp "Same top p").',
  dedupe: 'When a row, task and metric appear in several runs, the newest record wins.',
} as const;

export type MetricKind = 'accuracy' | 'perplexity' | 'kld' | 'other';

export function metricBase(metric: string): string {
  // lm-eval spells metrics 'acc,none'; the filter suffix does not change the kind.
  return metric.split(',')[0];
}

export function metricKind(task: string, metric: string, higherIsBetter: boolean): MetricKind {
  const m = metricBase(metric);
  if (m.startsWith('kld') || m === 'same_top_p' || task === 'kld') return 'kld';
  if ((ACCURACY_METRICS as readonly string[]).includes(m)) return 'accuracy';
  if (!higherIsBetter && (m.includes('perplexity') || m.startsWith('bits_per'))) return 'perplexity';
  return 'other';
}

/** Nominal weight bit width from a scheme name (W4A16 -> 4, NVFP4 -> 4, FP8 -> 8, BF16 -> 16). */
export function schemeBits(scheme: string, bitsPerWeight?: number): number | null {
  const s = scheme.toUpperCase();
  const w = /^W(\d+)A/.exec(s);
  if (w) return Number(w[1]);
  if (s.includes('FP4')) return 4;
  if (s.includes('FP8')) return 8;
  if (s === 'BF16' || s === 'FP16' || s === 'F16') return 16;
  if (s === 'FP32' || s === 'F32') return 32;
  return bitsPerWeight !== undefined && Number.isFinite(bitsPerWeight) ? Math.round(bitsPerWeight) : null;
}

export interface Cell {
  task: string;
  metric: string;
  value: number;
  stderr: number | null;
  n: number;
  higherIsBetter: boolean;
  kind: MetricKind;
  /** Recovery vs the model's base row (1 = 100%); null when no base or not meaningful. */
  recovery: number | null;
  recoveryStderr: number | null;
  /** Whether recoveryStderr came from paired per-item differences. */
  paired: boolean;
  run: string;
  createdAt: string;
}

export interface MetricColumn {
  key: string;
  task: string;
  metric: string;
  higherIsBetter: boolean;
  kind: MetricKind;
}

export interface LeaderboardRow {
  key: string;
  model: string;
  scheme: string;
  method: string;
  recipe: string | null;
  baseline: boolean;
  bits: number | null;
  bitsPerWeight: number | null;
  quantSeconds: number | null;
  cells: Record<string, Cell>;
  average: number | null;
  averageStderr: number | null;
  /** Tasks of the model's average that this row lacks (why average is null). */
  averageMissing: string[];
  recovery: number | null;
  recoveryStderr: number | null;
  kld: number | null;
  kldStderr: number | null;
  top1: number | null;
  top1Stderr: number | null;
  /** Chosen perplexity metric of the model (task/metric key) and its value. */
  pplKey: string | null;
  ppl: number | null;
  pplStderr: number | null;
  runs: string[];
  /** The records behind the row, for detail pages and paired comparisons. */
  records: ResultRecord[];
}

export interface Leaderboard {
  columns: MetricColumn[];
  rows: LeaderboardRow[];
  /** Per model: the task/metric keys its average is taken over, and its perplexity key. */
  models: Record<string, { averageKeys: string[]; pplKey: string | null }>;
  superseded: number;
}

export function rowKey(r: Pick<ResultRecord, 'model' | 'scheme' | 'method' | 'recipe'>): string {
  return JSON.stringify([r.model, r.scheme, r.method, r.recipe ?? null]);
}

export const cellKey = (task: string, metric: string): string => `${task}/${metric}`;

/** Newest record per row x task x metric (arquero: group, order newest first, keep one). */
export function dedupe(records: readonly ResultRecord[]): { kept: ResultRecord[]; superseded: number } {
  if (records.length === 0) return { kept: [], superseded: 0 };
  const t = aq.from(records.map((r, i) => ({ i, key: rowKey(r), cell: cellKey(r.task, r.metric), createdAt: r.createdAt })));
  const idx = t
    .groupby('key', 'cell')
    .orderby(aq.desc('createdAt'), aq.desc('i'))
    .filter('op.row_number() === 1')
    .ungroup()
    .orderby('i')
    .array('i') as ArrayLike<number>;
  const kept = Array.from(idx, (i) => records[i]);
  return { kept, superseded: records.length - kept.length };
}

function metricOrder(m: string): number {
  const b = metricBase(m);
  const a = (ACCURACY_METRICS as readonly string[]).indexOf(b);
  if (a >= 0) return a;
  const p = (PERPLEXITY_METRICS as readonly string[]).indexOf(b);
  if (p >= 0) return 20 + p;
  const k = ['kld', 'same_top_p', 'delta_p', 'rms_delta_p', 'ppl_ratio'].indexOf(b);
  if (k >= 0) return 40 + k;
  return 60;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function recoveryOf(q: Cell, b: Cell, qr: ResultRecord, br: ResultRecord): { r: number | null; se: number | null; paired: boolean } {
  if (q.kind === 'kld' || !(q.value > 0) || !(b.value > 0)) return { r: null, se: null, paired: false };
  const r = q.higherIsBetter ? q.value / b.value : b.value / q.value;
  if (q.higherIsBetter) {
    const pse = pairedMeanStderr(qr.items, br.items);
    if (pse !== null) return { r, se: pse / b.value, paired: true };
  }
  if (q.stderr === null || b.stderr === null) return { r, se: null, paired: false };
  return { r, se: r * Math.hypot(q.stderr / q.value, b.stderr / b.value), paired: false };
}

/** Standard error of a quantized-minus-base difference, paired where possible. */
function diffStderr(q: Cell, b: Cell, qr: ResultRecord, br: ResultRecord): number | null {
  const pse = pairedMeanStderr(qr.items, br.items);
  if (pse !== null) return pse;
  return q.stderr === null || b.stderr === null ? null : Math.hypot(q.stderr, b.stderr);
}

export interface LeaderboardOptions {
  /** Accuracy metric preference for the average (default ACCURACY_METRICS). */
  averageMetrics?: readonly string[];
}

export function buildLeaderboard(records: readonly ResultRecord[], opts: LeaderboardOptions = {}): Leaderboard {
  const pref = opts.averageMetrics ?? ACCURACY_METRICS;
  const { kept, superseded } = dedupe(records);

  // Group records into rows.
  const byRow = new Map<string, ResultRecord[]>();
  for (const r of kept) {
    const k = rowKey(r);
    let list = byRow.get(k);
    if (!list) byRow.set(k, (list = []));
    list.push(r);
  }

  const columnsMap = new Map<string, MetricColumn>();
  const rows: LeaderboardRow[] = [];
  for (const [key, recs] of byRow) {
    const f = recs[0];
    const cells: Record<string, Cell> = {};
    let bpw: number | null = null;
    let qs: number | null = null;
    const runs = new Set<string>();
    for (const r of recs) {
      const ck = cellKey(r.task, r.metric);
      const kind = metricKind(r.task, r.metric, r.higherIsBetter);
      cells[ck] = {
        task: r.task,
        metric: r.metric,
        value: r.value,
        stderr: r.stderr,
        n: r.n,
        higherIsBetter: r.higherIsBetter,
        kind,
        recovery: null,
        recoveryStderr: null,
        paired: false,
        run: r.run,
        createdAt: r.createdAt,
      };
      if (!columnsMap.has(ck)) columnsMap.set(ck, { key: ck, task: r.task, metric: r.metric, higherIsBetter: r.higherIsBetter, kind });
      if (bpw === null && Number.isFinite(r.bitsPerWeight)) bpw = r.bitsPerWeight;
      if (qs === null && r.timings.quantSeconds !== null) qs = r.timings.quantSeconds;
      runs.add(r.run);
    }
    rows.push({
      key,
      model: f.model,
      scheme: f.scheme,
      method: f.method,
      recipe: f.recipe,
      baseline: f.method === 'base',
      bits: schemeBits(f.scheme, bpw ?? undefined),
      bitsPerWeight: bpw,
      quantSeconds: qs,
      cells,
      average: null,
      averageStderr: null,
      averageMissing: [],
      recovery: null,
      recoveryStderr: null,
      kld: null,
      kldStderr: null,
      top1: null,
      top1Stderr: null,
      pplKey: null,
      ppl: null,
      pplStderr: null,
      runs: [...runs].sort(),
      records: recs,
    });
  }

  const columns = [...columnsMap.values()].sort((a, b) => cmp(a.task, b.task) || metricOrder(a.metric) - metricOrder(b.metric) || cmp(a.metric, b.metric));

  // Per model: which metric of each accuracy task enters the average, and the ppl metric.
  const models: Leaderboard['models'] = {};
  const modelNames = [...new Set(rows.map((r) => r.model))].sort(cmp);
  for (const m of modelNames) {
    const mrows = rows.filter((r) => r.model === m);
    const present = new Set(mrows.flatMap((r) => Object.keys(r.cells)));
    const tasks = new Map<string, string>();
    for (const c of columns) {
      if (!present.has(c.key) || c.kind !== 'accuracy') continue;
      const cur = tasks.get(c.task);
      const rank = (x: string) => {
        const i = pref.indexOf(metricBase(x));
        return i < 0 ? 99 : i;
      };
      if (rank(c.metric) === 99) continue;
      if (cur === undefined || rank(c.metric) < rank(cur)) tasks.set(c.task, c.metric);
    }
    const averageKeys = [...tasks].map(([t, mm]) => cellKey(t, mm)).sort(cmp);
    const pplCands = columns
      .filter((c) => present.has(c.key) && c.kind === 'perplexity')
      .sort((a, b) => {
        const ra = (PERPLEXITY_METRICS as readonly string[]).indexOf(metricBase(a.metric));
        const rb = (PERPLEXITY_METRICS as readonly string[]).indexOf(metricBase(b.metric));
        return (ra < 0 ? 99 : ra) - (rb < 0 ? 99 : rb) || cmp(a.task, b.task);
      });
    models[m] = { averageKeys, pplKey: pplCands.length ? pplCands[0].key : null };
  }

  // Derived columns.
  for (const row of rows) {
    const spec = models[row.model];
    if (spec.averageKeys.length) {
      const missing = spec.averageKeys.filter((k) => !row.cells[k]);
      row.averageMissing = missing;
      if (!missing.length) {
        const cs = spec.averageKeys.map((k) => row.cells[k]);
        row.average = cs.reduce((s, c) => s + c.value, 0) / cs.length;
        row.averageStderr = cs.every((c) => c.stderr !== null) ? Math.sqrt(cs.reduce((s, c) => s + c.stderr! ** 2, 0)) / cs.length : null;
      }
    }
    const kld = pickCell(row, 'kld');
    if (kld) [row.kld, row.kldStderr] = [kld.value, kld.stderr];
    const top1 = pickCell(row, 'same_top_p');
    if (top1) [row.top1, row.top1Stderr] = [top1.value, top1.stderr];
    if (spec.pplKey && row.cells[spec.pplKey]) {
      row.pplKey = spec.pplKey;
      row.ppl = row.cells[spec.pplKey].value;
      row.pplStderr = row.cells[spec.pplKey].stderr;
    }
  }

  // Recovery against the model's base row.
  for (const row of rows) {
    const base = findBase(rows, row.model);
    if (!base) continue;
    if (base === row) {
      // The baseline against itself: exactly 100%, no uncertainty to show.
      for (const c of Object.values(row.cells)) if (c.kind !== 'kld' && c.value > 0) c.recovery = 1;
      if (row.average !== null && row.average > 0) row.recovery = 1;
      continue;
    }
    const baseRecs = new Map(base.records.map((r) => [cellKey(r.task, r.metric), r]));
    const recs = new Map(row.records.map((r) => [cellKey(r.task, r.metric), r]));
    for (const [k, c] of Object.entries(row.cells)) {
      const b = base.cells[k];
      if (!b) continue;
      const rec = recoveryOf(c, b, recs.get(k)!, baseRecs.get(k)!);
      c.recovery = rec.r;
      c.recoveryStderr = rec.se;
      c.paired = rec.paired;
    }
    if (row.average !== null && base.average !== null && base.average > 0) {
      row.recovery = row.average / base.average;
      const keys = models[row.model].averageKeys;
      const ses = keys.map((k) => diffStderr(row.cells[k], base.cells[k], recs.get(k)!, baseRecs.get(k)!));
      row.recoveryStderr = ses.every((s) => s !== null) ? Math.sqrt(ses.reduce((s, x) => s + x! ** 2, 0)) / keys.length / base.average : null;
    }
  }

  rows.sort(defaultOrder);
  return { columns, rows, models, superseded };
}

function pickCell(row: LeaderboardRow, metric: string): Cell | undefined {
  const cs = Object.values(row.cells).filter((c) => metricBase(c.metric) === metric);
  return cs.find((c) => c.task === 'kld') ?? cs.sort((a, b) => cmp(a.task, b.task))[0];
}

/** The model's baseline row: method 'base', preferring one without a recipe. */
export function findBase(rows: readonly LeaderboardRow[], model: string): LeaderboardRow | undefined {
  const bs = rows.filter((r) => r.model === model && r.baseline);
  return bs.find((r) => r.recipe === null) ?? bs[0];
}

/** Model, baseline first, wider bit width first, then scheme, method, recipe. */
export function defaultOrder(a: LeaderboardRow, b: LeaderboardRow): number {
  return (
    cmp(a.model, b.model) ||
    Number(b.baseline) - Number(a.baseline) ||
    (b.bits ?? -1) - (a.bits ?? -1) ||
    cmp(a.scheme, b.scheme) ||
    cmp(a.method, b.method) ||
    cmp(a.recipe ?? '', b.recipe ?? '')
  );
}
