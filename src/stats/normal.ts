/**
 * The normal distribution: one erf/erfc (accurate to ~1e-15 relative, enough to invert for
 * quantiles), the CDF, its inverse, two-sided p-values and a z-test.
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const INV_SQRT_PI = 0.5641895835477563;

/** erf(x) for 0 <= x < 2 by the all-positive series 2/sqrt(pi) e^{-x^2} sum x (2x^2)^k / (2k+1)!! (no cancellation). */
function erfSeries(x: number): number {
  const x2 = 2 * x * x;
  let term = x;
  let sum = x;
  for (let k = 1; k < 200; k++) {
    term *= x2 / (2 * k + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x * x) * sum;
}

/** erfc(x) for x >= 2 by Laplace's continued fraction e^{-x^2}/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), modified Lentz. */
function erfcFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = x + a * d;
    if (d === 0) d = tiny;
    d = 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (Math.exp(-x * x) * INV_SQRT_PI) / f;
}

/** Complementary error function. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x > 27) return 0; // below the smallest double (erfc(27) ~ 5e-319); also keeps Infinity out of the fraction
  return x < 2 ? 1 - erfSeries(x) : erfcFraction(x);
}

/** Error function. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  const r = ax < 2 ? erfSeries(ax) : ax > 27 ? 1 : 1 - erfcFraction(ax);
  return x < 0 ? -r : r;
}

/** Standard normal CDF, accurate in the lower tail (via erfc). */
export function normCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/**
 * Inverse standard normal CDF. Bisection on normCdf down to adjacent doubles: slower than
 * a rational approximation, but as exact as erfc and robust; callers need a few values.
 */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`normal quantile needs p in [0, 1], got ${p}`);
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  if (p === 0.5) return 0;
  if (p > 0.5) return -normalQuantile(1 - p); // solve in the lower tail, where p is represented exactly
  let lo = -40;
  let hi = 0;
  for (let i = 0; i < 2200; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (normCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

const zCache = new Map<number, number>();

/** z for a two-sided confidence level: zFor(0.95) = 1.959963984540054. */
export function zFor(level: number): number {
  if (!(level > 0 && level < 1)) throw new RangeError(`confidence level must be in (0, 1), got ${level}`);
  let z = zCache.get(level);
  if (z === undefined) {
    z = -normalQuantile((1 - level) / 2);
    zCache.set(level, z);
  }
  return z;
}

/** Two-sided normal p-value, P(|Z| >= |z|) = erfc(|z| / sqrt 2). */
export function twoSidedP(z: number): number {
  return erfc(Math.abs(z) / Math.SQRT2);
}

/** Two-sided z-test of the difference b - a of two independent estimates with stderrs. */
export function zTest(a: number, seA: number, b: number, seB: number): { diff: number; se: number; z: number; p: number } {
  const diff = b - a;
  const se = Math.sqrt(seA * seA + seB * seB);
  const z = se > 0 ? diff / se : diff === 0 ? 0 : Math.sign(diff) * Infinity;
  return { diff, se, z, p: twoSidedP(z) };
}
