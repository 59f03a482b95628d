/**
 * runPlan: carry out a plan's jobs with injected handlers (quantize, base, evaluate),
 * reusing everything already in the cache, and append the results to the run's ledger.
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
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeAtomic } from '../checkpoint/safetensors.ts';
import { UserError, describeFailure, type FailureInfo } from '../errors.ts';
import type { BaseJob, EvalJob, Job, ModelInfo, Plan, QuantizeJob } from '../matrix/plan.ts';
import type { ResolvedModel } from '../matrix/models.ts';
import { appendRecords, ledgerPath, readLedger } from '../results/ledger.ts';
import type { MetricValue, ResultRecord } from '../results/record.ts';
import { Cache, isAlive, type CachedResult, type DirManifest } from './cache.ts';
import { LocalExecutor, type Executor } from './executor.ts';
import { hostInfo, startMemorySampler, versions, type HostInfo } from './provenance.ts';

export interface JobContext {
  model: ResolvedModel;
  /** Local model directory, or null for hf sources (use model.hfRepo at model.revision). */
  modelDir: string | null;
  seed: number;
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

export type EvalResult = MetricValue[] | { metrics: MetricValue[]; provenance?: Record<string, unknown>; peakMemoryMB?: number };

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
  executor?: Executor;
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
  failed: ({ id: string; label: string } & FailureInfo)[];
  skipped: number;
  /** Records appended to the ledger by this invocation. */
  appended: number;
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

function recordKey(jobId: string, task: string, metric: string): string {
  return `${jobId}\u0000${task}\u0000${metric}`;
}

function acquireLock(runDir: string): () => void {
  const lock = join(runDir, 'run.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(lock, { force: true });
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
  const runDir = join(benchDir, 'runs', runId);
  mkdirSync(runDir, { recursive: true });
  const release = acquireLock(runDir);
  const executor = opts.executor ?? new LocalExecutor(opts.jobs ?? 1);
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
    writeAtomic(join(benchDir, 'runs', 'latest'), [Buffer.from(`${runId}\n`)]);
    cache.cleanStale();

    const inLedger = new Set(existsSync(ledgerPath(runDir)) ? readLedger(runDir).map((r) => recordKey(r.jobId, r.task, r.metric)) : []);
    const models = new Map(plan.models.map((m) => [m.alias, m]));
    const jobs = plan.jobs;
    const total = jobs.length;
    const byId = new Map(jobs.map((j) => [j.id, j]));
    const status = new Map<string, 'pending' | 'running' | 'done' | 'failed' | 'skipped'>(jobs.map((j) => [j.id, 'pending']));
    const initiallyCached = new Set(jobs.filter((j) => isCached(cache, j)).map((j) => j.id));
    const summary: RunSummary = { runId, runDir, total, ran: 0, cached: 0, failed: [], skipped: 0, appended: 0 };
    emit({ type: 'run-start', runId, runDir, total, cached: initiallyCached.size, resumed });

    // Ledger commits happen in plan order of eval jobs, whatever order they finish in.
    const evals = jobs.filter((j): j is EvalJob => j.kind === 'eval');
    let commitIdx = 0;
    const commit = () => {
      while (commitIdx < evals.length) {
        const j = evals[commitIdx];
        const st = status.get(j.id);
        if (st === 'pending' || st === 'running') return;
        if (st === 'done') {
          const r = cache.readResult(j.id);
          if (!r) throw new Error(`${j.label}: result vanished from the cache`);
          const q = j.quantizeJob ? cache.readDir<QuantizeResult>('ckpt', j.quantizeJob) : null;
          const qj = j.quantizeJob ? (byId.get(j.quantizeJob) as QuantizeJob) : null;
          const records = r.metrics
            .filter((m) => !inLedger.has(recordKey(j.id, m.task, m.metric)))
            .map((m) => toRecord(runId, j, models.get(j.model)!, m, r, q, qj));
          appendRecords(runDir, records);
          for (const rec of records) inLedger.add(recordKey(j.id, rec.task, rec.metric));
          summary.appended += records.length;
        }
        commitIdx++;
      }
    };

    let started = 0;
    let finished = 0;
    const ranSeconds: number[] = [];
    const eta = (): number | null => {
      if (ranSeconds.length === 0) return null;
      const left = jobs.filter((j) => (status.get(j.id) === 'pending' || status.get(j.id) === 'running') && !initiallyCached.has(j.id)).length;
      const mean = ranSeconds.reduce((a, b) => a + b, 0) / ranSeconds.length;
      return (mean * left) / executor.capacity;
    };
    const skipDependents = (id: string, reason: string) => {
      for (const j of jobs) {
        if (status.get(j.id) === 'pending' && j.deps.includes(id)) {
          status.set(j.id, 'skipped');
          summary.skipped++;
          emit({ type: 'job-skipped', job: j, reason });
          skipDependents(j.id, reason);
        }
      }
    };

    const ctxFor = (j: Job): JobContext => {
      const mi = models.get(j.model)!;
      return { model: mi.model, modelDir: mi.model.localDir, seed: j.seed, signal, log };
    };

    const work = async (j: Job): Promise<void> => {
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
        const q = j.quantizeJob ? cache.readDir<QuantizeResult>('ckpt', j.quantizeJob) : null;
        if (j.quantizeJob && !q) throw new Error(`${j.label}: its checkpoint ${j.quantizeJob.slice(0, 12)} is not complete in the cache`);
        if (j.baseJob && !cache.readDir('base', j.baseJob)) throw new Error(`${j.label}: its base distribution is not complete in the cache`);
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
        const hp = Array.isArray(out) ? {} : (out.provenance ?? {});
        const peak = Array.isArray(out) ? m.peakMB : (out.peakMemoryMB ?? m.peakMB);
        const result: CachedResult = {
          jobId: j.id, metrics, provenance: { evaluator: hp, host, versions: vers }, seconds: m.seconds, peakMemoryMB: peak, run: runId,
          createdAt: new Date().toISOString(),
        };
        cache.writeResult(result);
      }
    };

    const outputReady = (j: Job) => isCached(cache, j);

    await new Promise<void>((done, fail) => {
      let running = 0;
      let stopped = false;
      const pump = () => {
        try {
          if (signal.aborted) stopped = true;
          for (const j of jobs) {
            if (status.get(j.id) !== 'pending') continue;
            if (!j.deps.every((d) => status.get(d) === 'done')) continue;
            if (initiallyCached.has(j.id) || outputReady(j)) {
              status.set(j.id, 'done');
              summary.cached++;
              finished++;
              emit({ type: 'job-end', job: j, index: ++started, total, done: finished, cached: true, seconds: 0, etaSeconds: eta() });
              continue;
            }
            if (stopped || running >= executor.capacity) continue;
            status.set(j.id, 'running');
            running++;
            const index = ++started;
            emit({ type: 'job-start', job: j, index, total });
            const t0 = performance.now();
            executor
              .run(j, () => work(j))
              .then(() => {
                if (!outputReady(j)) throw new Error(`${j.label}: the executor finished but the output is not in the cache`);
                const seconds = (performance.now() - t0) / 1000;
                ranSeconds.push(seconds);
                status.set(j.id, 'done');
                summary.ran++;
                finished++;
                emit({ type: 'job-end', job: j, index, total, done: finished, cached: false, seconds, etaSeconds: eta() });
              })
              .catch((e: unknown) => {
                const msg = e instanceof Error ? e.message : String(e);
                status.set(j.id, 'failed');
                finished++;
                summary.failed.push({ id: j.id, label: j.label, ...describeFailure(e) });
                emit({ type: 'job-failed', job: j, index, total, error: msg });
                skipDependents(j.id, `${j.label} failed`);
                if (opts.failFast) stopped = true;
              })
              .finally(() => {
                running--;
                pump();
              });
          }
          commit();
          if (running === 0) {
            if (stopped) for (const j of jobs) if (status.get(j.id) === 'pending') { status.set(j.id, 'skipped'); summary.skipped++; }
            commit();
            done();
          }
        } catch (e) {
          fail(e);
        }
      };
      pump();
    });

    runJson.end = new Date().toISOString();
    runJson.summary = { ...summary, failed: summary.failed.length, failures: summary.failed };
    writeRunJson();
    emit({ type: 'run-end', summary });
    return summary;
  } finally {
    release();
  }
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

