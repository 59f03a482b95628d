/**
 * Executors: the runner decides what to run (the plan, what the cache already holds, the
 * ledger); an executor decides where and when. It moves the jobs of a `JobBoard` from
 * pending to done or failed. Jobs are idempotent and their outputs land in the cache keyed
 * by identity, so a job is done exactly when its output is in the cache, wherever it ran:
 *   local  (executors/local.ts)  in this process, `capacity` jobs at once (the default);
 *   slurm  (executors/slurm/)    one Slurm job array per stage on a cluster sharing `.bench/`.
 */
import type { Job } from '../matrix/plan.ts';
import type { ResultRecord } from '../results/record.ts';
import type { JobBoard } from './board.ts';

export interface ExecuteOptions {
  signal: AbortSignal;
  /** Stop starting new jobs after the first failure. */
  failFast?: boolean;
  /** Run dir and id of the run, for executors that keep state beside the ledger. */
  runDir: string;
  runId: string;
}

export interface ExecuteOutcome {
  /** The executor returned with jobs still running elsewhere (e.g. `--detach`). */
  detached?: boolean;
}

export interface Executor {
  readonly name: string;
  /** How many jobs may run at the same time (for the ETA). */
  readonly capacity: number;
  /**
   * Carry out the board's pending jobs. `work(job)` is the in-process way to do one job
   * (it writes the job's output into the cache). Resolves when every job is final, or
   * when the executor detaches.
   */
  execute(board: JobBoard, work: (job: Job) => Promise<void>, opts: ExecuteOptions): Promise<ExecuteOutcome>;
  /** Records of a finished eval job as the executor holds them (e.g. a cluster task's ledger), or null: built from the cache. */
  recordsOf?(job: Job, runId: string): ResultRecord[] | null;
}

export { LocalExecutor } from './executors/local.ts';
