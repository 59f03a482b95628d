/**
 * The Slurm executor: submits the board's jobs as job arrays (arrays.ts) whose tasks run
 * `bench run` on one job each against the shared `.bench/` (cache, and a ledger per task
 * under `<run>/slurm/tasks/`), follows them with squeue, and hands each finished eval's
 * records, read from its task's ledger and merged with `bench merge`'s code, to the ledger
 * committer.
 *
 * What was submitted is kept in `<run>/slurm/state.json` (written before each sbatch and
 * again with the job id), so that an orchestrator killed at any point is replaced by a
 * rerun (of the same run, or the same command as a new run in the same bench dir) that
 * follows the tasks still queued or running instead of submitting them again: no job
 * runs twice. A failed task is reported with its job id, state and log; the tasks that
 * depend on it are cancelled (Slurm's kill_invalid_depend does it too where configured).
 * On abort (Ctrl-C, SIGTERM), or after the first failure with --fail-fast, every task of
 * the run is cancelled and the executor waits until squeue lists none of them.
 */
import { ToolError, describeFailure } from '../../../errors.ts';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeAtomic } from '../../../checkpoint/safetensors.ts';
import type { SlurmSettings } from '../../../matrix/models.ts';
import type { Job } from '../../../matrix/plan.ts';
import { readLedger } from '../../../results/ledger.ts';
import { mergeRecords } from '../../../results/merge.ts';
import type { ResultRecord } from '../../../results/record.ts';
import type { JobBoard } from '../../board.ts';
import type { ExecuteOptions, ExecuteOutcome, Executor } from '../../executor.ts';
import { dependencyOf, planArrays, type ArrayPlan } from './arrays.ts';
import { TERMINAL, findByName, sbatch, scancel, squeueTasks, taskDetails, type TaskState } from './client.ts';
import { renderScript } from './script.ts';

export interface SlurmExecutorOptions {
  /** Settings from the command line; they win over each model's `slurm` in models.json. */
  cli: SlurmSettings;
  /** A model's settings from models.json. */
  perModel: (alias: string) => SlurmSettings | undefined;
  /** Working directory of the tasks (the project root, on the shared file system). */
  root: string;
  /** `node bench.js run <plan flags>`: a task appends `--slurm-task FILE --slurm-index N`. */
  taskArgv: string[];
  /** Return once everything is submitted; `bench status RUN` follows the run later. */
  detach?: boolean;
  /** false: submit nothing, only follow what the run already submitted (`bench status`). */
  submit?: boolean;
  /** On abort: cancel the run's tasks (default), or only stop following them (`bench status`). */
  onAbort?: 'cancel' | 'detach';
  /** Seconds between squeue polls (default 1). */
  pollSeconds?: number;
  log: (message: string) => void;
}

interface ArrayEntry {
  name: string;
  jobName: string;
  arrayJobId: string | null;
  jobs: (string | null)[];
  script: string;
  /** Log path pattern, %A and %a for array job id and task index. */
  log: string;
  submittedAt: string;
}

interface SlurmState {
  root: string;
  arrays: ArrayEntry[];
}

/** Where the task that runs `jobId` keeps its run (ledger, run.json). */
export function taskRunDir(runDir: string, jobId: string): string {
  return join(runDir, 'slurm', 'tasks', jobId.slice(0, 16));
}

/** The spec file a task reads: which job each index of its array runs. */
export interface TaskSpec {
  runId: string;
  runDir: string;
  jobs: (string | null)[];
}

export function settingsFor(cli: SlurmSettings, model: SlurmSettings | undefined): SlurmSettings {
  const m = model ?? {};
  return {
    partition: cli.partition ?? m.partition,
    account: cli.account ?? m.account,
    time: cli.time ?? m.time,
    gpusPerTask: cli.gpusPerTask ?? m.gpusPerTask,
    maxParallel: cli.maxParallel ?? m.maxParallel,
    // The command line's come last: sbatch takes the last of a repeated option.
    sbatchArgs: [...(m.sbatchArgs ?? []), ...(cli.sbatchArgs ?? [])],
  };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((res) => {
    const wake = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', wake);
      res();
    };
    const t = setTimeout(wake, ms);
    signal.addEventListener('abort', wake, { once: true });
  });

export class SlurmExecutor implements Executor {
  readonly name = 'slurm';
  private running = 1;
  private readonly ledgers = new Map<string, ResultRecord[]>();
  private taskDirOf = new Map<string, string>();

  constructor(private readonly o: SlurmExecutorOptions) {}

