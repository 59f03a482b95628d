/**
 * The whole `--engine vllm` quantize path against the real tools: `bench run --engine vllm`
 * as a real process quantizes models/synth-llama-h32 with every quantizing scheme x {rtn,
 * autoround with the `ci` recipe} through the real auto-round 0.16.1 (environment `quant`)
 * and the real llm-compressor 0.14.0.1 driver (environment `llmcompressor`, W8A8-FP8 only),
 * and scores every checkpoint with `bench serve` standing in for `vllm serve`.
 *
 * Expectations come from outside our code: the tool versions from the environments' own
 * READY.json (written by `bench env` from importlib.metadata), the export layout and config
 * rules from auto-round's and llm-compressor's sources (harness/README.md), and every
 * checkpoint is re-read from the cache. Calibration is kept tiny (nsamples 4, seqlen 64, the
 * ci recipe's 20 iterations) so the matrix fits the CI budget on 2 cores.
 *
 * Needs `./bin/bench.js env quant llmcompressor`; it fails (never skips) without them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import type { ResultRecord } from '../../src/results/record.ts';
import { schemeNames } from '../../src/quant/schemes.ts';
import { requireToolEnv } from '../helpers/toolenv.ts';
import { gone } from '../helpers/pids.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const MODEL = join(ROOT, 'models', 'synth-llama-h32');


test('bench run --engine vllm with the real auto-round and llm-compressor: every scheme x {rtn, autoround/ci} on synth-llama-h32', { timeout: 3_600_000 }, async () => {
  const quant = await requireToolEnv('quant');
  const lc = await requireToolEnv('llmcompressor');
  const tmp = mkdtempSync(join(tmpdir(), 'vllm-real-'));
  const modelsFile = join(tmp, 'models.json');
  const ci = JSON.parse(readFileSync(join(ROOT, 'models.json'), 'utf8')).recipes.ci;
  assert.equal(ci.iters, 20, "models.json's ci recipe");
  writeFileSync(modelsFile, JSON.stringify({
    models: {
      synth: {
        source: MODEL, family: 'llama', engines: ['vllm'],
        calibration: { path: join(ROOT, 'suites', 'data', 'tinystories_validation_first1000.txt') },
        overrides: { groupSize: 128, seqlenCap: 512, recipe: { nsamples: 4, seqlen: 64, batchSize: 4 }, vllm: { serveArgs: ['--threads', '1'] } },
      },
    },
    recipes: { ci },
    matrix: { models: ['synth'], schemes: ['BF16'], methods: ['rtn'], recipes: ['ci'], suites: ['tinystories-ppl'] },
  }));
  const schemes = schemeNames();
  const benchDir = join(tmp, 'bench');
  const t0 = performance.now();
  const r = await execa(process.execPath, [
    join(ROOT, 'bin', 'bench.js'), 'run', '--engine', 'vllm', '--models-file', modelsFile, '--schemes', schemes.join(','), '--methods', 'rtn,autoround',
    '--recipe', 'ci', '--suites', 'tinystories-ppl', '--limit', '2', '--jobs', '2', '--bench-dir', benchDir, '--no-report', '--json',
  ], {
    cwd: ROOT, reject: false, timeout: 3_500_000,
    env: {
      LOWBIT_VLLM_COMMAND: JSON.stringify([process.execPath, join(ROOT, 'bin', 'bench.js'), 'serve']),
      LOWBIT_AUTOROUND_COMMAND: JSON.stringify([quant.bin('auto-round')]),
      LOWBIT_QUANT_PYTHON: JSON.stringify([quant.python]),
      LOWBIT_LLMCOMPRESSOR_PYTHON: JSON.stringify([lc.python]),
      LOWBIT_QUANT_DEVICE: 'cpu',
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  process.stderr.write(`# real-tool matrix: ${seconds.toFixed(0)} s wall\n`);
  assert.equal(r.exitCode, 0, `bench run failed:\n${r.stderr.slice(-4000)}`);
  const summary = JSON.parse(r.stdout).summary;
  assert.deepEqual(summary.failed, []);

  const runId = readFileSync(join(benchDir, 'runs', 'latest'), 'utf8').trim();
  const records: ResultRecord[] = readFileSync(join(benchDir, 'runs', runId, 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const quantized = schemes.filter((s) => s !== 'BF16');
  const cells = new Set(records.map((x) => `${x.scheme} ${x.method}`));
  for (const s of quantized) for (const m of ['rtn', 'autoround']) assert.ok(cells.has(`${s} ${m}`), `${s} ${m} has ledger records`);
  for (const rec of records) {
    assert.ok(Number.isFinite(rec.value), `${rec.scheme} ${rec.method} ${rec.metric}: ${rec.value}`);
    assert.equal(rec.engine, 'vllm');
    if (rec.method === 'base') continue;
    const q = rec.provenance.quantizer as Record<string, unknown>;
    const viaLlmCompressor = rec.scheme === 'W8A8-FP8';
    assert.equal(q.tool, viaLlmCompressor ? 'llm-compressor' : 'auto-round', rec.scheme);
    // the version the environment's own metadata reports (READY.json), not one we parsed from the run
    assert.equal(q.toolVersion, viaLlmCompressor ? lc.versions.llmcompressor : quant.versions['auto-round'], `${rec.scheme} ${rec.method} tool version`);
    assert.ok(q.toolVersion, 'a version is recorded');
    const argv = q.argv as string[];
    if (!viaLlmCompressor) {
      assert.equal(argv[0], quant.bin('auto-round'));
      assert.deepEqual([argv[argv.indexOf('--device_map') + 1], argv.includes('--disable_torch_compile')], ['cpu', true]);
      assert.ok(argv[argv.indexOf('--dataset') + 1].endsWith('.calibration.jsonl'), 'calibration as jsonl, never a .txt');
    }
    if (rec.method === 'autoround') {
      assert.equal(argv[argv.indexOf('--iters') + 1], '20', 'the ci recipe');
      assert.equal(argv[argv.indexOf('--nsamples') + 1], '4');
    }
  }
  // Weight-only FP4 from auto-round: the export declared W4A4 input_activations; the config is corrected and says so.
  const ckptOf = (scheme: string, method: string) => {
    const rec = records.find((x) => x.scheme === scheme && x.method === method)!;
    return rec.provenance.quantizer as Record<string, unknown>;
  };
  for (const s of ['MXFP4A16', 'NVFP4A16']) {
    for (const m of ['rtn', 'autoround']) {
      const q = ckptOf(s, m);
      assert.match(String(q.configCorrection), /declared input_activations .*set to null in config\.json, weights untouched/, `${s} ${m}`);
    }
  }
  assert.equal(ckptOf('W4A16', 'rtn').configCorrection, null);
  assert.equal(ckptOf('NVFP4', 'autoround').configCorrection, null, 'W4A4 keeps its activations');
  for (const m of ['rtn', 'autoround']) assert.match(String(ckptOf('W8A8-FP8-STATIC', m).configCorrection), /targets Linear without ignoring lm_head, which it left dense; 'lm_head' added to ignore/);
  // The configs in the cache (found by the hash the ledger recorded) say what each scheme is:
  // weight-only schemes have no input_activations, W4A4 and FP8 have theirs.
  const cacheCkpts = join(benchDir, 'cache', 'ckpt');
  const configByHash = new Map(readdirSync(cacheCkpts).filter((d) => !d.startsWith('.')).map((d) => {
    const text = readFileSync(join(cacheCkpts, d, 'config.json'));
    return [createHash('sha256').update(text).digest('hex'), JSON.parse(text.toString('utf8'))] as const;
  }));
  for (const s of quantized) {
    for (const m of ['rtn', 'autoround']) {
      const rec = records.find((x) => x.scheme === s && x.method === m)!;
      const cfg = configByHash.get((rec.provenance.hashes as { checkpointFiles: Record<string, string> }).checkpointFiles['config.json']);
      assert.ok(cfg, `${s} ${m}: its checkpoint is in the cache`);
      const groups = Object.values(cfg.quantization_config.config_groups as Record<string, { input_activations: unknown }>);
      const a16 = /A16$/.test(s);
      for (const g of groups) assert.equal(g.input_activations === null || g.input_activations === undefined, a16, `${s} ${m}: input_activations ${JSON.stringify(g.input_activations)}`);
    }
  }
  // Every server is gone.
  const serverPids = [...new Set(records.map((x) => (x.provenance.evaluator as Record<string, unknown>).serverPid as number))];
  for (const pid of serverPids) assert.ok(gone(pid), `server ${pid} still running`);
});
