/**
 * AutoRound's per-block optimisation (reference/autoround.md §3-4): SignSGD on V (lr) and α/β
 * (minmax lr) with a linear decay to 0, an index sampler reshuffled every epoch, gradient
 * accumulation over micro-batches, MSE against the float block's outputs with the last position
 * of every sample masked, and best-iteration tracking (keep the parameters of the lowest loss).
 */
import { blockForward, BlockWorkspace, linearShapes, sampleLossGrad, type ActQuant, type BlockParams, type BlockShape } from './block.ts';
import { BlockPool, OP, sharedF32 } from './pool.ts';
import type { F, FCtor } from './kernels.ts';
import { formatsQuantize, qdqBackward, qdqForward, tunesAlpha, type QLinear } from './qdq.ts';

/** Seeded PRNG (mulberry32): the sampler's only source of randomness. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle(n: number, rand: () => number): Int32Array {
  const a = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i]; a[i] = a[j]; a[j] = t;
  }
  return a;
}

/** auto-round's IndexSampler: consecutive slices of a shuffled order, reshuffled when short. */
export class IndexSampler {
  private order: Int32Array;
  private pos = 0;
  constructor(private n: number, private take: number, private rand: () => number) {
    this.order = shuffle(n, rand);
  }
  next(): Int32Array {
    if (this.pos + this.take > this.n) { this.order = shuffle(this.n, this.rand); this.pos = 0; }
    const s = this.order.slice(this.pos, this.pos + this.take);
    this.pos += this.take;
    return s;
  }
}

/** Everything one block's loss and gradient needs. */
export class BlockProblem {
  readonly ws: BlockWorkspace;
  /** Weights seen by the forward: QDQ of the quantized layers, else the float weights. */
  Wfwd: F[];
  readonly dW: F[];
  readonly gV: F[];
  readonly gAlpha: F[];
  readonly gBeta: F[];
  private dy: F;
  /** Per-sample gradient slots (one set of 7 weight gradients per sample of a batch) and losses. */
  private slots: (F | null)[][] = [];
  private lossSlots: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private acc: Float64Array[];
  private pool: BlockPool | null = null;
  private bufs: Float32Array[] = [];
  private shared: { record: Float64Array; denom: Float64Array } | null = null;

  constructor(
    readonly p: BlockParams,
    readonly s: BlockShape,
    /** One entry per Linear (q,k,v,o,gate,up,down); null = kept in float. */
    readonly layers: (QLinear | null)[],
    readonly T: number,
    readonly aq: ActQuant | null,
    readonly ctor: FCtor,
    readonly smooth = false,
  ) {
    this.ws = new BlockWorkspace(s, T, ctor);
    const shapes = linearShapes(s);
    this.Wfwd = shapes.map(([r, c], i) => (layers[i] ? new ctor(r * c) : p.W[i]));
    this.dW = shapes.map(([r, c], i) => (layers[i] ? new ctor(r * c) : null)) as F[];
    this.acc = shapes.map(([r, c], i) => (layers[i] ? new Float64Array(r * c) : new Float64Array(0)));
    this.gV = layers.map((l) => (l ? new ctor(l.v.length) : null)) as F[];
    this.gAlpha = layers.map((l) => (l ? new ctor(l.alpha.length) : null)) as F[];
    this.gBeta = layers.map((l) => (l ? new ctor(l.beta.length) : null)) as F[];
    this.dy = new ctor(T * s.hidden);
  }