  /** For the ETA: the most tasks seen running at once. */
  get capacity(): number {
    return this.running;
  }

  recordsOf(job: Job, runId: string): ResultRecord[] | null {
    const dir = this.taskDirOf.get(job.id);
    if (!dir || !existsSync(join(dir, 'ledger.jsonl'))) return null;
    let recs = this.ledgers.get(dir);
    if (!recs) this.ledgers.set(dir, (recs = readLedger(dir)));
    const mine = recs.filter((r) => r.jobId === job.id);
    return mine.length ? mergeRecords([{ dir, records: mine }], runId) : null;
  }

  async execute(board: JobBoard, _work: (job: Job) => Promise<void>, opts: ExecuteOptions): Promise<ExecuteOutcome> {
    const slurmDir = join(opts.runDir, 'slurm');
    const statePath = join(slurmDir, 'state.json');
    const state: SlurmState = existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8')) : { root: this.o.root, arrays: [] };
    const save = () => {
      mkdirSync(slurmDir, { recursive: true });
      writeAtomic(statePath, [Buffer.from(JSON.stringify(state, null, 2) + '\n')]);
    };
    for (const j of board.jobs) this.taskDirOf.set(j.id, taskRunDir(opts.runDir, j.id));

    // What has a result is done, whatever its dependencies (the cache decides).
    for (const j of board.jobs) if (board.state(j.id) === 'pending' && board.isCached(j)) board.markCached(j);
    board.settle();

    // Tasks submitted earlier (a killed orchestrator, a detached run) that are still queued or
    // running: this run's, and, unless only following (`bench status`), other runs' of the same
    // bench dir (the same command rerun without --run-id), so that none is submitted twice.
    const runs = [{ runDir: opts.runDir, state }, ...(this.o.submit === false ? [] : otherRuns(opts.runDir))];
    for (const r of runs) for (const a of r.state.arrays) if (!a.arrayJobId) a.arrayJobId = await findByName(a.jobName);
    const tasks = new Map<string, { job: Job; array: ArrayEntry; index: number }>();
    const taskOf = new Map<string, string>();
    const track = (a: ArrayEntry) => {
      if (!a.arrayJobId) return;
      a.jobs.forEach((id, index) => {
        const j = id ? board.byId.get(id) : undefined;
        if (!j) return;
        const t = `${a.arrayJobId}_${index}`;
        tasks.set(t, { job: j, array: a, index });
        taskOf.set(j.id, t);
      });
    };
    const live = await squeueTasks([...new Set(runs.flatMap((r) => r.state.arrays.flatMap((a) => (a.arrayJobId ? [a.arrayJobId] : []))))]);
    const inFlight = new Map<string, string>();
    for (const r of runs)
      for (const a of r.state.arrays) {
        if (!a.arrayJobId) continue;
        for (const t of live) {
          if (t.arrayJobId !== a.arrayJobId || TERMINAL.has(t.state)) continue;
          const id = a.jobs[t.index];
          if (id && board.state(id) === 'pending' && !inFlight.has(id)) {
            inFlight.set(id, t.id);
            this.taskDirOf.set(id, taskRunDir(r.runDir, id));
          }
        }
      }
    for (const r of runs)
      for (const a of r.state.arrays) {
        if (!a.arrayJobId) continue;
        // A rerun follows the tasks still in flight and submits the rest again; `bench status`
        // follows each job's latest task, finished or not, to report how it ended.
        a.jobs.forEach((id, index) => {
          const t = `${a.arrayJobId}_${index}`;
          if (!id || board.state(id) !== 'pending') return;
          if (inFlight.get(id) !== t && this.o.submit !== false) return;
          const prev = taskOf.get(id);
          if (prev) tasks.delete(prev);
          tasks.set(t, { job: board.byId.get(id)!, array: a, index });
          taskOf.set(id, t);
        });
      }
    if (inFlight.size) this.o.log(`slurm: following ${inFlight.size} task(s) submitted earlier`);

    // Submit what has no result and is not in flight.
    const todo = new Set(board.jobs.filter((j) => board.state(j.id) === 'pending' && !inFlight.has(j.id)).map((j) => j.id));
    if (this.o.submit !== false && todo.size) {
      const round = 1 + Math.max(0, ...state.arrays.map((a) => Number(/^[a-z](\d+)-/.exec(a.name)?.[1] ?? 0)));
      const plans = planArrays(board.jobs, todo, inFlight, round);
      const ids = new Map<string, string>();
      try {
        for (const p of plans) await this.submitOne(p, state, save, opts, slurmDir, ids, track);
      } catch (e) {
        // Nobody would follow what this round already submitted: take it back.
        await scancel([...ids.values()]).catch(() => {});
        throw e;
      }
    }
    if (this.o.detach) return { detached: true };
    return this.follow(board, tasks, taskOf, opts);
  }

