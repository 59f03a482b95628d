/**
 * `bench serve`'s token strings with a real SentencePiece tokenizer (stories260k): as vLLM's
 * incremental detokenizer shows them, a word keeps its leading space (" upon"), the echoed
 * tokens concatenate to the echoed text, and text_offset is their running length (vllm.md §4.2 rule 4).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startBenchServe } from '../../src/serve/index.ts';

const MODEL = resolve(import.meta.dirname, '../../models/stories260k');

test('token strings keep leading spaces and add up to the text', { skip: !existsSync(join(MODEL, 'model.safetensors')) && 'models/stories260k missing' }, async () => {
  const s = await startBenchServe({ model: MODEL, servedName: 's', host: '127.0.0.1', port: 0, maxLogprobs: 20, threads: 1 });
  try {
    const r = await fetch(`${s.running.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 's', prompt: 'Once upon a time', max_tokens: 2, echo: true, logprobs: 1 }),
    });
    const c = (await r.json()).choices[0];
    const toks: string[] = c.logprobs.tokens;
    assert.equal(toks[0], '', 'BOS renders as nothing (special tokens are dropped by decode)');
    assert.deepEqual(toks.slice(1, 5), ['Once', ' upon', ' a', ' time']);
    assert.equal(toks.join(''), c.text);
    let off = 0;
    toks.forEach((t, i) => {
      assert.equal(c.logprobs.text_offset[i], off);
      off += [...t].length;
    });
  } finally {
    await s.close();
  }
});
