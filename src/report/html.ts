/**
 * HTML pages of the static site. Every ledger or run.json string goes through
 * escapeHtml; data for scripts goes through jsonForScript. Pages load only files that
 * sit beside them (no network), as classic scripts so they work from file://.
 */
import type { RunInfo } from './load.ts';
import { escapeHtml as e, jsonForScript, slug } from './escape.ts';
import { DEFINITIONS, findBase, metricKind, type Leaderboard, type LeaderboardRow, type MetricColumn } from './table.ts';
import type { ChartDef } from './specs.ts';

export interface ClientColumn {
  id: string;
  label: string;
  title: string;
  type: 'text' | 'num';
  fmt: 'text' | 'f4' | 'f3' | 'f2' | 'pct' | 'sec' | 'int' | 'g4';
  /** Direction of "better"; null for text and neutral columns. */
  hib: boolean | null;
}

export interface ClientRow {
  id: string;
  href: string;
  baseline: boolean;
  v: Record<string, string | number | [number, number | null] | null>;
}

export function modelPage(model: string): string {
  return `models/${slug(model)}.html`;
}

function metricFmt(c: MetricColumn): ClientColumn['fmt'] {
  const k = metricKind(c.task, c.metric, c.higherIsBetter);
  if (k === 'accuracy' || c.metric === 'same_top_p') return 'f4';
  if (k === 'perplexity') return 'f3';
  return 'g4';
}

/** The table as the page's script reads it: fixed columns first, then every task metric. */
export function clientTable(lb: Leaderboard): { columns: ClientColumn[]; rows: ClientRow[] } {
  const columns: ClientColumn[] = [
    { id: 'model', label: 'model', title: 'model', type: 'text', fmt: 'text', hib: null },
    { id: 'scheme', label: 'scheme', title: 'quantization scheme', type: 'text', fmt: 'text', hib: null },
    { id: 'method', label: 'method', title: 'quantization method (base = unquantized baseline)', type: 'text', fmt: 'text', hib: null },
    { id: 'recipe', label: 'recipe', title: 'recipe', type: 'text', fmt: 'text', hib: null },
    { id: 'bits', label: 'bits', title: 'nominal weight bit width', type: 'num', fmt: 'int', hib: null },
    { id: 'avg', label: 'average', title: DEFINITIONS.average, type: 'num', fmt: 'f4', hib: true },
    { id: 'recovery', label: 'recovery vs BF16', title: DEFINITIONS.recovery, type: 'num', fmt: 'pct', hib: true },
    { id: 'kld', label: 'KLD', title: DEFINITIONS.kld, type: 'num', fmt: 'g4', hib: false },
    { id: 'top1', label: 'top-1 agree', title: DEFINITIONS.kld, type: 'num', fmt: 'f4', hib: true },
    { id: 'bpw', label: 'bits/weight', title: 'effective bits per weight of the quantized Linear layers, scales included', type: 'num', fmt: 'f3', hib: false },
    { id: 'quant', label: 'quant time', title: 'quantization wall time', type: 'num', fmt: 'sec', hib: false },
  ];
  for (const c of lb.columns) {
    columns.push({
      id: `m:${c.key}`,
      label: `${c.task} ${c.metric}`,
      title: `${c.task} / ${c.metric} (${c.higherIsBetter ? 'higher' : 'lower'} is better) ± stderr`,
      type: 'num',
      fmt: metricFmt(c),
      hib: c.higherIsBetter,
    });
  }
  const pair = (v: number | null, se: number | null): [number, number | null] | null => (v === null ? null : [v, se]);
  const rows = lb.rows.map((r) => {
    const v: ClientRow['v'] = {
      model: r.model,
      scheme: r.scheme,
      method: r.method,
      recipe: r.recipe ?? '',
      bits: r.bits,
      avg: pair(r.average, r.averageStderr),
      recovery: pair(r.recovery, r.recoveryStderr),
      kld: pair(r.kld, r.kldStderr),
      top1: pair(r.top1, r.top1Stderr),
      bpw: pair(r.bitsPerWeight, null),
      quant: pair(r.quantSeconds, null),
    };
    for (const c of lb.columns) {
      const cell = r.cells[c.key];
      v[`m:${c.key}`] = cell ? [cell.value, cell.stderr] : null;
    }
    return { id: slug(r.key), href: modelPage(r.model), baseline: r.baseline, v };
  });
  return { columns, rows };
}

/**
 * Defence in depth behind the escaping: only the site's own script files run (no inline
 * handlers, no injected <script>), nothing is fetched from the network. vega compiles its
 * expressions with Function, hence 'unsafe-eval'; vega-embed and vega's SVG use inline styles.
 */
const CSP = "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

