/** `leaderboard.md`: a compact table that fits a GitHub step summary (1 MiB limit). */
import { escapeMarkdown as m } from './escape.ts';
import { DEFINITIONS, type Leaderboard } from './table.ts';

const num = (x: number | null, d = 4) => (x === null ? '—' : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toFixed(d));
const pm = (x: number | null, se: number | null, d = 4) => (x === null ? '—' : se === null ? num(x, d) : `${num(x, d)} ± ${num(se, d)}`);

export function leaderboardMarkdown(lb: Leaderboard, opts: { maxRows?: number } = {}): string {
  const max = opts.maxRows ?? 500;
  const lines: string[] = ['# lowbit-bench leaderboard', ''];
  lines.push('| model | scheme | method | recipe | bits/weight | average | recovery vs BF16 | KLD | top-1 | perplexity | quant s |');
  lines.push('|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of lb.rows.slice(0, max)) {
    const rec = r.recovery === null ? '—' : `${(r.recovery * 100).toFixed(2)}%${r.recoveryStderr === null ? '' : ` ± ${(r.recoveryStderr * 100).toFixed(2)}`}`;
    const scheme = r.baseline ? `**${m(r.scheme)}** (baseline)` : m(r.scheme);
    const ppl = r.ppl === null ? '—' : `${pm(r.ppl, r.pplStderr, 3)} (${m(r.pplKey)})`;
    lines.push(
      `| ${m(r.model)} | ${scheme} | ${m(r.method)} | ${m(r.recipe ?? '')} | ${num(r.bitsPerWeight, 3)} | ${pm(r.average, r.averageStderr)} | ${rec} | ${pm(r.kld, r.kldStderr)} | ${pm(r.top1, r.top1Stderr)} | ${ppl} | ${num(r.quantSeconds, 1)} |`,
    );
  }
  if (lb.rows.length > max) lines.push('', `${lb.rows.length - max} more rows in leaderboard.json and the HTML site.`);
  lines.push('', '**Average over** (per model):', '');
  for (const [model, s] of Object.entries(lb.models)) lines.push(`- ${m(model)}: ${s.averageKeys.length ? s.averageKeys.map(m).join(', ') : 'no accuracy tasks'}`);
  lines.push('', ...Object.values(DEFINITIONS).map((d) => `- ${m(d)}`), '');
  return lines.join('\n');
}