function toRecord(
  runId: string,
  j: EvalJob,
  mi: ModelInfo,
  m: MetricValue,
  r: CachedResult,
  q: DirManifest<QuantizeResult> | null,
  qj: QuantizeJob | null,
): ResultRecord {
  const quant = q?.result ?? null;
  return {
    schema: 1,
    jobId: j.id,
    run: runId,
    model: j.model,
    scheme: j.scheme.name,
    method: j.method,
    recipe: j.recipe,
    suite: j.suite.name,
    engine: j.engine,
    bitsPerWeight: quant?.bitsPerWeight ?? j.bitsPerWeight,
    ...m,
    timings: { quantSeconds: q ? q.seconds : null, evalSeconds: r.seconds, ...(r.peakMemoryMB !== null ? { peakMemoryMB: Math.max(r.peakMemoryMB, q?.peakMemoryMB ?? 0) } : {}) },
    provenance: {
      versions: (r.provenance.versions as Record<string, string>) ?? { 'lowbit-bench': String(j.identity.tool) },
      seed: j.seed,
      scheme: { weights: j.scheme.weights, activations: j.scheme.activations },
      recipeValues: j.recipeValues,
      seqlenCap: j.seqlenCap,
      hashes: {
        model: mi.identity,
        suite: j.suite.hash,
        suiteFiles: j.suite.files,
        quantizeJob: j.quantizeJob,
        baseJob: j.baseJob,
        calibration: qj?.calibration ?? null,
        checkpointFiles: q ? Object.fromEntries(Object.entries(q.files).map(([f, x]) => [f, x.sha256])) : null,
      },
      quantizer: quant ? { layers: quant.layers ?? null, ...(quant.provenance ?? {}) } : null,
      evaluator: (r.provenance.evaluator as Record<string, unknown>) ?? {},
      host: r.provenance.host as HostInfo,
      computedInRun: r.run,
      computedAt: r.createdAt,
    },
    createdAt: r.createdAt,
  };
}
