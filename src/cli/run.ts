/**
 * `bench run`: plan the matrix (models × schemes × methods × recipes × suites), run every
 * job not already in the cache, append results to the run's ledger, and end with the
 * leaderboard (terminal table + the HTML site). Progress goes to stderr; `--json` prints
 * only JSON on stdout.
 */
import { Option, type Command } from 'commander';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { formatPlan, planRun, type PlanOptions } from '../matrix/plan.ts';
import type { EngineName } from '../matrix/models.ts';
import { buildReport, buildLeaderboard } from '../report/index.ts';
import { leaderboardText } from '../report/terminal.ts';
import { ledgerPath, readLedger } from '../results/ledger.ts';
import { existsSync } from 'node:fs';
import { cacheStatus, latestRunId, runPlan, type RunEvent } from '../runner/index.ts';
import { embeddedHandlers } from '../runner/embedded.ts';
import { handlersByEngine, vllmHandlers } from '../runner/vllm.ts';
import { parseShard, shardPlan } from '../runner/shard.ts';
import { list, positiveInt, progressLine } from './options.ts';
import { checkWritableDir } from './outputs.ts';

interface RunFlags {
  models?: string[];
  modelsFile?: string;
  schemes?: string[];
  methods?: string[];
  recipe?: string[];
  suites?: string[];
  engine?: string;
  seed?: number;
  jobs?: number;
  threads?: number;
  limit?: number;
  runId?: string;
  resume?: boolean;
  dryRun?: boolean;
  json?: boolean;
  report?: boolean;
  reportOut: string;
  shard?: string;
  benchDir: string;
  failFast?: boolean;
  faultPerturbScales?: string;
}

