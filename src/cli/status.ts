/**
 * `bench status [RUN]`: follow a run submitted with `bench run --executor slurm` (detached,
 * or whose orchestrator died) in the same progress display as `bench run`, until every
 * job is final; then the ledger holds every result and the exit code is bench run's
 * (0, or 1 when a job failed). Ctrl-C stops following; the jobs go on.
 */
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { planRun } from '../matrix/plan.ts';
import { SlurmExecutor } from '../runner/executors/slurm/executor.ts';
import { runPlan, type Handlers } from '../runner/index.ts';
import { progressLine } from './options.ts';
import { planOptions, progressEvents, type RunFlags } from './run.ts';

/** `bench status` runs nothing itself: every job is carried out by the tasks already submitted. */
const NO_WORK: Handlers = {
  quantize: () => Promise.reject(new Error('bench status runs no job')),
  base: () => Promise.reject(new Error('bench status runs no job')),
  evaluate: () => Promise.reject(new Error('bench status runs no job')),
};

export function register(program: Command): void {
  program
    .command('status')
    .description('follow a run submitted with `bench run --executor slurm` (e.g. with --detach) until it is done')
    .argument('[run]', 'run id or run directory (default: the latest run)')
    .option('--bench-dir <dir>', 'where the cache and runs live', '.bench')
    .action(async (run: string | undefined, o: { benchDir: string }) => {
      const runsRoot = resolve(o.benchDir, 'runs');
      const id = run ?? (existsSync(join(runsRoot, 'latest')) ? readFileSync(join(runsRoot, 'latest'), 'utf8').trim() : undefined);
      if (!id) throw new UserError(`no runs under ${runsRoot}; pass a run id or --bench-dir`);
      const runDir = existsSync(join(id, 'run.json')) ? resolve(id) : join(runsRoot, id);
      const runJsonPath = join(runDir, 'run.json');
      if (!existsSync(runJsonPath)) throw new UserError(`run '${id}' not found: no ${runJsonPath}; pass a run id under ${runsRoot} or a run directory`);
      const runJson = JSON.parse(readFileSync(runJsonPath, 'utf8'));
      const statePath = join(runDir, 'slurm', 'state.json');
      if (!existsSync(statePath)) {
        const s = runJson.summary;
        process.stdout.write(`run ${runJson.runId}: ${s ? `ended ${runJson.end}: ${s.ran} run, ${s.cached} cached, ${s.failed} failed, ${s.skipped} skipped` : 'not finished'} (executor ${runJson.executor?.name ?? 'local'}; nothing to follow)\n`);
        return;
      }
      const f = runJson.options as RunFlags;
      const root = JSON.parse(readFileSync(statePath, 'utf8')).root as string;
      const plan = planRun(planOptions(f, root));
      const benchDir = resolve(root, f.benchDir ?? '.bench');
      const models = new Map(plan.models.map((m) => [m.alias, m.model.slurm]));
      const progress = progressLine(process.stderr);
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const summary = await runPlan(plan, NO_WORK, {
          benchDir, cacheDir: f.faultPerturbScales ? join(benchDir, 'cache-faults') : undefined, runId: runJson.runId, runDir, setLatest: false,
          executor: new SlurmExecutor({ cli: {}, perModel: (a) => models.get(a), root, taskArgv: [], submit: false, onAbort: 'detach', log: (s) => progress.line(s) }),
          onEvent: progressEvents(progress), log: (s) => progress.line(s), signal: ac.signal, options: f as unknown as Record<string, unknown>,
        });
        progress.done();
        if (summary.detached) {
          process.stdout.write(`run ${summary.runId}: still running; bench status ${summary.runId} follows it again\n`);
          return;
        }
        process.stdout.write(`run ${summary.runId}: ${summary.ran} jobs run, ${summary.cached} cached, ${summary.failed.length} failed, ${summary.skipped} skipped; ledger ${join(summary.runDir, 'ledger.jsonl')}\n`);
        for (const x of summary.failed) process.stderr.write(`bench: job failed: ${x.label}: ${x.error}\n`);
        if (summary.failed.length) process.exitCode = 1;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
