/** SplitMix64 without BigInt: published vectors, and every output against a BigInt reference written here. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashSeed, SplitMix64, uniformSource } from '../../src/stats/index.ts';

/** Reference SplitMix64 straight from the published algorithm, on BigInt. */
class RefSplitMix64 {
  private s: bigint;
  constructor(seed: bigint) {
    this.s = BigInt.asUintN(64, seed);
  }
  next(): bigint {
    this.s = BigInt.asUintN(64, this.s + 0x9e3779b97f4a7c15n);
    let z = this.s;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  }
}

test('SplitMix64 matches the published vectors for seed 1234567', () => {
  const r = new SplitMix64(1234567);
  const got = [1, 2, 3, 4, 5].map(() => r.nextU64().toString());
  assert.deepEqual(got, ['6457827717110365317', '3203168211198807973', '9817491932198370423', '4593380528125082431', '16408922859458223821']);
});

test('SplitMix64 (32-bit halves) equals the BigInt reference: u64, floats, ints, block draws', () => {
  // Seeds that exercise the carry out of the low half, the top bit, negative and bigint seeds.
  const seeds: (number | bigint)[] = [0, 1, 1234567, 0xffffffff, 2 ** 32, 2 ** 53 - 1, -1, 0xffffffffffffffffn, 0x8000000080000000n];
  for (const seed of seeds) {
    const ref = new RefSplitMix64(BigInt(seed));
    const g = new SplitMix64(seed);
    for (let i = 0; i < 3000; i++) {
      const want = ref.next();
      const k = i % 3;
      if (k === 0) assert.equal(g.nextU64(), want, `seed ${seed} draw ${i}`);
      else if (k === 1) assert.equal(g.nextFloat(), Number(want >> 11n) / 2 ** 53, `seed ${seed} draw ${i}`);
      else assert.equal(g.nextInt(1000), Number(((want >> 32n) * 1000n) >> 32n), `seed ${seed} draw ${i}`);
    }
    // Block draws continue the same stream and equal floor(hi32 * n / 2^32).
    const n = 500;
    const idx = new Int32Array(777);
    g.fillInts(idx, n);
    for (let i = 0; i < idx.length; i++) assert.equal(idx[i], Number(((ref.next() >> 32n) * BigInt(n)) >> 32n));
    g.fillInts(idx.subarray(0, 5), n); // a shorter block after a longer one
    for (let i = 0; i < 5; i++) assert.equal(idx[i], Number(((ref.next() >> 32n) * BigInt(n)) >> 32n));
    assert.equal(g.nextU64(), ref.next());
  }
});

test('SplitMix64 floats and ints are in range and seeded; uniformSource is the float stream', () => {
  const a = new SplitMix64(7);
  const b = new SplitMix64(7);
  for (let i = 0; i < 1000; i++) {
    const x = a.nextFloat();
    assert.ok(x >= 0 && x < 1);
    assert.equal(x, b.nextFloat());
    const k = a.nextInt(10);
    assert.ok(Number.isInteger(k) && k >= 0 && k < 10);
    b.nextInt(10);
  }
  const u = uniformSource(9);
  const c = new SplitMix64(9);
  for (let i = 0; i < 10; i++) assert.equal(u(), c.nextFloat());
  assert.throws(() => new SplitMix64(1.5), RangeError);
});

test('hashSeed is 32-bit FNV-1a (published offset basis and test strings)', () => {
  // FNV-1a 32 vectors from the FNV reference test suite: "" -> 0x811c9dc5, "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968.
  assert.equal(hashSeed(''), 0x811c9dc5);
  assert.equal(hashSeed('a'), 0xe40c292c);
  assert.equal(hashSeed('foobar'), 0xbf9cf968);
  assert.notEqual(hashSeed('foobar', 1), hashSeed('foobar'));
});
