/**
 * Differentiable quantize-dequantize of one Linear weight with AutoRound's trainable pieces
 * (rounding offsets V per element, clip factors α/β per group), forward and backward,
 * following auto-round's data_type kernels (reference/autoround.md §1-2, formats.md §1-5):
 * every rounding/casting step is a straight-through estimator (identity gradient), clamps
 * pass the gradient only inside their range (inclusive), and the scale depends on α/β.
 *
 * `smooth` replaces every STE op by the identity in the forward as well, which makes the
 * function differentiable everywhere: the finite-difference test checks the backward on it.
 */
import { roundToF16, e4m3ToF32, f32ToE4m3 } from '../../checkpoint/dtypes.ts';
import type { WeightFormat } from '../schemes.ts';
import { quantizeWeight, type QuantizedWeight, type ScaleDtype } from '../formats/index.ts';
import type { F, FCtor } from './kernels.ts';

const FP32_MIN_NORMAL = 2 ** -126;
const FP8_MIN_SCALE = 1 / (448 * 512); // vLLM's floor on FP8 scales, as auto-round uses

/** Round half to even (JS Math.round rounds halves up). */
export function rne(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/** E2M1 value nearest to x (ties to even code), saturating at ±6. */
export function e2m1(x: number): number {
  const a = Math.abs(x);
  let q: number;
  if (a <= 0.25) q = 0;
  else if (a < 0.75) q = 0.5;
  else if (a <= 1.25) q = 1;
  else if (a < 1.75) q = 1.5;
  else if (a <= 2.5) q = 2;
  else if (a < 3.5) q = 3;
  else if (a <= 5) q = 4;
  else q = 6;
  return x < 0 ? -q : q;
}

export function fp8(x: number): number {
  return e4m3ToF32(f32ToE4m3(x));
}

/** One quantized Linear with its trainable parameters. */
export interface QLinear {
  name: string;
  fmt: WeightFormat;
  rows: number;
  cols: number;
  /** Effective group size along the input dim (per-channel: cols). */
  group: number;
  /** Groups per row. */
  ngroups: number;
  w: F;
  v: F;
  /** Clip factors per group, clamped to [0,1] at every forward (auto-round does it in place). */
  alpha: F;
  beta: F;
  /** NVFP4: the fixed per-tensor global scale (divisor), shared across fused layers. */
  globalScale: number;
  /** Per group: min (with 0) and max (with 0) of the original weight; amax for float formats. */
  gmin: Float64Array;
  gmax: Float64Array;
  /** Per-group scale of the last forward (for the backward), plus flags. */
  scale: Float64Array;
  zp: Float64Array;
  live: Uint8Array;
  /** Integer formats: dtype of the stored scales (the checkpoint's; F16 when unset). */
  scaleDtype?: ScaleDtype;
}

export function effectiveGroup(fmt: WeightFormat, cols: number): number {
  return fmt.groupSize <= 0 ? cols : fmt.groupSize;
}

export function makeQLinear(name: string, fmt: WeightFormat, w: F, rows: number, cols: number, ctor: FCtor): QLinear {
  const group = effectiveGroup(fmt, cols);
  const ngroups = Math.ceil(cols / group);
  const n = rows * ngroups;
  const gmin = new Float64Array(n);
  const gmax = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < ngroups; g++) {
      let lo = 0, hi = 0, amax = 0;
      const end = Math.min(cols, (g + 1) * group);
      for (let c = g * group; c < end; c++) {
        const x = w[r * cols + c];
        if (x < lo) lo = x;
        if (x > hi) hi = x;
        const a = Math.abs(x);
        if (a > amax) amax = a;
      }
      if (fmt.kind === 'int') { gmin[r * ngroups + g] = lo; gmax[r * ngroups + g] = hi; }
      else gmax[r * ngroups + g] = amax;
    }
  }
  const alpha = new ctor(n).fill(1);
  const beta = new ctor(n).fill(1);
  let globalScale = 0;
  if (fmt.kind === 'nvfp4') {
    let amax = 0;
    for (let i = 0; i < w.length; i++) amax = Math.max(amax, Math.abs(w[i]));
    globalScale = amax === 0 ? 0 : Math.fround((448 * 6) / amax);
  }
  return {
    name, fmt, rows, cols, group, ngroups, w, v: new ctor(rows * cols), alpha, beta, globalScale,
    gmin, gmax, scale: new Float64Array(n), zp: new Float64Array(n), live: new Uint8Array(n),
  };
}

