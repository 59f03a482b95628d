/**
 * The bundled stories260k tokenizer.json, read through src/checkpoint/tokenizer.ts, against an
 * independent implementation of llama2.c run.c's `encode` written here over the original
 * tok512.bin (../shared/fixtures), on every one of the 1000 bundled stories.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadTokenizer } from '../../src/checkpoint/tokenizer.ts';

const REPO = resolve(import.meta.dirname, '..', '..');
const MODEL = join(REPO, 'models', 'stories260k');
const TOK512 = join(REPO, '..', 'shared', 'fixtures', 'stories260k', 'tok512.bin');

/** run.c's encode, byte for byte: pieces compared as latin1 strings so bytes concatenate exactly. */
function makeRunCEncoder(bin: Buffer): (text: string, bos: boolean) => number[] {
  const vocab: string[] = [];
  const scores = new Float64Array(512);
  const lookup = new Map<string, number>();
  let off = 4;
  for (let i = 0; i < 512; i++) {
    scores[i] = bin.readFloatLE(off);
    const len = bin.readInt32LE(off + 4);
    vocab.push(bin.subarray(off + 8, off + 8 + len).toString('latin1'));
    off += 8 + len;
  }
  // run.c's str_lookup is a bsearch over sorted pieces; pieces are unique, so a map is the same.
  vocab.forEach((p, i) => lookup.set(p, i));
  const pairScore = (a: number, b: number): [number, number] => {
    const id = lookup.get(vocab[a] + vocab[b]);
    return id === undefined ? [-1, -Infinity] : [id, scores[id]];
  };
  return (text, bos) => {
    const bytes = Buffer.from(text, 'utf8');
    const tokens: number[] = [];
    if (bos) tokens.push(1);
    if (bytes.length > 0) tokens.push(lookup.get(' ')!);
    // one token per code point if it is a piece, else one per byte (b + 3)
    let start = 0;
    for (let c = 0; c < bytes.length; c++) {
      const nextIsCont = c + 1 < bytes.length && (bytes[c + 1] & 0xc0) === 0x80;
      if (nextIsCont && c + 1 - start < 4) continue;
      const cp = bytes.subarray(start, c + 1);
      const id = lookup.get(cp.toString('latin1'));
      if (id !== undefined) tokens.push(id);
      else for (const b of cp) tokens.push(b + 3);
      start = c + 1;
    }
    // merge the highest-scoring adjacent pair (strict >, so the leftmost wins ties) until none
    // is left; the pair scores are cached and refreshed next to each merge only.
    const n0 = tokens.length;
    const ids = Int32Array.from(tokens);
    const pid = new Int32Array(Math.max(n0 - 1, 0));
    const ps = new Float64Array(Math.max(n0 - 1, 0));
    for (let i = 0; i + 1 < n0; i++) [pid[i], ps[i]] = pairScore(ids[i], ids[i + 1]);
    let n = n0;
    for (;;) {
      let best = -1;
      let bestScore = -1e10;
      for (let i = 0; i + 1 < n; i++) {
        if (pid[i] !== -1 && ps[i] > bestScore) {
          bestScore = ps[i];
          best = i;
        }
      }
      if (best === -1) break;
      ids[best] = pid[best];
      ids.copyWithin(best + 1, best + 2, n);
      pid.copyWithin(best + 1, best + 2, n - 1);
      ps.copyWithin(best + 1, best + 2, n - 1);
      n--;
      if (best > 0) [pid[best - 1], ps[best - 1]] = pairScore(ids[best - 1], ids[best]);
      if (best + 1 < n) [pid[best], ps[best]] = pairScore(ids[best], ids[best + 1]);
    }
    return Array.from(ids.subarray(0, n));
  };
}

