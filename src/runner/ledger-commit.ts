/**
 * The ledger committer: appends the records of finished eval jobs to the run's ledger in
 * plan order, whatever order the jobs finish in, each record once (a resumed run appends
 * only what its ledger lacks). Records come from the executor when it has them (a
 * cluster task's own ledger), else from the record builder over the cache.
 */
import { appendRecords } from '../results/ledger.ts';
import type { ResultRecord } from '../results/record.ts';
import type { EvalJob } from '../matrix/plan.ts';
import type { JobBoard } from './board.ts';
import { recordKey } from './records.ts';

export class LedgerCommitter {
  private next = 0;

  constructor(
    private readonly runDir: string,
    /** Eval jobs whose records belong in this ledger, in plan order. */
    private readonly evals: readonly EvalJob[],
    /** Keys of the records already in the ledger. */
    private readonly inLedger: Set<string>,
    private readonly recordsOf: (j: EvalJob) => ResultRecord[],
    private readonly onAppend: (n: number) => void,
  ) {}

  /** Append the records of every eval job, in plan order, up to the first one not yet final. */
  commit(board: JobBoard): void {
    while (this.next < this.evals.length) {
      const j = this.evals[this.next];
      const st = board.state(j.id);
      if (st === 'pending' || st === 'running') return;
      if (st === 'done') {
        const records = this.recordsOf(j).filter((r) => !this.inLedger.has(recordKey(j.id, r.task, r.metric)));
        appendRecords(this.runDir, records);
        for (const rec of records) this.inLedger.add(recordKey(j.id, rec.task, rec.metric));
        this.onAppend(records.length);
      }
      this.next++;
    }
  }
}