function layout(title: string, root: string, body: string, scripts: string[]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<title>${e(title)}</title>
<link rel="stylesheet" href="${root}style.css">
</head>
<body>
<nav><a href="${root}index.html">Leaderboard</a><a href="${root}provenance.html">Provenance</a><a href="${root}leaderboard.md">Markdown</a><a href="${root}leaderboard.json">JSON</a></nav>
${body}
${scripts.map((s) => `<script src="${root}${s}"></script>`).join('\n')}
</body>
</html>
`;
}

const VEGA_SCRIPTS = ['lib/vega.min.js', 'lib/vega-lite.min.js', 'lib/vega-embed.min.js', 'charts.js'];

function chartsSection(charts: readonly ChartDef[], root: string): string {
  if (!charts.length) return '<p class="note">No charts: the ledger has no rows with the values they need.</p>';
  const blocks = charts
    .map(
      (c) => `<section class="chart"><h3>${e(c.title)}</h3><p class="note">${e(c.description)} <a href="${root}charts/${e(c.id)}.svg">SVG</a> · <a href="${root}charts/${e(c.id)}.vl.json">vega-lite spec</a></p><div id="chart-${e(c.id)}" class="chart-target"></div></section>`,
    )
    .join('\n');
  return `${blocks}\n<script type="application/json" id="charts-data">${jsonForScript(charts.map((c) => ({ id: c.id, spec: c.spec })))}</script>`;
}

function definitions(): string {
  return `<section class="note"><h3>Definitions</h3><ul>${Object.values(DEFINITIONS)
    .map((d) => `<li>${e(d)}</li>`)
    .join('')}</ul></section>`;
}

export function indexHtml(lb: Leaderboard, charts: readonly ChartDef[], runs: readonly RunInfo[]): string {
  const t = clientTable(lb);
  const body = `<h1>lowbit-bench leaderboard</h1>
<p class="note">${lb.rows.length} rows from ${runs.length} run(s). Baseline (BF16, method base) rows are highlighted. Values are shown ± one standard error. Click a column header to sort; the sort and filters are kept in the URL.</p>
<div id="filters"></div>
<p id="row-count" class="note"></p>
<div class="table-wrap"><table id="leaderboard"><thead></thead><tbody></tbody></table></div>
<noscript><p>The interactive table needs JavaScript; the same data is in <a href="leaderboard.md">leaderboard.md</a>.</p></noscript>
<h2>Models</h2>
<ul>${[...new Set(lb.rows.map((r) => r.model))].map((m) => `<li><a href="${e(modelPage(m))}">${e(m)}</a></li>`).join('')}</ul>
<h2>Charts</h2>
${chartsSection(charts, '')}
${definitions()}
<script type="application/json" id="lb-data">${jsonForScript(t)}</script>`;
  return layout('lowbit-bench leaderboard', '', body, ['app.js', ...VEGA_SCRIPTS]);
}

const fmtNum = (x: number | null, d = 4): string => (x === null ? '—' : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(d));
const pm = (x: number | null, se: number | null, d = 4) => (x === null ? '—' : se === null ? fmtNum(x, d) : `${fmtNum(x, d)} ± ${fmtNum(se, d)}`);
const pct = (x: number | null, se: number | null) => (x === null ? '—' : se === null ? `${(x * 100).toFixed(2)}%` : `${(x * 100).toFixed(2)}% ± ${(se * 100).toFixed(2)}`);

export function modelHtml(lb: Leaderboard, model: string, charts: readonly ChartDef[]): string {
  const rows = lb.rows.filter((r) => r.model === model);
  const spec = lb.models[model];
  const base = findBase(lb.rows, model);
  const cols = lb.columns.filter((c) => rows.some((r) => r.cells[c.key]));
  const label = (r: LeaderboardRow) => `${r.scheme} · ${r.method}${r.recipe ? ` · ${r.recipe}` : ''}`;
  const summary = `<table class="detail"><thead><tr><th>scheme · method · recipe</th><th class="num">bits/weight</th><th class="num">quant time (s)</th><th class="num">average</th><th class="num">recovery vs BF16</th><th class="num">KLD</th><th class="num">top-1</th><th>runs</th></tr></thead><tbody>${rows
    .map(
      (r) =>
        `<tr${r.baseline ? ' class="baseline"' : ''}><td>${e(label(r))}${r.baseline ? ' <span class="badge">baseline</span>' : ''}</td><td class="num">${fmtNum(r.bitsPerWeight, 3)}</td><td class="num">${fmtNum(r.quantSeconds, 1)}</td><td class="num">${pm(r.average, r.averageStderr)}${r.averageMissing.length ? ` (missing ${e(r.averageMissing.join(', '))})` : ''}</td><td class="num">${pct(r.recovery, r.recoveryStderr)}</td><td class="num">${pm(r.kld, r.kldStderr)}</td><td class="num">${pm(r.top1, r.top1Stderr)}</td><td>${e(r.runs.join(', '))}</td></tr>`,
    )
    .join('')}</tbody></table>`;
  const metrics = `<table class="detail"><thead><tr><th>task / metric</th>${rows.map((r) => `<th class="num">${e(label(r))}</th>`).join('')}</tr></thead><tbody>${cols
    .map(
      (c) =>
        `<tr><th>${e(c.task)} / ${e(c.metric)} <small>(${c.higherIsBetter ? 'higher' : 'lower'} is better)</small></th>${rows
          .map((r) => {
            const cell = r.cells[c.key];
            if (!cell) return '<td class="num">—</td>';
            const rec = cell.recovery === null ? '' : `<br><small>${pct(cell.recovery, cell.recoveryStderr)}${cell.paired ? ' paired' : ''}</small>`;
            return `<td class="num" title="n=${cell.n}; run ${e(cell.run)}; ${e(cell.createdAt)}">${pm(cell.value, cell.stderr)}<br><small>n=${cell.n}</small>${rec}</td>`;
          })
          .join('')}</tr>`,
    )
    .join('')}</tbody></table>`;
  const records = `<table class="detail"><thead><tr><th>scheme · method · recipe</th><th>task / metric</th><th>job</th><th>run</th><th>engine</th><th class="num">eval s</th><th>created</th></tr></thead><tbody>${rows
    .flatMap((r) =>
      r.records.map(
        (x) =>
          `<tr><td>${e(label(r))}</td><td>${e(x.task)} / ${e(x.metric)}</td><td><code>${e(x.jobId)}</code></td><td>${e(x.run)}</td><td>${e(x.engine)}</td><td class="num">${fmtNum(x.timings.evalSeconds, 1)}</td><td>${e(x.createdAt)}</td></tr>`,
      ),
    )
    .join('')}</tbody></table>`;
  const body = `<h1>${e(model)}</h1>
<p class="note">Baseline: ${base ? e(label(base)) : 'none (no row with method base: recovery not available)'}. Average over: ${spec.averageKeys.length ? e(spec.averageKeys.join(', ')) : 'no accuracy-type tasks'}. Perplexity metric for the chart: ${e(spec.pplKey ?? 'none')}.</p>
<h2>Summary</h2><div class="table-wrap">${summary}</div>
<h2>Every metric</h2><p class="note">value ± stderr, n items; second line: recovery vs BF16 ± se ("paired" = from per-item differences).</p><div class="table-wrap">${metrics}</div>
<h2>Charts</h2>${chartsSection(charts, '../')}
<h2>Records</h2><div class="table-wrap">${records}</div>
${definitions()}`;
  return layout(`${model} · lowbit-bench`, '../', body, VEGA_SCRIPTS);
}

/** Untrusted JSON as nested definition lists, bounded in depth and length. */
export function renderValue(v: unknown, depth = 0): string {
  if (v === null || v === undefined) return '<em>null</em>';
  if (typeof v !== 'object') return e(String(v).slice(0, 2000));
  if (depth >= 6) return e(JSON.stringify(v).slice(0, 500));
  if (Array.isArray(v)) {
    if (v.every((x) => x === null || typeof x !== 'object')) return e(v.slice(0, 200).map(String).join(', ') + (v.length > 200 ? ` … (${v.length})` : ''));
    return `<ol>${v
      .slice(0, 100)
      .map((x) => `<li>${renderValue(x, depth + 1)}</li>`)
      .join('')}</ol>`;
  }
  const entries = Object.entries(v as Record<string, unknown>).slice(0, 200);
  return `<dl class="kv">${entries.map(([k, x]) => `<dt>${e(k)}</dt><dd>${renderValue(x, depth + 1)}</dd>`).join('')}</dl>`;
}

export function provenanceHtml(lb: Leaderboard, runs: readonly RunInfo[], skipped: readonly string[]): string {
  const sections = runs
    .map((run) => {
      // Distinct values of every record provenance key in this run (versions, seeds, ...).
      const distinct = new Map<string, Set<string>>();
      for (const r of lb.rows.flatMap((x) => x.records)) {
        if (r.run !== run.id) continue;
        for (const [k, v] of Object.entries(r.provenance)) {
          let s = distinct.get(k);
          if (!s) distinct.set(k, (s = new Set()));
          if (s.size < 20) s.add(typeof v === 'string' ? v : JSON.stringify(v));
        }
      }
      const prov = [...distinct]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, s]) => `<tr><th>${e(k)}</th><td>${e([...s].join(' | ').slice(0, 2000))}</td></tr>`)
        .join('');
      return `<section><h2>run ${e(run.id)}</h2><p class="note">${e(run.dir)} · ${run.records} records</p>
<h3>run.json</h3>${run.meta ? renderValue(run.meta) : '<p class="note">no run.json</p>'}
<h3>Record provenance (distinct values)</h3>${prov ? `<table class="detail"><tbody>${prov}</tbody></table>` : '<p class="note">none recorded</p>'}</section>`;
    })
    .join('\n');
  const skip = skipped.length
    ? `<section><h2>Skipped input</h2><ul>${skipped
        .slice(0, 200)
        .map((s) => `<li>${e(s)}</li>`)
        .join('')}</ul></section>`
    : '';
  return layout('provenance · lowbit-bench', '', `<h1>Provenance</h1><p class="note">${lb.superseded} record(s) superseded by newer ones. ${e(DEFINITIONS.dedupe)}</p>${sections}${skip}`, []);
}
