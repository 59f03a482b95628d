/** The committed synth-llama-h32 is exactly what its generator writes (so the seed is the model). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { writeSynthLlama } from '../../scripts/make-synth-llama.ts';

const committed = resolve(import.meta.dirname, '../../models/synth-llama-h32');
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

test('models/synth-llama-h32 is reproduced byte for byte by scripts/make-synth-llama.ts', () => {
  const out = mkdtempSync(join(tmpdir(), 'synth-'));
  try {
    writeSynthLlama(out);
    for (const f of ['model.safetensors', 'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      assert.equal(sha(join(out, f)), sha(join(committed, f)), f);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('synth-llama-h32 weights are bfloat16 values (low 16 bits of every float32 are zero)', () => {
  const buf = readFileSync(join(committed, 'model.safetensors'));
  const headerLen = Number(buf.readBigUInt64LE(0));
  const body = buf.subarray(8 + headerLen);
  const u = new Uint32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  let bad = 0;
  for (let i = 0; i < u.length; i++) if ((u[i] & 0xffff) !== 0) bad++;
  assert.equal(bad, 0);
});
