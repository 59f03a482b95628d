import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../src/errors.ts';
import { buildCloze, buildLastWord, buildSuiteData, SUITE_DATA_FILES } from '../../src/eval/builders.ts';
import { readJsonlItems, suiteTexts } from '../../src/eval/index.ts';
import { countBytes, countWords, parseStories, splitLastSentence, splitLastWord } from '../../src/eval/text.ts';
import { listSuites, loadSuite, parseSuite, SUITES_DIR } from '../../src/matrix/suites.ts';

const storiesPath = join(SUITES_DIR, 'data/tinystories_validation_first1000.txt');

test('word and byte counting as lm-eval (split on \\s+, UTF-8 bytes)', () => {
  assert.equal(countWords('a b'), 2);
  assert.equal(countWords(' a b'), 3);
  assert.equal(countWords(''), 1);
  assert.equal(countWords('a\n\n b\tc'), 3);
  assert.equal(countBytes('héllo'), 6);
  assert.equal(countBytes('â€™'), 8); // mojibake: U+00E2 (2) + U+20AC (3) + U+2122 (3)
});

test('the bundled story file: 1000 stories, stripped, byte and word totals of PROVENANCE.md', () => {
  const stories = parseStories(readFileSync(storiesPath, 'utf8'));
  assert.equal(stories.length, 1000);
  assert.ok(stories[0].startsWith('Spot. Spot saw the shiny car'));
  assert.equal(stories.reduce((s, t) => s + countBytes(t), 0), 792375);
  assert.equal(stories.reduce((s, t) => s + countWords(t), 0), 154689);
  assert.equal(stories.filter((s) => s.includes('â€')).length >= 1, true);
});

test('sentence and last-word rules on hand-made stories', () => {
  assert.deepEqual(splitLastSentence('Tom ran. He fell! "Ouch," he said. "It hurts. Help me."'), {
    context: 'Tom ran. He fell! "Ouch," he said. ',
    sentence: '"It hurts. Help me."',
  });
  assert.deepEqual(splitLastSentence('One.\n\nTwo? Three'), { context: 'One.\n\nTwo? ', sentence: 'Three' });
  assert.equal(splitLastSentence('Only one sentence.'), null);
  assert.deepEqual(splitLastSentence('We met. Mrs. Jones smiled.'), { context: 'We met. ', sentence: 'Mrs. Jones smiled.' });
  assert.deepEqual(splitLastWord('They lived happily ever after.'), { context: 'They lived happily ever ', word: 'after', dropped: '.' });
  assert.deepEqual(splitLastWord('She said, "I didn\'t!"'), { context: 'She said, "I ', word: "didn't", dropped: '!"' });
  assert.deepEqual(splitLastWord('The End'), { context: 'The ', word: 'End', dropped: '' });
  assert.equal(splitLastWord('42.'), null);
});

test('cloze and last-word builders are deterministic and match the committed files', () => {
  const a = buildSuiteData(SUITES_DIR);
  const b = buildSuiteData(SUITES_DIR);
  assert.equal(a.cloze, b.cloze);
  assert.equal(a.lastword, b.lastword);
  assert.equal(readFileSync(join(SUITES_DIR, SUITE_DATA_FILES.cloze), 'utf8'), a.cloze, 'suites/data cloze is stale: run scripts/build-suites.ts');
  assert.equal(readFileSync(join(SUITES_DIR, SUITE_DATA_FILES.lastword), 'utf8'), a.lastword, 'suites/data lastword is stale');
});

test('cloze items re-derived directly from the scored stories', () => {
  const stories = parseStories(readFileSync(storiesPath, 'utf8'));
  const scored = stories.slice(500);
  const items = buildCloze(scored, 501);
  assert.ok(items.length >= 490 && items.length <= 500);
  const lastSentences = new Set(items.map((it) => it.choices[it.gold]));
  const goldCount = [0, 0, 0, 0];
  for (const it of items) {
    const story = stories[it.story - 1];
    assert.ok(it.story >= 501, 'calibration stories must never be scored');
    // The context plus the gold choice is the whole story.
    assert.equal(it.context + it.choices[it.gold], story);
    assert.equal(new Set(it.choices).size, 4);
    for (const c of it.choices) assert.ok(lastSentences.has(c), 'every distractor is a last sentence of a scored story');
    goldCount[it.gold]++;
  }
  for (const g of goldCount) assert.ok(g > items.length / 4 - 50, `gold positions roughly uniform: ${goldCount}`);
  // Story 501 by hand: it ends with the quoted reply as its own last sentence.
  const s501 = items.find((it) => it.story === 501)!;
  assert.equal(s501.choices[s501.gold], 'His mum and dad smiled, and said, "Yes Jake, it sure was!"');
});