  private async submitOne(
    p: ArrayPlan, state: SlurmState, save: () => void, opts: ExecuteOptions, slurmDir: string, ids: Map<string, string>, track: (a: ArrayEntry) => void,
  ): Promise<void> {
    const entry = this.entryFor(p, opts, slurmDir);
    const script = this.scriptFor(p, entry, opts.runId, (name) => ids.get(name)!);
    mkdirSync(join(slurmDir, 'logs'), { recursive: true });
    const spec: TaskSpec = { runId: opts.runId, runDir: opts.runDir, jobs: p.jobs };
    writeFileSync(entry.script.replace(/\.sbatch$/, '.json'), JSON.stringify(spec, null, 2) + '\n');
    writeFileSync(entry.script, script, { mode: 0o755 });
    // Recorded before sbatch: a rerun finds an array whose id was never written by its name.
    state.arrays.push(entry);
    save();
    entry.arrayJobId = await sbatch(entry.script);
    save();
    ids.set(p.name, entry.arrayJobId);
    track(entry);
    this.o.log(`slurm: submitted ${p.name} as job ${entry.arrayJobId} (${p.jobs.filter(Boolean).length} task(s), logs ${entry.log})`);
  }

  private entryFor(p: ArrayPlan, opts: ExecuteOptions, slurmDir: string): ArrayEntry {
    return {
      name: p.name,
      jobName: `bench-${opts.runId}-${p.name}`,
      arrayJobId: null,
      jobs: p.jobs,
      script: join(slurmDir, `${p.name}.sbatch`),
      log: join(slurmDir, 'logs', `${p.name}-%A_%a.out`),
      submittedAt: new Date().toISOString(),
    };
  }

  /** The scripts a run would submit now (`--dry-run`): dependencies name the arrays they wait for. */
  dryRun(jobs: readonly Job[], todo: ReadonlySet<string>, runId: string, runDir: string): { path: string; script: string }[] {
    return planArrays(jobs, todo, new Map(), 1).map((p) => {
      const e = this.entryFor(p, { runId, runDir } as ExecuteOptions, join(runDir, 'slurm'));
      return { path: e.script, script: this.scriptFor(p, e, runId, (name) => `<job id of ${name}>`) };
    });
  }

  private scriptFor(p: ArrayPlan, e: ArrayEntry, runId: string, ids: (name: string) => string): string {
    const indices = p.jobs.flatMap((id, i) => (id ? [i] : []));
    return renderScript({
      jobName: e.jobName,
      indices,
      log: e.log,
      dependency: dependencyOf(p.deps, ids),
      settings: settingsFor(this.o.cli, this.o.perModel(p.model)),
      cwd: this.o.root,
      argv: [...this.o.taskArgv, '--slurm-task', e.script.replace(/\.sbatch$/, '.json'), '--slurm-index'],
      comments: [`lowbit-bench run ${runId}: ${p.stage} jobs of ${p.model}, one per task`],
    });
  }

