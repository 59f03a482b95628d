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
const INV_2_16 = 1 / 65536;
const INV_2_32 = 1 / TWO32;

/** High 32 bits of the 64-bit product of two uint32s (16-bit limbs keep every step exact in doubles). */
function mulhi32(a: number, b: number): number {
  const a1 = a >>> 16;
  const a0 = a & 0xffff;
  const b1 = b >>> 16;
  const b0 = b & 0xffff;
  const mid = a1 * b0 + a0 * b1; // < 2^33
  return a1 * b1 + (((mid + ((a0 * b0) >>> 16)) * INV_2_16) >>> 0); // floor: value < 2^18
}

/**
 * SplitMix64 (Steele, Lea & Flood 2014; Java's SplittableRandom, Vigna's recommended
 * seeder). Kept over faster 32-bit generators because it has published test vectors (seed
 * 1234567 gives 6457827717110365317, 3203168211198807973, ...), which the tests check.
 * The 64-bit state is two uint32 halves, multiplied with Math.imul and 16-bit limbs instead
 * of BigInt (BigInt made the report's ~10^9 draws 25x slower); the tests check every output
 * against a BigInt reference. Hot loops draw in blocks (fillInts): the state then lives in
 * registers for the whole block.
 */
export class SplitMix64 {
  private sHi: number;
  private sLo: number;
  private readonly oneHi = new Uint32Array(1);
  private readonly oneLo = new Uint32Array(1);
  private blockHi = new Uint32Array(0);

  constructor(seed: number | bigint) {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new RangeError(`SplitMix64 seed must be an integer, got ${seed}`);
    const s = BigInt.asUintN(64, BigInt(seed)); // not hot: once per generator
    this.sHi = Number(s >> 32n) | 0;
    this.sLo = Number(s & 0xffffffffn) | 0;
  }

  /** The generator itself: the next hi.length outputs, high halves into hi, low halves into lo (if given). */
  private fillRaw(hi: Uint32Array, lo: Uint32Array | null): void {
    let sh = this.sHi;
    let sl = this.sLo;
    // Halves are kept as int32 (| 0, not >>> 0) so V8 keeps them in integer registers;
    // the bits are the same, and mulhi32 reads its inputs as unsigned.
    for (let i = 0; i < hi.length; i++) {
      // state += gamma (mod 2^64), carrying out of the low half
      sl = (sl + GAMMA_LO) | 0;
      sh = (sh + GAMMA_HI + ((sl >>> 0) < GAMMA_LO ? 1 : 0)) | 0;
      // z = (z ^ (z >>> 30)) * M1
      let l = sl ^ ((sl >>> 30) | (sh << 2));
      let h = sh ^ (sh >>> 30);
      let ph = (mulhi32(l, M1_LO) + Math.imul(h, M1_LO) + Math.imul(l, M1_HI)) | 0;
      let pl = Math.imul(l, M1_LO);
      // z = (z ^ (z >>> 27)) * M2
      l = pl ^ ((pl >>> 27) | (ph << 5));
      h = ph ^ (ph >>> 27);
      ph = (mulhi32(l, M2_LO) + Math.imul(h, M2_LO) + Math.imul(l, M2_HI)) | 0;
      // z ^ (z >>> 31); the low half only when asked for
      hi[i] = ph ^ (ph >>> 31);
      if (lo !== null) {
        pl = Math.imul(l, M2_LO);
        lo[i] = pl ^ ((pl >>> 31) | (ph << 1));
      }
    }
    this.sHi = sh;
    this.sLo = sl;
  }

  private one(): void {
    this.fillRaw(this.oneHi, this.oneLo);
  }

  /** Next 64-bit output as a BigInt in [0, 2^64) (for tests and seeding; not for hot loops). */
  nextU64(): bigint {
    this.one();
    return (BigInt(this.oneHi[0]) << 32n) | BigInt(this.oneLo[0]);
  }

  /** Uniform double in [0, 1) from the top 53 bits. */
  nextFloat(): number {
    this.one();
    return (this.oneHi[0] * 2097152 + (this.oneLo[0] >>> 11)) / 9007199254740992;
  }

  /** Uniform integer in [0, n) from the top 32 bits (multiply-shift; bias < n / 2^32; product exact for n <= 2^21). */
  nextInt(n: number): number {
    this.one();
    return Math.floor((this.oneHi[0] * n) / TWO32);
  }

  /** idx.length draws of nextInt(n), identical to calling it in a loop, much faster. */
  fillInts(idx: Int32Array, n: number): void {
    if (this.blockHi.length < idx.length) this.blockHi = new Uint32Array(idx.length);
    const hi = idx.length === this.blockHi.length ? this.blockHi : this.blockHi.subarray(0, idx.length);
    this.fillRaw(hi, null);
    for (let i = 0; i < idx.length; i++) idx[i] = Math.floor(hi[i] * n * INV_2_32);
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
