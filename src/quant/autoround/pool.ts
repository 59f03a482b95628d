/**
 * Data-parallel execution of a block's per-sample work on worker threads. The batch's
 * samples are split into contiguous lanes; lane 0 runs on the calling thread, lanes 1..n-1
 * on workers. Everything large lives in SharedArrayBuffers (inputs, targets, outputs, the
 * forward weights, one gradient buffer per sample), and a step is dispatched and joined
 * through Atomics on a shared control block, so the optimisation loop stays synchronous and
 * pays microseconds, not message round trips, per step. Each sample's result lands in its
 * own slot and the caller sums slots in sample order: results are bit-for-bit the same for
 * any number of threads.
 */
import { Worker } from 'node:worker_threads';
import type { BlockShape, ActQuant } from './block.ts';

/** Control block layout (Int32 indices). */
export const CTL = { GEN: 0, DONE: 1, OP: 2, COUNT: 3, XBUF: 4, YBUF: 5, OUTBUF: 6, BEAT: 7, IDX: 16 } as const;
/** A worker that finishes no sample for this long is taken for dead (a sample takes well under a second). */
const STALL_MS = 120_000;
export const OP = { LOSS: 1, LOSS_GRAD: 2, FORWARD: 3, YIELD: 4 } as const;
export const MAX_BATCH = 4096;

export function sharedF32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(4 * n));
}

/** What a worker needs for one block (sent once per block by message). */
export interface BlockSetup {
  s: BlockShape;
  T: number;
  ln1: Float32Array; ln2: Float32Array; qNorm: Float32Array | null; kNorm: Float32Array | null; bias: (Float32Array | null)[];
  /** Shared: the 7 forward weights, the per-sample gradient slots [slot][7 weights], losses, act maxima per lane. */
  W: Float32Array[];
  dW: (Float32Array | null)[][];
  loss: Float64Array;
  record: Float64Array;
  aq: ActQuant | null;
  /** Shared activation buffers, referenced by index in a job. */
  bufs: Float32Array[];
  denom: Float64Array;
}

export class BlockPool {
  readonly ctl = new Int32Array(new SharedArrayBuffer(4 * (CTL.IDX + MAX_BATCH)));
  private workers: Worker[] = [];
  private looping = false;
  /** The problem whose setup the workers hold. */
  owner: unknown = null;
  private constructor(readonly lanes: number) {}

  /** A pool with `threads` lanes (threads-1 workers); threads <= 1 gives a pool of none. */
  static async create(threads: number): Promise<BlockPool> {
    const pool = new BlockPool(Math.max(1, threads));
    const url = new URL('./worker.mjs', import.meta.url);
    for (let i = 1; i < pool.lanes; i++) {
      // execArgv [] : the bootstrap registers tsx itself, both under `node --import tsx`
      // (tests) and under bin/bench.js (which registers tsx in-process only).
      const w = new Worker(url, { workerData: { ctl: pool.ctl, lane: i }, execArgv: [] });
      pool.workers.push(w);
      await new Promise<void>((res, rej) => {
        w.once('message', (m) => (m === 'ready' ? res() : rej(new Error(String(m)))));
        w.once('error', rej);
      });
    }
    return pool;
  }

  /** Send the block's setup to every worker and wait for their acknowledgements. */
  async setup(b: BlockSetup, owner: unknown): Promise<void> {
    this.yieldWorkers();
    this.owner = owner;
    this.looping = true;
    await Promise.all(this.workers.map((w) => new Promise<void>((res, rej) => {
      const onErr = (e: Error) => rej(e);
      w.once('error', onErr);
      w.once('message', (m) => { w.off('error', onErr); if (m === 'setup-done') res(); else rej(new Error(String(m))); });
      w.postMessage({ type: 'setup', setup: b });
    })));
  }

  /**
   * Run op on the items (sample indices) with lanes in parallel; `local(from, to)` is lane 0's
   * share, run on this thread while the workers run theirs. Blocks until all lanes finish.
   */
  run(op: number, items: ArrayLike<number>, bufs: { x: number; y?: number; out?: number }, local: (from: number, to: number) => void): void {
    if (!this.looping) throw new Error('BlockPool.run before setup');
    const n = items.length;
    if (n > MAX_BATCH) throw new Error(`batch of ${n} exceeds the pool's ${MAX_BATCH}`);
    const c = this.ctl;
    c[CTL.OP] = op; c[CTL.COUNT] = n; c[CTL.XBUF] = bufs.x; c[CTL.YBUF] = bufs.y ?? -1; c[CTL.OUTBUF] = bufs.out ?? -1;
    for (let i = 0; i < n; i++) c[CTL.IDX + i] = items[i];
    Atomics.store(c, CTL.DONE, 0);
    Atomics.add(c, CTL.GEN, 1);
    Atomics.notify(c, CTL.GEN);
    const [a, b] = laneRange(0, this.lanes, n);
    local(a, b);
    const want = this.workers.length;
    let beat = Atomics.load(c, CTL.BEAT), since = Date.now();
    for (;;) {
      const d = Atomics.load(c, CTL.DONE);
      if (d >= want) break;
      Atomics.wait(c, CTL.DONE, d, 1000);
      // Worker events cannot run while this thread waits, so liveness is a shared heartbeat.
      const b = Atomics.load(c, CTL.BEAT);
      if (b !== beat) { beat = b; since = Date.now(); } else if (Date.now() - since > STALL_MS) throw new Error('an AutoRound worker thread stopped responding; rerun with --threads 1');
    }
    if (Atomics.load(c, CTL.DONE) > want) throw new Error('AutoRound worker failed; rerun with --threads 1 to see the error');
  }

  /** Workers leave their Atomics loop and return to their message queue. */
  private yieldWorkers(): void {
    if (!this.looping) return;
    const c = this.ctl;
    c[CTL.OP] = OP.YIELD;
    Atomics.add(c, CTL.GEN, 1);
    Atomics.notify(c, CTL.GEN);
    this.looping = false;
  }

  async close(): Promise<void> {
    this.yieldWorkers();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}

/** Contiguous share [from, to) of n items for a lane. */
export function laneRange(lane: number, lanes: number, n: number): [number, number] {
  const per = Math.floor(n / lanes), extra = n % lanes;
  const from = lane * per + Math.min(lane, extra);
  return [from, from + per + (lane < extra ? 1 : 0)];
}

