import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Engine, LoglikelihoodRequest, RollingRequest } from '../../src/engines/engine.ts';
import { UserError } from '../../src/errors.ts';
import { runLastWord } from '../../src/eval/lastword.ts';
import { runMultipleChoice, scoreChoices } from '../../src/eval/multiple-choice.ts';
import { runPerplexity } from '../../src/eval/perplexity.ts';
import { encodePair } from '../../src/eval/requests.ts';
import { BigramEngine, BOS, charTokenizer, VOCAB } from './fakes.ts';

const close = (a: number, b: number, tol: number, msg?: string) => assert.ok(Math.abs(a - b) <= tol, `${msg ?? ''} ${a} vs ${b}`);
const tok = charTokenizer();
const id = (ch: string) => 3 + ch.charCodeAt(0) - 32;

/** Bigram log-likelihood of `text`'s characters, the first conditioned on `prev` (computed here, not by the task code). */
function bigramLL(engine: BigramEngine, prevId: number, text: string): number {
  let prev = prevId;
  let s = 0;
  for (const ch of text) {
    s += engine.row(prev)[id(ch)];
    prev = id(ch);
  }
  return s;
}

test('acc / acc_norm: lm-eval worked example and first-index ties', () => {
  assert.deepEqual(scoreChoices([-4, -6], ['cat', 'elephant'], 1), { acc: 0, accNorm: 1 });
  assert.deepEqual(scoreChoices([-4, -6], ['cat', 'elephant'], 0), { acc: 1, accNorm: 0 });
  // Tie on ll -> first index; characters are code points ("né" = 2, "ab" = 2 -> tie on norm too).
  assert.deepEqual(scoreChoices([-2, -2], ['né', 'ab'], 0), { acc: 1, accNorm: 1 });
  assert.deepEqual(scoreChoices([-3, -2], ['éé', 'a'], 0), { acc: 0, accNorm: 1 }); // -1.5 vs -2
});

test('pair encoding: trailing whitespace moves to the continuation; empty context uses the prefix token; left truncation', () => {
  const r = encodePair(tok, 'Answer: ', 'yes', { addBos: true, prefixToken: BOS, maxLength: 64 });
  assert.deepEqual(r.context, [BOS, ...'Answer:'.split('').map(id)]);
  assert.deepEqual(r.continuation, ' yes'.split('').map(id));
  const e = encodePair(tok, '', ' yes', { addBos: true, prefixToken: BOS, maxLength: 64 });
  assert.deepEqual(e.context, [BOS]);
  assert.deepEqual(e.continuation, ' yes'.split('').map(id));
  // 1 BOS + 9 context + 3 continuation = 13 tokens; window 8 fits 9 -> keep the last 6 context tokens.
  const t = encodePair(tok, 'abcdefghi', 'xyz', { addBos: true, prefixToken: BOS, maxLength: 8 });
  assert.deepEqual(t.context, 'defghi'.split('').map(id));
  assert.equal(t.truncated, 4);
  assert.deepEqual(t.continuation, 'xyz'.split('').map(id));
});

