/** The leaderboard as a plain-text table for the terminal (what `bench run` ends with). */
import type { Leaderboard } from './table.ts';

const num = (x: number | null, d: number) => (x === null ? '-' : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toFixed(d));
const pm = (x: number | null, se: number | null, d: number) => (x === null ? '-' : se === null ? num(x, d) : `${num(x, d)}±${num(se, d)}`);

export function leaderboardText(lb: Leaderboard): string {
  const head = ['model', 'scheme', 'method', 'bits/w', 'perplexity', 'avg acc', 'recovery', 'KLD', 'top-1', 'quant s'];
  const rows = lb.rows.map((r) => [
    r.model,
    r.baseline ? `${r.scheme}*` : r.scheme,
    r.recipe && r.method !== 'rtn' ? `${r.method}:${r.recipe}` : r.method,
    num(r.bitsPerWeight, 2),
    pm(r.ppl, r.pplStderr, 3),
    pm(r.average, r.averageStderr, 4),
    r.recovery === null ? '-' : `${(100 * r.recovery).toFixed(1)}%`,
    pm(r.kld, r.kldStderr, 4),
    num(r.top1, 4),
    num(r.quantSeconds, 1),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  const pplKeys = [...new Set(Object.values(lb.models).map((m) => m.pplKey).filter(Boolean))];
  return [
    line(head),
    ...rows.map(line),
    `* baseline. perplexity = ${pplKeys.join(', ') || '-'}; avg acc over ${[...new Set(Object.values(lb.models).flatMap((m) => m.averageKeys))].join(', ') || '-'}; recovery = avg acc / baseline avg acc.`,
  ].join('\n') + '\n';
}
