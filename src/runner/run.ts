/**
 * runPlan: carry out a plan's jobs with injected handlers (quantize, base, evaluate),
 * reusing everything already in the cache, and append the results to the run's ledger.
 * Three parts: the job board (board.ts) with an executor that moves jobs through it
 * (executor.ts: here, or on a Slurm cluster), the ledger committer (ledger-commit.ts),
 * and the record builder (records.ts).
 *
 *   .bench/cache/...            outputs keyed by job identity (cache.ts)
 *   .bench/runs/<run-id>/       ledger.jsonl, run.json (provenance), run.lock
 *   .bench/runs/latest          the latest run id
 *
 * Crash safety: an eval result is written to the cache (atomically) before its records
 * are appended to the ledger; a resumed run appends the records the ledger lacks, in plan
 * order, so a run killed at any point and resumed ends with the same ledger as a run that
 * was never interrupted: no duplicates, nothing lost.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeAtomic } from '../checkpoint/safetensors.ts';
import { ToolError, UserError, describeFailure, type FailureInfo } from '../errors.ts';
import { hashSuiteData, type BaseJob, type EvalJob, type Job, type Plan, type QuantizeJob } from '../matrix/plan.ts';
import type { ResolvedModel } from '../matrix/models.ts';
import { ledgerPath, readLedger } from '../results/ledger.ts';
import { cellKey, describeItemSet, sameItemSet, type Coverage, type MetricValue, type ResultRecord } from '../results/record.ts';
import { Cache, isAlive, type CachedResult, type DirManifest } from './cache.ts';
import { JobBoard, type FailureWhere } from './board.ts';
import { LocalExecutor, type Executor } from './executor.ts';
import { LedgerCommitter } from './ledger-commit.ts';
import { hostInfo, startMemorySampler, versions } from './provenance.ts';
import { buildRecords, recordKey } from './records.ts';

export interface JobContext {
  model: ResolvedModel;
  /** Local model directory, or null for hf sources (use model.hfRepo at model.revision). */
  modelDir: string | null;
  seed: number;
  /** Score only the first N items of each suite (the plan's `--limit`, part of the job's identity); undefined = all. */
  limit: number | undefined;
  signal: AbortSignal;
  /** Progress text for the user (stderr). */
  log: (message: string) => void;
}

export interface QuantizeContext extends JobContext {
  /** Write the checkpoint here (config.json, safetensors, tokenizer ...); it is renamed into the cache when complete. */
  outDir: string;
}

export interface QuantizeResult {
  /** Exact bits per weight of the quantized layers (default: the scheme's nominal value). */
  bitsPerWeight?: number;
  /** Names of the layers that were quantized. */
  layers?: string[];
  /** Peak memory of the quantizer (e.g. an external process); default: sampled RSS of this process. */
  peakMemoryMB?: number;
  provenance?: Record<string, unknown>;
}

export interface BaseContext extends JobContext {
  outDir: string;
}

export interface BaseResult {
  peakMemoryMB?: number;
  provenance?: Record<string, unknown>;
}

export interface EvalContext extends JobContext {
  /** Checkpoint to score: the quantized checkpoint dir, or the base model dir (null for an hf base). */
  checkpointDir: string | null;
  /** The quantize job's manifest (null when scoring the base model). */
  quantized: DirManifest<QuantizeResult> | null;
  /** The base distribution dir this suite compares against (kld), or null. */
  baseDir: string | null;
}

export type EvalResult =
  | MetricValue[]
  /** `items`: how many suite items were scored (stories, questions); it becomes the records' coverage. */
  | { metrics: MetricValue[]; items?: number; provenance?: Record<string, unknown>; peakMemoryMB?: number };

export interface Handlers {
  quantize(job: QuantizeJob, ctx: QuantizeContext): Promise<QuantizeResult>;
  base(job: BaseJob, ctx: BaseContext): Promise<BaseResult | void>;
  evaluate(job: EvalJob, ctx: EvalContext): Promise<EvalResult>;
}

