import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rollingWindows } from '../../src/engines/rolling.ts';

const BOS = -1; // a marker that cannot be a document token
const doc = (n: number) => Array.from({ length: n }, (_, i) => i);
// Tables transcribed from lm-eval.md §2.1: [fed tokens, context tokens].
const view = (n: number, L: number) =>
  rollingWindows(doc(n), L, BOS).map((w) => ({
    fed: w.tokens.map((t) => (t === BOS ? 'BOS' : String(t))).join(' '),
    ctx: w.tokens.slice(0, w.contextLength).map((t) => (t === BOS ? 'BOS' : String(t))).join(' '),
    scored: w.tokens.slice(w.contextLength).join(' '),
  }));

test('N=10, L=4 (lm-eval.md §2.1 table)', () => {
  assert.deepEqual(view(10, 4), [
    { fed: 'BOS 0 1 2 3', ctx: 'BOS', scored: '0 1 2 3' },
    { fed: '3 4 5 6 7', ctx: '3', scored: '4 5 6 7' },
    { fed: '5 6 7 8 9', ctx: '5 6 7', scored: '8 9' },
  ]);
});

test('N=7, L=4', () => {
  assert.deepEqual(view(7, 4), [
    { fed: 'BOS 0 1 2 3', ctx: 'BOS', scored: '0 1 2 3' },
    { fed: '2 3 4 5 6', ctx: '2 3', scored: '4 5 6' },
  ]);
});

test('N=9, L=4', () => {
  assert.deepEqual(view(9, 4), [
    { fed: 'BOS 0 1 2 3', ctx: 'BOS', scored: '0 1 2 3' },
    { fed: '3 4 5 6 7', ctx: '3', scored: '4 5 6 7' },
    { fed: '4 5 6 7 8', ctx: '4 5 6 7', scored: '8' },
  ]);
});

test('N=3, L=4: one short window', () => {
  assert.deepEqual(view(3, 4), [{ fed: 'BOS 0 1 2', ctx: 'BOS', scored: '0 1 2' }]);
});

test('N=10, L=3', () => {
  assert.deepEqual(view(10, 3), [
    { fed: 'BOS 0 1 2', ctx: 'BOS', scored: '0 1 2' },
    { fed: '2 3 4 5', ctx: '2', scored: '3 4 5' },
    { fed: '5 6 7 8', ctx: '5', scored: '6 7 8' },
    { fed: '6 7 8 9', ctx: '6 7 8', scored: '9' },
  ]);
});

test('N=0: no windows', () => {
  assert.deepEqual(rollingWindows([], 4, BOS), []);
});

test('every token scored exactly once, in order, and windows fit L+1', () => {
  for (let n = 1; n <= 40; n++) {
    for (let L = 1; L <= 9; L++) {
      const ws = rollingWindows(doc(n), L, BOS);
      const scored: number[] = [];
      for (const w of ws) {
        assert.ok(w.tokens.length <= L + 1 && w.contextLength >= 1);
        assert.equal(w.scoredCount, w.tokens.length - w.contextLength);
        const s = w.tokens.slice(w.contextLength);
        assert.deepEqual(s, doc(n).slice(w.scoredStart, w.scoredStart + w.scoredCount));
        scored.push(...s);
      }
      assert.deepEqual(scored, doc(n));
    }
  }
});

test('rejects a non-positive window length', () => {
  assert.throws(() => rollingWindows([1, 2], 0, 0), RangeError);
});
