/**
 * One Llama-family decoder layer, forward and backward, for one sample of T tokens:
 *   h1 = RMSNorm(x)·g1 ; q,k,v = h1·Wᵀ (+bias) ; [Qwen3: per-head RMSNorm of q,k] ; rotate-half
 *   RoPE (Llama 3: scaled frequencies) ; grouped-query causal softmax attention ; x2 = x + a·Woᵀ ;
 *   h2 = RMSNorm(x2)·g2 ; y = x2 + (silu(h2·Wgᵀ) ⊙ h2·Wuᵀ)·Wdᵀ
 * Activations entering each Linear may be fake-quantized (W4A4 / W8A8 schemes). The backward
 * returns dL/dx and accumulates dL/dW for the 7 Linear weights as used in the forward.
 */
import { ropeInvFreq, type Llama3RopeScaling, type ModelConfig } from '../../checkpoint/config.ts';
import { expNeg, mmNN, mmNT, mmTNacc, sigmoid, type F, type FCtor } from './kernels.ts';
import { attentionBackwardF32, attentionForwardF32, simdAttentionAvailable } from './simd.ts';
import { fp8, e2m1 } from './qdq.ts';
import type { ActivationFormat } from '../schemes.ts';
import { fp8Scale, quantizeActivations } from '../formats/index.ts';

export interface BlockShape {
  hidden: number;
  inter: number;
  nHeads: number;
  nKv: number;
  headDim: number;
  eps: number;
  theta: number;
  /** Llama 3 RoPE frequency scaling (absent or null: plain RoPE). */
  ropeScaling?: Llama3RopeScaling | null;
  qkNorm: boolean;
  bias: boolean;
}

export function blockShape(c: ModelConfig): BlockShape {
  return {
    hidden: c.hiddenSize, inter: c.intermediateSize, nHeads: c.numHeads, nKv: c.numKvHeads,
    headDim: c.headDim, eps: c.rmsNormEps, theta: c.ropeTheta, ropeScaling: c.ropeScaling, qkNorm: c.qkNorm, bias: c.attentionBias,
  };
}

/** The non-quantized parameters of a block plus the 7 Linear weights used by the forward. */
export interface BlockParams {
  ln1: F;
  ln2: F;
  qNorm: F | null;
  kNorm: F | null;
  /** q, k, v biases (Qwen2) or nulls. */
  bias: (F | null)[];
  /** q, k, v, o, gate, up, down in PyTorch [out, in] layout. */
  W: F[];
}

/** Activation fake-quant at the 4 Linear inputs: 0 = q/k/v, 1 = o, 2 = gate/up, 3 = down. */
export interface ActQuant {
  fmt: ActivationFormat;
  /** Calibrated |x| maximum per input site (static FP8 scale, NVFP4 global scale). */
  actMax: Float64Array;
}

export function linearShapes(s: BlockShape): [number, number][] {
  const qd = s.nHeads * s.headDim;
  const kd = s.nKv * s.headDim;
  return [[qd, s.hidden], [kd, s.hidden], [kd, s.hidden], [s.hidden, qd], [s.inter, s.hidden], [s.inter, s.hidden], [s.hidden, s.inter]];
}
/** Which activation site feeds each Linear. */
export const SITE_OF_LINEAR = [0, 0, 0, 1, 2, 2, 3];

/** Work buffers for one sample; reused across samples and iterations. */
export class BlockWorkspace {
  readonly T: number;
  readonly s: BlockShape;
  readonly ctor: FCtor;
  r1: Float64Array; r2: Float64Array; // RMSNorm reciprocal rms per token
  h1: F; h1q: F; q: F; k: F; v: F; qr: F; kr: F; qPre: F; kPre: F; rq: Float64Array; rk: Float64Array;
  P: F; att: F; attq: F; x2: F; h2: F; h2q: F; gate: F; up: F; m: F; mq: F; y: F;
  cos: Float64Array; sin: Float64Array;
  // backward scratch
  dA: F; dB: F; dq: F; dk: F; dv: F; dgate: F; dup: F; dm: F; dh: F; dx2: F; dP: Float64Array;
  /** Transpose scratch for the matrix products (activations [*, T], one weight). */
  tA: F; tB: F; Wt: F;
  /** Keys and values packed per kv head ([KV][T][hd], contiguous) and their float64 gradients. */
  kp: F; vp: F; dkp: Float64Array; dvp: Float64Array;