export type RunEvent =
  | { type: 'run-start'; runId: string; runDir: string; total: number; cached: number; resumed: boolean }
  | { type: 'job-start'; job: Job; index: number; total: number }
  | { type: 'job-end'; job: Job; index: number; total: number; done: number; cached: boolean; seconds: number; etaSeconds: number | null }
  | { type: 'job-failed'; job: Job; index: number; total: number; error: string }
  | { type: 'job-skipped'; job: Job; reason: string }
  | { type: 'run-end'; summary: RunSummary };

export interface RunOptions {
  /** Where cache and runs live; default `<plan.root>/.bench`. */
  benchDir?: string;
  /** Cache directory; default `<benchDir>/cache`. */
  cacheDir?: string;
  /** Run id to create or resume; default: a new id. */
  runId?: string;
  /** Resume the latest run (`.bench/runs/latest`) when no runId is given. */
  resume?: boolean;
  /** Jobs at once (default 1: jobs are CPU-bound). Ignored when `executor` is given. */
  jobs?: number;
  /** Where jobs run; default: this process (LocalExecutor with `jobs`). */
  executor?: Executor;
  /** Run directory; default `<benchDir>/runs/<runId>` (a cluster task keeps its ledger inside its run's). */
  runDir?: string;
  /** Point `.bench/runs/latest` at this run (default true). */
  setLatest?: boolean;
  /** Carry out only these jobs (one slice of a cluster run); every other job must already be in the cache. */
  only?: ReadonlySet<string>;
  onEvent?: (e: RunEvent) => void;
  /** Progress text from handlers; default: stderr. */
  log?: (message: string) => void;
  /** The CLI options, recorded in run.json. */
  options?: Record<string, unknown>;
  /** Stop starting new jobs after the first failure. */
  failFast?: boolean;
  signal?: AbortSignal;
}

export interface RunSummary {
  runId: string;
  runDir: string;
  total: number;
  /** Jobs carried out by handlers in this invocation. */
  ran: number;
  /** Jobs whose output was already in the cache. */
  cached: number;
  failed: ({ id: string; label: string; where?: FailureWhere } & FailureInfo)[];
  skipped: number;
  /** Records appended to the ledger by this invocation. */
  appended: number;
  /** The executor returned while jobs go on elsewhere (`--detach`); `bench status` follows them. */
  detached?: boolean;
}

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function newRunId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

/** The run id in `.bench/runs/latest`, or null. */
export function latestRunId(benchDir: string): string | null {
  try {
    const id = readFileSync(join(benchDir, 'runs', 'latest'), 'utf8').trim();
    return RUN_ID.test(id) ? id : null;
  } catch {
    return null;
  }
}

/** Which jobs of a plan already have their output in the cache. */
export function cacheStatus(plan: Plan, cacheDir: string): Map<string, 'cached' | 'todo'> {
  const cache = new Cache(cacheDir);
  return new Map(plan.jobs.map((j) => [j.id, isCached(cache, j) ? 'cached' : 'todo']));
}

function isCached(cache: Cache, j: Job): boolean {
  if (j.kind === 'quantize') return cache.readDir('ckpt', j.id) !== null;
  if (j.kind === 'base') return cache.readDir('base', j.id) !== null;
  return cache.readResult(j.id) !== null;
}

/**
 * The jobs whose cached output this run may reuse. A result file must pass the record
 * schema (anything else is reported and recomputed). A checkpoint or base distribution
 * that an eval still to run will read is hashed against its manifest first; one that
 * does not match is removed and recomputed, so its numbers are never published.
 */
function reusableAtStart(cache: Cache, jobs: readonly Job[], log: (s: string) => void): Set<string> {
  const ok = new Set<string>();
  for (const j of jobs) {
    if (j.kind !== 'eval') continue;
    const { result, problem } = cache.checkResult(j.id);
    if (result) ok.add(j.id);
    else if (problem) log(`warning: cached result of ${j.label} is unusable (${problem}); recomputing it`);
  }
  for (const j of jobs) {
    if (j.kind === 'eval') continue;
    const kind = j.kind === 'quantize' ? 'ckpt' : 'base';
    if (!cache.readDir(kind, j.id)) continue;
    if (jobs.some((e) => e.deps.includes(j.id) && !ok.has(e.id))) {
      const problem = cache.verifyDir(kind, j.id);
      if (problem) {
        log(`warning: ${j.label}: ${problem}; removing it and recomputing`);
        cache.discardDir(kind, j.id);
        continue;
      }
    }
    ok.add(j.id);
  }
  return ok;
}

