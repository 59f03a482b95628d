/**
 * Cell-by-cell comparison of a current run against a baseline. A cell is one metric of
 * one model × scheme × method × task. It regresses when the change is in the bad
 * direction, larger than the gate's practical minimum, and outside the noise (paired
 * bootstrap over the same items where both runs kept them, else a z-test from the two
 * stderrs, else — deterministic values with no uncertainty — any change counts); or when
 * it crosses an absolute floor against the same run's BF16 base.
 */
import type { ResultRecord } from '../results/record.ts';
import { pairedBootstrap, zTest } from '../stats/index.ts';
import { gateFor, type Gate, type Thresholds } from './thresholds.ts';

export type CellStatus = 'ok' | 'regressed' | 'improved' | 'added' | 'missing';

export interface CellResult {
  key: string;
  model: string;
  scheme: string;
  method: string;
  task: string;
  metric: string;
  status: CellStatus;
  higherIsBetter: boolean;
  baseline: number | null;
  current: number | null;
  delta: number | null;
  /** Two-sided p-value of "no change"; null where no test applies. */
  p: number | null;
  test: 'paired-bootstrap' | 'z' | 'exact' | 'none';
  /** Why the cell is not ok (empty when ok). */
  reasons: string[];
}

export interface RegressResult {
  cells: CellResult[];
  counts: Record<CellStatus, number>;
  /** True when any cell regressed, or (unless allowed) went missing. */
  failed: boolean;
}

export function methodLabel(r: Pick<ResultRecord, 'method' | 'recipe'>): string {
  return r.recipe && r.method !== 'base' && r.method !== 'rtn' ? `${r.method}:${r.recipe}` : r.method;
}

export function cellKey(r: ResultRecord): string {
  return [r.model, r.scheme, methodLabel(r), r.task, r.metric].join('/');
}

function index(records: readonly ResultRecord[]): Map<string, ResultRecord> {
  const m = new Map<string, ResultRecord>();
  for (const r of records) m.set(cellKey(r), r); // a later record of the same cell wins
  return m;
}

/** Stable 32-bit seed from a cell key, so each cell's bootstrap is reproducible. */
function seedOf(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  return h;
}

const isPerplexityLike = (metric: string) => /perplexity/.test(metric);

export function regress(
  baseline: readonly ResultRecord[],
  current: readonly ResultRecord[],
  thresholds: Thresholds,
  opts: { allowMissing?: boolean; bootstrapIters?: number } = {},
): RegressResult {
  const base = index(baseline);
  const cur = index(current);
  const keys = [...new Set([...base.keys(), ...cur.keys()])].sort();
  const cells: CellResult[] = [];
  for (const key of keys) {
    const b = base.get(key);
    const c = cur.get(key);
    const r = (b ?? c)!;
    const cell: CellResult = {
      key,
      model: r.model,
      scheme: r.scheme,
      method: methodLabel(r),
      task: r.task,
      metric: r.metric,
      status: 'ok',
      higherIsBetter: r.higherIsBetter,
      baseline: b?.value ?? null,
      current: c?.value ?? null,
      delta: b && c ? c.value - b.value : null,
      p: null,
      test: 'none',
      reasons: [],
    };
    cells.push(cell);
    if (!b) {
      cell.status = 'added';
      cell.reasons.push('not in the baseline');
      continue;
    }
    if (!c) {
      cell.status = 'missing';
      cell.reasons.push('in the baseline but not in this run (did its job fail?)');
      continue;
    }
    const gate = gateFor(thresholds, key, r.metric);
    const delta = c.value - b.value;
    const bad = r.higherIsBetter ? delta < 0 : delta > 0;
    const practical = Math.abs(delta) > gate.minAbsDelta && Math.abs(delta) > gate.minRelDelta * Math.abs(b.value);
    let significant: boolean;
    if (b.items && c.items && b.items.values.length === c.items.values.length && b.items.values.length >= 2 && b.items.aggregation === c.items.aggregation) {
      const t = pairedBootstrap(b.items, c.items, { seed: seedOf(key), iters: opts.bootstrapIters ?? 2000, alpha: gate.alpha });
      cell.test = 'paired-bootstrap';
      cell.p = t.p;
      significant = t.p < gate.alpha;
    } else if (b.stderr != null && c.stderr != null && (b.stderr > 0 || c.stderr > 0)) {
      const t = zTest(b.value, b.stderr, c.value, c.stderr);
      cell.test = 'z';
      cell.p = t.p;
      significant = t.p < gate.alpha;
    } else {
      cell.test = 'exact';
      significant = delta !== 0;
    }
    if (bad && practical && significant) {
      cell.status = 'regressed';
      cell.reasons.push(`${fmt(b.value)} -> ${fmt(c.value)} (${delta > 0 ? '+' : ''}${fmt(delta)}${cell.p != null ? `, p=${cell.p.toPrecision(2)}` : ''})`);
    } else if (!bad && practical && significant) {
      cell.status = 'improved';
    }
    // Absolute floors against each run's own unquantized base. A floor the baseline already
    // missed is a standing condition, noted but not failed: the nightly asks what got worse.
    if (r.method !== 'base') {
      const baseKey = [r.model, 'BF16', 'base', r.task, r.metric].join('/');
      const now = floorBreaches(c, cur.get(baseKey), gate);
      const before = new Set(floorBreaches(b, base.get(baseKey), gate).map((x) => x.kind));
      for (const x of now) {
        if (before.has(x.kind)) {
          cell.reasons.push(`${x.text} (as in the baseline)`);
        } else {
          cell.status = 'regressed';
          cell.reasons.push(x.text);
        }
      }
    }
  }
  const counts: Record<CellStatus, number> = { ok: 0, regressed: 0, improved: 0, added: 0, missing: 0 };
  for (const c of cells) counts[c.status]++;
  return { cells, counts, failed: counts.regressed > 0 || (!opts.allowMissing && counts.missing > 0) };
}

function floorBreaches(q: ResultRecord, ref: ResultRecord | undefined, gate: Gate): { kind: string; text: string }[] {
  if (!ref || ref.value === 0 || q.value === 0) return [];
  const out: { kind: string; text: string }[] = [];
  const recovery = q.higherIsBetter ? q.value / ref.value : ref.value / q.value;
  if (recovery < gate.minRecovery) out.push({ kind: 'recovery', text: `recovery ${(100 * recovery).toFixed(1)}% < floor ${(100 * gate.minRecovery).toFixed(1)}%` });
  if (isPerplexityLike(q.metric) && q.value / ref.value > gate.maxPerplexityRatio)
    out.push({ kind: 'ppl', text: `perplexity ${fmt(q.value / ref.value)}x base > ceiling ${gate.maxPerplexityRatio}x` });
  return out;
}

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(3);
  const s = x.toPrecision(4);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}
