/**
 * `bench compare --models a,b`: side by side from results already in the cache (or, with
 * --run, after computing what is missing): score, delta vs BF16 with its CI, recovery,
 * and AutoRound vs RTN with a paired test.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { planRun } from '../matrix/plan.ts';
import type { EngineName } from '../matrix/models.ts';
import { compareMarkdown, compareRecords, compareTable } from '../report/compare.ts';
import { collectCached } from '../runner/collect.ts';
import { runPlan } from '../runner/index.ts';
import { embeddedHandlers } from '../runner/embedded.ts';
import { list, positiveInt, progressLine } from './options.ts';

interface Flags {
  models?: string[];
  schemes?: string[];
  methods?: string[];
  recipe?: string[];
  suites?: string[];
  engine?: string;
  format: string;
  run?: boolean;
  limit?: number;
  benchDir: string;
}

export function register(program: Command): void {
  program
    .command('compare')
    .description('compare models, schemes and methods side by side from cached results')
    .option('--models <list>', 'model aliases from models.json', list)
    .option('--schemes <list>', 'schemes (BF16 is always included as the base)', list)
    .option('--methods <list>', 'rtn,autoround', list)
    .option('--recipe <list>', 'AutoRound recipes', list)
    .option('--suites <list>', 'suites', list)
    .option('--engine <name>', 'onnx or vllm')
    .option('--format <f>', 'table, md or json', 'table')
    .option('--run', 'compute results that are not cached yet (as `bench run` would)')
    .option('--limit <n>', 'with --run: score only the first n items (smoke runs)', (v) => positiveInt('--limit', v))
    .option('--bench-dir <dir>', 'where the cache and runs live', '.bench')
    .action(async (f: Flags) => {
      if (!['table', 'md', 'json'].includes(f.format)) throw new UserError(`--format must be table, md or json, got '${f.format}'`);
      const schemes = f.schemes ? [...new Set(['BF16', ...f.schemes])] : undefined;
      // --limit is part of every eval's identity: without --run it selects the cached smoke results.
      const plan = planRun({ models: f.models, schemes, methods: f.methods, recipes: f.recipe, suites: f.suites, engine: f.engine as EngineName | undefined, limit: f.limit });
      const benchDir = resolve(f.benchDir);
      if (f.run) {
        if (plan.models.some((m) => m.engine === 'vllm')) throw new UserError(`--run with vLLM models needs a GPU host with vllm installed; see harness/README.md`);
        const progress = progressLine(process.stderr);
        await runPlan(plan, embeddedHandlers({ onBatch: (t) => progress.update(t) }), {
          benchDir,
          onEvent: (e) => (e.type === 'job-start' ? progress.update(`[${e.index}/${e.total}] ${e.job.label}`) : undefined),
          log: (s) => progress.line(s),
        });
        progress.done();
      }
      const { records, missing } = collectCached(plan, benchDir);
      if (records.length === 0)
        throw new UserError(`no cached results for this selection (${missing.length} evaluations missing); run 'bench run' with the same flags, or pass --run`);
      const rows = compareRecords(records);
      if (f.format === 'json') process.stdout.write(JSON.stringify({ rows, missing: missing.map((j) => j.label) }, null, 2) + '\n');
      else process.stdout.write(f.format === 'md' ? compareMarkdown(rows) : compareTable(rows));
      if (missing.length && f.format !== 'json')
        process.stderr.write(`${missing.length} evaluations not in the cache (e.g. ${missing[0].label}); pass --run to compute them\n`);
    });
}
