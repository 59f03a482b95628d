import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.ts';
import { getModel, loadModels, modelsJsonSchema, parseModels } from '../../src/matrix/models.ts';
import { getScheme } from '../../src/quant/schemes.ts';
import { modelsJson } from '../runner/fixtures/project.ts';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');

function errorOf(mutate: (j: any) => void): string {
  const j = modelsJson() as any;
  mutate(j);
  try {
    parseModels(JSON.stringify(j), 'models.json', '/nowhere');
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
    assert.ok(!(e as Error).message.includes('\n'), 'one line');
    return (e as Error).message;
  }
  assert.fail('no error');
}

test('the committed models.json is valid and says what the issue asks for', () => {
  const m = loadModels(join(ROOT, 'models.json'));
  const s = getModel(m, 'stories260k');
  assert.equal(s.source, './models/stories260k');
  assert.equal(s.overrides.groupSize, 32, 'stories260k layers are 64 and 172 wide: group size 32');
  assert.deepEqual(s.engines, ['onnx']);
  for (const alias of ['llama3', 'qwen3']) {
    const x = getModel(m, alias);
    assert.deepEqual(x.engines, ['vllm']);
    assert.ok(/^[0-9a-f]{40}$/.test(x.revision!) || (x.revision === 'main' && x.note), `${alias}: pinned hash, or 'main' with a note`);
  }
  assert.equal(getModel(m, 'llama3').hfRepo, 'meta-llama/Llama-3.1-8B-Instruct');
  assert.equal(getModel(m, 'qwen3').hfRepo, 'Qwen/Qwen3-8B');
  assert.deepEqual(m.file.matrix.schemes, ['BF16', 'W2A16', 'W3A16', 'W4A16', 'W8A16', 'MXFP4A16', 'NVFP4A16']);
  for (const s of m.file.matrix.schemes) assert.equal(getScheme(s).name, s);
  assert.deepEqual(m.file.matrix.methods, ['rtn', 'autoround']);
  assert.deepEqual(m.file.matrix.suites, ['tinystories-ppl', 'tinystories-cloze', 'tinystories-lastword', 'kld']);
  assert.ok(m.file.recipes.default);
});

test('models.schema.json is committed, referenced by $schema, and in sync with the zod schema', () => {
  const text = readFileSync(join(ROOT, 'models.json'), 'utf8');
  assert.equal(JSON.parse(text).$schema, './models.schema.json');
  const committed: any = JSON.parse(readFileSync(join(ROOT, 'models.schema.json'), 'utf8'));
  assert.deepEqual(committed, modelsJsonSchema(), 'regenerate with: node --import tsx src/matrix/emit-schema.ts');
  // The JSON Schema really constrains what zod constrains (spot checks on its structure).
  const model = (committed as any).properties.models.additionalProperties;
  assert.deepEqual(model.properties.engines.items.enum, ['onnx', 'vllm']);
  assert.equal(model.additionalProperties, false);
  assert.equal(model.properties.overrides.properties.groupSize.type, 'integer');
});

test('validation errors name the JSON path of the problem', () => {
  assert.equal(
    errorOf((j) => (j.models.big.overrides.groupSize = 1.5)),
    'models.json: models.big.overrides.groupSize: expected integer, got 1.5',
  );
  assert.equal(errorOf((j) => (j.models.big.overrides.groupSize = '32')), 'models.json: models.big.overrides.groupSize: expected number, got "32"');
  assert.match(errorOf((j) => (j.models.tiny.overrides.groupSize = 0)), /^models\.json: models\.tiny\.overrides\.groupSize: expected a positive group size/);
  assert.equal(errorOf((j) => (j.models.tiny.overrides.groupsize = 32)), "models.json: models.tiny.overrides: unknown key 'groupsize'; did you mean 'groupSize'?");
  assert.equal(errorOf((j) => (j.models.big.engines = ['vlm'])), 'models.json: models.big.engines.0: expected one of "onnx", "vllm"; got "vlm"');
  assert.equal(errorOf((j) => delete j.models.big.revision), "models.json: models.big.revision: hf sources need a 'revision' (a commit hash)");
  assert.equal(errorOf((j) => (j.recipes.default.iters = -1)).split(':').slice(0, 2).join(':'), 'models.json: recipes.default.iters');
  assert.match(errorOf((j) => j.matrix.schemes.push('W4A61')), /^models\.json: matrix\.schemes\.3: unknown scheme 'W4A61'; did you mean 'W4A16'/);
  assert.match(errorOf((j) => (j.matrix.models = ['tiney'])), /^models\.json: matrix\.models\.0: unknown model 'tiney'; did you mean 'tiny'/);
  assert.match(errorOf((j) => (j.matrix.recipes = ['defualt'])), /^models\.json: matrix\.recipes\.0: unknown recipe 'defualt'; did you mean 'default'/);
  assert.match(errorOf((j) => (j.models.big.source = 'org/big')), /^models\.json: models\.big\.source: expected '\.\/local\/dir' or 'hf:ORG\/NAME'/);
  assert.match(errorOf((j) => (j.models.tiny.overrides.schemes = { W4A1: { groupSize: 64 } })), /^models\.json: models\.tiny\.overrides\.schemes\.W4A1: .*unknown scheme 'W4A1'/);
});

test('a syntax error is one line naming the file', () => {
  assert.throws(() => parseModels('{"models": ', 'models.json', '/x'), (e: Error) => e instanceof UserError && /^models\.json: not valid JSON/.test(e.message));
});

test('unknown alias gets did-you-mean', () => {
  const m = parseModels(JSON.stringify(modelsJson()), 'models.json', '/proj');
  assert.throws(() => getModel(m, 'bigg'), (e: Error) => e instanceof UserError && /unknown model 'bigg'.*did you mean 'big'/.test(e.message));
  assert.equal(getModel(m, 'tiny').localDir, '/proj/models/tiny');
  assert.equal(getModel(m, 'tiny').calibrationPath, '/proj/calib.txt');
  assert.equal(getModel(m, 'big').hfRepo, 'org/big');
});