/** NVFP4 global scale of a fused group (q/k/v or gate/up): the smallest, as auto-round does. */
export function fuseGlobalScales(layers: QLinear[]): void {
  const gs = Math.min(...layers.map((l) => l.globalScale));
  for (const l of layers) l.globalScale = gs;
}

const clamp01 = (x: number): number => (x < 0 ? 0 : x > 1 ? 1 : x);

/**
 * out = QDQ(W; V, α, β). Stores per-group scales for the backward. `fr` rounds to the
 * working precision (Math.fround in float32 mode) at the points where torch rounds.
 */
export function qdqForward(L: QLinear, out: F, smooth: boolean): void {
  const { fmt, rows, cols, group, ngroups, w, v, alpha, beta } = L;
  const f32 = w instanceof Float32Array;
  const fr = f32 ? Math.fround : (x: number) => x;
  for (let i = 0; i < alpha.length; i++) { alpha[i] = clamp01(alpha[i]); beta[i] = clamp01(beta[i]); }
  const bits = fmt.bits;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < ngroups; g++) {
      const gi = r * ngroups + g;
      const c0 = g * group;
      const c1 = Math.min(cols, c0 + group);
      const base = r * cols;
      if (fmt.kind === 'int' && fmt.symmetric) {
        const maxq = 2 ** (bits - 1);
        const aneg = fr(-L.gmin[gi] * alpha[gi]);
        const apos = fr(L.gmax[gi] * beta[gi]);
        const maxv = apos < aneg ? aneg : -apos;
        let s = fr(maxv / maxq);
        if (!smooth) s = roundToF16(s);
        let live = 1;
        if (s < 0 && s > -1e-5) { s = -1e-5; live = 0; } else if (s >= 0 && s < 1e-5) { s = 1e-5; live = 0; }
        L.scale[gi] = s; L.live[gi] = live;
        for (let c = c0; c < c1; c++) {
          const u = fr(fr(w[base + c] / s) + v[base + c]);
          const q = Math.min(maxq - 1, Math.max(-maxq, smooth ? u : rne(u)));
          out[base + c] = s * q;
        }
      } else if (fmt.kind === 'int') {
        const maxq = 2 ** bits - 1;
        const wmin = fr(L.gmin[gi] * alpha[gi]);
        const wmax = fr(L.gmax[gi] * beta[gi]);
        let s = fr((wmax - wmin) / maxq);
        if (!smooth) s = roundToF16(s);
        let live = 1;
        if (s < 1e-5) { s = 1e-5; live = 0; }
        const zr = fr(-wmin / s);
        const zp = smooth ? zr : rne(zr);
        L.scale[gi] = s; L.zp[gi] = zp; L.live[gi] = live;
        for (let c = c0; c < c1; c++) {
          const u = fr(fr(w[base + c] / s) + v[base + c]);
          const q = Math.min(maxq, Math.max(0, (smooth ? u : rne(u)) + zp));
          out[base + c] = s * (q - zp);
        }
      } else if (fmt.kind === 'mxfp4') {
        // shared exponent = floor(log2(amax·β)) - emax(2), clamped to ±127; V enters doubled
        // (auto-round's "multiply = 2" for mx_fp4).
        const x = fr(L.gmax[gi] * beta[gi]);
        const lg = fr(Math.log2(x === 0 ? FP32_MIN_NORMAL : x)) - 2;
        let e = smooth ? lg : Math.floor(lg);
        let live = x === 0 ? 0 : 1;
        if (e > 127) { e = 127; live = 0; } else if (e < -127) { e = -127; live = 0; }
        const s = 2 ** e;
        L.scale[gi] = s; L.live[gi] = live;
        for (let c = c0; c < c1; c++) {
          const t = fr(fr(w[base + c] / s) + 2 * v[base + c]);
          out[base + c] = mxElement(t, smooth) * s;
        }
      } else if (fmt.kind === 'nvfp4') {
        const gs = L.globalScale;
        const vmax = fr(L.gmax[gi] * beta[gi]);
        let s8 = fr(gs * fr(vmax * fr(1 / 6)));
        let live = 1;
        if (s8 > 448) { s8 = 448; live = 0; }
        if (!smooth) s8 = fp8(s8);
        const os = s8 === 0 || gs === 0 ? 0 : fr(1 / fr(s8 * fr(1 / gs)));
        // Dequantize as the checkpoint is read (formats/nvfp4.ts: q · s8/gs, compressed-tensors' rule).
        const inv = os === 0 ? 0 : fr(s8 / gs);
        L.scale[gi] = os; L.live[gi] = live;
        for (let c = c0; c < c1; c++) {
          const t = fr(fr(w[base + c] * os) + v[base + c]);
          const tc = t > 6 ? 6 : t < -6 ? -6 : t;
          out[base + c] = (smooth ? tc : e2m1(tc)) * inv;
        }
      } else if (fmt.kind === 'fp8') {
        let s = fr(fr(L.gmax[gi] * beta[gi]) / 448);
        let live = 1;
        if (s < FP8_MIN_SCALE) { s = fr(FP8_MIN_SCALE); live = 0; }
        L.scale[gi] = s; L.live[gi] = live;
        for (let c = c0; c < c1; c++) {
          const t = fr(fr(w[base + c] / s) + v[base + c]);
          const tc = t > 448 ? 448 : t < -448 ? -448 : t;
          out[base + c] = (smooth ? tc : fp8(tc)) * s;
        }
      } else {
        for (let c = c0; c < c1; c++) out[base + c] = w[base + c];
      }
    }
  }
}

