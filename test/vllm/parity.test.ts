/**
 * Parity: the same loglikelihood / rolling / top-k requests through the in-process
 * OnnxEngine and through the vLLM engine talking to a real `bench serve` process (the
 * bundled stories260k) agree to 1e-6 relative. The rolling window is matched on purpose:
 * the vLLM engine uses L = max_model_len - 2 (lm-eval's vllm backend), so the in-process
 * engine is opened with maxLength = L.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadTokenizer } from '../../src/checkpoint/tokenizer.ts';
import { OnnxEngine } from '../../src/engines/onnx/engine.ts';
import { VllmEngine, benchServeCommand } from '../../src/engines/vllm/index.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const MODEL = join(ROOT, 'models', 'stories260k');
const MAX_MODEL_LEN = 64;

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(b));

test('OnnxEngine in-process and VllmEngine over bench serve give the same numbers', { skip: !existsSync(join(MODEL, 'model.safetensors')) && 'models/stories260k missing' }, async () => {
  const tok = await loadTokenizer(MODEL);
  const text =
    'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog, who was called Max. ' +
    'One day, Lily and Max went to the park. They saw a big red ball under a tree. Lily wanted to play with the ball, but it was not hers. ' +
    'She asked her mom, and her mom said they could ask the boy who owned it. The boy smiled and said yes, and they all played together until dinner.';
  const ids = tok.encode(text, { addBos: false });
  const logDir = mkdtempSync(join(tmpdir(), 'parity-'));
  const remote = await VllmEngine.start({
    model: MODEL,
    servedName: 'stories-parity',
    logPath: join(logDir, 'serve.log'),
    command: benchServeCommand(join(ROOT, 'bin', 'bench.js'), { extraArgs: ['--max-model-len', String(MAX_MODEL_LEN)] }),
  });
  const pid = remote.server!.pid;
  const local = await OnnxEngine.open(MODEL, { maxLength: remote.rollingWindowLength });
  try {
    assert.equal(remote.info.prefixToken, local.info.prefixToken);
    const reqs = [
      { context: [tok.bosId!, ...ids.slice(0, 5)], continuation: ids.slice(5, 9) },
      { context: [tok.bosId!], continuation: ids.slice(0, 3) },
      { context: [tok.bosId!, ...ids.slice(0, 20)], continuation: ids.slice(20, 21) },
    ];
    const [a, b] = [await local.loglikelihood(reqs), await remote.loglikelihood(reqs)];
    for (let i = 0; i < reqs.length; i++) {
      assert.ok(rel(b[i].logprob, a[i].logprob) < 1e-6, `loglikelihood ${i}: ${b[i].logprob} vs ${a[i].logprob}`);
      assert.equal(b[i].isGreedy, a[i].isGreedy, `isGreedy ${i}: ${JSON.stringify([...a[i].tokenLogprobs])} ${JSON.stringify([...b[i].tokenLogprobs])}`);
    }
    // A document longer than one window (several windows of L = 62).
    assert.ok(ids.length > remote.rollingWindowLength);
    const [ra] = await local.loglikelihoodRolling([{ tokens: ids }]);
    const [rb] = await remote.loglikelihoodRolling([{ tokens: ids }]);
    assert.ok(rel(rb.logprob, ra.logprob) < 1e-6, `rolling: ${rb.logprob} vs ${ra.logprob}`);
    for (let i = 0; i < ids.length; i++) assert.ok(Math.abs(rb.tokenLogprobs[i] - ra.tokenLogprobs[i]) < 1e-5, `token ${i}`);

    const seq = [tok.bosId!, ...ids.slice(0, 30)];
    const [ta] = await local.topLogprobs([{ tokens: seq, k: 5 }]);
    const [tb] = await remote.topLogprobs([{ tokens: seq, k: 5 }]);
    assert.equal(tb.positions, ta.positions);
    for (let p = 0; p < ta.positions; p++) {
      assert.ok(rel(tb.targetLogprobs[p], ta.targetLogprobs[p]) < 1e-6, `target ${p}`);
      for (let j = 0; j < 5; j++) {
        assert.ok(Math.abs(tb.logprobs[p * 5 + j] - ta.logprobs[p * 5 + j]) <= 1e-6 * Math.max(1, Math.abs(ta.logprobs[p * 5 + j])), `top ${p},${j}`);
      }
      // Ids must agree except where two alternatives tie to float32 precision.
      const sameIds = [...tb.ids.subarray(p * 5, p * 5 + 5)].join() === [...ta.ids.subarray(p * 5, p * 5 + 5)].join();
      if (!sameIds) assert.ok(new Set(ta.logprobs.subarray(p * 5, p * 5 + 5)).size < 5, `top ids at ${p}`);
    }
    assert.deepEqual(await remote.generateGreedy(seq.slice(0, 8), 6), await local.generateGreedy(seq.slice(0, 8), 6));
  } finally {
    await local.close();
    await remote.close();
  }
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
});