  constructor(s: BlockShape, T: number, ctor: FCtor) {
    this.T = T; this.s = s; this.ctor = ctor;
    const D = s.hidden, Fi = s.inter, qd = s.nHeads * s.headDim, kd = s.nKv * s.headDim;
    const n = (k: number) => new ctor(T * k);
    this.r1 = new Float64Array(T); this.r2 = new Float64Array(T);
    this.h1 = n(D); this.h1q = n(D); this.q = n(qd); this.k = n(kd); this.v = n(kd);
    this.qPre = n(qd); this.kPre = n(kd); this.qr = n(qd); this.kr = n(kd);
    this.rq = new Float64Array(T * s.nHeads); this.rk = new Float64Array(T * s.nKv);
    this.P = new ctor((s.nHeads * T * (T + 1)) / 2); /* causal rows packed: row t has t+1 entries */ this.att = n(qd); this.attq = n(qd);
    this.x2 = n(D); this.h2 = n(D); this.h2q = n(D); this.gate = n(Fi); this.up = n(Fi); this.m = n(Fi); this.mq = n(Fi); this.y = n(D);
    this.dA = n(Math.max(D, Fi, qd)); this.dB = n(Math.max(D, Fi, qd));
    this.dq = n(qd); this.dk = n(kd); this.dv = n(kd); this.dgate = n(Fi); this.dup = n(Fi); this.dm = n(Fi); this.dh = n(D); this.dx2 = n(D);
    this.dP = new Float64Array(T);
    const wide = Math.max(D, Fi, qd);
    this.tA = n(wide); this.tB = n(wide);
    this.Wt = new ctor(Math.max(...linearShapes(s).map(([r, c]) => r * c)));
    this.kp = n(kd); this.vp = n(kd); this.dkp = new Float64Array(T * kd); this.dvp = new Float64Array(T * kd);
    // RoPE tables as HF computes them: inv_freq and angles in float32 (float64 for a float64 workspace).
    const half = s.headDim / 2;
    this.cos = new Float64Array(T * half); this.sin = new Float64Array(T * half);
    const fr = ctor === Float32Array ? Math.fround : (x: number) => x;
    const inv = ropeInvFreq({ headDim: s.headDim, ropeTheta: s.theta, ropeScaling: s.ropeScaling ?? null }, ctor === Float32Array ? 'float32' : 'float64');
    for (let i = 0; i < half; i++) {
      for (let t = 0; t < T; t++) {
        const ang = fr(t * inv[i]);
        this.cos[t * half + i] = fr(Math.cos(ang));
        this.sin[t * half + i] = fr(Math.sin(ang));
      }
    }
  }
}

function rmsnormFwd(x: F, g: F, out: F, r: Float64Array, rows: number, D: number, eps: number, roff = 0, xoff = 0, stride = D): void {
  for (let t = 0; t < rows; t++) {
    const b = xoff + t * stride;
    let ss = 0;
    for (let j = 0; j < D; j++) ss += x[b + j] * x[b + j];
    const rr = 1 / Math.sqrt(ss / D + eps);
    r[roff + t] = rr;
    for (let j = 0; j < D; j++) out[b + j] = x[b + j] * rr * g[j];
  }
}

/** dx (+)= RMSNorm backward given dy; x is the norm's input. */
function rmsnormBwd(x: F, g: F, dy: F, r: Float64Array, dx: F, rows: number, D: number, accumulate: boolean, roff = 0, off = 0, stride = D): void {
  for (let t = 0; t < rows; t++) {
    const b = off + t * stride;
    const rr = r[roff + t];
    let dot = 0;
    for (let j = 0; j < D; j++) dot += dy[b + j] * g[j] * x[b + j];
    const c = (rr * rr * rr * dot) / D;
    for (let j = 0; j < D; j++) {
      const d = rr * dy[b + j] * g[j] - c * x[b + j];
      if (accumulate) dx[b + j] += d;
      else dx[b + j] = d;
    }
  }
}

