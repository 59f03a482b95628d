/**
 * `bench run --engine vllm` end to end, as real processes: the quantize step runs a fake
 * auto-round (our RTN behind auto-round's argv, writing where auto-round 0.16.1 writes integer
 * RTN, fixtures/fake-auto-round.ts), each eval job
 * serves its checkpoint with `bench serve` standing in for `vllm serve`, and our suite is
 * scored over HTTP. The perplexities must equal those of `bench run --engine onnx` (the
 * in-process engine, a separate implementation path) on the same checkpoints to 1e-6
 * relative, and no server or quantizer process may be left running (checked by pid).
 *
 * The model is a copy of models/stories260k with max_position_embeddings raised to 1024:
 * vLLM's rolling window is max_model_len - 2, so a 512-token suite window needs
 * max_model_len 514, more than the 512 positions the original config allows (RoPE has no
 * learned positions, so the scored numbers are unchanged).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type { ResultRecord } from '../../src/results/record.ts';
import { gone } from '../helpers/pids.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const MODEL = join(ROOT, 'models', 'stories260k');
const FAKE_AR = join(ROOT, 'test', 'pipeline', 'fixtures', 'fake-auto-round.ts');

function ledger(benchDir: string): ResultRecord[] {
  const runId = readFileSync(join(benchDir, 'runs', 'latest'), 'utf8').trim();
  return readFileSync(join(benchDir, 'runs', runId, 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}


test('bench run --engine vllm (fake auto-round + bench serve) equals the embedded engine and leaves no process', { skip: !existsSync(join(MODEL, 'model.safetensors')) && 'models/stories260k missing', timeout: 240_000 }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vllm-run-'));
  const model = join(tmp, 'stories 260k; "copy"'); // spaces, quotes and ';' must pass untouched
  cpSync(MODEL, model, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
  assert.equal(cfg.max_position_embeddings, 512);
  cfg.max_position_embeddings = 1024;
  writeFileSync(join(model, 'config.json'), JSON.stringify(cfg, null, 2));
  const modelsFile = join(tmp, 'models.json');
  writeFileSync(modelsFile, JSON.stringify({
    models: { stories: { source: model, family: 'llama', engines: ['vllm', 'onnx'], overrides: { groupSize: 32, vllm: { serveArgs: ['--threads', '1'] } } } },
    recipes: { default: { iters: 200, nsamples: 128, seqlen: 2048, batchSize: 8, lr: null, minmaxLr: null, enableQuantedInput: true, enableMinmaxTuning: true } },
    matrix: { models: ['stories'], schemes: ['BF16'], methods: ['rtn'], recipes: ['default'], suites: ['tinystories-ppl'] },
  }));
  const pidFile = join(tmp, 'auto-round.pids');
  const common = ['--models-file', modelsFile, '--models', 'stories', '--schemes', 'BF16,W4A16', '--methods', 'rtn', '--suites', 'tinystories-ppl', '--limit', '10', '--no-report', '--json'];
  const bench = (engine: string, benchDir: string) =>
    execa(process.execPath, [join(ROOT, 'bin', 'bench.js'), 'run', '--engine', engine, '--bench-dir', benchDir, '--threads', '1', ...common], {
      cwd: ROOT, reject: false, timeout: 180_000,
      env: {
        LOWBIT_VLLM_COMMAND: JSON.stringify([process.execPath, join(ROOT, 'bin', 'bench.js'), 'serve']),
        LOWBIT_AUTOROUND_COMMAND: JSON.stringify([process.execPath, '--import', 'tsx', FAKE_AR]),
        LOWBIT_QUANT_PYTHON: join(tmp, 'no-python'),
        FAKE_AUTOROUND_PIDFILE: pidFile,
      },
    });
  const vBench = join(tmp, 'bench-vllm');
  const oBench = join(tmp, 'bench-onnx');
  const [v, o] = [await bench('vllm', vBench), await bench('onnx', oBench)];
  assert.equal(v.exitCode, 0, `vllm run failed:\n${v.stderr.slice(-3000)}`);
  assert.equal(o.exitCode, 0, `onnx run failed:\n${o.stderr.slice(-3000)}`);
  assert.equal(JSON.parse(v.stdout).summary.failed.length, 0);

  const vr = ledger(vBench);
  const or = ledger(oBench);
  const key = (r: ResultRecord) => `${r.scheme}/${r.task}/${r.metric}`;
  assert.deepEqual(vr.map(key).sort(), or.map(key).sort());
  assert.equal(vr.length, 2 * 4, 'BF16 and W4A16 x 4 perplexity metrics');
  const om = new Map(or.map((r) => [key(r), r]));
  for (const r of vr) {
    const e = om.get(key(r))!;
    assert.equal(r.engine, 'vllm');
    assert.equal(e.engine, 'onnx');
    assert.equal(r.n, 10);
    assert.ok(Math.abs(r.value - e.value) <= 1e-6 * Math.abs(e.value), `${key(r)}: vllm ${r.value} vs onnx ${e.value}`);
  }
  // Quantization really went through the external-tool path, and gave the same checkpoint bytes.
  const vq = vr.find((r) => r.scheme === 'W4A16')!;
  const oq = or.find((r) => r.scheme === 'W4A16')!;
  const q = vq.provenance.quantizer as Record<string, unknown>;
  assert.equal(q.tool, 'auto-round');
  const qa = q.argv as string[];
  const val = (f: string) => qa[qa.indexOf(f) + 1];
  assert.deepEqual([val('--model'), val('--scheme'), val('--group_size'), val('--format'), val('--iters')], [model, 'W4A16', '32', 'llm_compressor', '0']);
  assert.ok(qa.includes('--disable_opt_rtn'));
  const files = (r: ResultRecord) => (r.provenance.hashes as { checkpointFiles: Record<string, string> }).checkpointFiles;
  assert.deepEqual(files(vq), files(oq));

  // Every server and quantizer process is gone.
  const serverPids = [...new Set(vr.map((r) => (r.provenance.evaluator as Record<string, unknown>).serverPid as number))];
  assert.equal(serverPids.length, 2, 'one server per eval job');
  const arPids = readFileSync(pidFile, 'utf8').trim().split('\n').map(Number);
  assert.equal(arPids.length, 1);
  for (const pid of [...serverPids, ...arPids]) assert.ok(Number.isInteger(pid) && pid > 0 && gone(pid), `process ${pid} still running`);
});
