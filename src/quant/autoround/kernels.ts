/**
 * Dense kernels for the AutoRound block (row-major, typed arrays). Every function is generic
 * over Float32Array / Float64Array: float32 is the fast path, float64 runs the very same code
 * for the finite-difference gradient check. Accumulation happens in JS doubles; the store
 * rounds to the array's precision.
 *
 * All three products of a Linear's forward and backward go through one tuned kernel, mmNT
 * (both operands read along contiguous rows): the weight transpose and the activation
 * transposes that turn mmNN / mmTN into mmNT cost O(size) against O(size · k) for the product.
 */
import { mmNTf32, simdAvailable } from './simd.ts';

export type F = Float32Array | Float64Array;
export type FCtor = Float32ArrayConstructor | Float64ArrayConstructor;

/**
 * C[m,n] (+)= A[m,k] · B[n,k]ᵀ  (activations times a PyTorch-layout weight). 2 rows × 4
 * columns per pass: 8 independent accumulators that stay in registers, 6 loads per 8
 * multiply-adds. Each output is one left-to-right sum over p, so the result does not depend
 * on the blocking.
 */
export function mmNT(A: F, B: F, C: F, m: number, n: number, k: number, accumulate = false): void {
  if (A instanceof Float32Array && B instanceof Float32Array && C instanceof Float32Array && (k & 3) === 0 && (n & 3) === 0 && m > 1 && m * k >= 256 && simdAvailable()) {
    // float32: WebAssembly SIMD on the even rows, JS for an odd last row.
    const me = m & ~1;
    mmNTf32(A, B, C, me, n, k, accumulate);
    if (me === m) return;
    A = A.subarray(me * k); C = C.subarray(me * n); m = 1;
  }
  let i = 0;
  for (; i + 1 < m; i += 2) {
    const a0 = i * k, a1 = a0 + k;
    const c0 = i * n, c1 = c0 + n;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      const b0 = j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let p = 0; p < k; p++) {
        const x0 = A[a0 + p], x1 = A[a1 + p];
        const y0 = B[b0 + p], y1 = B[b1 + p], y2 = B[b2 + p], y3 = B[b3 + p];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
      }
      if (accumulate) {
        C[c0 + j] += s00; C[c0 + j + 1] += s01; C[c0 + j + 2] += s02; C[c0 + j + 3] += s03;
        C[c1 + j] += s10; C[c1 + j + 1] += s11; C[c1 + j + 2] += s12; C[c1 + j + 3] += s13;
      } else {
        C[c0 + j] = s00; C[c0 + j + 1] = s01; C[c0 + j + 2] = s02; C[c0 + j + 3] = s03;
        C[c1 + j] = s10; C[c1 + j + 1] = s11; C[c1 + j + 2] = s12; C[c1 + j + 3] = s13;
      }
    }
    for (; j < n; j++) {
      const bj = j * k;
      let s0 = 0, s1 = 0;
      for (let p = 0; p < k; p++) { const y = B[bj + p]; s0 += A[a0 + p] * y; s1 += A[a1 + p] * y; }
      if (accumulate) { C[c0 + j] += s0; C[c1 + j] += s1; } else { C[c0 + j] = s0; C[c1 + j] = s1; }
    }
  }
  for (; i < m; i++) {
    const ai = i * k, ci = i * n;
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += A[ai + p] * B[bj + p];
      if (accumulate) C[ci + j] += s;
      else C[ci + j] = s;
    }
  }
}

/** out[cols, rows] = A[rows, cols]ᵀ. */
export function transpose(A: F, out: F, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const a = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = A[a + c];
  }
}

/** C[m,n] (+)= A[m,k] · B[k,n]  (gradient w.r.t. a Linear's input: dY · W). Bt: scratch ≥ k·n. */
export function mmNN(A: F, B: F, C: F, m: number, n: number, k: number, accumulate = false, Bt?: F): void {
  const t = Bt ?? new (B.constructor as FCtor)(k * n);
  transpose(B, t, k, n);
  mmNT(A, t, C, m, n, k, accumulate);
}

/**
 * C[m,n] += A[k,m]ᵀ · B[k,n]  (gradient w.r.t. a weight: dYᵀ · X). At, Bt: scratch ≥ k·m, k·n;
 * pass `Bt` already transposed (bReady) when several weights share the same input.
 */
export function mmTNacc(A: F, B: F, C: F, m: number, n: number, k: number, At?: F, Bt?: F, bReady = false): void {
  const ctor = A.constructor as FCtor;
  const at = At ?? new ctor(k * m);
  const bt = Bt ?? new ctor(k * n);
  transpose(A, at, k, m);
  if (!bReady) transpose(B, bt, k, n);
  mmNT(at, bt, C, m, n, k, true);
}

// exp for x <= 0 (softmax arguments after the max is subtracted). Math.exp costs ~14 ns in V8,
// about half of the attention forward at head_dim 8; this inlines in ~3 ns: x = (64m + j)·ln2/64
// + r with |r| <= ln2/128, exp(x) = 2^m · 2^(j/64) · p(r) with a degree-5 Taylor polynomial
// (relative error < 1e-15 plus rounding), 0 below float32's smallest subnormal.
const EXP_TAB = Float64Array.from({ length: 64 }, (_, j) => 2 ** (j / 64));
const POW2_NEG = Float64Array.from({ length: 160 }, (_, m) => 2 ** -m);
const LN2_64_HI = Math.round((Math.LN2 / 64) * 2 ** 32) / 2 ** 32; // ln2/64 split in two: k·hi is exact
const LN2_64_LO = Math.LN2 / 64 - LN2_64_HI;
const LOG2E_64 = 64 / Math.LN2;

export function expNeg(x: number): number {
  if (x > 0) return Math.exp(x);
  if (!(x > -104)) return x !== x ? x : 0;
  const k = Math.floor(x * LOG2E_64 + 0.5);
  const r = x - k * LN2_64_HI - k * LN2_64_LO;
  const p = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120)))));
  return POW2_NEG[-(k >> 6)] * EXP_TAB[k & 63] * p;
}

/** Logistic sigmoid through expNeg (both signs), for SiLU and its derivative. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + expNeg(-z));
  const e = expNeg(z);
  return e / (1 + e);
}
