/**
 * The strict JSON reader and the shard-path rules, on hand-written inputs whose answers
 * follow from RFC 8259 and the Hugging Face cache layout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findJsonProblem, parseJson } from '../../src/checkpoint/json.ts';
import { fromFloat32 } from '../../src/checkpoint/dtypes.ts';
import { CheckpointTensors, writeCheckpointTensors } from '../../src/checkpoint/tensors.ts';
import { UserError } from '../../src/errors.ts';

test('valid JSON without duplicates passes and parses as JSON.parse does', () => {
  for (const text of [
    '{}', '[]', '{"a":{"a":{"a":1}}}', '[{"a":1},{"a":2}]', '{"a":"}\\"{,","b":[1,{"a":2}],"c":{}}',
    '{"x":1e308,"y":-0,"z":[0.5,-2E-3]}', ' {"k" : [ ] , "l" : { } } ', '"a"', '12',
  ]) {
    assert.equal(findJsonProblem(text), null, text);
    assert.deepEqual(parseJson(text, 'f.json'), JSON.parse(text));
  }
});

test('duplicate keys are found at any depth, with their JSON path', () => {
  const cases: [string, string, string][] = [
    ['{"a":1,"a":2}', '"a"', '$'],
    ['{"m":{"x":1,"y":2,"x":3}}', '"x"', '$.m'],
    ['{"m":[{"x":1},{"y":1,"y":1}]}', '"y"', '$.m[1]'],
    // The same key spelled with an escape is the same key.
    ['{"ab":1,"\\u0061b":2}', '"ab"', '$'],
    ['{"weight map":{"t.w":"a","t.w":"b"}}', '"t.w"', '$["weight map"]'],
  ];
  for (const [text, key, path] of cases) {
    assert.deepEqual(findJsonProblem(text), { problem: `duplicate key ${key}`, path }, text);
    assert.throws(() => parseJson(text, 'f.json'), (e: unknown) => e instanceof UserError && e.message.startsWith(`f.json: duplicate key ${key} at ${path} (each key may appear only once); fix the file`));
  }
  // Equal keys in sibling objects are not duplicates.
  assert.equal(findJsonProblem('{"a":{"k":1},"b":{"k":1}}'), null);
});

test('numbers that overflow a double are refused; big finite ones are not', () => {
  assert.deepEqual(findJsonProblem('{"a":[1,1e400]}'), { problem: 'number 1e400 is out of range (not a finite double)', path: '$.a[1]' });
  assert.deepEqual(findJsonProblem('{"a":-1e309}'), { problem: 'number -1e309 is out of range (not a finite double)', path: '$.a' });
  assert.equal(findJsonProblem('{"a":1.7976931348623157e308}'), null);
});

test('syntax errors are one line even when the engine quotes multi-line input', () => {
  assert.throws(() => parseJson('{\n"a":\n[1,\n2\n', 'f.json'), (e: unknown) => e instanceof UserError && !e.message.includes('\n') && /^f\.json: not valid JSON \(/.test(e.message));
  // Deep nesting does not overflow the scanner's stack.
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  assert.equal(findJsonProblem(deep), null);
});

const t = (name: string, v: number[]) => ({ name, dtype: 'F32' as const, shape: [v.length], data: fromFloat32(v, 'F32') });

test('Hugging Face cache layout: shards linked into the repo blobs/ are accepted', () => {
  const repo = mkdtempSync(join(tmpdir(), 'models--org--m-'));
  const snap = join(repo, 'snapshots', 'abc123');
  const blobs = join(repo, 'blobs');
  mkdirSync(snap, { recursive: true });
  mkdirSync(blobs);
  writeCheckpointTensors(snap, [t('a', [1, 2]), t('b', [3, 4])], { maxShardBytes: 8 });
  // Move every file into blobs/ and leave a relative link, as huggingface_hub does.
  for (const f of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']) {
    renameSync(join(snap, f), join(blobs, `sha-${f}`));
    symlinkSync(join('..', '..', 'blobs', `sha-${f}`), join(snap, f));
  }
  const ck = CheckpointTensors.open(snap);
  assert.deepEqual(Array.from(ck.readFloat32('b')), [3, 4]);
  ck.close();
});

test('a shard in a subfolder of the checkpoint is accepted; a link out of it is not', () => {
  const d = mkdtempSync(join(tmpdir(), 'sub-'));
  writeCheckpointTensors(d, [t('a', [1]), t('b', [2])], { maxShardBytes: 4 });
  mkdirSync(join(d, 'shards'));
  renameSync(join(d, 'model-00002-of-00002.safetensors'), join(d, 'shards', 'two.safetensors'));
  const ix = JSON.parse(readFileSync(join(d, 'model.safetensors.index.json'), 'utf8'));
  ix.weight_map.b = 'shards/two.safetensors';
  writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify(ix));
  const ck = CheckpointTensors.open(d);
  assert.deepEqual(Array.from(ck.readFloat32('b')), [2]);
  ck.close();
  // The same file reached through a symlinked folder outside the checkpoint is refused.
  const outside = mkdtempSync(join(tmpdir(), 'outside-'));
  renameSync(join(d, 'shards', 'two.safetensors'), join(outside, 'two.safetensors'));
  symlinkSync(outside, join(d, 'elsewhere'));
  ix.weight_map.b = 'elsewhere/two.safetensors';
  writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify(ix));
  assert.throws(() => CheckpointTensors.open(d), (e: unknown) => e instanceof UserError && /shard "elsewhere\/two\.safetensors" resolves to .*outside the checkpoint directory/.test(e.message));
});
