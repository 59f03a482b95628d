/**
 * `bench serve`'s HTTP API over a deterministic fake engine, checked field by field against
 * vLLM's documented response shapes (reference vllm.md §2.1, §4.2 rules 1-8, §5). Expected
 * log-probabilities come from the fake engine's closed form, computed here independently.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CompletionServer, type RunningServer } from '../../src/serve/server.ts';
import { FakeEngine, fakeTokenizer, expectedLogprobs, argmax, BOS, VOCAB } from '../vllm/fixtures/fake-engine.ts';

let srv: RunningServer;
const NAME = 'job-3f2a';

before(async () => {
  srv = await new CompletionServer(new FakeEngine(64), fakeTokenizer, { modelName: NAME, root: '/ckpt/x', maxModelLen: 64, version: 't' }).listen(0);
});
after(async () => srv.close());

async function post(path: string, body: unknown): Promise<{ status: number; json: any; text: string }> {
  const r = await fetch(srv.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: JSON.parse(text), text };
}
const lp = (prefix: number[], tok: number) => expectedLogprobs(prefix[prefix.length - 1], prefix.length - 1)[tok];
const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('/health answers 200 with an empty body; /v1/models names the served model and max_model_len', async () => {
  const h = await fetch(srv.url + '/health');
  assert.equal(h.status, 200);
  assert.equal(await h.text(), '');
  const m = await (await fetch(srv.url + '/v1/models')).json();
  assert.equal(m.object, 'list');
  assert.equal(m.data.length, 1);
  assert.equal(m.data[0].id, NAME);
  assert.equal(m.data[0].max_model_len, 64);
  assert.equal(m.data[0].root, '/ckpt/x');
});

test('echo + logprobs + max_tokens 1: prompt length + 1 entries, first null, values and top-k as vLLM', async () => {
  const prompt = [BOS, 5, 6, 7];
  const { status, json, text } = await post('/v1/completions', { model: NAME, prompt, max_tokens: 1, echo: true, logprobs: 2, temperature: 0 });
  assert.equal(status, 200);
  const c = json.choices[0];
  const gen = argmax(expectedLogprobs(7, 3));
  const all = [...prompt, gen];
  assert.equal(c.logprobs.tokens.length, 5);
  assert.deepEqual(c.logprobs.tokens, all.map((t) => fakeTokenizer.decode([t])));
  assert.equal(c.logprobs.token_logprobs[0], null);
  assert.equal(c.logprobs.top_logprobs[0], null);
  for (let i = 1; i < all.length; i++) {
    near(c.logprobs.token_logprobs[i], lp(all.slice(0, i), all[i]));
    const top = c.logprobs.top_logprobs[i];
    const keys = Object.keys(top);
    // Key order is lost by JSON.parse for integer-like keys: check the raw text instead.
    const first = `{${JSON.stringify(fakeTokenizer.decode([all[i]]))}:${JSON.stringify(c.logprobs.token_logprobs[i])}`;
    assert.ok(text.includes(first), `actual token listed first at ${i}`);
    const d = expectedLogprobs(all[i - 1], i - 1);
    const order = [...d.keys()].sort((a, b) => d[b] - d[a]);
    const want = new Set([all[i], order[0], order[1]].map((t) => fakeTokenizer.decode([t])));
    assert.deepEqual(new Set(keys), want);
    assert.ok(keys.length <= 3);
  }
  assert.deepEqual(c.logprobs.text_offset, [0, 1, 2, 3, 4]);
  assert.equal(c.text, fakeTokenizer.decode(all));
  assert.equal(c.finish_reason, 'length');
  assert.deepEqual(json.usage, { prompt_tokens: 4, completion_tokens: 1, total_tokens: 5 });
  // Worked example §4.3: ctxlen 2 -> loglikelihood = sum of token_logprobs[2:-1].
  const ll = c.logprobs.token_logprobs.slice(2, -1).reduce((a: number, b: number) => a + b, 0);
  near(ll, lp([BOS, 5], 6) + lp([BOS, 5, 6], 7));
});

test('max_tokens 0 with echo returns exactly the prompt; logprobs 0 keeps only the actual token', async () => {
  const prompt = [BOS, 9, 3];
  const { json } = await post('/v1/completions', { model: NAME, prompt, max_tokens: 0, echo: true, logprobs: 0 });
  const c = json.choices[0];
  assert.equal(c.logprobs.token_logprobs.length, 3);
  assert.equal(c.text, fakeTokenizer.decode(prompt));
  assert.deepEqual(Object.keys(c.logprobs.top_logprobs[2]), [fakeTokenizer.decode([3])]);
  assert.equal(json.usage.completion_tokens, 0);
});

test('prompt_logprobs: null at 0, keyed by id string, actual token with its vocabulary rank plus top-k', async () => {
  const prompt = [BOS, 12, 30, 4];
  const { json } = await post('/v1/completions', { model: NAME, prompt, max_tokens: 1, prompt_logprobs: 2 });
  const p = json.choices[0].prompt_logprobs;
  assert.equal(json.choices[0].logprobs, null);
  assert.equal(p.length, prompt.length);
  assert.equal(p[0], null);
  for (let i = 1; i < prompt.length; i++) {
    const d = expectedLogprobs(prompt[i - 1], i - 1);
    const rank = 1 + [...d].filter((x) => x > d[prompt[i]]).length;
    const e = p[i][String(prompt[i])];
    near(e.logprob, d[prompt[i]]);
    assert.equal(e.rank, rank);
    assert.equal(e.decoded_token, fakeTokenizer.decode([prompt[i]]));
    const order = [...d.keys()].sort((a, b) => d[b] - d[a]);
    assert.equal(p[i][String(order[0])].rank, 1);
    assert.equal(p[i][String(order[1])].rank, 2);
    assert.equal(Object.keys(p[i]).length, rank <= 2 ? 2 : 3);
  }
});

test('a batch of token-id prompts gives one choice per prompt, index = prompt position, usage summed', async () => {
  const prompts = [[BOS, 1, 2], [BOS, 8], [BOS, 20, 21, 22, 23]];
  const { json } = await post('/v1/completions', { model: NAME, prompt: prompts, max_tokens: 1, prompt_logprobs: 0 });
  assert.deepEqual(json.choices.map((c: any) => c.index), [0, 1, 2]);
  json.choices.forEach((c: any, i: number) => assert.equal(c.prompt_logprobs.length, prompts[i].length));
  assert.equal(json.usage.prompt_tokens, 10);
  assert.equal(json.usage.completion_tokens, 3);
});

test('text prompts: add_special_tokens puts BOS first; return_tokens_as_token_ids renders ids', async () => {
  const { json } = await post('/v1/completions', { model: NAME, prompt: '567', max_tokens: 2, echo: true, logprobs: 1, return_tokens_as_token_ids: true });
  const toks = json.choices[0].logprobs.tokens;
  assert.deepEqual(toks.slice(0, 4), [`token_id:${BOS}`, 'token_id:5', 'token_id:6', 'token_id:7']);
  assert.equal(toks.length, 6);
  const { json: j2 } = await post('/v1/completions', { model: NAME, prompt: '567', max_tokens: 1, echo: true, logprobs: 0, add_special_tokens: false });
  assert.equal(j2.choices[0].logprobs.tokens.length, 4);
});

test('/tokenize and /detokenize have vLLM shapes', async () => {
  const t = await post('/tokenize', { model: NAME, prompt: '567', add_special_tokens: false, return_token_strs: true });
  assert.deepEqual(t.json, { count: 3, max_model_len: 64, tokens: [5, 6, 7], token_strs: ['5', '6', '7'] });
  const t2 = await post('/tokenize', { prompt: '5' });
  assert.deepEqual(t2.json.tokens, [BOS, 5]);
  assert.equal(t2.json.token_strs, null);
  const e = await post('/tokenize', { prompt: '' });
  assert.deepEqual([e.json.count, e.json.tokens], [0, []]);
  const d = await post('/detokenize', { tokens: [5, 6, 7] });
  assert.deepEqual(d.json, { prompt: '567' });
});

test('errors: logprob caps, context overflow, unknown model, bad prompt (status and message as vLLM)', async () => {
  const a = await post('/v1/completions', { model: NAME, prompt: [BOS, 2], max_tokens: 1, logprobs: 21 });
  assert.equal(a.status, 400);
  assert.equal(a.json.error.message, 'Requested sample logprobs of 21, which is greater than max allowed: 20');
  assert.equal(a.json.error.code, 400);
  const b = await post('/v1/completions', { model: NAME, prompt: [BOS, 2], max_tokens: 1, prompt_logprobs: 21 });
  assert.equal(b.json.error.message, 'Requested prompt logprobs of 21, which is greater than max allowed: 20');
  const c = await post('/v1/completions', { model: NAME, prompt: new Array(64).fill(3), max_tokens: 1 });
  assert.equal(c.status, 400);
  assert.match(c.json.error.message, /maximum context length is 64 tokens/);
  const ok = await post('/v1/completions', { model: NAME, prompt: new Array(63).fill(3), max_tokens: 1 });
  assert.equal(ok.status, 200, 'prompt + 1 generated = max_model_len fits');
  const d = await post('/v1/completions', { model: 'other', prompt: [BOS], max_tokens: 1 });
  assert.equal(d.status, 404);
  assert.equal(d.json.error.message, 'The model `other` does not exist.');
  const e = await post('/v1/completions', { model: NAME, prompt: [BOS, VOCAB], max_tokens: 1 });
  assert.equal(e.status, 400);
  const f = await post('/v1/completions', { model: NAME, prompt: [BOS], stream: true, prompt_logprobs: 1 });
  assert.equal(f.json.error.message, 'prompt_logprobs are not available when stream=True');
});