/** Fake-quantize activations x[rows, cols] into out (the forward of the scheme's act quant). */
export function actQuantFwd(x: F, out: F, rows: number, cols: number, aq: ActQuant | null, site: number, smooth: boolean): void {
  if (!aq || aq.fmt.kind === 'none' || smooth) { out.set(x.subarray(0, rows * cols)); return; }
  if (x instanceof Float32Array) {
    // The float32 path runs the shared formats module: the math the evaluation engine emulates.
    const m = aq.actMax[site];
    out.set(quantizeActivations(x.subarray(0, rows * cols), rows, cols, aq.fmt, {
      scale: fp8Scale(m),
      globalScale: m === 0 ? undefined : Math.fround((448 * 6) / m),
    }));
    return;
  }
  const fr = x instanceof Float32Array ? Math.fround : (v: number) => v;
  if (aq.fmt.kind === 'fp8') {
    const perToken = aq.fmt.dynamic;
    const st = Math.max(fr(aq.actMax[site] / 448), fr(1 / (448 * 512)));
    for (let t = 0; t < rows; t++) {
      let s = st;
      if (perToken) {
        let amax = 0;
        for (let j = 0; j < cols; j++) amax = Math.max(amax, Math.abs(x[t * cols + j]));
        s = Math.max(fr(amax / 448), fr(1 / (448 * 512)));
      }
      for (let j = 0; j < cols; j++) {
        const u = fr(x[t * cols + j] / s);
        out[t * cols + j] = fp8(u > 448 ? 448 : u < -448 ? -448 : u) * s;
      }
    }
    return;
  }
  // NVFP4 activations: static global scale from the calibrated max, dynamic FP8 block scales.
  const gs = aq.actMax[site] === 0 ? 0 : fr((448 * 6) / aq.actMax[site]);
  for (let t = 0; t < rows; t++) {
    for (let b0 = 0; b0 < cols; b0 += 16) {
      const b1 = Math.min(cols, b0 + 16);
      let vmax = 0;
      for (let j = b0; j < b1; j++) vmax = Math.max(vmax, Math.abs(x[t * cols + j]));
      const s8 = fp8(Math.min(448, fr(gs * fr(vmax * fr(1 / 6)))));
      const os = s8 === 0 || gs === 0 ? 0 : fr(1 / fr(s8 * fr(1 / gs)));
      const inv = os === 0 ? 0 : fr(1 / os);
      for (let j = b0; j < b1; j++) {
        const u = fr(x[t * cols + j] * os);
        out[t * cols + j] = e2m1(u > 6 ? 6 : u < -6 ? -6 : u) * inv;
      }
    }
  }
}

/**
 * Backward of the act fake-quant under the STE: identity, except elements clipped by a static
 * scale (a calibrated max exceeded) get no gradient. For dynamic scales the clip only trims the
 * block maximum after the FP8 rounding of its scale, and the gradient reaches it through the
 * scale, which sums to the identity again.
 */
function actQuantBwd(x: F, d: F, rows: number, cols: number, aq: ActQuant | null, site: number, smooth: boolean): void {
  if (!aq || aq.fmt.kind === 'none' || smooth) return;
  if (aq.fmt.kind === 'fp8' && !aq.fmt.dynamic) {
    const s = Math.max(aq.actMax[site] / 448, 1 / (448 * 512));
    for (let i = 0; i < rows * cols; i++) if (Math.abs(x[i] / s) > 448) d[i] = 0;
  } else if (aq.fmt.kind === 'nvfp4') {
    const gs = aq.actMax[site] === 0 ? 0 : (448 * 6) / aq.actMax[site];
    for (let t = 0; t < rows; t++) {
      for (let b0 = 0; b0 < cols; b0 += 16) {
        const b1 = Math.min(cols, b0 + 16);
        let vmax = 0;
        for (let j = b0; j < b1; j++) vmax = Math.max(vmax, Math.abs(x[t * cols + j]));
        if ((gs * vmax) / 6 <= 448) continue;
        const os = gs / 448; // block scale saturated at 448: real clipping, no gradient
        for (let j = b0; j < b1; j++) if (Math.abs(x[t * cols + j] * os) > 6) d[t * cols + j] = 0;
      }
    }
  }
}

