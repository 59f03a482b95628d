/**
 * Side-by-side comparison (`bench compare`): for each model × scheme × method and every
 * task metric, the score, its delta against the model's BF16 base with a confidence
 * interval, recovery, and AutoRound against RTN on the same items (paired bootstrap where
 * both kept per-item values) with whether the difference is significant.
 */
import type { ResultRecord } from '../results/record.ts';
import { compareMetric, hashSeed, type Delta } from '../stats/index.ts';

export interface CompareRow {
  model: string;
  scheme: string;
  method: string;
  task: string;
  metric: string;
  higherIsBetter: boolean;
  value: number;
  stderr: number | null;
  n: number;
  /** This row minus the BF16 base (null for the base itself or when no base). */
  vsBase: Delta | null;
  /** quantized ÷ base (base ÷ quantized for lower-is-better). */
  recovery: number | null;
  /** AutoRound minus RTN for the same scheme (on AutoRound rows only). */
  vsRtn: Delta | null;
  /** 'better' / 'worse' when the AutoRound–RTN interval excludes 0, else 'tie'. */
  verdict: 'better' | 'worse' | 'tie' | null;
}

const label = (r: ResultRecord) => (r.recipe && r.method === 'autoround' ? `autoround:${r.recipe}` : r.method);

/** Metrics worth comparing: skip bookkeeping ones (the base's own perplexity in kld). */
const SKIP = new Set(['ppl_base']);

export function compareRecords(records: readonly ResultRecord[], opts: { level?: number; seed?: number } = {}): CompareRow[] {
  const level = opts.level ?? 0.95;
  const byKey = new Map<string, ResultRecord>();
  for (const r of records) byKey.set([r.model, r.scheme, label(r), r.task, r.metric].join('/'), r);
  const rows: CompareRow[] = [];
  for (const r of [...byKey.values()].sort(order)) {
    if (SKIP.has(r.metric)) continue;
    const base = r.method === 'base' ? null : byKey.get([r.model, 'BF16', 'base', r.task, r.metric].join('/')) ?? null;
    const rtn = r.method === 'autoround' ? byKey.get([r.model, r.scheme, 'rtn', r.task, r.metric].join('/')) ?? null : null;
    const seed = hashSeed(`${r.model}/${r.scheme}/${label(r)}/${r.task}/${r.metric}`, opts.seed ?? 0);
    const vsBase = base ? compareMetric(r, base, { level, seed }) : null;
    const vsRtn = rtn ? compareMetric(r, rtn, { level, seed }) : null;
    let verdict: CompareRow['verdict'] = null;
    if (vsRtn && Number.isFinite(vsRtn.lo)) {
      const better = r.higherIsBetter ? vsRtn.lo > 0 : vsRtn.hi < 0;
      const worse = r.higherIsBetter ? vsRtn.hi < 0 : vsRtn.lo > 0;
      verdict = better ? 'better' : worse ? 'worse' : 'tie';
    }
    const recovery = base && base.value !== 0 && r.value !== 0 ? (r.higherIsBetter ? r.value / base.value : base.value / r.value) : null;
    rows.push({
      model: r.model, scheme: r.scheme, method: label(r), task: r.task, metric: r.metric, higherIsBetter: r.higherIsBetter,
      value: r.value, stderr: r.stderr, n: r.n, vsBase, recovery: r.method === 'base' ? 1 : recovery, vsRtn, verdict,
    });
  }
  return rows;
}

function order(a: ResultRecord, b: ResultRecord): number {
  const k = (r: ResultRecord) => [r.model, r.scheme === 'BF16' ? '' : r.scheme, r.method === 'base' ? '' : r.method === 'rtn' ? '1' : `2${label(r)}`, r.task, r.metric].join('\u0000');
  return k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0;
}

const num = (x: number | null | undefined) =>
  x == null || !Number.isFinite(x) ? '-' : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(4);
const signed = (x: number) => (x > 0 ? '+' : '') + num(x);
const delta = (d: Delta | null) => (d ? `${signed(d.delta)} [${num(d.lo)}, ${num(d.hi)}]` : '-');

const HEAD = ['model', 'scheme', 'method', 'task', 'metric', 'value', '± se', 'Δ vs BF16 [95% CI]', 'recovery', 'AutoRound − RTN [95% CI]', 'p', 'verdict'];

function cells(r: CompareRow): string[] {
  return [
    r.model, r.scheme, r.method, r.task, r.metric, num(r.value), num(r.stderr), delta(r.vsBase),
    r.recovery == null ? '-' : `${(100 * r.recovery).toFixed(2)}%`, delta(r.vsRtn), r.vsRtn?.p == null ? '-' : r.vsRtn.p.toPrecision(2), r.verdict ?? '-',
  ];
}

export function compareTable(rows: readonly CompareRow[]): string {
  const t = [HEAD, ...rows.map(cells)];
  const w = HEAD.map((_, i) => Math.max(...t.map((r) => r[i].length)));
  return t.map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()).join('\n') + '\n';
}

export function compareMarkdown(rows: readonly CompareRow[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return [`| ${HEAD.join(' | ')} |`, `|${HEAD.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${cells(r).map(esc).join(' | ')} |`)].join('\n') + '\n';
}
