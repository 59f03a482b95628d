/** Renderings of a regression check: terminal table, markdown, JUnit XML, JSON. */
import type { CellResult, RegressResult } from './compare.ts';
import { fmt } from './compare.ts';

const ICON: Record<CellResult['status'], string> = { ok: 'ok', regressed: 'REGRESSED', improved: 'improved', added: 'added', missing: 'MISSING' };

function row(c: CellResult): string[] {
  return [
    ICON[c.status],
    c.key,
    c.baseline == null ? '-' : fmt(c.baseline),
    c.current == null ? '-' : fmt(c.current),
    c.delta == null ? '-' : (c.delta > 0 ? '+' : '') + fmt(c.delta),
    c.p == null ? '-' : c.p.toPrecision(2),
    c.test,
    c.reasons.join('; '),
  ];
}

const HEAD = ['status', 'cell (model/scheme/method/task/metric)', 'baseline', 'current', 'delta', 'p', 'test', 'why'];

function summary(r: RegressResult): string {
  const c = r.counts;
  return `${r.cells.length} cells: ${c.regressed} regressed, ${c.missing} missing, ${c.added} added, ${c.improved} improved, ${c.ok} unchanged`;
}

/** Terminal table: every cell that is not ok, then the summary line. */
export function renderTerminal(r: RegressResult, all = false): string {
  const rows = r.cells.filter((c) => all || c.status !== 'ok' || c.reasons.length > 0).map(row);
  const table = [HEAD, ...rows];
  const widths = HEAD.map((_, i) => Math.max(...table.map((t) => t[i].length)));
  const lines = rows.length ? table.map((t) => t.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd()) : [];
  return [...lines, summary(r), r.failed ? 'RESULT: regression' : 'RESULT: no regression'].join('\n') + '\n';
}

function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\n/g, ' ');
}

/** Markdown for $GITHUB_STEP_SUMMARY: verdict, the cells that moved, all cells folded. */
export function renderMarkdown(r: RegressResult): string {
  const table = (cells: CellResult[]) =>
    [`| ${HEAD.join(' | ')} |`, `|${HEAD.map(() => '---').join('|')}|`, ...cells.map((c) => `| ${row(c).map(mdCell).join(' | ')} |`)].join('\n');
  const moved = r.cells.filter((c) => c.status !== 'ok');
  return [
    `## Regression check: ${r.failed ? '❌ regression' : '✅ no regression'}`,
    '',
    summary(r),
    '',
    moved.length ? table(moved) : '_No cell moved outside the noise._',
    '',
    '<details><summary>All cells</summary>',
    '',
    table(r.cells),
    '',
    '</details>',
    '',
  ].join('\n');
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** JUnit XML: one test case per cell; regressed and missing cells fail, added ones are skipped. */
export function renderJUnit(r: RegressResult, allowMissing = false): string {
  const failures = r.cells.filter((c) => c.status === 'regressed' || (c.status === 'missing' && !allowMissing)).length;
  const skipped = r.cells.filter((c) => c.status === 'added').length;
  const cases = r.cells.map((c) => {
    const name = xml(c.key);
    const cls = xml(`bench.regress.${c.model}`);
    const fail = c.status === 'regressed' || (c.status === 'missing' && !allowMissing);
    const body = fail
      ? `<failure message="${xml(c.reasons.join('; '))}">${xml(row(c).join(' | '))}</failure>`
      : c.status === 'added'
        ? `<skipped message="not in the baseline"/>`
        : '';
    return `    <testcase classname="${cls}" name="${name}">${body}</testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="bench regress" tests="${r.cells.length}" failures="${failures}">`,
    `  <testsuite name="regress" tests="${r.cells.length}" failures="${failures}" skipped="${skipped}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

export function renderJson(r: RegressResult): string {
  return JSON.stringify({ failed: r.failed, counts: r.counts, cells: r.cells }, null, 2) + '\n';
}