  /** Poll squeue until every job of the board is final (or the run is aborted). */
  private async follow(
    board: JobBoard,
    tasks: Map<string, { job: Job; array: ArrayEntry; index: number }>,
    taskOf: Map<string, string>,
    opts: ExecuteOptions,
  ): Promise<ExecuteOutcome> {
    const pollMs = (this.o.pollSeconds ?? 1) * 1000;
    const index = new Map<string, number>();
    const startedAt = new Map<string, number>();
    const arrayIds = () => [...new Set([...tasks.values()].map((t) => t.array.arrayJobId!))];
    // Jobs nobody will run (status of a run whose rest was never submitted).
    for (const j of board.jobs)
      if (board.state(j.id) === 'pending' && !taskOf.has(j.id))
        board.skip(j, `not submitted to Slurm; rerun 'bench run --executor slurm --run-id ${opts.runId}' to submit it`);
    board.settle();
    const start = (j: Job) => {
      if (board.state(j.id) !== 'pending') return;
      index.set(j.id, board.start(j));
      startedAt.set(j.id, performance.now());
    };
    const active = (j: Job) => board.state(j.id) === 'pending' || board.state(j.id) === 'running';
    for (;;) {
      if (opts.signal.aborted) return this.abort(board, tasks, index);
      const seen = new Map<string, TaskState>((await squeueTasks(arrayIds())).map((t) => [t.id, t]));
      let runningNow = 0;
      const orphans: string[] = [];
      for (const [tid, { job: j, array }] of tasks) {
        const t = seen.get(tid);
        if (t && !TERMINAL.has(t.state) && !active(j)) orphans.push(tid); // its dependency failed
        if (!active(j)) continue;
        if (t && (t.state === 'RUNNING' || t.state === 'COMPLETING')) {
          runningNow++;
          start(j);
        } else if ((!t || t.state === 'COMPLETED') && board.isCached(j)) {
          start(j);
          board.finish(j, index.get(j.id)!, (performance.now() - startedAt.get(j.id)!) / 1000);
        } else if (t && TERMINAL.has(t.state)) {
          await this.failed(board, j, tid, t.state, array, index, start);
        } else if (!t) {
          const d = await taskDetails(tid);
          if (d && !TERMINAL.has(d.state)) continue;
          await this.failed(board, j, tid, d?.state ?? 'UNKNOWN', array, index, start, d?.exitCode);
        }
      }
      this.running = Math.max(this.running, runningNow);
      board.settle();
      if (orphans.length) await scancel(orphans);
      if (!board.jobs.some(active)) return {};
      if (opts.failFast && board.summary.failed.length) return this.abort(board, tasks, index, 'fail-fast');
      await sleep(pollMs, opts.signal);
    }
  }

  private async failed(
    board: JobBoard, j: Job, tid: string, state: string, array: ArrayEntry, index: Map<string, number>, start: (j: Job) => void, exitCode?: string,
  ): Promise<void> {
    const code = exitCode ?? (await taskDetails(tid))?.exitCode;
    const [arrayJobId, taskIndex] = tid.split('_');
    const log = array.log.replace('%A', arrayJobId).replace('%a', taskIndex);
    const why = state === 'COMPLETED' ? 'exited 0 but its output is not in the cache' : `ended ${state}${code ? ` (exit code ${code})` : ''}`;
    const last = lastLine(log);
    start(j);
    board.fail(j, index.get(j.id)!, describeFailure(new ToolError(`Slurm job ${tid} ${why}; log ${log}${last ? `: ${last}` : ''}`)), { jobId: tid, state, ...(code ? { exitCode: code } : {}), log });
  }

  /** Cancel every task of the run and wait until squeue lists none of them as queued or running. */
  private async abort(
    board: JobBoard, tasks: Map<string, { job: Job; array: ArrayEntry }>, index: Map<string, number>, why: 'interrupted' | 'fail-fast' = 'interrupted',
  ): Promise<ExecuteOutcome> {
    const arrays = [...new Set([...tasks.values()].map((t) => t.array.arrayJobId!))];
    if (why === 'interrupted' && this.o.onAbort === 'detach') return { detached: true };
    this.o.log(`slurm: cancelling job(s) ${arrays.join(', ')}`);
    await scancel(arrays);
    const until = Date.now() + 60_000;
    while (Date.now() < until) {
      const left = (await squeueTasks(arrays)).filter((t) => !TERMINAL.has(t.state));
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const { job: j } of tasks.values())
      if (board.state(j.id) === 'running') board.fail(j, index.get(j.id)!, describeFailure(new ToolError(`${j.label}: cancelled (${why === 'fail-fast' ? '--fail-fast after a failure' : 'the run was interrupted'})`)));
    board.skipPending();
    board.settle();
    return {};
  }
}

/** The Slurm state of the other runs in the same runs folder. */
function otherRuns(runDir: string): { runDir: string; state: SlurmState }[] {
  const runsDir = dirname(runDir);
  const out: { runDir: string; state: SlurmState }[] = [];
  for (const name of readdirSync(runsDir)) {
    const dir = join(runsDir, name);
    const p = join(dir, 'slurm', 'state.json');
    if (dir === runDir || !existsSync(p)) continue;
    try {
      out.push({ runDir: dir, state: JSON.parse(readFileSync(p, 'utf8')) });
    } catch {
      // a state file being replaced right now: its run is followed by its own orchestrator
    }
  }
  return out;
}

function lastLine(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
    const l = lines.reverse().find((x) => /error|failed/i.test(x)) ?? lines[0] ?? '';
    return l.length > 300 ? `${l.slice(0, 297)}...` : l;
  } catch {
    return '';
  }
}
