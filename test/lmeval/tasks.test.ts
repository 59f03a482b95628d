/**
 * lm-eval task files generated from our suites: the documents are the suite's own (read here
 * independently from the data files), the YAML names lm-eval's output type, fields and
 * metrics, and add_bos_token follows the suite's BOS rule. The real-lm-eval tests
 * (real.test.ts) then show lm-eval reads them as intended.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildLmEvalArgv } from '../../src/engines/lmeval/index.ts';
import { lmEvalAddBos, lmEvalTaskName, writeLmEvalTask } from '../../src/engines/lmeval/tasks.ts';
import { lmEvalHfDtype } from '../../src/engines/lmeval/suite.ts';
import { withBos } from '../../src/eval/by-engine.ts';
import { loadSuite } from '../../src/matrix/suites.ts';
import { UserError } from '../../src/errors.ts';

const SUITES = resolve(import.meta.dirname, '../../suites');
const tmp = mkdtempSync(join(tmpdir(), 'lmeval-tasks-'));
const readLines = (p: string) => readFileSync(p, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));

test('tinystories-ppl: loglikelihood_rolling over stories 501.. exactly as the story file holds them', () => {
  const suite = loadSuite('tinystories-ppl');
  const f = writeLmEvalTask(suite, join(tmp, 'ppl'), { limit: 7 });
  assert.equal(f.task, 'lowbit_tinystories_ppl');
  assert.equal(f.docs, 7);
  assert.deepEqual(f.metrics, ['word_perplexity', 'byte_perplexity', 'bits_per_byte']);
  const raw = readFileSync(join(SUITES, 'data/tinystories_validation_first1000.txt'), 'utf8').split('<|endoftext|>');
  const stories = raw.map((s) => s.trim()).filter((s) => s !== '');
  assert.deepEqual(readLines(f.dataPath).map((d) => d.text), stories.slice(500, 507));
  const y = readFileSync(f.yamlPath, 'utf8');
  assert.match(y, /^output_type: loglikelihood_rolling$/m);
  assert.match(y, /^doc_to_target: text$/m);
  assert.match(y, /^dataset_path: json$/m);
  assert.ok(y.includes(`    test: ${JSON.stringify(f.dataPath)}\n`));
  assert.match(y, /- metric: bits_per_byte\n    aggregation: bits_per_byte\n    higher_is_better: false/);
  assert.match(y, /- metric: word_perplexity\n    aggregation: weighted_perplexity/);
});

test('cloze and last word: multiple_choice and loglikelihood with the suite delimiter', () => {
  const cloze = loadSuite('tinystories-cloze');
  const c = writeLmEvalTask(cloze, join(tmp, 'c'), { limit: 3 });
  const items = readFileSync(join(SUITES, 'data/tinystories-cloze.jsonl'), 'utf8').trimEnd().split('\n').slice(0, 3).map((l) => JSON.parse(l));
  assert.deepEqual(readLines(c.dataPath), items.map((d) => ({ story: d.story, context: d.context, choices: d.choices, gold: d.gold })));
  const y = readFileSync(c.yamlPath, 'utf8');
  for (const l of ['output_type: multiple_choice', 'doc_to_text: context', 'doc_to_choice: choices', 'doc_to_target: gold', 'target_delimiter: ""']) assert.ok(y.includes(`\n${l}\n`), l);
  const lw = writeLmEvalTask(loadSuite('tinystories-lastword'), join(tmp, 'lw'));
  const yl = readFileSync(lw.yamlPath, 'utf8');
  assert.match(yl, /^output_type: loglikelihood$/m);
  assert.match(yl, /- metric: perplexity\n    aggregation: perplexity\n    higher_is_better: false/);
  assert.match(yl, /- metric: acc\n    aggregation: mean\n    higher_is_better: true/);
  assert.equal(lw.docs, readFileSync(join(SUITES, 'data/tinystories-lastword.jsonl'), 'utf8').trimEnd().split('\n').length);
  assert.throws(() => writeLmEvalTask(loadSuite('kld'), join(tmp, 'k')), (e) => e instanceof UserError && /no lm-eval counterpart/.test(e.message));
});

test('add_bos_token follows the BOS rule; task names are lm-eval-safe; FP4 loads in bfloat16', () => {
  const ppl = loadSuite('tinystories-ppl');
  const tok = { addBosDefault: true };
  assert.equal(lmEvalAddBos(ppl, tok), false, "ours: BOS only as the rolling prefix");
  assert.equal(lmEvalAddBos(ppl, tok, 'document'), true);
  assert.equal(lmEvalAddBos(withBos(ppl, 'document'), tok), true);
  assert.equal(lmEvalAddBos(loadSuite('tinystories-cloze'), tok), true, 'context tasks: the tokenizer default, as our engine');
  assert.equal(lmEvalAddBos(loadSuite('tinystories-cloze'), { addBosDefault: false }), false);
  assert.throws(() => withBos(loadSuite('tinystories-cloze'), 'document'), /perplexity suites/);
  assert.equal(lmEvalTaskName({ name: 'a-b.c' }), 'lowbit_a_b_c');
  const fp4 = { quantization_config: { config_groups: { g: { weights: { type: 'float', num_bits: 4 } } } } };
  const int4 = { quantization_config: { config_groups: { g: { weights: { type: 'int', num_bits: 4 } } } } };
  assert.equal(lmEvalHfDtype(fp4), 'bfloat16');
  assert.equal(lmEvalHfDtype(int4), 'float32');
  assert.equal(lmEvalHfDtype({}), 'float32');
});

test('argv: hf and local-completions carry every model arg explicitly', () => {
  const hf = buildLmEvalArgv({ backend: 'hf', pretrained: '/ckpt/m', tasks: ['lowbit_x'], outputPath: 'o', addBosToken: false, maxLength: 512, includePath: '/t', command: '/env/bin/lm_eval' });
  assert.equal(hf.command, '/env/bin/lm_eval');
  assert.deepEqual(hf.args, ['--model', 'hf', '--model_args', 'pretrained=/ckpt/m,dtype=float32,max_length=512,add_bos_token=False', '--tasks', 'lowbit_x', '--output_path', 'o', '--include_path', '/t', '--batch_size', '1', '--device', 'cpu', '--seed', '0']);
  const lc = buildLmEvalArgv({ backend: 'local-completions', model: 'srv', baseUrl: 'http://127.0.0.1:9/v1/completions', tokenizer: '/ckpt/m', tasks: ['t'], outputPath: 'o', addBosToken: true, maxLength: 514 });
  assert.equal(lc.args[3], 'model=srv,base_url=http://127.0.0.1:9/v1/completions,tokenizer=/ckpt/m,tokenizer_backend=huggingface,tokenized_requests=True,max_length=514,add_bos_token=True');
});