test('last-word items re-derived directly', () => {
  const stories = parseStories(readFileSync(storiesPath, 'utf8'));
  const items = buildLastWord(stories.slice(500), 501);
  assert.ok(items.length >= 495);
  for (const it of items) {
    const story = stories[it.story - 1];
    assert.ok(story.startsWith(it.context + it.target));
    const rest = story.slice(it.context.length + it.target.length);
    assert.ok(!/[\p{L}\p{N}]/u.test(rest), `only punctuation follows the word: ${JSON.stringify(rest)}`);
    assert.ok(/^[\p{L}\p{N}'’-]+$/u.test(it.target));
  }
  const first = items[0];
  assert.equal(first.story, 501);
  assert.ok(stories[500].endsWith('it sure was!"'));
  assert.equal(first.target, 'was');
});

test('every committed suite validates and its data loads', () => {
  const names = listSuites();
  assert.deepEqual(names, ['kld', 'tinystories-cloze', 'tinystories-lastword', 'tinystories-ppl']);
  for (const n of names) {
    const s = loadSuite(n);
    assert.equal(s.split.from, 501);
    assert.equal(s.split.to, 1000);
    if (s.format === 'stories') assert.equal(suiteTexts(s).length, 500);
    else assert.ok(readJsonlItems(s).length >= 490);
  }
  const ppl = loadSuite('tinystories-ppl');
  assert.equal(ppl.task, 'perplexity');
  if (ppl.task === 'perplexity') assert.equal(ppl.params.maxLength, 512);
});

test('bad suite files give one-line UserErrors naming the problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'suites-'));
  try {
    const good = JSON.parse(readFileSync(join(SUITES_DIR, 'tinystories-ppl.json'), 'utf8'));
    const check = (name: string, content: string, pattern: RegExp) => {
      writeFileSync(join(dir, `${name}.json`), content);
      assert.throws(
        () => loadSuite(name, dir),
        (e: unknown) => e instanceof UserError && !e.message.includes('\n') && pattern.test(e.message),
        name,
      );
    };
    check('broken', '{ "name": ', /not valid JSON/);
    check('wrongmetric', JSON.stringify({ ...good, name: 'wrongmetric', metrics: ['acc'] }), /metrics\.0/);
    check('calib', JSON.stringify({ ...good, name: 'calib', split: { from: 1, to: 1000 } }), /reserved for calibration/);
    check('mismatch', JSON.stringify({ ...good }), /differs from its file name/);
    check('extra', JSON.stringify({ ...good, name: 'extra', colour: 'red' }), /colour/);
    check('badtask', JSON.stringify({ ...good, name: 'badtask', task: 'summarize' }), /task/);
    assert.throws(() => loadSuite('tinystories-pl'), (e: unknown) => e instanceof UserError && /did you mean 'tinystories-ppl'/.test(e.message));
    assert.throws(() => parseSuite({ ...good, split: { from: 900, to: 600 } }, join(dir, 'tinystories-ppl.json')), /after split\.to/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runSuite wires suites to tasks, reports progress, and asks for a base on kld', async () => {
  const { runSuite } = await import('../../src/eval/index.ts');
  const { BigramEngine, charTokenizer } = await import('./fakes.ts');
  const engine = new BigramEngine(2, 0, 512);
  const tok = charTokenizer();
  const events: string[] = [];
  const ppl = await runSuite(loadSuite('tinystories-ppl'), engine, tok, { limit: 3, onProgress: (p) => events.push(`${p.task}:${p.batch}/${p.batches}`) });
  assert.deepEqual(events, ['tinystories-ppl:1/1']);
  assert.deepEqual(ppl.map((m) => m.metric), ['token_perplexity', 'word_perplexity', 'byte_perplexity', 'bits_per_byte']);
  assert.equal(ppl[0].n, 3);
  const lw = await runSuite(loadSuite('tinystories-lastword'), engine, tok, { limit: 4 });
  assert.deepEqual(lw.map((m) => [m.metric, m.n]), [['acc', 4], ['perplexity', 4]]);
  const mc = await runSuite(loadSuite('tinystories-cloze'), engine, tok, { limit: 2 });
  assert.deepEqual(mc.map((m) => [m.metric, m.n]), [['acc', 2], ['acc_norm', 2]]);
  await assert.rejects(runSuite(loadSuite('kld'), engine, tok, { limit: 2 }), (e: unknown) => e instanceof UserError && /--base/.test(e.message));
});
