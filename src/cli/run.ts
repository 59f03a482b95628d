/**
 * `bench run`: plan the matrix (models × schemes × methods × recipes × suites), run every
 * job not already in the cache, append results to the run's ledger, and end with the
 * leaderboard (terminal table + the HTML site). Progress goes to stderr; `--json` prints
 * only JSON on stdout.
 */
import { Option, type Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';
import { formatPlan, planRun, type Plan, type PlanOptions } from '../matrix/plan.ts';
import { SlurmSettingsSchema, type EngineName } from '../matrix/models.ts';
import { buildReport, buildLeaderboard } from '../report/index.ts';
import { leaderboardText } from '../report/terminal.ts';
import { ledgerPath, readLedger } from '../results/ledger.ts';
import { cacheStatus, latestRunId, newRunId, runPlan, type Handlers, type RunEvent, type RunSummary } from '../runner/index.ts';
import { SlurmExecutor, taskRunDir, type TaskSpec } from '../runner/executors/slurm/executor.ts';
import { embeddedHandlers } from '../runner/embedded.ts';
import { handlersByEngine, vllmHandlers } from '../runner/vllm.ts';
import { parseShard, shardPlan } from '../runner/shard.ts';
import { list, positiveInt, progressLine } from './options.ts';
import { checkOutDir } from '../outputs.ts';

export interface RunFlags {
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
  executor: string;
  partition?: string;
  account?: string;
  time?: string;
  gpusPerTask?: string;
  maxParallel?: number;
  sbatchArg: string[];
  detach?: boolean;
  slurmTask?: string;
  slurmIndex?: number;
}

const EXECUTORS = ['local', 'slurm'];

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
    .addOption(new Option('--executor <name>', 'where jobs run: local (this process) or slurm (job arrays on a cluster sharing .bench/)').choices(EXECUTORS).default('local'))
    .option('--partition <name>', 'slurm: partition')
    .option('--account <name>', 'slurm: account')
    .option('--time <limit>', 'slurm: time limit per task (HH:MM:SS)')
    .option('--gpus-per-task <n>', 'slurm: GPUs per task (N or TYPE:N)')
    .option('--max-parallel <k>', 'slurm: tasks of one job array running at once', (v) => positiveInt('--max-parallel', v))
    .option('--sbatch-arg <arg>', 'slurm: one more sbatch option, e.g. --sbatch-arg=--mem=64G (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--detach', 'slurm: return once the jobs are submitted; follow them with `bench status RUN`')
    .addOption(new Option('--slurm-task <file>', 'internal: run one task of a Slurm job array').hideHelp())
    .addOption(new Option('--slurm-index <i>', 'internal: the task index').argParser((v) => positiveInt('--slurm-index', v, 0)).hideHelp())
    .action(async (f: RunFlags) => {
      if (f.shard) parseShard(f.shard); // the syntax at once; the bound against the plan's size below
      let plan = planRun(planOptions(f));
      if (f.shard) plan = shardPlan(plan, f.shard);
      const benchDir = resolve(f.benchDir);
      if (f.resume && !f.runId && !latestRunId(benchDir))
        throw new UserError(`nothing to resume: ${join(benchDir, 'runs', 'latest')} does not exist; run without --resume`);
      const slurm = slurmSetup(f, plan, benchDir);
      if (f.dryRun) {
        const status = cacheStatus(plan, join(benchDir, 'cache'));
        if (slurm && !f.json) {
          const runId = f.runId ?? newRunId();
          const todo = new Set(plan.jobs.filter((j) => status.get(j.id) === 'todo').map((j) => j.id));
          for (const s of slurm.dryRun(plan.jobs, todo, runId, join(benchDir, 'runs', runId))) process.stdout.write(`# ---- ${s.path}\n${s.script}\n`);
          return;
        }
        process.stdout.write(f.json ? JSON.stringify({ jobs: plan.jobs.map((j) => ({ id: j.id, kind: j.kind, label: j.label, status: status.get(j.id) })) }, null, 2) + '\n' : formatPlan(plan, status));
        return;
      }
      // Before any work: a bench dir we cannot write would otherwise fail after the first job.
      checkOutDir('--bench-dir', benchDir, { create: true });
      const progress = progressLine(process.stderr);
      const onEvent = progressEvents(progress);
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
      // A faulted checkpoint must never land in the shared cache.
      const cacheDir = fault ? join(benchDir, 'cache-faults') : undefined;
      if (f.slurmTask !== undefined) {
        process.exitCode = await runSlurmTask(plan, handlers, f, benchDir, cacheDir, onEvent, (s) => progress.line(s));
        progress.done();
        return;
      }
      const { signal, dispose } = slurm ? interruptSignal(f.detach ? null : progress) : { signal: undefined, dispose: () => {} };
      let summary: RunSummary;
      try {
        summary = await runPlan(plan, handlers, {
          benchDir, cacheDir, runId: f.runId, resume: f.resume, jobs: f.jobs, onEvent, failFast: f.failFast,
          executor: slurm ?? undefined, signal,
          log: (s) => progress.line(s),
          options: { ...f },
        });
      } finally {
        dispose();
      }
      progress.done();
      if (summary.detached) {
        process.stdout.write(`run ${summary.runId}: submitted; follow it with: bench status ${summary.runId}${f.benchDir !== '.bench' ? ` --bench-dir ${f.benchDir}` : ''}\n`);
        return;
      }
      if (signal?.aborted) {
        process.stderr.write(`bench: run ${summary.runId} interrupted; its Slurm jobs are cancelled. Rerun with --run-id ${summary.runId} to finish it.\n`);
        process.exitCode = 130;
        return;
      }
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

/** The plan a run's flags ask for (also `bench status`, from the flags recorded in run.json). */
export function planOptions(f: Partial<RunFlags>, root?: string): PlanOptions {
  return {
    root, modelsFile: f.modelsFile, models: f.models, schemes: f.schemes, methods: f.methods, recipes: f.recipe, suites: f.suites,
    engine: f.engine as EngineName | undefined, seed: f.seed, limit: f.limit,
  };
}

/** The progress display of a run, local or on a cluster (also `bench status`). */
export function progressEvents(progress: ReturnType<typeof progressLine>): (e: RunEvent) => void {
  return (e: RunEvent) => {
    if (e.type === 'run-start') progress.line(`run ${e.runId}: ${e.total} jobs, ${e.cached} cached${e.resumed ? ' (resumed)' : ''}`);
    else if (e.type === 'job-start') progress.update(`[${e.index}/${e.total}] ${e.job.label}`);
    else if (e.type === 'job-end' && !e.cached) progress.line(`[${e.index}/${e.total}] ${e.job.label}: done in ${e.seconds.toFixed(1)} s${e.etaSeconds != null ? `, ETA ${formatEta(e.etaSeconds)}` : ''}`);
    else if (e.type === 'job-failed') progress.line(`[${e.index}/${e.total}] FAILED ${e.job.label}: ${e.error}`);
    else if (e.type === 'job-skipped') progress.line(`skipped ${e.job.label}: ${e.reason}`);
  };
}

/** Settings of `--executor slurm` from the flags, checked; null for the local executor. */
function slurmSetup(f: RunFlags, plan: Plan, benchDir: string): SlurmExecutor | null {
  const given = (['partition', 'account', 'time', 'gpusPerTask', 'maxParallel', 'detach'] as const).filter((k) => f[k] !== undefined);
  if (f.executor !== 'slurm' || f.slurmTask !== undefined) {
    if (f.executor !== 'slurm' && (given.length || f.sbatchArg.length))
      throw new UserError(`--${(given[0] ?? 'sbatchArg').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} works with --executor slurm only; add it or drop the flag`);
    return null;
  }
  if (f.shard) throw new UserError('--shard splits a matrix across machines by hand; --executor slurm already spreads it over the cluster: drop one of them');
  if (f.jobs) throw new UserError('--jobs sets jobs at once in this process; with --executor slurm use --max-parallel');
  const gpus = f.gpusPerTask === undefined ? undefined : /^\d+$/.test(f.gpusPerTask) ? Number(f.gpusPerTask) : f.gpusPerTask;
  const parsed = SlurmSettingsSchema.safeParse({
    partition: f.partition, account: f.account, time: f.time, gpusPerTask: gpus, maxParallel: f.maxParallel, sbatchArgs: f.sbatchArg.length ? f.sbatchArg : undefined,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const flag = { partition: '--partition', account: '--account', time: '--time', gpusPerTask: '--gpus-per-task', maxParallel: '--max-parallel', sbatchArgs: '--sbatch-arg' }[String(issue.path[0])] ?? String(issue.path[0]);
    throw new UserError(`${flag}: ${issue.message}`);
  }
  const models = new Map(plan.models.map((m) => [m.alias, m.model.slurm]));
  return new SlurmExecutor({
    cli: parsed.data, perModel: (a) => models.get(a), root: plan.root, detach: f.detach,
    taskArgv: [process.execPath, BENCH_BIN, 'run', ...planFlags(f, plan, benchDir)],
    log: (s) => process.stderr.write(`${s}\n`),
  });
}

const BENCH_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'bench.js');

/** The flags that decide a task's plan and handlers, as an argv (absolute paths: a task runs on another node). */
function planFlags(f: RunFlags, plan: Plan, benchDir: string): string[] {
  const out = ['--models-file', plan.modelsFile, '--bench-dir', benchDir];
  const add = (flag: string, v: string | number | string[] | undefined) => {
    if (v !== undefined) out.push(flag, Array.isArray(v) ? v.join(',') : String(v));
  };
  add('--models', f.models);
  add('--schemes', f.schemes);
  add('--methods', f.methods);
  add('--recipe', f.recipe);
  add('--suites', f.suites);
  add('--engine', f.engine);
  add('--seed', f.seed);
  add('--threads', f.threads);
  add('--limit', f.limit);
  add('--fault-perturb-scales', f.faultPerturbScales);
  return out;
}

/** One task of a Slurm job array: the job at its index, in this process, with a ledger of its own. */
async function runSlurmTask(
  plan: Plan, handlers: Handlers, f: RunFlags, benchDir: string, cacheDir: string | undefined, onEvent: (e: RunEvent) => void, log: (s: string) => void,
): Promise<number> {
  if (f.slurmIndex === undefined) throw new UserError('--slurm-task needs --slurm-index');
  const spec = JSON.parse(readFileSync(f.slurmTask!, 'utf8')) as TaskSpec;
  const jobId = spec.jobs[f.slurmIndex];
  if (!jobId) return 0;
  if (!plan.jobs.some((j) => j.id === jobId))
    throw new UserError(`job ${jobId.slice(0, 12)} of this task is not in the plan: models.json, a suite or the tool changed since it was submitted; rerun bench run`);
  const s = await runPlan(plan, handlers, {
    benchDir, cacheDir, runId: `${spec.runId}.${jobId.slice(0, 12)}`, runDir: taskRunDir(spec.runDir, jobId), setLatest: false,
    only: new Set([jobId]), onEvent, log, options: { ...f },
  });
  for (const x of s.failed) process.stderr.write(`bench: job failed: ${x.label}: ${x.error}\n`);
  return s.failed.length ? 1 : 0;
}

/**
 * SIGINT/SIGTERM abort the run (the Slurm executor then cancels its jobs); with `--detach`
 * (progress null) they only stop the submission. A second signal exits at once.
 */
function interruptSignal(progress: ReturnType<typeof progressLine> | null): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(sig === 'SIGINT' ? 130 : 143);
    progress?.line(`${sig}: cancelling the run's Slurm jobs (again to quit at once)`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { signal: ac.signal, dispose: () => (process.off('SIGINT', onSignal), process.off('SIGTERM', onSignal)) };
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