  /**
   * Run the per-sample work of this problem on the pool's threads from now on (float32 only).
   * `bufs` are the shared activation buffers the calls will pass as X / Y / out; `maxBatch`
   * the most samples one lossAndGrad call gets.
   */
  async attach(pool: BlockPool, bufs: Float32Array[], maxBatch: number): Promise<void> {
    if (this.ctor !== Float32Array) throw new Error('BlockPool runs float32 problems only');
    const shapes = linearShapes(this.s);
    this.Wfwd = this.Wfwd.map((w) => { const x = sharedF32(w.length); x.set(w); return x; });
    this.slots = Array.from({ length: maxBatch }, () => shapes.map(([r, c], i) => (this.layers[i] ? sharedF32(r * c) : null)));
    this.lossSlots = new Float64Array(new SharedArrayBuffer(8 * maxBatch));
    this.shared = { record: new Float64Array(new SharedArrayBuffer(8 * 4 * pool.lanes)), denom: new Float64Array(new SharedArrayBuffer(8)) };
    this.pool = pool;
    this.bufs = bufs;
    const p = this.p;
    const f32 = (a: F | null): Float32Array | null => (a === null ? null : Float32Array.from(a));
    await pool.setup({
      s: this.s, T: this.T, ln1: f32(p.ln1)!, ln2: f32(p.ln2)!, qNorm: f32(p.qNorm), kNorm: f32(p.kNorm), bias: p.bias.map(f32),
      W: this.Wfwd as Float32Array[], dW: this.slots as (Float32Array | null)[][], loss: this.lossSlots, record: this.shared.record,
      aq: this.aq, bufs, denom: this.shared.denom,
    }, this);
  }

  private usePool(...arrays: F[]): { x: number; y?: number; out?: number } | null {
    if (!this.pool || this.pool.lanes < 2 || this.pool.owner !== this) return null;
    const ix = arrays.map((a) => this.bufs.indexOf(a as Float32Array));
    if (ix.some((i) => i < 0)) return null; // not a shared buffer: this thread computes alone
    return { x: ix[0], y: ix[1], out: ix[1] };
  }

  /** Recompute the forward weights from the current V/α/β. */
  refreshWeights(): void {
    this.layers.forEach((l, i) => {
      if (!l) return;
      qdqForward(l, this.Wfwd[i], this.smooth); // also keeps the scales the backward needs
      if (!this.smooth && this.ctor === Float32Array) this.Wfwd[i].set(formatsQuantize(l).dequantized);
    });
  }

  params(): BlockParams {
    return { ...this.p, W: this.Wfwd };
  }

  /**
   * Loss over the samples `idx` of X (inputs) against Y (targets), both [n, T, D]; with grads,
   * also dL/dV, dL/dα, dL/dβ (zeroed first). Loss = sum of squared masked errors / count,
   * where count = elements of the global batch (`denom`), as auto-round's mean reduction.
   * Samples are computed independently (on the pool's threads when attached) and summed in
   * sample order, so the result does not depend on the number of threads.
   */
  lossAndGrad(X: F, Y: F, idx: ArrayLike<number>, denom: number, grads: boolean, zero = true): number {
    const { T, s, ws } = this;
    const D = s.hidden;
    const n = idx.length;
    while (this.slots.length < n) {
      if (this.pool) throw new Error(`batch of ${n} exceeds the attached pool's slots`);
      this.slots.push(linearShapes(s).map(([r, c], i) => (this.layers[i] ? new this.ctor(r * c) : null)));
    }
    if (this.lossSlots.length < n) this.lossSlots = new Float64Array(n);
    if (grads && zero) {
      for (const a of [...this.dW, ...this.gV, ...this.gAlpha, ...this.gBeta]) a?.fill(0);
    }
    const p = this.params();
    const one = (b: number): void => {
      this.lossSlots[b] = sampleLossGrad(p, s, ws, X, Y, idx[b] * T * D, denom, this.dy, grads, this.slots[b], this.aq, this.smooth);
    };
    const ix = n > 1 ? this.usePool(X, Y) : null;
    if (ix) {
      this.shared!.denom[0] = denom;
      this.pool!.run(grads ? OP.LOSS_GRAD : OP.LOSS, idx, ix, (a, b) => { for (let i = a; i < b; i++) one(i); });
    } else {
      for (let b = 0; b < n; b++) one(b);
    }
    let loss = 0;
    for (let b = 0; b < n; b++) loss += this.lossSlots[b];
    if (grads) {
      this.layers.forEach((l, i) => {
        if (!l) return;
        const acc = this.acc[i];
        acc.fill(0);
        for (let b = 0; b < n; b++) { const g = this.slots[b][i]!; for (let j = 0; j < acc.length; j++) acc[j] += g[j]; }
        const dW = this.dW[i];
        for (let j = 0; j < acc.length; j++) dW[j] += acc[j];
        qdqBackward(l, dW, this.gV[i], this.gAlpha[i], this.gBeta[i], this.smooth);
      });
    }
    return loss;
  }

