/**
 * The generated site in real headless Chromium, opened from disk: table rows, sorting,
 * filters that survive a reload, rendered charts, and an XSS-named model shown as text
 * with no script run. Chromium missing is a failure (CI installs it), not a skip.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildReport } from '../../src/report/index.ts';
import { synthLedger, XSS_MODEL } from '../../scripts/synth-ledger.ts';

const CHROMIUM = '/usr/bin/chromium';
const tmp = mkdtempSync(join(tmpdir(), 'report-browser-'));
const run = join(tmp, 'run');
const site = join(tmp, 'site');
let browser: Browser;

interface Row {
  model: string;
  scheme: string;
  method: string;
  recipe: string | null;
}
let ledgerRows: Row[] = [];

before(async () => {
  if (!existsSync(CHROMIUM)) {
    assert.fail(`${CHROMIUM} not found: the browser test needs Debian's chromium (apt-get install -y chromium)`);
  }
  // 45 rows: stories260k, the XSS-named model, and a third model whose AutoRound rows carry a '</script>' recipe.
  synthLedger({ out: run, rows: 45, seed: 3, items: 20 });
  const seen = new Map<string, Row>();
  for (const l of readFileSync(join(run, 'ledger.jsonl'), 'utf8').trim().split('\n')) {
    const r = JSON.parse(l);
    seen.set(JSON.stringify([r.model, r.scheme, r.method, r.recipe]), r);
  }
  ledgerRows = [...seen.values()];
  await buildReport([run], site, { noSvg: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** A page that records console errors, page errors, dialogs and any network request off disk. */
async function openPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('request', (r) => {
    if (!r.url().startsWith('file:')) problems.push(`network: ${r.url()}`);
  });
  return { page, problems };
}

const bodyRows = (page: Page) => page.locator('#leaderboard tbody tr').count();

/** Column values of the visible table, by header label. */
async function columnTexts(page: Page, colId: string): Promise<string[]> {
  return page.evaluate((id) => {
    const ths = [...document.querySelectorAll('#leaderboard thead th')] as HTMLElement[];
    const i = ths.findIndex((th) => th.dataset.col === id);
    return [...document.querySelectorAll('#leaderboard tbody tr')].map((tr) => (tr.children[i] as HTMLElement).textContent ?? '');
  }, colId);
}

