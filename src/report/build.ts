/**
 * buildReport: run directories in, a static site out (index, one page per model,
 * provenance, charts as vega-lite JSON and SVG, leaderboard.md and leaderboard.json).
 * The site is built in a sibling staging folder and swapped in at the end (swap.ts), so a
 * reader never sees half a site and a kill never leaves none; an existing folder is replaced
 * only if it is a report we wrote.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';
import { checkOutDir } from '../outputs.ts';
import { slug } from './escape.ts';
import { indexHtml, modelHtml, modelPage, provenanceHtml } from './html.ts';
import { loadRuns, type RunInfo } from './load.ts';
import { leaderboardMarkdown } from './markdown.ts';
import { autoroundDeltas, buildCharts, type DeltaOptions } from './specs.ts';
import { renderSvg } from './svg.ts';
import { recoverSite, swapIn, swapNames } from './swap.ts';
import { buildLeaderboard, DEFINITIONS, type Leaderboard, type LeaderboardOptions } from './table.ts';

export interface ReportOptions extends LeaderboardOptions, DeltaOptions {
  /** Skip rendering SVG copies of the charts (faster; the site still renders them). */
  noSvg?: boolean;
  /** The flag that named the output folder, for error messages (default --out). */
  outFlag?: string;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface ReportSummary {
  outDir: string;
  rows: number;
  records: number;
  models: number;
  charts: string[];
  skipped: number;
  files: string[];
}

export const MARKER = '.lowbit-bench-report';
const ASSETS = fileURLToPath(new URL('./assets/', import.meta.url));
const require = createRequire(import.meta.url);

/** Folder of an installed package (its exports hide package.json, so walk up from main). */
function packageDir(name: string): string {
  let d = dirname(require.resolve(name));
  while (d !== dirname(d)) {
    const pj = join(d, 'package.json');
    if (existsSync(pj) && JSON.parse(readFileSync(pj, 'utf8')).name === name) return d;
    d = dirname(d);
  }
  throw new Error(`cannot locate the installed package ${name}`);
}

const RUNTIMES: [pkg: string, file: string][] = [
  ['vega', 'build/vega.min.js'],
  ['vega-lite', 'build/vega-lite.min.js'],
  ['vega-embed', 'build/vega-embed.min.js'],
];

/** Leaderboard rows for JSON output: everything but the raw records (items are large). */
export function leaderboardJson(lb: Leaderboard, runs: readonly RunInfo[], extra: Record<string, unknown> = {}): unknown {
  return {
    schema: 1,
    definitions: DEFINITIONS,
    runs: runs.map((r) => ({ id: r.id, dir: r.dir, records: r.records, meta: r.meta })),
    models: lb.models,
    columns: lb.columns,
    superseded: lb.superseded,
    rows: lb.rows.map(({ records: _records, ...rest }) => rest),
    ...extra,
  };
}

export async function buildReport(runDirs: readonly string[], outDir: string, opts: ReportOptions = {}): Promise<ReportSummary> {
  const log = opts.log ?? (() => {});
  const out = resolve(outDir);
  for (const line of recoverSite(out, MARKER)) log(`report: ${line} (left by a killed report)`);
  checkOutDir(opts.outFlag ?? '--out', outDir);
  if (existsSync(out) && readdirSync(out).length && !existsSync(join(out, MARKER))) {
    throw new UserError(`${outDir}: exists and is not a report written by 'bench report'; pick another --out or empty it`);
  }
  const names = swapNames(out);
  const { stage } = names;
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(dirname(stage), { recursive: true });
  mkdirSync(stage);
  const files: string[] = [];
  const write = (rel: string, text: string) => {
    writeFileSync(join(stage, rel), text);
    files.push(rel);
  };
  try {
    const loaded = loadRuns(runDirs);
    if (loaded.skipped.length) log(`report: skipped ${loaded.skipped.length} unusable input line(s), first: ${loaded.skipped[0]}`);
    const lb = buildLeaderboard(loaded.records, opts);
    log(`report: ${loaded.records.length} records -> ${lb.rows.length} leaderboard rows`);
    mkdirSync(join(stage, 'lib'));
    mkdirSync(join(stage, 'charts'));
    mkdirSync(join(stage, 'models'));
    for (const f of ['app.js', 'charts.js', 'style.css']) {
      copyFileSync(join(ASSETS, f), join(stage, f));
      files.push(f);
    }
    for (const [pkg, file] of RUNTIMES) {
      const dir = packageDir(pkg);
      copyFileSync(join(dir, file), join(stage, 'lib', basename(file)));
      files.push(`lib/${basename(file)}`);
      if (existsSync(join(dir, 'LICENSE'))) copyFileSync(join(dir, 'LICENSE'), join(stage, 'lib', `LICENSE-${pkg}.txt`));
    }

    const deltas = autoroundDeltas(lb, opts);
    const charts = buildCharts(lb, deltas);
    for (const c of charts) {
      write(`charts/${c.id}.vl.json`, JSON.stringify(c.spec, null, 1) + '\n');
      if (!opts.noSvg) write(`charts/${c.id}.svg`, await renderSvg(c.spec));
    }
    write('index.html', indexHtml(lb, charts, loaded.runs));
    const models = [...new Set(lb.rows.map((r) => r.model))];
    // Page names carry a 32-bit hash of the model name; never let two models share a page.
    const pages = new Set(models.map(modelPage));
    if (pages.size !== models.length) throw new Error('two model names map to the same page name; lengthen the hash in slug()');
    for (const m of models) {
      const view = { ...lb, rows: lb.rows.filter((r) => r.model === m) };
      const mc = buildCharts(view, deltas.filter((d) => d.model === m));
      write(modelPage(m), modelHtml(lb, m, mc.map((c) => ({ ...c, id: `${c.id}-${slug(m)}` }))));
    }
    write('provenance.html', provenanceHtml(lb, loaded.runs, loaded.skipped));
    write('leaderboard.md', leaderboardMarkdown(lb));
    write('leaderboard.json', JSON.stringify(leaderboardJson(lb, loaded.runs, { report: { bootstrapSeed: opts.seed ?? 0, bootstrapResamples: opts.resamples ?? 2000, level: opts.level ?? 0.95 }, deltas, skipped: loaded.skipped }), null, 1) + '\n');

    // The marker goes last: a staging folder that has it is complete (swap.ts relies on it).
    writeFileSync(join(stage, MARKER), 'written by bench report; the whole folder is replaced on the next run\n');
    swapIn(names);
    return { outDir: out, rows: lb.rows.length, records: loaded.records.length, models: models.length, charts: charts.map((c) => c.id), skipped: loaded.skipped.length, files };
  } catch (err) {
    rmSync(stage, { recursive: true, force: true });
    throw err;
  }
}
