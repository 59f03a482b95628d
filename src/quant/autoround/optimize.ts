/**
 * AutoRound's per-block optimisation (reference/autoround.md §3-4): SignSGD on V (lr) and α/β
 * (minmax lr) with a linear decay to 0, an index sampler reshuffled every epoch, gradient
 * accumulation over micro-batches, MSE against the float block's outputs with the last position
 * of every sample masked, and best-iteration tracking (keep the parameters of the lowest loss).
 */
import { blockBackward, blockForward, BlockWorkspace, linearShapes, type ActQuant, type BlockParams, type BlockShape } from './block.ts';
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
  readonly Wfwd: F[];
  readonly dW: F[];
  readonly gV: F[];
  readonly gAlpha: F[];
  readonly gBeta: F[];
  private dy: F;

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
    this.gV = layers.map((l) => (l ? new ctor(l.v.length) : null)) as F[];
    this.gAlpha = layers.map((l) => (l ? new ctor(l.alpha.length) : null)) as F[];
    this.gBeta = layers.map((l) => (l ? new ctor(l.beta.length) : null)) as F[];
    this.dy = new ctor(T * s.hidden);
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
   */
  lossAndGrad(X: F, Y: F, idx: ArrayLike<number>, denom: number, grads: boolean, zero = true): number {
    const { T, s, ws } = this;
    const D = s.hidden;
    const p = this.params();
    if (grads && zero) {
      for (const a of [...this.dW, ...this.gV, ...this.gAlpha, ...this.gBeta]) a?.fill(0);
    }
    let loss = 0;
    for (let b = 0; b < idx.length; b++) {
      const off = idx[b] * T * D;
      blockForward(p, s, ws, X, off, this.aq, this.smooth);
      const y = ws.y;
      const dy = this.dy;
      // The last position of every sample is masked (auto-round's -100 label rule).
      for (let t = 0; t < T; t++) {
        const live = t < T - 1 ? 1 : 0;
        for (let j = 0; j < D; j++) {
          const e = live * (y[t * D + j] - Y[off + t * D + j]);
          loss += e * e;
          dy[t * D + j] = (2 * e) / denom;
        }
      }
      if (grads) blockBackward(p, s, ws, X, off, dy, null, 0, this.dW, this.aq, this.smooth);
    }
    if (grads) {
      this.layers.forEach((l, i) => { if (l) qdqBackward(l, this.dW[i], this.gV[i], this.gAlpha[i], this.gBeta[i], this.smooth); });
    }
    return loss / denom;
  }

  /** Block outputs for all n samples of X (current forward weights) into out. */
  outputs(X: F, n: number, out: F, record?: Float64Array): void {
    const D = this.s.hidden, T = this.T;
    const p = this.params();
    for (let i = 0; i < n; i++) {
      blockForward(p, this.s, this.ws, X, i * T * D, this.aq, this.smooth, record);
      out.set(this.ws.y.subarray(0, T * D), i * T * D);
    }
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