  /** Block outputs for all n samples of X (current forward weights) into out. */
  outputs(X: F, n: number, out: F, record?: Float64Array): void {
    const D = this.s.hidden, T = this.T;
    const p = this.params();
    const ix = this.usePool(X, out);
    const rec = record ? new Float64Array(4) : undefined;
    const local = (a: number, b: number): void => {
      for (let i = a; i < b; i++) {
        blockForward(p, this.s, this.ws, X, i * T * D, this.aq, this.smooth, rec);
        out.set(this.ws.y.subarray(0, T * D), i * T * D);
      }
    };
    if (ix) {
      this.pool!.run(OP.FORWARD, Int32Array.from({ length: n }, (_, i) => i), ix, local);
      const r = this.shared!.record;
      if (record) for (let l = 1; l < this.pool!.lanes; l++) for (let j = 0; j < 4; j++) rec![j] = Math.max(rec![j], r[l * 4 + j]);
    } else {
      local(0, n);
    }
    if (record) for (let j = 0; j < 4; j++) record[j] = Math.max(record[j], rec![j]);
  }
}

export interface TuneOptions {
  iters: number;
  lr: number;
  minmaxLr: number;
  batchSize: number;
  gradientAccumulateSteps: number;
  enableMinmaxTuning: boolean;
  notUseBestMse: boolean;
  seed: number;
}

export interface TuneResult {
  firstLoss: number;
  bestLoss: number;
  bestIter: number;
  lastLoss: number;
}

/**
 * Optimise V/α/β of the problem's layers on inputs X against targets Y (n samples). On return
 * the layers hold the best parameters and Wfwd their QDQ.
 */
export function tuneBlock(pr: BlockProblem, X: F, Y: F, n: number, o: TuneOptions, onIter?: (it: number, loss: number) => void): TuneResult {
  const layers = pr.layers.filter((l): l is QLinear => l !== null);
  const D = pr.s.hidden;
  const bs = Math.min(o.batchSize, n);
  const gas = o.gradientAccumulateSteps;
  const sampler = new IndexSampler(n, Math.min(n, bs * gas), mulberry32(o.seed));
  const denom = bs * gas * pr.T * D;
  const snap = () => layers.map((l) => ({ v: l.v.slice(), a: l.alpha.slice(), b: l.beta.slice() }));
  let best = snap();
  let bestLoss = Infinity, bestIter = -1, firstLoss = NaN, lastLoss = NaN;
  for (let it = 0; it < o.iters; it++) {
    const idx = sampler.next();
    pr.refreshWeights();
    let loss = 0;
    for (let k = 0; k < gas; k++) {
      const part = idx.subarray(k * bs, (k + 1) * bs);
      loss += pr.lossAndGrad(X, Y, part, denom, true, k === 0);
    }
    if (it === 0) firstLoss = loss;
    lastLoss = loss;
    onIter?.(it, loss);
    if (!o.notUseBestMse && loss < bestLoss) { bestLoss = loss; bestIter = it; best = snap(); }
    // SignSGD with LinearLR(1 -> 0 over iters).
    const decay = 1 - it / o.iters;
    const lr = o.lr * decay, mlr = o.minmaxLr * decay;
    pr.layers.forEach((l, i) => {
      if (!l) return;
      signStep(l.v, pr.gV[i], lr);
      if (o.enableMinmaxTuning) {
        if (tunesAlpha(l.fmt)) signStep(l.alpha, pr.gAlpha[i], mlr);
        signStep(l.beta, pr.gBeta[i], mlr);
      }
    });
  }
  if (o.notUseBestMse) { bestLoss = lastLoss; bestIter = o.iters - 1; best = snap(); }
  layers.forEach((l, i) => { l.v.set(best[i].v); l.alpha.set(best[i].a); l.beta.set(best[i].b); });
  pr.refreshWeights();
  void D;
  return { firstLoss, bestLoss, bestIter, lastLoss };
}

function signStep(p: F, g: F, lr: number): void {
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    if (gi > 0) p[i] -= lr;
    else if (gi < 0) p[i] += lr;
  }
}
