/** Worker side of BlockPool: runs its lane of every job posted on the shared control block. */
import { parentPort, workerData } from 'node:worker_threads';
import { BlockWorkspace, blockForward, sampleLossGrad, type BlockParams } from './block.ts';
import { CTL, OP, laneRange, type BlockSetup } from './pool.ts';

const ctl = workerData.ctl as Int32Array;
const lane = workerData.lane as number;
let setup: BlockSetup | null = null;
let ws: BlockWorkspace | null = null;
let dy: Float32Array | null = null;
let seen = Atomics.load(ctl, CTL.GEN);

function loop(): void {
  for (;;) {
    Atomics.wait(ctl, CTL.GEN, seen);
    const g = Atomics.load(ctl, CTL.GEN);
    if (g === seen) continue;
    seen = g;
    const op = ctl[CTL.OP];
    if (op === OP.YIELD) return;
    let ok = true;
    try {
      job(op);
    } catch (e) {
      ok = false;
      process.stderr.write(`AutoRound worker ${lane}: ${(e as Error).stack ?? e}\n`);
    }
    // A failure counts twice, which the caller detects (DONE above the number of workers).
    Atomics.add(ctl, CTL.DONE, ok ? 1 : 1000);
    Atomics.notify(ctl, CTL.DONE);
  }
}

function job(op: number): void {
  const b = setup!;
  const n = ctl[CTL.COUNT];
  const lanes = Math.round(b.record.length / 4);
  const [from, to] = laneRange(lane, lanes, n);
  const p: BlockParams = { ln1: b.ln1, ln2: b.ln2, qNorm: b.qNorm, kNorm: b.kNorm, bias: b.bias, W: b.W };
  const X = b.bufs[ctl[CTL.XBUF]];
  const D = b.s.hidden, T = b.T;
  if (op === OP.FORWARD) {
    const out = b.bufs[ctl[CTL.OUTBUF]];
    const rec = new Float64Array(4);
    for (let i = from; i < to; i++) {
      const k = ctl[CTL.IDX + i];
      blockForward(p, b.s, ws!, X, k * T * D, b.aq, false, rec);
      out.set(ws!.y.subarray(0, T * D), k * T * D);
      Atomics.add(ctl, CTL.BEAT, 1);
    }
    for (let j = 0; j < 4; j++) b.record[lane * 4 + j] = rec[j];
    return;
  }
  const Y = b.bufs[ctl[CTL.YBUF]];
  for (let i = from; i < to; i++) {
    const k = ctl[CTL.IDX + i];
    b.loss[i] = sampleLossGrad(p, b.s, ws!, X, Y, k * T * D, b.denom[0], dy!, op === OP.LOSS_GRAD, b.dW[i], b.aq, false);
    Atomics.add(ctl, CTL.BEAT, 1);
  }
}

parentPort!.on('message', (m: { type: string; setup: BlockSetup }) => {
  if (m.type !== 'setup') return;
  setup = m.setup;
  if (!ws || ws.T !== setup.T || ws.s.hidden !== setup.s.hidden) {
    ws = new BlockWorkspace(setup.s, setup.T, Float32Array);
    dy = new Float32Array(setup.T * setup.s.hidden);
  }
  parentPort!.postMessage('setup-done');
  // Block this thread on the control block until the main thread posts the next setup.
  loop();
});
parentPort!.postMessage('ready');