/**
 * Forward of one sample. x: [T, D] (offset xo in a larger buffer). Writes the output to ws.y.
 * `record` (optional) receives max |x| per activation site (act calibration).
 */
export function blockForward(p: BlockParams, s: BlockShape, ws: BlockWorkspace, x: F, xo: number, aq: ActQuant | null, smooth: boolean, record?: Float64Array): void {
  const T = ws.T, D = s.hidden, Fi = s.inter, H = s.nHeads, KV = s.nKv, hd = s.headDim;
  const qd = H * hd, kd = KV * hd, half = hd / 2;
  const xs = x.subarray(xo, xo + T * D) as F;
  const fr = ws.ctor === Float32Array ? Math.fround : (v: number) => v;
  rmsnormFwd(xs, p.ln1, ws.h1, ws.r1, T, D, s.eps);
  if (record) record[0] = Math.max(record[0], absMax(ws.h1, T * D));
  actQuantFwd(ws.h1, ws.h1q, T, D, aq, 0, smooth);
  const Wq = p.W[0], Wk = p.W[1], Wv = p.W[2], Wo = p.W[3], Wg = p.W[4], Wu = p.W[5], Wd = p.W[6];
  mmNT(ws.h1q, Wq, ws.qPre, T, qd, D);
  mmNT(ws.h1q, Wk, ws.kPre, T, kd, D);
  mmNT(ws.h1q, Wv, ws.v, T, kd, D);
  if (p.bias[0]) addBias(ws.qPre, p.bias[0], T, qd);
  if (p.bias[1]) addBias(ws.kPre, p.bias[1], T, kd);
  if (p.bias[2]) addBias(ws.v, p.bias[2], T, kd);
  if (s.qkNorm) {
    for (let h = 0; h < H; h++) rmsnormFwd(ws.qPre, p.qNorm!, ws.q, ws.rq, T, hd, s.eps, h * T, h * hd, qd);
    for (let h = 0; h < KV; h++) rmsnormFwd(ws.kPre, p.kNorm!, ws.k, ws.rk, T, hd, s.eps, h * T, h * hd, kd);
  } else {
    ws.q.set(ws.qPre); ws.k.set(ws.kPre);
  }
  rope(ws.q, ws.qr, ws, T, H, hd, half, 1);
  rope(ws.k, ws.kr, ws, T, KV, hd, half, 1);
  // Causal grouped-query attention; P keeps the softmax for the backward.
  attentionForward(ws, T, H, KV, hd, fr);
  const att = ws.att;
  if (record) record[1] = Math.max(record[1], absMax(att, T * qd));
  actQuantFwd(att, ws.attq, T, qd, aq, 1, smooth);
  mmNT(ws.attq, Wo, ws.x2, T, D, qd);
  for (let i = 0; i < T * D; i++) ws.x2[i] += xs[i];
  rmsnormFwd(ws.x2, p.ln2, ws.h2, ws.r2, T, D, s.eps);
  if (record) record[2] = Math.max(record[2], absMax(ws.h2, T * D));
  actQuantFwd(ws.h2, ws.h2q, T, D, aq, 2, smooth);
  mmNT(ws.h2q, Wg, ws.gate, T, Fi, D);
  mmNT(ws.h2q, Wu, ws.up, T, Fi, D);
  for (let i = 0; i < T * Fi; i++) {
    const z = ws.gate[i];
    ws.m[i] = z * sigmoid(z) * ws.up[i];
  }
  if (record) record[3] = Math.max(record[3], absMax(ws.m, T * Fi));
  actQuantFwd(ws.m, ws.mq, T, Fi, aq, 3, smooth);
  mmNT(ws.mq, Wd, ws.y, T, D, Fi);
  for (let i = 0; i < T * D; i++) ws.y[i] += ws.x2[i];
}