function stories(): string[] {
  const text = readFileSync(join(REPO, 'suites', 'data', 'tinystories_validation_first1000.txt'), 'utf8');
  return text
    .split('<|endoftext|>')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const runC = makeRunCEncoder(readFileSync(TOK512));
const tok = await loadTokenizer(MODEL);
const all = stories();

test('the bundled text has the 1000 stories and 792,375 bytes PROVENANCE describes', () => {
  assert.equal(all.length, 1000);
  assert.equal(all.reduce((s, x) => s + Buffer.byteLength(x), 0), 792_375);
});

test('the independent run.c encoder reproduces the prompt ids PROVENANCE gives', () => {
  assert.deepEqual(runC('Once upon a time', true), [1, 403, 407, 261, 378]);
});

test('loadTokenizer: metadata and the prompt ids', () => {
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.addBosDefault, true);
  assert.deepEqual(tok.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  assert.deepEqual(tok.encode('Once upon a time', { addBos: false }), [403, 407, 261, 378]);
  assert.equal(tok.decode([1, 403, 407, 261, 378]), 'Once upon a time');
});

test('token ids equal run.c encode on all 1000 stories; total 389,336 tokens without BOS', () => {
  let total = 0;
  const t0 = performance.now();
  const ours = all.map((s) => tok.encode(s, { addBos: false }));
  const ms = performance.now() - t0;
  for (let i = 0; i < all.length; i++) {
    const ref = runC(all[i], false);
    assert.deepEqual(ours[i], ref, `story ${i} differs`);
    total += ref.length;
  }
  assert.equal(total, 389_336);
  process.stderr.write(`# encoded 1000 stories (${all.reduce((s, x) => s + x.length, 0)} chars) in ${ms.toFixed(0)} ms\n`);
});

test('decode(encode(text)) == text for all 1000 stories, with and without BOS', () => {
  for (let i = 0; i < all.length; i++) {
    assert.equal(tok.decode(tok.encode(all[i])), all[i], `story ${i}`);
    assert.equal(tok.decode(tok.encode(all[i], { addBos: false })), all[i], `story ${i}`);
  }
});

test('edge cases follow run.c: empty text, leading/double spaces, byte fallback, newlines', () => {
  const cases = ['', ' ', '  x', 'a  b', 'line\n\nnext', 'tab\there', '日本語 ok', 'emoji 🙂!', 'â€™ mojibake', 'caf\u00e9 \u00a0nbsp', 'x\u200ay'];
  for (const c of cases) {
    assert.deepEqual(tok.encode(c), runC(c, true), JSON.stringify(c));
    assert.equal(tok.decode(tok.encode(c)), c, JSON.stringify(c));
  }
  assert.deepEqual(tok.encode(''), [1]);
  assert.deepEqual(tok.encode('', { addBos: false }), []);
  assert.equal(tok.decode([]), '');
  // byte fallback: '日' is not a piece, so its three UTF-8 bytes come out as ids b+3
  assert.deepEqual(tok.encode('日', { addBos: false }), [410, 0xe6 + 3, 0x97 + 3, 0xa5 + 3]);
});

test('seeded fuzz over the letters of the pieces with several splits (the/he/her/ver/...) matches run.c', () => {
  // these pieces have more than one split into two pieces, where merge ranks could disagree with run.c's rule
  const letters = 'therversonkdau  ';
  let seed = 7;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let n = 0; n < 20000; n++) {
    let s = '';
    for (let k = 1 + Math.floor(rand() * 14); k > 0; k--) s += letters[Math.floor(rand() * letters.length)];
    assert.deepEqual(tok.encode(s, { addBos: false }), runC(s, false), JSON.stringify(s));
  }
});

test('loadTokenizer: a missing directory is a one-line UserError', async () => {
  await assert.rejects(loadTokenizer(join(REPO, 'no-such-model')), { name: 'UserError', message: /tokenizer\.json: missing/ });
});

test('loadTokenizer: without add_bos_token the BOS policy follows the post-processor (Llama 3 style)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tok-'));
  try {
    const json = JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8'));
    writeFileSync(join(tmp, 'tokenizer_config.json'), JSON.stringify({ bos_token: { content: '<s>' }, eos_token: '</s>' }));
    copyFileSync(join(MODEL, 'tokenizer.json'), join(tmp, 'tokenizer.json'));
    const withPost = await loadTokenizer(tmp);
    assert.equal(withPost.addBosDefault, true);
    assert.deepEqual(withPost.encode('Once'), [1, 403]);
    writeFileSync(join(tmp, 'tokenizer.json'), JSON.stringify({ ...json, post_processor: null }));
    const noPost = await loadTokenizer(tmp);
    assert.equal(noPost.addBosDefault, false);
    assert.deepEqual(noPost.encode('Once'), [403]);
    assert.deepEqual(noPost.encode('Once', { addBos: true }), [1, 403]);
    writeFileSync(join(tmp, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<nope>' }));
    await assert.rejects(loadTokenizer(tmp), { name: 'UserError', message: /bos_token '<nope>' is not in tokenizer\.json/ });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
