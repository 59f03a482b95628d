/**
 * Dense kernels for the AutoRound block (row-major, typed arrays). Every function is generic
 * over Float32Array / Float64Array: float32 is the fast path, float64 runs the very same code
 * for the finite-difference gradient check. Accumulation happens in JS doubles; the store
 * rounds to the array's precision.
 */
export type F = Float32Array | Float64Array;
export type FCtor = Float32ArrayConstructor | Float64ArrayConstructor;

/** C[m,n] (+)= A[m,k] · B[n,k]ᵀ  (activations times a PyTorch-layout weight). */
export function mmNT(A: F, B: F, C: F, m: number, n: number, k: number, accumulate = false): void {
  // 4 output columns at a time: each A row is read once per 4 dot products.
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    const ci = i * n;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      const b0 = j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let p = 0; p < k; p++) {
        const a = A[ai + p];
        s0 += a * B[b0 + p];
        s1 += a * B[b1 + p];
        s2 += a * B[b2 + p];
        s3 += a * B[b3 + p];
      }
      if (accumulate) {
        C[ci + j] += s0; C[ci + j + 1] += s1; C[ci + j + 2] += s2; C[ci + j + 3] += s3;
      } else {
        C[ci + j] = s0; C[ci + j + 1] = s1; C[ci + j + 2] = s2; C[ci + j + 3] = s3;
      }
    }
    for (; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += A[ai + p] * B[bj + p];
      if (accumulate) C[ci + j] += s;
      else C[ci + j] = s;
    }
  }
}

/** C[m,n] (+)= A[m,k] · B[k,n]  (gradient w.r.t. a Linear's input: dY · W). */
export function mmNN(A: F, B: F, C: F, m: number, n: number, k: number, accumulate = false): void {
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    if (accumulate) for (let j = 0; j < n; j++) row[j] = C[ci + j];
    else row.fill(0);
    const ai = i * k;
    for (let p = 0; p < k; p++) {
      const a = A[ai + p];
      if (a === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) row[j] += a * B[bp + j];
    }
    for (let j = 0; j < n; j++) C[ci + j] = row[j];
  }
}

/** C[m,n] += A[k,m]ᵀ · B[k,n]  (gradient w.r.t. a weight: dYᵀ · X, accumulated over samples). */
export function mmTNacc(A: F, B: F, C: F, m: number, n: number, k: number): void {
  // Accumulate in a float64 scratch so that a float32 C sees one rounding per call.
  const acc = new Float64Array(m * n);
  for (let p = 0; p < k; p++) {
    const ap = p * m;
    const bp = p * n;
    for (let i = 0; i < m; i++) {
      const a = A[ap + i];
      if (a === 0) continue;
      const ci = i * n;
      for (let j = 0; j < n; j++) acc[ci + j] += a * B[bp + j];
    }
  }
  for (let i = 0; i < m * n; i++) C[i] += acc[i];
}