test('leaderboard page: rows, sorting, filters in the URL, charts, XSS as text', async () => {
  const { page, problems } = await openPage();
  const url = pathToFileURL(join(site, 'index.html')).href;
  await page.goto(url);
  await page.waitForSelector('body[data-table-ready="1"]');

  // One table row per leaderboard row of the ledger.
  assert.equal(await bodyRows(page), ledgerRows.length);

  // Sorting by average: first click descending (higher is better), missing values last.
  await page.click('#leaderboard th[data-col="avg"] button');
  const parse = (s: string) => (s === '\u2014' ? null : Number(s.split(' ')[0]));
  const desc = (await columnTexts(page, 'avg')).map(parse);
  const present = desc.filter((x): x is number => x !== null);
  assert.ok(present.length > 10);
  assert.deepEqual(present, [...present].sort((a, b) => b - a));
  assert.ok(desc.slice(present.length).every((x) => x === null), 'missing averages sort last');
  assert.equal(await page.getAttribute('#leaderboard th[data-col="avg"]', 'aria-sort'), 'descending');
  // Second click: ascending.
  await page.click('#leaderboard th[data-col="avg"] button');
  const asc = (await columnTexts(page, 'avg')).map(parse).filter((x): x is number => x !== null);
  assert.deepEqual(asc, [...asc].sort((a, b) => a - b));
  // Text column: model names in code-point order (ASCII names here).
  await page.click('#leaderboard th[data-col="model"] button');
  const models = await columnTexts(page, 'model');
  assert.deepEqual(models, ledgerRows.map((r) => r.model).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));

  // Filter by scheme: the count of W4A16 rows in the ledger; state goes to the URL.
  const w4 = ledgerRows.filter((r) => r.scheme === 'W4A16').length;
  assert.ok(w4 > 0 && w4 < ledgerRows.length);
  await page.selectOption('#filter-scheme', 'W4A16');
  assert.equal(await bodyRows(page), w4);
  assert.match(page.url(), /scheme=W4A16/);
  assert.match(page.url(), /sort=model/);
  // Filter by method too, then reload: both filters and the sort survive.
  await page.selectOption('#filter-method', 'rtn');
  const w4rtn = ledgerRows.filter((r) => r.scheme === 'W4A16' && r.method === 'rtn').length;
  assert.equal(await bodyRows(page), w4rtn);
  await page.reload();
  await page.waitForSelector('body[data-table-ready="1"]');
  assert.equal(await bodyRows(page), w4rtn);
  assert.equal(await page.inputValue('#filter-scheme'), 'W4A16');
  assert.equal(await page.inputValue('#filter-method'), 'rtn');
  assert.equal(await page.getAttribute('#leaderboard th[data-col="model"]', 'aria-sort'), 'ascending');
  // Bit-width filter: every W-bit-4 scheme row (W4A16, MXFP4A16, NVFP4A16, NVFP4).
  await page.selectOption('#filter-scheme', '');
  await page.selectOption('#filter-method', '');
  await page.selectOption('#filter-bits', '4');
  assert.equal(await bodyRows(page), ledgerRows.filter((r) => ['W4A16', 'MXFP4A16', 'NVFP4A16', 'NVFP4'].includes(r.scheme)).length);
  await page.selectOption('#filter-bits', '');
  assert.equal(await bodyRows(page), ledgerRows.length);

  // Charts: each target holds an SVG with rendered marks.
  const n = await page.locator('.chart-target').count();
  assert.equal(n, 4);
  await page.waitForSelector(`body[data-charts-ready="${n}"]`, { timeout: 30000 });
  const marks = await page.evaluate(() => [...document.querySelectorAll('.chart-target')].map((el) => el.querySelectorAll('svg .role-mark > *').length));
  assert.ok(marks.every((m) => m > 0), `marks per chart: ${marks}`);

  // The XSS-named model is literal text; nothing ran and no <img> exists.
  const cells = await columnTexts(page, 'model');
  assert.ok(cells.includes(XSS_MODEL));
  assert.equal(await page.evaluate(() => document.images.length), 0);
  assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
  // Baselines are marked.
  assert.equal(await page.locator('#leaderboard tbody tr.baseline').count(), ledgerRows.filter((r) => r.method === 'base').length);

  mkdirSync('test-output/report', { recursive: true });
  await page.evaluate(() => {
    location.hash = '';
  });
  await page.screenshot({ path: 'test-output/report/leaderboard.png', fullPage: false });
  assert.deepEqual(problems, []);
  await page.close();
});

test('model and provenance pages render untrusted strings as text', async () => {
  const { page, problems } = await openPage();
  await page.goto(pathToFileURL(join(site, 'index.html')).href);
  await page.waitForSelector('body[data-table-ready="1"]');
  // Follow the XSS model's link from the table.
  await page.locator('#leaderboard tbody tr td a', { hasText: XSS_MODEL }).first().click();
  await page.waitForLoadState('load');
  assert.equal(await page.locator('h1').textContent(), XSS_MODEL);
  const n = await page.locator('.chart-target').count();
  assert.ok(n >= 3);
  await page.waitForSelector(`body[data-charts-ready="${n}"]`, { timeout: 30000 });
  assert.equal(await page.evaluate(() => document.images.length), 0);

  // Third model: its AutoRound recipe tries to close the script tag.
  await page.goto(pathToFileURL(join(site, 'index.html')).href);
  const third = ledgerRows.find((r) => r.recipe !== null)!;
  await page.locator('#leaderboard tbody tr td a', { hasText: third.model }).first().click();
  await page.waitForLoadState('load');
  assert.ok((await page.locator('body').textContent())!.includes(third.recipe!));
  assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);

  await page.goto(pathToFileURL(join(site, 'provenance.html')).href);
  const text = (await page.locator('body').textContent())!;
  assert.ok(text.includes('<b>not bold</b>'), 'run.json strings shown literally');
  assert.equal(await page.locator('b').count(), 0);
  assert.deepEqual(problems, []);
  await page.close();
});