/** One run never holds results over two item sets in one cell: a resume must score what the run already scored. */
function refuseMixedCoverage(records: readonly ResultRecord[], plan: Plan, runId: string): void {
  const want = new Map<string, { limit: number | null; dataSha256: string }>();
  for (const j of plan.jobs)
    if (j.kind === 'eval') want.set(cellKey({ ...j, scheme: j.scheme.name, suite: j.suite.name }), { limit: plan.limit, dataSha256: j.suite.dataSha256 });
  for (const r of records) {
    const w = want.get(cellKey(r));
    if (!w || sameItemSet(r.coverage, w)) continue;
    throw new UserError(
      `run ${runId} holds ${r.suite} results of ${r.model} ${r.scheme} ${r.method} over ${describeItemSet(r.coverage)}, and this run scores ${describeItemSet(w)}; ` +
        'one run never mixes item sets: start a new run (drop --resume and --run-id) or pass the same --limit',
    );
  }
}

function acquireLock(runDir: string): () => void {
  const lock = join(runDir, 'run.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      // Ctrl-C or a polite kill releases the lock too; then the signal does what it would have done.
      const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
      const onSignal = (sig: NodeJS.Signals) => {
        release();
        if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      };
      const release = () => {
        for (const sig of signals) process.removeListener(sig, onSignal);
        rmSync(lock, { force: true });
      };
      for (const sig of signals) process.on(sig, onSignal);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid))
        throw new UserError(`run ${runDir} is in use by process ${pid}; wait for it or start a new run`);
      rmSync(lock, { force: true }); // left by a process that died
    }
  }
  throw new UserError(`${lock}: cannot take the run lock; remove the file if no bench process is running`);
}

function validateMetrics(job: EvalJob, metrics: MetricValue[]): void {
  const seen = new Set<string>();
  for (const m of metrics) {
    const where = `${job.label}: ${m.task}/${m.metric}`;
    if (typeof m.task !== 'string' || typeof m.metric !== 'string') throw new Error(`${job.label}: a metric lacks task or metric name`);
    if (typeof m.value !== 'number' || !Number.isFinite(m.value)) throw new Error(`${where}: value ${m.value} is not a finite number`);
    if (m.stderr !== null && (typeof m.stderr !== 'number' || !Number.isFinite(m.stderr) || m.stderr < 0))
      throw new Error(`${where}: stderr ${m.stderr} is not a finite non-negative number or null`);
    if (!Number.isInteger(m.n) || m.n < 0) throw new Error(`${where}: n ${m.n} is not a count`);
    for (const [what, xs] of [['item value', m.items?.values], ['item weight', m.items?.weights], ['extra value', m.extra && Object.values(m.extra)]] as const) {
      const bad = xs?.find((x) => typeof x !== 'number' || !Number.isFinite(x));
      if (bad !== undefined) throw new Error(`${where}: ${what} ${bad} is not a finite number`);
    }
    const k = `${m.task}\u0000${m.metric}`;
    if (seen.has(k)) throw new Error(`${where}: reported twice`);
    seen.add(k);
  }
}

