/**
 * The project's one seeded PRNG, and the seed hash used to derive per-comparison seeds.
 * No Math.random, no Date: the same seed gives the same bits on every machine.
 */

// SplitMix64 constants as 32-bit halves (hi, lo).
const GAMMA_HI = 0x9e3779b9;
const GAMMA_LO = 0x7f4a7c15;
const M1_HI = 0xbf58476d;
const M1_LO = 0x1ce4e5b9;
const M2_HI = 0x94d049bb;
const M2_LO = 0x133111eb;
const TWO32 = 4294967296;

/** High 32 bits of the 64-bit product of two uint32s (16-bit limbs keep every step exact in doubles). */
function mulhi32(a: number, b: number): number {
  const a1 = a >>> 16;
  const a0 = a & 0xffff;
  const b1 = b >>> 16;
  const b0 = b & 0xffff;
  const mid = a1 * b0 + a0 * b1; // < 2^33
  return a1 * b1 + Math.floor((mid + ((a0 * b0) >>> 16)) / 65536);
}

/**
 * SplitMix64 (Steele, Lea & Flood 2014; Java's SplittableRandom, Vigna's recommended
 * seeder). Kept over faster 32-bit generators because it has published test vectors (seed
 * 1234567 gives 6457827717110365317, 3203168211198807973, ...), which the tests check.
 * The 64-bit state lives in two uint32 halves with Math.imul/limb products instead of
 * BigInt: the report draws ~10^9 indices, and BigInt made this the hot spot. The test
 * checks every output against a BigInt reference implementation.
 */
export class SplitMix64 {
  private sHi: number;
  private sLo: number;
  /** Halves of the latest output. */
  private oHi = 0;
  private oLo = 0;

  constructor(seed: number | bigint) {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new RangeError(`SplitMix64 seed must be an integer, got ${seed}`);
    const s = BigInt.asUintN(64, BigInt(seed)); // not hot: once per generator
    this.sHi = Number(s >> 32n);
    this.sLo = Number(s & 0xffffffffn);
  }

  /** Advance the state and compute the next output into oHi/oLo. */
  private advance(): void {
    const lo0 = this.sLo + GAMMA_LO;
    this.sLo = lo0 >>> 0;
    this.sHi = (this.sHi + GAMMA_HI + (lo0 >= TWO32 ? 1 : 0)) >>> 0;
    let h = this.sHi;
    let l = this.sLo;
    // z = (z ^ (z >>> 30)) * M1
    l = (l ^ ((l >>> 30) | (h << 2))) >>> 0;
    h = (h ^ (h >>> 30)) >>> 0;
    let ph = (mulhi32(l, M1_LO) + Math.imul(h, M1_LO) + Math.imul(l, M1_HI)) >>> 0;
    let pl = Math.imul(l, M1_LO) >>> 0;
    // z = (z ^ (z >>> 27)) * M2
    l = (pl ^ ((pl >>> 27) | (ph << 5))) >>> 0;
    h = (ph ^ (ph >>> 27)) >>> 0;
    ph = (mulhi32(l, M2_LO) + Math.imul(h, M2_LO) + Math.imul(l, M2_HI)) >>> 0;
    pl = Math.imul(l, M2_LO) >>> 0;
    // z ^ (z >>> 31)
    this.oLo = (pl ^ ((pl >>> 31) | (ph << 1))) >>> 0;
    this.oHi = (ph ^ (ph >>> 31)) >>> 0;
  }

  /** Next 64-bit output as a BigInt in [0, 2^64) (for tests and seeding; not for hot loops). */
  nextU64(): bigint {
    this.advance();
    return (BigInt(this.oHi) << 32n) | BigInt(this.oLo);
  }

  /** Top 32 bits of the next output, in [0, 2^32). */
  nextU32(): number {
    this.advance();
    return this.oHi;
  }

  /** Uniform double in [0, 1) from the top 53 bits. */
  nextFloat(): number {
    this.advance();
    return (this.oHi * 2097152 + (this.oLo >>> 11)) / 9007199254740992;
  }

  /** Uniform integer in [0, n) (n <= 2^21 keeps hi * n exact; multiply-shift, bias < n / 2^32). */
  nextInt(n: number): number {
    this.advance();
    return Math.floor((this.oHi * n) / TWO32);
  }
}

/** A `() => number` uniform source on [0, 1) for code that wants a plain function. */
export function uniformSource(seed: number | bigint): () => number {
  const r = new SplitMix64(seed);
  return () => r.nextFloat();
}

/** FNV-1a (32-bit) of a string, mixed with a seed: per-comparison seeds that do not depend on order. */
export function hashSeed(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
