/**
 * The job board of one run: the state of every job of the plan, the run summary, and the
 * progress events. The runner owns it; an executor moves jobs through it
 * (pending -> running -> done | failed; dependents of a failed job -> skipped), and every
 * change is followed by `settle()`, which lets the ledger committer append what became final.
 */
import type { FailureInfo } from '../errors.ts';
import type { Job } from '../matrix/plan.ts';
import type { RunEvent, RunSummary } from './run.ts';

export type JobState = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

/** Where a job that failed on a cluster ran, for the report. */
export interface FailureWhere {
  jobId: string;
  state: string;
  exitCode?: string;
  log: string;
}

export class JobBoard {
  readonly jobs: readonly Job[];
  readonly byId: ReadonlyMap<string, Job>;
  readonly summary: RunSummary;
  private readonly status: Map<string, JobState>;
  private readonly initiallyCached: Set<string>;
  private started = 0;
  private finished = 0;
  private readonly ranSeconds: number[] = [];

  constructor(
    jobs: readonly Job[],
    summary: RunSummary,
    private readonly emit: (e: RunEvent) => void,
    private readonly cached: (j: Job) => boolean,
    private readonly capacity: () => number,
    /** Called after changes: commits what became final. */
    readonly settle: () => void,
  ) {
    this.jobs = jobs;
    this.byId = new Map(jobs.map((j) => [j.id, j]));
    this.summary = summary;
    this.status = new Map(jobs.map((j) => [j.id, 'pending']));
    this.initiallyCached = new Set(jobs.filter((j) => cached(j)).map((j) => j.id));
  }

  get cachedAtStart(): number {
    return this.initiallyCached.size;
  }

  state(id: string): JobState | undefined {
    return this.status.get(id);
  }

  /** Every dependency of `j` is done. */
  ready(j: Job): boolean {
    return j.deps.every((d) => this.status.get(d) === 'done');
  }

  /** Its output is in the cache (already at the start, or now). */
  isCached(j: Job): boolean {
    return this.initiallyCached.has(j.id) || this.cached(j);
  }

  /** A pending job whose output is in the cache: done without running. */
  markCached(j: Job): void {
    this.status.set(j.id, 'done');
    this.summary.cached++;
    this.finished++;
    this.emit({ type: 'job-end', job: j, index: ++this.started, total: this.jobs.length, done: this.finished, cached: true, seconds: 0, etaSeconds: this.eta() });
  }

  /** The job starts; returns its index for the progress display. */
  start(j: Job): number {
    this.status.set(j.id, 'running');
    const index = ++this.started;
    this.emit({ type: 'job-start', job: j, index, total: this.jobs.length });
    return index;
  }

  finish(j: Job, index: number, seconds: number): void {
    this.ranSeconds.push(seconds);
    this.status.set(j.id, 'done');
    this.summary.ran++;
    this.finished++;
    this.emit({ type: 'job-end', job: j, index, total: this.jobs.length, done: this.finished, cached: false, seconds, etaSeconds: this.eta() });
  }

  /** The job failed: reported, and everything that depends on it is skipped. */
  fail(j: Job, index: number, failure: FailureInfo, where?: FailureWhere): void {
    this.status.set(j.id, 'failed');
    this.finished++;
    this.summary.failed.push({ id: j.id, label: j.label, ...failure, ...(where ? { where } : {}) });
    this.emit({ type: 'job-failed', job: j, index, total: this.jobs.length, error: failure.error });
    this.skipDependents(j.id, `${j.label} failed`);
  }

  /** Skip a pending job (and its dependents) with a reason shown to the user. */
  skip(j: Job, reason: string): void {
    if (this.status.get(j.id) !== 'pending') return;
    this.status.set(j.id, 'skipped');
    this.summary.skipped++;
    this.emit({ type: 'job-skipped', job: j, reason });
    this.skipDependents(j.id, reason);
  }

  /** After a stop: every job still pending is skipped (silently, as the summary counts them). */
  skipPending(): void {
    for (const j of this.jobs)
      if (this.status.get(j.id) === 'pending') {
        this.status.set(j.id, 'skipped');
        this.summary.skipped++;
      }
  }

  private skipDependents(id: string, reason: string): void {
    for (const j of this.jobs) {
      if (this.status.get(j.id) === 'pending' && j.deps.includes(id)) {
        this.status.set(j.id, 'skipped');
        this.summary.skipped++;
        this.emit({ type: 'job-skipped', job: j, reason });
        this.skipDependents(j.id, reason);
      }
    }
  }

  private eta(): number | null {
    if (this.ranSeconds.length === 0) return null;
    const left = this.jobs.filter((j) => (this.status.get(j.id) === 'pending' || this.status.get(j.id) === 'running') && !this.initiallyCached.has(j.id)).length;
    const mean = this.ranSeconds.reduce((a, b) => a + b, 0) / this.ranSeconds.length;
    return (mean * left) / this.capacity();
  }
}