function absMax(a: F, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) { const v = Math.abs(a[i]); if (v > m) m = v; }
  return m;
}

function addBias(a: F, b: F, rows: number, cols: number): void {
  for (let t = 0; t < rows; t++) for (let j = 0; j < cols; j++) a[t * cols + j] += b[j];
}

/** Rotate-half RoPE (dir = 1) or its transpose (dir = -1, the backward). */
function rope(x: F, out: F, ws: BlockWorkspace, T: number, heads: number, hd: number, half: number, dir: number): void {
  const w = heads * hd;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const o = t * w + h * hd;
      for (let i = 0; i < half; i++) {
        const c = ws.cos[t * half + i], sn = dir * ws.sin[t * half + i];
        const a = x[o + i], b = x[o + i + half];
        out[o + i] = a * c - b * sn;
        out[o + i + half] = b * c + a * sn;
      }
    }
  }
}

/**
 * Backward of one sample, after blockForward on the same input. dy: dL/dy [T, D].
 * Writes dL/dx into dx (offset dxo) when given; accumulates dL/dW[i] into dW[i] when given.
 */
export function blockBackward(p: BlockParams, s: BlockShape, ws: BlockWorkspace, x: F, xo: number, dy: F, dx: F | null, dxo: number, dW: (F | null)[], aq: ActQuant | null, smooth: boolean): void {
  const T = ws.T, D = s.hidden, Fi = s.inter, H = s.nHeads, KV = s.nKv, hd = s.headDim;
  const qd = H * hd, kd = KV * hd, half = hd / 2;
  const xs = x.subarray(xo, xo + T * D) as F;
  // MLP: y = x2 + mq·Wdᵀ
  const { tA, tB, Wt } = ws;
  if (dW[6]) mmTNacc(dy, ws.mq, dW[6], D, Fi, T, tA, tB);
  const dm = ws.dm;
  mmNN(dy, p.W[6], dm, T, Fi, D, false, Wt);
  actQuantBwd(ws.m, dm, T, Fi, aq, 3, smooth);
  for (let i = 0; i < T * Fi; i++) {
    const z = ws.gate[i];
    const sg = sigmoid(z);
    ws.dup[i] = dm[i] * z * sg;
    ws.dgate[i] = dm[i] * ws.up[i] * sg * (1 + z * (1 - sg));
  }
  // tB keeps the transposed shared input across the weights that read it.
  if (dW[4]) mmTNacc(ws.dgate, ws.h2q, dW[4], Fi, D, T, tA, tB);
  if (dW[5]) mmTNacc(ws.dup, ws.h2q, dW[5], Fi, D, T, tA, tB, !!dW[4]);
  const dh2 = ws.dh;
  mmNN(ws.dgate, p.W[4], dh2, T, D, Fi, false, Wt);
  mmNN(ws.dup, p.W[5], dh2, T, D, Fi, true, Wt);
  actQuantBwd(ws.h2, dh2, T, D, aq, 2, smooth);
  const dx2 = ws.dx2;
  dx2.set(dy.subarray(0, T * D));
  rmsnormBwd(ws.x2, p.ln2, dh2, ws.r2, dx2, T, D, true);
  // Attention output projection.
  if (dW[3]) mmTNacc(dx2, ws.attq, dW[3], D, qd, T, tA, tB);
  const dAtt = ws.dA;
  mmNN(dx2, p.W[3], dAtt, T, qd, D, false, Wt);
  actQuantBwd(ws.att, dAtt, T, qd, aq, 1, smooth);
  // Attention core.
  attentionBackward(ws, dAtt, T, H, KV, hd);
  const dqr = ws.dq, dkr = ws.dk;
  // Undo RoPE (transpose rotation), then the optional q/k norms.
  const dq = ws.dA, dk = ws.dB;
  rope(dqr, dq, ws, T, H, hd, half, -1);
  rope(dkr, dk, ws, T, KV, hd, half, -1);
  if (s.qkNorm) {
    const tq = ws.qr, tk = ws.kr; // forward values no longer needed
    for (let h = 0; h < H; h++) rmsnormBwd(ws.qPre, p.qNorm!, dq, ws.rq, tq, T, hd, false, h * T, h * hd, qd);
    for (let h = 0; h < KV; h++) rmsnormBwd(ws.kPre, p.kNorm!, dk, ws.rk, tk, T, hd, false, h * T, h * hd, kd);
    dq.set(tq.subarray(0, T * qd)); dk.set(tk.subarray(0, T * kd));
  }
  const dv = ws.dv;
  if (dW[0]) mmTNacc(dq, ws.h1q, dW[0], qd, D, T, tA, tB);
  if (dW[1]) mmTNacc(dk, ws.h1q, dW[1], kd, D, T, tA, tB, !!dW[0]);
  if (dW[2]) mmTNacc(dv, ws.h1q, dW[2], kd, D, T, tA, tB, !!(dW[0] || dW[1]));
  if (!dx) return;
  const dh1 = ws.dh;
  mmNN(dq, p.W[0], dh1, T, D, qd, false, Wt);
  mmNN(dk, p.W[1], dh1, T, D, kd, true, Wt);
  mmNN(dv, p.W[2], dh1, T, D, kd, true, Wt);
  actQuantBwd(ws.h1, dh1, T, D, aq, 0, smooth);
  const dxs = dx.subarray(dxo, dxo + T * D) as F;
  dxs.set(dx2.subarray(0, T * D));
  rmsnormBwd(xs, p.ln1, dh1, ws.r1, dxs, T, D, true);
}

