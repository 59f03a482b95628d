/**
 * The local executor: runs jobs in this process, in plan order as their dependencies
 * finish, at most `capacity` at once (jobs overlap where handlers await: onnxruntime,
 * child processes). A job whose output appears in the cache meanwhile is taken as done.
 */
import { describeFailure } from '../../errors.ts';
import type { Job } from '../../matrix/plan.ts';
import type { JobBoard } from '../board.ts';
import type { ExecuteOptions, ExecuteOutcome, Executor } from '../executor.ts';

export class LocalExecutor implements Executor {
  readonly name = 'local';
  readonly capacity: number;
  constructor(capacity = 1) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`executor capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
  }

  execute(board: JobBoard, work: (job: Job) => Promise<void>, opts: ExecuteOptions): Promise<ExecuteOutcome> {
    return new Promise<ExecuteOutcome>((done, fail) => {
      let running = 0;
      let stopped = false;
      const pump = () => {
        try {
          if (opts.signal.aborted) stopped = true;
          for (const j of board.jobs) {
            if (board.state(j.id) !== 'pending') continue;
            if (!board.ready(j)) continue;
            if (board.isCached(j)) {
              board.markCached(j);
              continue;
            }
            if (stopped || running >= this.capacity) continue;
            running++;
            const index = board.start(j);
            const t0 = performance.now();
            work(j)
              .then(() => {
                if (!board.isCached(j)) throw new Error(`${j.label}: the executor finished but the output is not in the cache`);
                board.finish(j, index, (performance.now() - t0) / 1000);
              })
              .catch((e: unknown) => {
                board.fail(j, index, describeFailure(e));
                if (opts.failFast) stopped = true;
              })
              .finally(() => {
                running--;
                pump();
              });
          }
          board.settle();
          if (running === 0) {
            if (stopped) board.skipPending();
            board.settle();
            done({});
          }
        } catch (e) {
          fail(e);
        }
      };
      pump();
    });
  }
}