/** Execute a plan. Resolves with a summary; job failures are reported there, not thrown. */
export async function runPlan(plan: Plan, handlers: Handlers, opts: RunOptions = {}): Promise<RunSummary> {
  const benchDir = resolve(plan.root, opts.benchDir ?? '.bench');
  const cache = new Cache(resolve(plan.root, opts.cacheDir ?? join(benchDir, 'cache')));
  const runId = opts.runId ?? (opts.resume ? latestRunId(benchDir) : null) ?? newRunId();
  if (!RUN_ID.test(runId)) throw new UserError(`run id '${runId}' has characters other than letters, digits, '.', '_' and '-'`);
  if (opts.resume && !opts.runId && !latestRunId(benchDir)) throw new UserError(`nothing to resume: ${join(benchDir, 'runs', 'latest')} does not exist; run without --resume`);
  const runDir = opts.runDir ?? join(benchDir, 'runs', runId);
  mkdirSync(runDir, { recursive: true });
  const release = acquireLock(runDir);
  const executor: Executor = opts.executor ?? new LocalExecutor(opts.jobs ?? 1);
  const emit = opts.onEvent ?? (() => {});
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const signal = opts.signal ?? new AbortController().signal;
  const host = hostInfo();
  const vers = versions(plan.root, plan.toolVersion);

  try {
    // run.json: provenance of the run; a resume adds a start time.
    const runJsonPath = join(runDir, 'run.json');
    const resumed = existsSync(runJsonPath);
    const prev = resumed ? (JSON.parse(readFileSync(runJsonPath, 'utf8')) as Record<string, unknown>) : null;
    const runJson: Record<string, unknown> = {
      runId,
      versions: vers,
      host,
      seed: plan.seed,
      options: opts.options ?? {},
      executor: { name: executor.name, capacity: executor.capacity },
      plan: {
        modelsFile: plan.modelsFile, models: plan.models.map((m) => m.alias), schemes: plan.schemes, methods: plan.methods,
        recipes: plan.recipes, suites: plan.suites.map((s) => s.name), jobs: plan.jobs.length, warnings: plan.warnings,
      },
      starts: [...((prev?.starts as string[]) ?? []), new Date().toISOString()],
      end: null,
      summary: null,
    };
    const writeRunJson = () => writeAtomic(runJsonPath, [Buffer.from(JSON.stringify(runJson, null, 2) + '\n')]);
    writeRunJson();
    if (opts.setLatest !== false) writeAtomic(join(benchDir, 'runs', 'latest'), [Buffer.from(`${runId}\n`)]);
    cache.cleanStale();

    const previous = existsSync(ledgerPath(runDir)) ? readLedger(runDir) : [];
    refuseMixedCoverage(previous, plan, runId);
    const inLedger = new Set(previous.map((r) => recordKey(r.jobId, r.task, r.metric)));
    const models = new Map(plan.models.map((m) => [m.alias, m]));
    const jobs = opts.only ? withDeps(plan.jobs, opts.only) : plan.jobs;
    const byId = new Map(plan.jobs.map((j) => [j.id, j]));
    const summary: RunSummary = { runId, runDir, total: jobs.length, ran: 0, cached: 0, failed: [], skipped: 0, appended: 0 };

    // Ledger commits happen in plan order of eval jobs, whatever order they finish in.
    const evals = jobs.filter((j): j is EvalJob => j.kind === 'eval' && (!opts.only || opts.only.has(j.id)));
    const recordsOf = (j: EvalJob) =>
      executor.recordsOf?.(j, runId) ?? buildRecords(runId, j, models.get(j.model)!, cache, j.quantizeJob ? (byId.get(j.quantizeJob) as QuantizeJob) : null);
    const committer = new LedgerCommitter(runDir, evals, inLedger, recordsOf, (n) => (summary.appended += n));
    const reusable = reusableAtStart(cache, jobs, log);
    const board: JobBoard = new JobBoard(jobs, summary, emit, (j) => reusable.has(j.id) || isCached(cache, j), () => executor.capacity, () => committer.commit(board));
    emit({ type: 'run-start', runId, runDir, total: jobs.length, cached: board.cachedAtStart, resumed });
    // A slice run (one task of a cluster run) carries out its own jobs only: every other job must be in the cache.
    if (opts.only)
      for (const j of jobs)
        if (!opts.only.has(j.id) && !board.isCached(j) && board.state(j.id) === 'pending')
          board.fail(j, 0, describeFailure(new ToolError(`${j.label}: not in the cache, and this slice does not run it (its own task failed or has not run)`)));

    const ctxFor = (j: Job): JobContext => {
      const mi = models.get(j.model)!;
      return { model: mi.model, modelDir: mi.model.localDir, seed: j.seed, limit: plan.limit ?? undefined, signal, log };
    };

    const work = async (j: Job): Promise<void> => {
      noteExecution(j);
      if (j.kind === 'quantize') {
        await cache.produceDir('ckpt', j.id, runId, async (outDir) => {
          const m = await measured(() => handlers.quantize(j, { ...ctxFor(j), outDir }));
          const res = m.value ?? {};
          return { result: res, seconds: m.seconds, peakMemoryMB: res.peakMemoryMB ?? m.peakMB };
        });
      } else if (j.kind === 'base') {
        await cache.produceDir('base', j.id, runId, async (outDir) => {
          const m = await measured(() => handlers.base(j, { ...ctxFor(j), outDir }));
          const res: BaseResult = m.value ?? {};
          return { result: res, seconds: m.seconds, peakMemoryMB: res.peakMemoryMB ?? m.peakMB };
        });
      } else {
        // Bytes are hashed against their manifest before they are read (once per process).
        const bad = (j.quantizeJob && cache.verifyDir('ckpt', j.quantizeJob)) || (j.baseJob && cache.verifyDir('base', j.baseJob));
        if (bad) throw new Error(`${j.label}: ${bad}`);
        const q = j.quantizeJob ? cache.readDir<QuantizeResult>('ckpt', j.quantizeJob) : null;
        // The data as this job reads it must be the data its identity names.
        const dataSha256 = hashSuiteData(j.suite);
        if (dataSha256 !== j.suite.dataSha256) throw new Error(`${j.label}: the data files of suite ${j.suite.name} changed after the run was planned; run again`);
        const mi = models.get(j.model)!;
        const m = await measured(() =>
          handlers.evaluate(j, {
            ...ctxFor(j),
            checkpointDir: j.quantizeJob ? cache.dirPath('ckpt', j.quantizeJob) : mi.model.localDir,
            quantized: q,
            baseDir: j.baseJob ? cache.dirPath('base', j.baseJob) : null,
          }),
        );
        const out = m.value;
        const metrics = Array.isArray(out) ? out : out?.metrics;
        if (!Array.isArray(metrics)) throw new Error(`${j.label}: the evaluate handler returned no metrics array`);
        validateMetrics(j, metrics);
        const items = Array.isArray(out) ? undefined : out.items;
        if (!Number.isSafeInteger(items) || items! < 1 || (plan.limit !== null && items! > plan.limit))
          throw new Error(`${j.label}: the evaluate handler reported ${items} items scored; expected a count from 1 to ${plan.limit ?? 'the suite size'}`);
        const coverage: Coverage = { items: items!, limit: plan.limit, dataSha256 };
        const hp = Array.isArray(out) ? {} : (out.provenance ?? {});
        const peak = Array.isArray(out) ? m.peakMB : (out.peakMemoryMB ?? m.peakMB);
        const result: CachedResult = {
          jobId: j.id, metrics, coverage, provenance: { evaluator: hp, host, versions: vers }, seconds: m.seconds, peakMemoryMB: peak, run: runId,
          createdAt: new Date().toISOString(),
        };
        cache.writeResult(result);
      }
    };

    const outcome = await executor.execute(board, work, { signal, failFast: opts.failFast, runDir, runId });
    if (outcome.detached) {
      summary.detached = true;
      runJson.detached = new Date().toISOString();
    } else {
      runJson.end = new Date().toISOString();
      runJson.summary = { ...summary, failed: summary.failed.length, failures: summary.failed };
    }
    writeRunJson();
    emit({ type: 'run-end', summary });
    return summary;
  } finally {
    release();
  }
}

/** The jobs of `only` and everything they depend on, in plan order. */
function withDeps(jobs: readonly Job[], only: ReadonlySet<string>): Job[] {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const keep = new Set<string>();
  const visit = (id: string) => {
    if (keep.has(id)) return;
    keep.add(id);
    for (const d of byId.get(id)?.deps ?? []) visit(d);
  };
  for (const id of only) visit(id);
  return jobs.filter((j) => keep.has(j.id));
}

/**
 * Test hook: with BENCH_EXECUTION_LOG set, every job a handler is about to carry out is
 * appended to that file as `<kind> <job id>` (one short O_APPEND write: lines from
 * concurrent processes never interleave), so a test can prove no job ran twice.
 */
function noteExecution(j: Job): void {
  const path = process.env.BENCH_EXECUTION_LOG;
  if (path) appendFileSync(path, `${j.kind} ${j.id}\n`);
}

async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; peakMB: number }> {
  const stop = startMemorySampler();
  const t0 = performance.now();
  try {
    const value = await fn();
    return { value, seconds: (performance.now() - t0) / 1000, peakMB: stop() };
  } finally {
    stop();
  }
}