test('multiple choice with a formula engine: acc, acc_norm and stderr match a direct computation', async () => {
  const engine = new BigramEngine();
  const docs = [
    { context: 'The cat sat on the', choices: ['mat', 'elephant house', 'x'], gold: 0 },
    { context: 'Once upon a ', choices: ['time', 'tim', 'dog'], gold: 1 },
    { context: 'Q', choices: ['ab', 'ba'], gold: 1 },
    { context: 'Hello there ', choices: ['friend.', 'world', 'zzz', 'q'], gold: 3 },
  ];
  const res = await runMultipleChoice(docs, engine, tok, { task: 't', addBos: true, maxLength: 64, batchSize: 3 });
  const acc: number[] = [];
  const norm: number[] = [];
  for (const d of docs) {
    // Context keeps its trailing space out; delimiter " " + choice, moved whitespace joins it.
    const ctx = d.context.replace(/\s+$/, '');
    const lls = d.choices.map((c) => bigramLL(engine, id(ctx[ctx.length - 1]), d.context.slice(ctx.length) + ' ' + c));
    let a = 0;
    let n = 0;
    lls.forEach((ll, j) => {
      if (ll > lls[a]) a = j;
      if (ll / d.choices[j].length > lls[n] / d.choices[n].length) n = j;
    });
    acc.push(a === d.gold ? 1 : 0);
    norm.push(n === d.gold ? 1 : 0);
  }
  const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
  const se = (v: number[]) => Math.sqrt(v.reduce((x, y) => x + (y - mean(v)) ** 2, 0) / (v.length - 1) / v.length);
  const [rAcc, rNorm] = res;
  assert.equal(rAcc.metric, 'acc');
  assert.deepEqual(rAcc.items!.values, acc);
  assert.deepEqual(rNorm.items!.values, norm);
  close(rAcc.value, mean(acc), 1e-15);
  close(rNorm.value, mean(norm), 1e-15);
  if (mean(acc) > 0 && mean(acc) < 1) close(rAcc.stderr!, se(acc), 1e-15);
  assert.equal(rAcc.n, 4);
  assert.equal(engine.calls.loglikelihood, 4); // 13 choices in batches of 3
});

test('last word: acc is greedy-ness of the whole word, perplexity = exp(-mean ll) (lm-eval example exp(2))', async () => {
  const engine = new BigramEngine();
  // Build a word that IS the greedy continuation of "ab" under the bigram formula.
  let prev = id('b');
  let greedyWord = '';
  for (let i = 0; i < 3; i++) {
    const row = engine.row(prev);
    let am = 0;
    for (let v = 1; v < VOCAB; v++) if (row[v] > row[am]) am = v;
    assert.ok(am >= 3, 'formula must pick a printable character');
    greedyWord += String.fromCharCode(am - 3 + 32);
    prev = am;
  }
  const docs = [
    { context: 'ab', target: greedyWord },
    { context: 'ab', target: greedyWord.slice(0, 2) + (greedyWord[2] === 'q' ? 'r' : 'q') },
  ];
  const res = await runLastWord(docs, engine, tok, { task: 'lw', addBos: true, maxLength: 64, targetDelimiter: '' });
  assert.deepEqual(res[0].items!.values, [1, 0]);
  const lls = docs.map((d) => bigramLL(engine, id('b'), d.target));
  close(res[1].value, Math.exp(-(lls[0] + lls[1]) / 2), 1e-12);

  // lm-eval §3.2 worked example through a stub engine: lls [-1, -3, -2] -> exp(2).
  const stub = {
    info: { engine: 'stub', model: 's', maxLength: 64, vocabSize: VOCAB, prefixToken: BOS },
    async loglikelihood(reqs: readonly LoglikelihoodRequest[]) {
      return reqs.map((r, i) => ({ logprob: [-1, -3, -2][i], isGreedy: i === 0, tokenLogprobs: new Float64Array(r.continuation.length) }));
    },
  } as unknown as Engine;
  const r2 = await runLastWord(
    ['a', 'b', 'c'].map((w) => ({ context: 'x', target: w })),
    stub,
    tok,
    { task: 'lw', addBos: true, maxLength: 64, batchSize: 10, bootstrap: { iters: 200, seed: 1 } },
  );
  close(r2[0].value, 1 / 3, 1e-15);
  close(r2[0].stderr!, Math.sqrt((1 / 3) * (2 / 3) / 2), 1e-15);
  close(r2[1].value, 7.38905609893065, 1e-12);
  assert.ok(r2[1].stderr! > 0);
});

/** A stub whose rolling log-likelihood per document is given, spread evenly over its tokens. */
function rollingStub(lls: number[], maxLength = 512): Engine & { seen: number[][] } {
  const seen: number[][] = [];
  let k = 0;
  return {
    seen,
    info: { engine: 'stub', model: 's', maxLength, vocabSize: VOCAB, prefixToken: BOS },
    async loglikelihoodRolling(reqs: readonly RollingRequest[]) {
      return reqs.map((r) => {
        seen.push([...r.tokens]);
        const ll = lls[k++];
        return { logprob: ll, tokenLogprobs: new Float64Array(r.tokens.length).fill(ll / r.tokens.length) };
      });
    },
  } as unknown as Engine & { seen: number[][] };
}

