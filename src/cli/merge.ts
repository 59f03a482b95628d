/** `bench merge --out DIR RUN...`: combine shard ledgers into one run. */
import type { Command } from 'commander';
import { mergeRuns } from '../results/merge.ts';
import { resolveRunDir } from '../results/runs.ts';

export function register(program: Command): void {
  program
    .command('merge')
    .description('combine the ledgers of shard runs into one run directory')
    .argument('<runs...>', 'shard run directories (or run ids)')
    .requiredOption('--out <dir>', 'new run directory to write')
    .action((runs: string[], opts: { out: string }) => {
      const r = mergeRuns(runs.map((x) => resolveRunDir(x)), opts.out);
      process.stderr.write(`merged ${r.runs} runs into ${opts.out}: ${r.records} records\n`);
    });
}
