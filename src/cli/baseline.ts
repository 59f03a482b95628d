/** `bench baseline update`: write the CI baseline from a run, for review in a pull request. */
import type { Command } from 'commander';
import { resolveRunDir } from '../results/runs.ts';
import { baselineFromRun, writeBaseline } from '../regress/baseline.ts';
import { checkOutFile } from '../outputs.ts';

export function register(program: Command): void {
  const baseline = program.command('baseline').description('manage the regression baseline');
  baseline
    .command('update')
    .description('write the baseline from a run (default: the latest run); its records carry their coverage')
    .option('--run <run>', 'run directory or id')
    .option('--out <file>', 'baseline file', 'reports/baseline.json')
    .action((opts: { run?: string; out: string }) => {
      checkOutFile('--out', opts.out);
      const b = baselineFromRun(resolveRunDir(opts.run));
      writeBaseline(opts.out, b);
      process.stderr.write(`wrote ${opts.out}: ${b.records.length} records from run ${b.run}\n`);
    });
}
