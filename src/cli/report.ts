/** `bench report`: build the static leaderboard site (and markdown/JSON) from run ledgers. */
import type { Command } from 'commander';
import { UserError } from '../errors.ts';
import { buildReport } from '../report/index.ts';

export function register(program: Command): void {
  program
    .command('report')
    .description('build the HTML leaderboard, leaderboard.md and leaderboard.json from run ledgers')
    .option('--runs <dirs>', 'comma-separated run directories, or folders of run directories', '.bench/runs')
    .option('--out <dir>', 'output folder of the site', 'reports/site')
    .option('--seed <n>', 'seed of the paired bootstrap (AutoRound vs RTN intervals)', '0')
    .option('--no-svg', 'skip the SVG copies of the charts')
    .option('--json', 'print a JSON summary on stdout')
    .action(async (opts: { runs: string; out: string; seed: string; svg: boolean; json?: boolean }) => {
      const seed = Number(opts.seed);
      if (!Number.isInteger(seed) || seed < 0) throw new UserError(`--seed ${opts.seed}: not a non-negative integer; pass e.g. --seed 0`);
      const dirs = opts.runs.split(',').map((s) => s.trim()).filter(Boolean);
      if (!dirs.length) throw new UserError('--runs is empty; pass run directories separated by commas');
      const t0 = performance.now();
      const summary = await buildReport(dirs, opts.out, { seed, noSvg: !opts.svg, log: (l) => process.stderr.write(l + '\n') });
      const seconds = (performance.now() - t0) / 1000;
      if (opts.json) {
        process.stdout.write(JSON.stringify({ ...summary, seconds }, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        `wrote ${summary.outDir}: ${summary.rows} rows (${summary.records} records, ${summary.models} models), charts: ${summary.charts.join(', ') || 'none'} in ${seconds.toFixed(2)} s\n` +
          `open ${summary.outDir}/index.html\n`,
      );
    });
}