test('rolling perplexity: lm-eval §3.3 worked examples (one and two documents)', async () => {
  const d1 = 'aaaaa bbbbb ccccc ddddd eeeeee'; // 5 words, 30 bytes
  const d2 = 'aaaa '.repeat(11) + 'bbb ccc ddd eee'; // 15 words, 70 bytes
  assert.equal(d1.length, 30);
  assert.equal(d2.length, 70);
  const one = await runPerplexity([d1], rollingStub([-20]), tok, { task: 'p', maxLength: 512, bos: 'prefix' });
  const byName = (r: typeof one) => Object.fromEntries(r.map((m) => [m.metric, m]));
  const m1 = byName(one);
  close(m1.word_perplexity.value, 54.598150033144236, 1e-10);
  close(m1.byte_perplexity.value, 1.9477340410546757, 1e-12);
  close(m1.bits_per_byte.value, 0.9617966939259756, 1e-12);
  assert.equal(m1.word_perplexity.stderr, null); // one document: nothing to resample

  const two = await runPerplexity([d1, d2], rollingStub([-20, -40]), tok, { task: 'p', maxLength: 512, bos: 'prefix', bootstrap: { iters: 200, seed: 1 } });
  const m2 = byName(two);
  close(m2.word_perplexity.value, Math.exp(3), 1e-12); // 20.086
  close(m2.byte_perplexity.value, Math.exp(0.6), 1e-12); // 1.8221
  close(m2.bits_per_byte.value, 0.6 / Math.LN2, 1e-12); // 0.8656
  close(m2.token_perplexity.value, Math.exp(60 / 100), 1e-12); // char tokens = bytes here
  assert.deepEqual(m2.word_perplexity.extra!.words, 20);
  assert.deepEqual(m2.byte_perplexity.extra!.bytes, 100);
  assert.equal(m2.byte_perplexity.extra!.bosInDocument, 0);
  assert.ok(m2.word_perplexity.stderr! > 0);
  assert.deepEqual(m2.word_perplexity.items!.weights, [5, 15]);
});

test('rolling perplexity: BOS policy decides whether the document tokens start with BOS', async () => {
  const e1 = rollingStub([-5]);
  const r1 = await runPerplexity(['ab c'], e1, tok, { task: 'p', maxLength: 512, bos: 'prefix' });
  assert.deepEqual(e1.seen[0], 'ab c'.split('').map(id));
  const e2 = rollingStub([-5]);
  const r2 = await runPerplexity(['ab c'], e2, tok, { task: 'p', maxLength: 512, bos: 'document' });
  assert.deepEqual(e2.seen[0], [BOS, ...'ab c'.split('').map(id)]);
  assert.equal(r1[0].extra!.tokens, 4);
  assert.equal(r2[0].extra!.tokens, 5);
  assert.equal(r2[0].extra!.bosInDocument, 1);
  close(r2[0].value, Math.exp(5 / 5), 1e-12);
  await assert.rejects(runPerplexity(['x'], rollingStub([-1], 256), tok, { task: 'p', maxLength: 512, bos: 'prefix' }), UserError);
});

test('rolling perplexity with the formula engine equals the direct bigram sum; words counted as lm-eval', async () => {
  const engine = new BigramEngine();
  const docs = [' lead space', 'two words', 'x'];
  const res = await runPerplexity(docs, engine, tok, { task: 'p', maxLength: 64, bos: 'prefix', metrics: ['word_perplexity', 'token_perplexity'] });
  const ll = docs.reduce((s, d) => s + bigramLL(engine, BOS, d), 0);
  // " lead space" splits into 3 pieces on \s+ (leading empty piece), "two words" 2, "x" 1.
  close(res[0].value, Math.exp(-ll / 6), 1e-12);
  close(res[1].value, Math.exp(-ll / (11 + 9 + 1)), 1e-12);
});