/** Copy the kv heads of x [T, KV·hd] into per-head contiguous blocks out [KV][T][hd]. */
function packHeads(x: F, out: F, T: number, KV: number, hd: number): void {
  const kd = KV * hd;
  for (let g = 0; g < KV; g++) {
    const o = g * T * hd;
    for (let t = 0; t < T; t++) for (let j = 0; j < hd; j++) out[o + t * hd + j] = x[t * kd + g * hd + j];
  }
}

function unpackHeads(x: Float64Array, out: F, T: number, KV: number, hd: number): void {
  const kd = KV * hd;
  for (let g = 0; g < KV; g++) {
    const o = g * T * hd;
    for (let t = 0; t < T; t++) for (let j = 0; j < hd; j++) out[t * kd + g * hd + j] = x[o + t * hd + j];
  }
}

/**
 * Causal GQA softmax attention: ws.att = softmax(q·kᵀ/√hd)·v per head; ws.P keeps the
 * probabilities. Keys and values are packed per kv head so the inner loop over positions
 * reads contiguous memory; head_dim 8 (stories260k) has a fully unrolled path.
 */
function attentionForward(ws: BlockWorkspace, T: number, H: number, KV: number, hd: number, fr: (v: number) => number): void {
  const qd = H * hd, grp = H / KV;
  const scale = 1 / Math.sqrt(hd);
  if (hd === 8 && ws.ctor === Float32Array && simdAttentionAvailable()) {
    attentionForwardF32(ws.qr as Float32Array, ws.kr as Float32Array, ws.v as Float32Array, ws.att as Float32Array, T, H, KV);
    return;
  }
  const { qr, P, att, kp, vp } = ws;
  packHeads(ws.kr, kp, T, KV, hd);
  packHeads(ws.v, vp, T, KV, hd);
  for (let h = 0; h < H; h++) {
    const gb = Math.floor(h / grp) * T * hd;
    const Ph = (h * T * (T + 1)) / 2;
    for (let t = 0; t < T; t++) {
      const qo = t * qd + h * hd;
      const row = Ph + (t * (t + 1)) / 2;
      let mx = -Infinity;
      if (hd === 8) {
        const q0 = qr[qo], q1 = qr[qo + 1], q2 = qr[qo + 2], q3 = qr[qo + 3], q4 = qr[qo + 4], q5 = qr[qo + 5], q6 = qr[qo + 6], q7 = qr[qo + 7];
        for (let u = 0, ko = gb; u <= t; u++, ko += 8) {
          const d = fr((q0 * kp[ko] + q1 * kp[ko + 1] + q2 * kp[ko + 2] + q3 * kp[ko + 3] + q4 * kp[ko + 4] + q5 * kp[ko + 5] + q6 * kp[ko + 6] + q7 * kp[ko + 7]) * scale);
          P[row + u] = d;
          if (d > mx) mx = d;
        }
      } else {
        for (let u = 0, ko = gb; u <= t; u++, ko += hd) {
          let d = 0;
          for (let j = 0; j < hd; j++) d += qr[qo + j] * kp[ko + j];
          d = fr(d * scale);
          P[row + u] = d;
          if (d > mx) mx = d;
        }
      }
      let sum = 0;
      for (let u = 0; u <= t; u++) { const e = expNeg(P[row + u] - mx); P[row + u] = e; sum += e; }
      const inv = 1 / sum;
      if (hd === 8) {
        // Normalisation fused into the weighted sum (one pass over the row).
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
        for (let u = 0, vo = gb; u <= t; u++, vo += 8) {
          const pr = fr(P[row + u] * inv);
          P[row + u] = pr;
          a0 += pr * vp[vo]; a1 += pr * vp[vo + 1]; a2 += pr * vp[vo + 2]; a3 += pr * vp[vo + 3];
          a4 += pr * vp[vo + 4]; a5 += pr * vp[vo + 5]; a6 += pr * vp[vo + 6]; a7 += pr * vp[vo + 7];
        }
        att[qo] = a0; att[qo + 1] = a1; att[qo + 2] = a2; att[qo + 3] = a3; att[qo + 4] = a4; att[qo + 5] = a5; att[qo + 6] = a6; att[qo + 7] = a7;
      } else {
        for (let u = 0; u <= t; u++) P[row + u] *= inv;
        for (let j = 0; j < hd; j++) {
          let a = 0;
          for (let u = 0, vo = gb + j; u <= t; u++, vo += hd) a += P[row + u] * vp[vo];
          att[qo + j] = a;
        }
      }
    }
  }
}

