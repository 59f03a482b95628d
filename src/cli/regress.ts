/**
 * `bench regress`: compare the current run with the committed baseline, cell by cell.
 * Exit 0 = no regression, 1 = regression, 2 = usage or input error (a malformed or empty
 * baseline, records without coverage, or a run over other items than the baseline's).
 */
import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../checkpoint/safetensors.ts';
import { readLedger } from '../results/ledger.ts';
import { resolveRunDir } from '../results/runs.ts';
import { readBaseline } from '../regress/baseline.ts';
import { regress } from '../regress/compare.ts';
import { assertComparable, requireCoverage, validateRecords } from '../regress/inputs.ts';
import { renderJson, renderJUnit, renderMarkdown, renderTerminal } from '../regress/render.ts';
import { loadThresholds } from '../regress/thresholds.ts';
import { checkOutDir } from '../outputs.ts';

interface Options {
  baseline: string;
  current?: string;
  thresholds: string;
  out?: string;
  json?: boolean;
  all?: boolean;
  allowMissing?: boolean;
}

export function register(program: Command): void {
  program
    .command('regress')
    .description('compare a run with a baseline; exit 1 when any cell regressed outside the noise')
    .option('--baseline <file>', 'baseline JSON written by `bench baseline update`', 'reports/baseline.json')
    .option('--current <run>', 'run directory or id (default: the latest run)')
    .option('--thresholds <file>', 'regression thresholds', 'ci/thresholds.json')
    .option('--out <dir>', 'also write regress.md, regress.junit.xml and regress.json into this folder')
    .option('--json', 'print JSON on stdout instead of the table')
    .option('--all', 'list every cell in the table, not only those that moved')
    .option('--allow-missing', 'do not fail on cells missing from the current run')
    .action((opts: Options) => {
      if (opts.out) checkOutDir('--out', opts.out);
      const baseline = readBaseline(opts.baseline);
      const thresholds = loadThresholds(opts.thresholds);
      const runDir = resolveRunDir(opts.current);
      const current = validateRecords(readLedger(runDir), runDir, 'the ledger is corrupt; restore it or rerun with bench run');
      requireCoverage(current, runDir, "the run was written before results recorded coverage; rerun it with 'bench run'");
      assertComparable(baseline.records, current);
      const result = regress(baseline.records, current, thresholds, { allowMissing: opts.allowMissing });
      if (opts.out) {
        mkdirSync(opts.out, { recursive: true });
        writeAtomic(join(opts.out, 'regress.md'), [Buffer.from(renderMarkdown(result))]);
        writeAtomic(join(opts.out, 'regress.junit.xml'), [Buffer.from(renderJUnit(result, opts.allowMissing))]);
        writeAtomic(join(opts.out, 'regress.json'), [Buffer.from(renderJson(result))]);
      }
      process.stdout.write(opts.json ? renderJson(result) : renderTerminal(result, opts.all));
      process.exitCode = result.failed ? 1 : 0;
    });
}
