/**
 * Executors run jobs. The scheduler (run.ts) decides what is ready and how many run at
 * once (`capacity`); an executor only carries a job out. Jobs are idempotent and their
 * outputs land in the cache keyed by identity, so after `run` resolves the scheduler
 * reads the job's output from the cache: a remote executor (Slurm, later) can submit
 * `bench` on another node against a shared cache and resolve when the job finishes.
 */
import type { Job } from '../matrix/plan.ts';

export interface Executor {
  readonly name: string;
  /** How many jobs may run at the same time. */
  readonly capacity: number;
  /** Carry out `job`; `work` is the in-process way to do it. Resolves when its output is in the cache. */
  run(job: Job, work: () => Promise<void>): Promise<void>;
}

/** Runs jobs in this process. With capacity > 1, jobs overlap where handlers await (onnxruntime, child processes). */
export class LocalExecutor implements Executor {
  readonly name = 'local';
  readonly capacity: number;
  constructor(capacity = 1) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`executor capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
  }
  run(_job: Job, work: () => Promise<void>): Promise<void> {
    return work();
  }
}