/**
 * Backward of attentionForward given dAtt [T, qd]: writes dL/d(rotated q) into ws.dq and
 * dL/d(rotated k), dL/dv into ws.dk, ws.dv (accumulated per kv head in float64).
 */
function attentionBackward(ws: BlockWorkspace, dAtt: F, T: number, H: number, KV: number, hd: number): void {
  const qd = H * hd, grp = H / KV;
  const scale = 1 / Math.sqrt(hd);
  if (hd === 8 && ws.ctor === Float32Array && simdAttentionAvailable()) {
    attentionBackwardF32(dAtt as Float32Array, ws.dq as Float32Array, ws.dk as Float32Array, ws.dv as Float32Array, T, H, KV);
    return;
  }
  const { qr, P, kp, vp, dkp, dvp, dP } = ws;
  const dqr = ws.dq;
  dkp.fill(0); dvp.fill(0);
  for (let h = 0; h < H; h++) {
    const gb = Math.floor(h / grp) * T * hd;
    const Ph = (h * T * (T + 1)) / 2;
    for (let t = 0; t < T; t++) {
      const qo = t * qd + h * hd;
      const row = Ph + (t * (t + 1)) / 2;
      let dot = 0;
      if (hd === 8) {
        const g0 = dAtt[qo], g1 = dAtt[qo + 1], g2 = dAtt[qo + 2], g3 = dAtt[qo + 3], g4 = dAtt[qo + 4], g5 = dAtt[qo + 5], g6 = dAtt[qo + 6], g7 = dAtt[qo + 7];
        for (let u = 0, vo = gb; u <= t; u++, vo += 8) {
          const d = g0 * vp[vo] + g1 * vp[vo + 1] + g2 * vp[vo + 2] + g3 * vp[vo + 3] + g4 * vp[vo + 4] + g5 * vp[vo + 5] + g6 * vp[vo + 6] + g7 * vp[vo + 7];
          dP[u] = d;
          const pr = P[row + u];
          dot += d * pr;
          dvp[vo] += pr * g0; dvp[vo + 1] += pr * g1; dvp[vo + 2] += pr * g2; dvp[vo + 3] += pr * g3;
          dvp[vo + 4] += pr * g4; dvp[vo + 5] += pr * g5; dvp[vo + 6] += pr * g6; dvp[vo + 7] += pr * g7;
        }
        const q0 = qr[qo], q1 = qr[qo + 1], q2 = qr[qo + 2], q3 = qr[qo + 3], q4 = qr[qo + 4], q5 = qr[qo + 5], q6 = qr[qo + 6], q7 = qr[qo + 7];
        let d0 = 0, d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0, d6 = 0, d7 = 0;
        for (let u = 0, ko = gb; u <= t; u++, ko += 8) {
          const ds = P[row + u] * (dP[u] - dot) * scale;
          d0 += ds * kp[ko]; d1 += ds * kp[ko + 1]; d2 += ds * kp[ko + 2]; d3 += ds * kp[ko + 3];
          d4 += ds * kp[ko + 4]; d5 += ds * kp[ko + 5]; d6 += ds * kp[ko + 6]; d7 += ds * kp[ko + 7];
          dkp[ko] += ds * q0; dkp[ko + 1] += ds * q1; dkp[ko + 2] += ds * q2; dkp[ko + 3] += ds * q3;
          dkp[ko + 4] += ds * q4; dkp[ko + 5] += ds * q5; dkp[ko + 6] += ds * q6; dkp[ko + 7] += ds * q7;
        }
        dqr[qo] = d0; dqr[qo + 1] = d1; dqr[qo + 2] = d2; dqr[qo + 3] = d3; dqr[qo + 4] = d4; dqr[qo + 5] = d5; dqr[qo + 6] = d6; dqr[qo + 7] = d7;
      } else {
        for (let u = 0, vo = gb; u <= t; u++, vo += hd) {
          let d = 0;
          for (let j = 0; j < hd; j++) d += dAtt[qo + j] * vp[vo + j];
          dP[u] = d;
          const pr = P[row + u];
          dot += d * pr;
          for (let j = 0; j < hd; j++) dvp[vo + j] += pr * dAtt[qo + j];
        }
        for (let j = 0; j < hd; j++) dqr[qo + j] = 0;
        for (let u = 0, ko = gb; u <= t; u++, ko += hd) {
          const ds = P[row + u] * (dP[u] - dot) * scale;
          for (let j = 0; j < hd; j++) {
            dqr[qo + j] += ds * kp[ko + j];
            dkp[ko + j] += ds * qr[qo + j];
          }
        }
      }
    }
  }
  unpackHeads(dkp, ws.dk, T, KV, hd);
  unpackHeads(dvp, ws.dv, T, KV, hd);
}

