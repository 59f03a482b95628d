/**
 * Report benchmarks:
 *  1. wall time of `bench report` on a synthetic ledger of --records rows (default 10,000);
 *  2. time until the leaderboard table is rendered in headless Chromium for a page with
 *     --rows leaderboard rows (default 1,000): performance mark 'table-rendered' (set by
 *     app.js right after the first render) relative to navigation start, and until charts render.
 *
 *   node --import tsx scripts/bench-report.ts [--records 10000] [--rows 1000] [--repeat 3]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { synthLedger } from './synth-ledger.ts';

const { values } = parseArgs({ options: { records: { type: 'string' }, rows: { type: 'string' }, repeat: { type: 'string' } } });
const records = Number(values.records ?? 10000);
const rows = Number(values.rows ?? 1000);
const repeat = Number(values.repeat ?? 3);
const tmp = mkdtempSync(join(tmpdir(), 'bench-report-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const runA = join(tmp, 'run-records');
  const a = synthLedger({ out: runA, records, seed: 1 });
  const walls: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    execFileSync('./bin/bench.js', ['report', '--runs', runA, '--out', join(tmp, 'site-a'), '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
    walls.push((performance.now() - t0) / 1000);
  }
  process.stdout.write(`bench report, ${a.records} records (${a.rows} leaderboard rows), SVGs included: wall ${walls.map((w) => w.toFixed(2)).join(', ')} s (median ${median(walls).toFixed(2)} s)\n`);

  const runB = join(tmp, 'run-rows');
  const b = synthLedger({ out: runB, rows, seed: 2 });
  const siteB = join(tmp, 'site-b');
  execFileSync('./bin/bench.js', ['report', '--runs', runB, '--out', siteB, '--no-svg'], { stdio: 'ignore' });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const tables: number[] = [];
  const charts: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(pathToFileURL(join(siteB, 'index.html')).href);
    await page.waitForSelector('body[data-table-ready="1"]');
    tables.push(await page.evaluate(() => performance.getEntriesByName('table-rendered')[0].startTime));
    const n = await page.locator('.chart-target').count();
    await page.waitForSelector(`body[data-charts-ready="${n}"]`, { timeout: 120000 });
    charts.push(await page.evaluate(() => performance.now()));
    const count = await page.locator('#leaderboard tbody tr').count();
    if (count !== b.rows) throw new Error(`table has ${count} rows, expected ${b.rows}`);
    await page.close();
  }
  await browser.close();
  process.stdout.write(`page with ${b.rows} leaderboard rows (${b.records} records): table rendered at ${tables.map((t) => t.toFixed(0)).join(', ')} ms after navigation start (median ${median(tables).toFixed(0)} ms); all charts rendered by ${charts.map((t) => t.toFixed(0)).join(', ')} ms\n`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