/** auto-round's MX element quantizer on an already-scaled value: E2M1 grid, RNE, saturate. */
function mxElement(t: number, smooth: boolean): number {
  if (smooth) return t > 6 ? 6 : t < -6 ? -6 : t;
  return e2m1(t);
}

/**
 * d(mxElement)/dt as torch differentiates auto-round's quant_element: the private exponent is
 * floor_ste(log2|t|), so for |t| >= 1 the gradient is f(t)/t (0 once the mantissa clamp has
 * pushed f beyond ±6, i.e. |t| >= 8); below 1 the exponent is clipped and the gradient is 1.
 */
function mxElementGrad(t: number, f: number): number {
  const a = Math.abs(t);
  if (a < 1) return 1;
  if (a >= 8) return 0;
  return f / t;
}

/**
 * Backward of qdqForward: given g = dL/dŴ, accumulate dL/dV, dL/dα, dL/dβ. Uses the scales
 * stored by the last forward.
 */
export function qdqBackward(L: QLinear, g: F, gV: F, gAlpha: F, gBeta: F, smooth: boolean): void {
  const { fmt, rows, cols, group, ngroups, w, v, alpha, beta } = L;
  const f32 = w instanceof Float32Array;
  const fr = f32 ? Math.fround : (x: number) => x;
  const bits = fmt.bits;
  for (let r = 0; r < rows; r++) {
    for (let gg = 0; gg < ngroups; gg++) {
      const gi = r * ngroups + gg;
      const c0 = gg * group;
      const c1 = Math.min(cols, c0 + group);
      const base = r * cols;
      const s = L.scale[gi];
      let gs = 0; // dL/d(scale of this group)
      if (fmt.kind === 'int' && fmt.symmetric) {
        const maxq = 2 ** (bits - 1);
        for (let c = c0; c < c1; c++) {
          const i = base + c;
          const u = fr(fr(w[i] / s) + v[i]);
          const r0 = smooth ? u : rne(u);
          const m = r0 >= -maxq && r0 <= maxq - 1 ? 1 : 0;
          const q = Math.min(maxq - 1, Math.max(-maxq, r0));
          gV[i] += g[i] * s * m;
          gs += g[i] * (q - (m * w[i]) / s);
        }
        if (L.live[gi]) {
          const aneg = -L.gmin[gi] * alpha[gi];
          const apos = L.gmax[gi] * beta[gi];
          const gmaxv = gs / maxq;
          if (apos < aneg) gAlpha[gi] += gmaxv * -L.gmin[gi];
          else gBeta[gi] += gmaxv * -L.gmax[gi];
        }
      } else if (fmt.kind === 'int') {
        const maxq = 2 ** bits - 1;
        const zp = L.zp[gi];
        let gzp = 0;
        for (let c = c0; c < c1; c++) {
          const i = base + c;
          const u = fr(fr(w[i] / s) + v[i]);
          const t = (smooth ? u : rne(u)) + zp;
          const m = t >= 0 && t <= maxq ? 1 : 0;
          const q = Math.min(maxq, Math.max(0, t));
          gV[i] += g[i] * s * m;
          gs += g[i] * (q - zp - (m * w[i]) / s);
          gzp += g[i] * s * (m - 1);
        }
        const wmin = L.gmin[gi] * alpha[gi];
        // zp = round_ste(-wmin'/s): depends on s and on wmin'.
        gs += (gzp * wmin) / (s * s);
        let gwmin = -gzp / s;
        let gwmax = 0;
        if (L.live[gi]) { gwmax += gs / maxq; gwmin -= gs / maxq; }
        gAlpha[gi] += gwmin * L.gmin[gi];
        gBeta[gi] += gwmax * L.gmax[gi];
      } else if (fmt.kind === 'mxfp4') {
        for (let c = c0; c < c1; c++) {
          const i = base + c;
          const t = fr(fr(w[i] / s) + 2 * v[i]);
          const f = mxElement(t, smooth);
          const d = smooth ? (t > 6 || t < -6 ? 0 : 1) : mxElementGrad(t, f);
          gV[i] += 2 * g[i] * s * d;
          gs += g[i] * (f - (d * w[i]) / s);
        }
        if (L.live[gi] && beta[gi] > 0) gBeta[gi] += (gs * s) / beta[gi];
      } else if (fmt.kind === 'nvfp4') {
        const os = s;
        if (os === 0) continue;
        const e = 1 / os;
        let gos = 0;
        for (let c = c0; c < c1; c++) {
          const i = base + c;
          const t = fr(fr(w[i] * os) + v[i]);
          const m = t >= -6 && t <= 6 ? 1 : 0;
          const tc = t > 6 ? 6 : t < -6 ? -6 : t;
          const f = smooth ? tc : e2m1(tc);
          gV[i] += g[i] * e * m;
          gos += g[i] * (m * w[i] * e - f * e * e);
        }
        if (L.live[gi]) {
          // os = gs/s8 with s8 = gs·amax·β/6 under the STE: d os/dβ = -os/β.
          const gsc = L.globalScale;
          const s8 = gsc / os;
          gBeta[gi] += gos * (-gsc / (s8 * s8)) * ((gsc * L.gmax[gi]) / 6);
        }
      } else if (fmt.kind === 'fp8') {
        for (let c = c0; c < c1; c++) {
          const i = base + c;
          const t = fr(fr(w[i] / s) + v[i]);
          const m = t >= -448 && t <= 448 ? 1 : 0;
          const tc = t > 448 ? 448 : t < -448 ? -448 : t;
          const f = smooth ? tc : fp8(tc);
          gV[i] += g[i] * s * m;
          gs += g[i] * (f - (m * w[i]) / s);
        }
        if (L.live[gi]) gBeta[gi] += (gs * L.gmax[gi]) / 448;
      }
    }
  }
}

/** Trainable tensors of a layer that auto-round tunes for this format. */
export function tunesAlpha(fmt: WeightFormat): boolean {
  return fmt.kind === 'int';
}

/**
 * The layer quantized by the shared formats module with the current V/α/β: what the
 * checkpoint stores. The float32 training forward uses its dequantized weight, so the
 * weights optimised are exactly the weights written. auto-round adds V doubled for MXFP4.
 */
export function formatsQuantize(L: QLinear): QuantizedWeight {
  const f = (a: F): Float32Array => (a instanceof Float32Array ? a : Float32Array.from(a));
  let v = f(L.v);
  if (L.fmt.kind === 'mxfp4') v = v.map((x) => 2 * x);
  return quantizeWeight(f(L.w), L.rows, L.cols, L.fmt, {
    v,
    minScale: f(L.alpha),
    maxScale: f(L.beta),
    globalScale: L.fmt.kind === 'nvfp4' ? L.globalScale : undefined,
    ...(L.scaleDtype ? { scaleDtype: L.scaleDtype } : {}),
  }, L.name);
}
