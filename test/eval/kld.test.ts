import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TopLogprobsResult } from '../../src/engines/engine.ts';
import { UserError } from '../../src/errors.ts';
import { buildKldWindows, compareWithBase, kldMetrics, loadKldBase, runKld, saveKldBase, type KldBase } from '../../src/eval/kld.ts';
import { BigramEngine, BOS, charTokenizer, VOCAB } from './fakes.ts';

const close = (a: number, b: number, tol: number, msg?: string) => assert.ok(Math.abs(a - b) <= tol, `${msg ?? ''} ${a} vs ${b}`);

/** A one-window "base" and "quant" over given per-position distributions (window = [x0, targets...]). */
function toy(B: number[][], Q: number[][], targets: number[], k: number) {
  const V = B[0].length;
  const P = B.length;
  const order = (p: number[]) => p.map((_, v) => v).sort((a, b) => p[b] - p[a] || a - b);
  const base: KldBase = {
    windowLength: P + 1,
    nWindows: 1,
    first: 0,
    k,
    vocabSize: V,
    tokens: Int32Array.from([0, ...targets]),
    ids: new Int32Array(P * k),
    logprobs: new Float32Array(P * k),
    targetLogprobs: Float64Array.from(targets.map((t, p) => Math.log(B[p][t]))),
  };
  const q: TopLogprobsResult = { positions: P, k, ids: new Int32Array(P * k), logprobs: new Float32Array(P * k), targetLogprobs: Float64Array.from(targets.map((t, p) => Math.log(Q[p][t]))) };
  for (let p = 0; p < P; p++) {
    const ob = order(B[p]);
    const oq = order(Q[p]);
    for (let j = 0; j < k; j++) {
      base.ids[p * k + j] = ob[j];
      base.logprobs[p * k + j] = Math.log(B[p][ob[j]]);
      q.ids[p * k + j] = oq[j];
      q.logprobs[p * k + j] = Math.log(Q[p][oq[j]]);
    }
  }
  return { base, q };
}

test('KLD toy example of leaderboards.md §2.2 (vocab 3, k = vocab: exact)', () => {
  const B = [
    [0.7, 0.2, 0.1],
    [0.1, 0.1, 0.8],
  ];
  const Q = [
    [0.6, 0.3, 0.1],
    [0.5, 0.1, 0.4],
  ];
  const { base, q } = toy(B, Q, [1, 2], 3);
  const p = compareWithBase(base, [q]);
  close(p.kld[0], 0.7 * Math.log(0.7 / 0.6) + 0.2 * Math.log(0.2 / 0.3), 1e-7);
  close(p.kld[0], 0.026812, 1e-6);
  close(p.kld[1], 0.393574, 1e-6);
  close(p.deltaP[0], 0.1, 1e-7);
  close(p.deltaP[1], -0.4, 1e-7);
  assert.deepEqual([...p.sameTop], [1, 0]);
  const m = Object.fromEntries(kldMetrics(p, 'kld', ['kld', 'same_top_p', 'delta_p', 'rms_delta_p', 'ppl', 'ppl_base', 'ln_ppl_ratio', 'ppl_ratio']).map((r) => [r.metric, r]));
  close(m.kld.value, 0.210193, 1e-6);
  close(m.kld.extra!.median, 0.210193, 1e-6);
  close(m.kld.extra!.max, 0.393574, 1e-6);
  close(m.same_top_p.value, 0.5, 1e-15);
  close(m.same_top_p.stderr!, 0.5, 1e-15); // sqrt(0.25 / 1)
  close(m.delta_p.value, -0.15, 1e-7);
  close(m.rms_delta_p.value, 0.291548, 1e-6);
  close(m.ppl_base.value, 2.5, 1e-6);
  close(m.ppl.value, 2.886751, 1e-6);
  close(m.ln_ppl_ratio.value, 0.143841, 1e-6);
  close(m.ppl_ratio.value, 1.154701, 1e-6);
  assert.equal(m.kld.extra!.exact, undefined); // set by runKld only
});

test('KLD with k < vocab: coarse-grained onto S + rest, a lower bound of the exact KL', () => {
  const B = [[0.5, 0.25, 0.15, 0.06, 0.04]];
  const Q = [[0.4, 0.19, 0.1, 0.21, 0.1]];
  // k = 2: base top-2 = {0, 1}, quant top-2 = {0, 3}; S = {0} (the only id whose Q is known).
  const { base, q } = toy(B, Q, [1], 2);
  const p = compareWithBase(base, [q]);
  const expected = 0.5 * Math.log(0.5 / 0.4) + 0.5 * Math.log(0.5 / 0.6);
  close(p.kld[0], expected, 1e-7);
  const exact = B[0].reduce((s, b, v) => s + b * Math.log(b / Q[0][v]), 0);
  assert.ok(p.kld[0] <= exact);
  close(p.baseMass[0], 0.5, 1e-7);
  // k = 3: base top-3 {0,1,2}, quant top-3 {0,3,1} -> S = {0,1}; rest B 0.25, Q 0.41.
  const t3 = toy(B, Q, [1], 3);
  const e3 = 0.5 * Math.log(0.5 / 0.4) + 0.25 * Math.log(0.25 / 0.19) + 0.25 * Math.log(0.25 / 0.41);
  close(compareWithBase(t3.base, [t3.q]).kld[0], e3, 1e-7);
  // k = vocab: exact.
  const t5 = toy(B, Q, [1], 5);
  close(compareWithBase(t5.base, [t5.q]).kld[0], exact, 1e-7);
});