/**
 * Forward + masked-MSE loss + backward of ONE sample (offset `off` in X and Y): returns the
 * sample's sum of squared errors / denom and, with grads, writes dL/dW into `dW` (zeroed
 * here first: one buffer per sample, so that the caller sums samples in a fixed order and the
 * result does not depend on which thread ran which sample). The last position of every sample
 * is masked (auto-round's -100 label rule); the mean still divides by all elements.
 */
export function sampleLossGrad(p: BlockParams, s: BlockShape, ws: BlockWorkspace, X: F, Y: F, off: number, denom: number, dy: F, grads: boolean, dW: (F | null)[], aq: ActQuant | null, smooth: boolean): number {
  const T = ws.T, D = s.hidden;
  blockForward(p, s, ws, X, off, aq, smooth);
  const y = ws.y;
  let loss = 0;
  for (let t = 0; t < T; t++) {
    const live = t < T - 1 ? 1 : 0;
    for (let j = 0; j < D; j++) {
      const e = live * (y[t * D + j] - Y[off + t * D + j]);
      loss += e * e;
      dy[t * D + j] = (2 * e) / denom;
    }
  }
  if (grads) {
    for (const a of dW) a?.fill(0);
    blockBackward(p, s, ws, X, off, dy, null, 0, dW, aq, smooth);
  }
  return loss / denom;
}