export function register(program: Command): void {
  program
    .command('run')
    .description('quantize and evaluate the model matrix (default: stories260k, every scheme × {RTN, AutoRound} × all suites)')
    .option('--models <list>', 'model aliases from models.json', list)
    .option('--models-file <path>', 'the model matrix file (default: models.json in the current directory)')
    .option('--schemes <list>', 'schemes (see `bench schemes`)', list)
    .option('--methods <list>', 'rtn,autoround', list)
    .option('--recipe <list>', 'AutoRound recipes (default, best, light, fast)', list)
    .option('--suites <list>', 'suites (files in suites/)', list)
    .option('--engine <name>', 'onnx (embedded) or vllm')
    .option('--seed <n>', 'seed for calibration sampling and bootstraps', (v) => positiveInt('--seed', v, 0))
    .option('--jobs <n>', 'jobs at once (default 1)', (v) => positiveInt('--jobs', v))
    .option('--threads <n>', 'onnxruntime threads per engine (default: all cores)', (v) => positiveInt('--threads', v))
    .option('--limit <n>', 'score only the first n items of each suite (smoke runs; recorded)', (v) => positiveInt('--limit', v))
    .option('--shard <i/n>', 'run only shard i of n of the matrix (balanced by estimated cost)')
    .option('--run-id <id>', 'run id (default: a new one, or the latest with --resume)')
    .option('--resume', 'continue the latest run')
    .option('--bench-dir <dir>', 'where the cache and runs live', '.bench')
    .option('--dry-run', 'print the plan and what is cached; run nothing')
    .option('--fail-fast', 'stop starting jobs after the first failure')
    .option('--no-report', 'do not write the HTML leaderboard at the end')
    .option('--report-out <dir>', 'leaderboard site directory', join('reports', 'site'))
    .option('--json', 'print the run summary and leaderboard as JSON on stdout')
    .addOption(new Option('--fault-perturb-scales <scheme:factor>', 'test-only fault hook: multiply one scheme\'s weight scales').hideHelp())
    .action(async (f: RunFlags) => {
      const planOpts: PlanOptions = {
        modelsFile: f.modelsFile, models: f.models, schemes: f.schemes, methods: f.methods, recipes: f.recipe, suites: f.suites,
        engine: f.engine as EngineName | undefined, seed: f.seed, limit: f.limit,
      };
      if (f.shard) parseShard(f.shard); // the syntax at once; the bound against the plan's size below
      let plan = planRun(planOpts);
      if (f.shard) plan = shardPlan(plan, f.shard);
      const benchDir = resolve(f.benchDir);
      if (f.resume && !f.runId && !latestRunId(benchDir))
        throw new UserError(`nothing to resume: ${join(benchDir, 'runs', 'latest')} does not exist; run without --resume`);
      if (f.dryRun) {
        const status = cacheStatus(plan, join(benchDir, 'cache'));
        process.stdout.write(f.json ? JSON.stringify({ jobs: plan.jobs.map((j) => ({ id: j.id, kind: j.kind, label: j.label, status: status.get(j.id) })) }, null, 2) + '\n' : formatPlan(plan, status));
        return;
      }
      // Before any work: a bench dir we cannot write would otherwise fail after the first job.
      checkWritableDir(benchDir, '--bench-dir');
      const progress = progressLine(process.stderr);
      const onEvent = (e: RunEvent) => {
        if (e.type === 'run-start') progress.line(`run ${e.runId}: ${e.total} jobs, ${e.cached} cached${e.resumed ? ' (resumed)' : ''}`);
        else if (e.type === 'job-start') progress.update(`[${e.index}/${e.total}] ${e.job.label}`);
        else if (e.type === 'job-end' && !e.cached) progress.line(`[${e.index}/${e.total}] ${e.job.label}: done in ${e.seconds.toFixed(1)} s${e.etaSeconds != null ? `, ETA ${formatEta(e.etaSeconds)}` : ''}`);
        else if (e.type === 'job-failed') progress.line(`[${e.index}/${e.total}] FAILED ${e.job.label}: ${e.error}`);
        else if (e.type === 'job-skipped') progress.line(`skipped ${e.job.label}: ${e.reason}`);
      };
      const fault = parseFault(f.faultPerturbScales);
      const embedded = embeddedHandlers({
        threads: f.threads,
        onBatch: (t) => progress.update(t),
        perturbScales: fault,
      });
      // Each job goes to its model's engine: --engine, else the model's first engine in models.json.
      const vllm = vllmHandlers({
        logDir: join(benchDir, 'logs'), root: plan.root, lmevalSuite: plan.suites[0]?.name ?? null,
        onBatch: (t) => progress.update(t),
      });
      if (fault && plan.models.some((m) => m.engine === 'vllm')) throw new UserError('--fault-perturb-scales works with the embedded engine only; drop it or use --engine onnx');
      const handlers = handlersByEngine(plan, { onnx: embedded, vllm });
      const summary = await runPlan(plan, handlers, {
        // A faulted checkpoint must never land in the shared cache.
        benchDir, cacheDir: fault ? join(benchDir, 'cache-faults') : undefined, runId: f.runId, resume: f.resume, jobs: f.jobs, onEvent, failFast: f.failFast,
        log: (s) => progress.line(s),
        options: { ...f },
      });
      progress.done();
      const records = existsSync(ledgerPath(summary.runDir)) ? readLedger(summary.runDir) : [];
      const lb = buildLeaderboard(records);
      let site: string | null = null;
      if (f.report !== false && records.length) {
        site = resolve(f.reportOut);
        await buildReport([summary.runDir], site, { log: (s) => progress.line(s) });
      }
      if (f.json) {
        process.stdout.write(JSON.stringify({ summary, site, leaderboard: lb.rows.map(({ records: _r, ...row }) => row) }, null, 2) + '\n');
      } else {
        process.stdout.write(leaderboardText(lb));
        process.stdout.write(`run ${summary.runId}: ${summary.ran} jobs run, ${summary.cached} cached, ${summary.failed.length} failed, ${summary.skipped} skipped; ledger ${join(summary.runDir, 'ledger.jsonl')}${site ? `; site ${join(site, 'index.html')}` : ''}\n`);
      }
      if (summary.failed.length) {
        for (const x of summary.failed) process.stderr.write(`bench: job failed: ${x.label}: ${x.error}\n`);
        process.exitCode = 1;
      }
    });
}

function formatEta(s: number): string {
  return s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`;
}

function parseFault(s: string | undefined): { scheme: string; factor: number } | undefined {
  if (!s) return undefined;
  const m = /^([^:]+):([0-9.]+)$/.exec(s);
  if (!m) throw new UserError(`--fault-perturb-scales wants SCHEME:FACTOR, got '${s}'`);
  return { scheme: m[1], factor: Number(m[2]) };
}