test('windows: stories joined with BOS, cut into full windows, first token BOS', () => {
  const tok = charTokenizer();
  const w = buildKldWindows(['abc', 'de', 'fghij'], tok, 4);
  // stream: B a b c B d e B f g h i j (13 tokens) -> 3 windows of 4, remainder dropped.
  const id = (c: string) => 3 + c.charCodeAt(0) - 32;
  assert.equal(w.nWindows, 3);
  assert.deepEqual([...w.tokens], [BOS, id('a'), id('b'), id('c'), BOS, id('d'), id('e'), BOS, BOS, id('g'), id('h'), id('i')]);
});

test('runKld end to end: same model -> 0; perturbed model matches a direct full-vocabulary computation; cache round trip', async () => {
  const tok = charTokenizer();
  const texts = ['Once upon a time there was a cat.', 'The dog ran to the park and played all day long.', 'Lily had a red ball.'];
  const base = new BigramEngine(2, 0, 32);
  const quant = new BigramEngine(2, 0.3, 32);
  const L = 16;
  const same = await runKld(texts, new BigramEngine(2, 0, 32), tok, { task: 'kld', metrics: ['kld', 'same_top_p'], windowLength: L, topK: 0, score: 'second-half', base: { engine: base } });
  close(same[0].value, 0, 1e-6);
  assert.equal(same[1].value, 1);

  const dir = mkdtempSync(join(tmpdir(), 'kld-'));
  try {
    const cache = join(dir, 'base.safetensors');
    const res = await runKld(texts, quant, tok, { task: 'kld', metrics: ['kld', 'same_top_p'], windowLength: L, topK: 0, score: 'second-half', base: { engine: base, cachePath: cache } });
    // Direct: rebuild the token stream by hand, score positions L/2 .. L-2 of each window.
    const stream: number[] = [];
    for (const t of texts) stream.push(BOS, ...tok.encode(t, { addBos: false }));
    const nW = Math.floor(stream.length / L);
    const kl: number[] = [];
    let agree = 0;
    for (let w = 0; w < nW; w++) {
      const win = stream.slice(w * L, (w + 1) * L);
      win[0] = BOS;
      for (let pos = L / 2; pos <= L - 2; pos++) {
        const b = base.row(win[pos]);
        const qq = quant.row(win[pos]);
        let s = 0;
        for (let v = 0; v < VOCAB; v++) s += Math.exp(b[v]) * (b[v] - qq[v]);
        kl.push(s);
        const am = (r: Float64Array) => r.indexOf(Math.max(...r));
        if (am(b) === am(qq)) agree++;
      }
    }
    const mean = kl.reduce((a, b) => a + b, 0) / kl.length;
    assert.ok(mean > 0.001, 'the perturbation must matter for the test to mean anything');
    close(res[0].value, mean, 1e-5);
    close(res[1].value, agree / kl.length, 1e-12);
    assert.equal(res[0].n, kl.length);
    assert.equal(res[0].extra!.exact, 1);

    const loaded = loadKldBase(cache);
    assert.equal(loaded.k, VOCAB);
    const again = await runKld(texts, quant, tok, { task: 'kld', metrics: ['kld', 'same_top_p'], windowLength: L, topK: 0, score: 'second-half', base: { cached: loaded } });
    assert.deepEqual(again, res);
    // A cache for other text is refused.
    await assert.rejects(
      runKld(['Something else entirely, long enough for windows.'], quant, tok, { task: 'kld', metrics: ['kld'], windowLength: L, topK: 0, score: 'second-half', base: { cached: loaded } }),
      UserError,
    );
    // Top-k below vocab gives a lower bound, close to exact for a peaked model.
    const approx = await runKld(texts, quant, tok, { task: 'kld', metrics: ['kld'], windowLength: L, topK: 8, score: 'second-half', base: { engine: base } });
    assert.ok(approx[0].value <= mean + 1e-9 && approx[0].value > 0);
    assert.equal(approx[0].extra!.exact, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('saveKldBase writes the same bytes twice', async () => {
  const { base } = toy([[0.7, 0.2, 0.1]], [[0.6, 0.3, 0.1]], [1], 3);
  const dir = mkdtempSync(join(tmpdir(), 'kld-'));
  try {
    const { readFileSync } = await import('node:fs');
    saveKldBase(join(dir, 'a'), base);
    saveKldBase(join(dir, 'b'), base);
    assert.deepEqual(readFileSync(join(dir, 'a')), readFileSync(join(dir, 'b')));
    const back = loadKldBase(join(dir, 'a'));
    assert.deepEqual([...back.logprobs], [...base.logprobs]);
    assert.deepEqual([...back.targetLogprobs], [...base.targetLogprobs]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
