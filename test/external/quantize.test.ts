/**
 * External quantizer jobs with real processes: a fake `auto-round` / llm-compressor driver
 * (fixtures/fake-quantizer.mjs) prints the tools' progress lines and writes a
 * compressed-tensors checkpoint; the job must parse progress, validate the output and
 * name tool + version, and fail in one line (with the log) on crash, timeout, cancel,
 * incomplete or wrong-format output. No child may outlive its test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseProgress, runAutoRound, runLlmCompressor, validateQuantizedCheckpoint, type Progress } from '../../src/quant/external/index.ts';
import { stripAnsi } from '../../src/process/index.ts';
import { ToolError } from '../../src/errors.ts';

const FAKE = resolve(import.meta.dirname, 'fixtures/fake-quantizer.mjs');
const PY = resolve(import.meta.dirname, 'fixtures/fake-python.mjs');
const RECORDED_LC = resolve(import.meta.dirname, '../../harness/fixtures/llmcompressor/0.14.0.1/stderr_fp8_dynamic_autoround_stories260k.log');
const RECORDED_AR = resolve(import.meta.dirname, '../../harness/fixtures/autoround/0.16.1/stderr_w4a16_autoround_stories260k.log');
const tmp = mkdtempSync(join(tmpdir(), 'extq-test-'));
let n = 0;
const fresh = () => join(tmp, `job ${++n} "q"; x`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function assertGone(pid: number | undefined): Promise<void> {
  assert.ok(pid, 'child had a pid');
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid!, 0);
    } catch {
      return;
    }
    await sleep(50);
  }
  assert.fail(`child ${pid} still running`);
}
/** Tool failures (crash, timeout, bad output) are ToolErrors: exit 3, one line, the log named. */
async function expectToolError(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ToolError, String((e as Error).stack));
    assert.equal(e.exitCode, 3);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'));
    return;
  }
  assert.fail('expected an error');
}

test('progress lines of a recorded auto-round 0.16.1 run (W4A16, 2 iters, stories260k, CPU) parse into the events it printed', () => {
  const lines = readFileSync(RECORDED_AR, 'utf8').split(/\r\n|\r|\n/).map(stripAnsi);
  const events = lines.map(parseProgress).filter((p): p is Progress => p !== null);
  const of = <K extends Progress['kind']>(k: K) => events.filter((e): e is Extract<Progress, { kind: K }> => e.kind === k);
  // the values below are read off the recording's text
  assert.deepEqual(of('block-loss').map((e) => [e.quantized, e.total, e.lossFirst, e.bestIter, e.lossBest]), [
    [4, 7, 5.353e-6, 0, 5.353e-6], [4, 7, 2.526e-5, 0, 2.526e-5], [4, 7, 6.6e-5, 0, 6.6e-5], [4, 7, 1.425e-4, 0, 1.425e-4], [4, 7, 3.946e-4, 0, 3.946e-4],
  ]);
  assert.deepEqual([...new Set(of('block').map((e) => e.layer))], [0, 1, 2, 3, 4]);
  assert.deepEqual(of('block').at(-1), { kind: 'block', layer: 4, done: 5, total: 5 });
  assert.deepEqual(of('tuning-time'), [{ kind: 'tuning-time', seconds: 40.00912356376648 }]);
  const [summary] = of('summary');
  assert.equal(summary.quantized, 20);
  assert.equal(summary.total, 36);
  assert.match(summary.unquantized, /^lm_head, model\.layers\.\[0-4\]\.mlp\.down_proj/);
  const mem = of('memory');
  assert.equal(mem.length, 8);
  assert.deepEqual(mem[0], { kind: 'memory', peakRamGB: 0.8, peakVramGB: null }, 'a CPU run prints no peak_vram');
  assert.deepEqual(parseProgress('[lowbit] stage: quantize scheme=W4A16 method=rtn'), { kind: 'stage', stage: 'quantize scheme=W4A16 method=rtn' });
});

test('progress lines of a recorded llm-compressor 0.14.0.1 driver run (FP8_DYNAMIC, AutoRoundModifier, CPU) parse into its stages and block losses', () => {
  const lines = readFileSync(RECORDED_LC, 'utf8').split(/\r\n|\r|\n/).map(stripAnsi);
  const events = lines.map(parseProgress).filter((p): p is Progress => p !== null);
  assert.deepEqual(events.filter((e) => e.kind === 'stage').map((e) => (e as { stage: string }).stage), ['load', 'calibration data', 'quantize scheme=FP8_DYNAMIC method=autoround', 'save', 'done']);
  assert.deepEqual(events.filter((e) => e.kind === 'block-loss').map((e) => (e as { lossBest: number }).lossBest), [0.000229, 0.000833, 0.001951, 0.004358, 0.012638]);
  const summary = JSON.parse(lines.find((l) => l.startsWith('{"tool": "llm-compressor"'))!);
  assert.deepEqual(summary.versions, { llmcompressor: '0.14.0.1', 'compressed-tensors': '0.19.0', 'auto-round': '0.15.1', transformers: '5.17.0', torch: '2.13.0' });
});

test('auto-round job: argv untouched, progress streamed, export folder located and validated, tool + version named', async () => {
  const out = fresh();
  const model = `/models/org/tiny llama "x"; y`;
  const events: Progress[] = [];
  let pid: number | undefined;
  const r = await runAutoRound(
    { model, scheme: 'W4A16', method: 'autoround', outputDir: out, command: [FAKE] },
    { logPath: join(out, 'job.log'), env: { FAKE_EXPORT: 'tiny llama "x"; y-w4g128' }, python: PY, onProgress: (p) => events.push(p), onSpawn: (p) => (pid = p), timeoutMs: 20_000 },
  );
  await assertGone(pid);
  assert.equal(r.tool, 'auto-round');
  assert.equal(r.toolVersion, '9.9.9-fake+auto-round');
  assert.equal(r.checkpoint, join(out, 'tiny llama "x"; y-w4g128'));
  assert.equal(r.format, 'pack-quantized');
  assert.equal(r.quantizedLayers.length, 14);
  assert.equal(r.compressedTensorsVersion, '0.20.0');
  assert.equal(r.tuningSeconds, 2.75);
  assert.deepEqual(r.blockLosses, [0.0004, 0.0005]);
  assert.deepEqual(events.filter((e) => e.kind === 'block').map((e) => (e as { layer: number }).layer), [0, 1]);
  assert.deepEqual(r.argv, [FAKE, '--model', model, '--scheme', 'W4A16', '--format', 'llm_compressor', '--output_dir', out]);
  assert.ok(readFileSync(r.logPath, 'utf8').includes(JSON.stringify(r.argv.slice(1))), 'the tool received exactly our argv');
});

test('auto-round export folder: predicted name, else output_dir itself (model-free MX route), else the one folder with a config.json', async () => {
  const out = fresh();
  const r = await runAutoRound({ model: 'org/tiny', scheme: 'W4A16', method: 'rtn', outputDir: out, command: [FAKE] }, { logPath: join(out, 'job.log'), env: { FAKE_EXPORT: 'tiny-w4g128' }, python: PY });
  assert.equal(r.checkpoint, join(out, 'tiny-w4g128'));
  assert.deepEqual(r.blockLosses, []);
  const out2 = fresh();
  const r2 = await runAutoRound({ model: 'org/tiny', scheme: 'W4A16', method: 'rtn', outputDir: out2, command: [FAKE] }, { logPath: join(out2, 'job.log'), python: PY });
  assert.equal(r2.checkpoint, out2);
  const out3 = fresh();
  const r3 = await runAutoRound({ model: 'org/tiny', scheme: 'W4A16', method: 'rtn', outputDir: out3, command: [FAKE] }, { logPath: join(out3, 'job.log'), env: { FAKE_EXPORT: 'elsewhere/named-otherwise' }, python: PY });
  assert.equal(r3.checkpoint, join(out3, 'elsewhere/named-otherwise'));
});

test('a crashing tool gives its Python error in one line with the log path', async () => {
  const out = fresh();
  await expectToolError(
    runAutoRound({ model: 'm', scheme: 'W4A16', method: 'autoround', outputDir: out, command: [FAKE] }, { logPath: join(out, 'job.log'), env: { FAKE_MODE: 'fail' } }),
    /^auto-round exited with code 1: torch\.OutOfMemoryError: CUDA out of memory\. Tried to allocate 2\.00 GiB;.*log: .*job\.log$/,
  );
});

test('timeout and cancellation stop the tool (SIGTERM) and say so', async () => {
  const out = fresh();
  let pid: number | undefined;
  const t0 = Date.now();
  await expectToolError(
    runAutoRound({ model: 'm', scheme: 'W4A16', method: 'autoround', outputDir: out, command: [FAKE] }, { logPath: join(out, 't.log'), env: { FAKE_MODE: 'hang' }, timeoutMs: 800, graceMs: 500, onSpawn: (p) => (pid = p) }),
    /auto-round did not finish within 1 s and was stopped.*log: /,
  );
  assert.ok(Date.now() - t0 < 5000);
  await assertGone(pid);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 300);
  await expectToolError(
    runLlmCompressor({ model: 'm', scheme: 'W4A16', method: 'rtn', outputDir: out, driver: 'harness/llmcompressor_quantize.py', python: FAKE }, { logPath: join(out, 'c.log'), env: { FAKE_MODE: 'hang' }, signal: ac.signal, onSpawn: (p) => (pid = p) }),
    /llm-compressor driver was cancelled/,
  );
  await assertGone(pid);
});

test('output is validated before the job counts: missing promised tensor, wrong quant_method', async () => {
  const out = fresh();
  await expectToolError(
    runLlmCompressor({ model: 'm', scheme: 'W4A16', method: 'rtn', outputDir: out, driver: 'd.py', python: FAKE }, { logPath: join(out, 'j.log'), env: { FAKE_MODE: 'incomplete' } }),
    /tensor 'model\.layers\.1\.mlp\.down_proj\.weight_packed' is missing although quantization_config \(pack-quantized\) promises it/,
  );
  const out2 = fresh();
  await expectToolError(
    runAutoRound({ model: 'm', scheme: 'W4A16', method: 'rtn', outputDir: out2, command: [FAKE] }, { logPath: join(out2, 'j.log'), env: { FAKE_MODE: 'dense-config' } }),
    /quant_method "auto-round", not "compressed-tensors"; export with --format llm_compressor/,
  );
  const out3 = fresh();
  await expectToolError(
    runLlmCompressor({ model: 'm', scheme: 'NVFP4A16', method: 'rtn', outputDir: out3, driver: 'd.py', python: FAKE }, { logPath: join(out3, 'j.log') }),
    /layer 'model\.layers\.0\.self_attn\.q_proj': weights are int4 group 128, NVFP4A16 needs float4 group 16; the tool did not produce the requested scheme/,
  );
});

test('llm-compressor driver job: versions from the driver summary line', async () => {
  const out = fresh();
  const r = await runLlmCompressor({ model: 'm', scheme: 'W4A16', method: 'autoround', outputDir: out, driver: 'harness/llmcompressor_quantize.py', python: FAKE }, { logPath: join(out, 'j.log') });
  assert.equal(r.tool, 'llm-compressor');
  assert.equal(r.toolVersion, '0.0.0-fake');
  assert.equal(r.versions['compressed-tensors'], '0.20.0');
  assert.equal(r.argv[1], 'harness/llmcompressor_quantize.py');
  assert.equal(validateQuantizedCheckpoint(out, 'x').quantized.length, 14);
});

test('weight-only FP4 from auto-round 0.16.1: the recorded W4A4 configs are refused as A16, and corrected (recorded in the result) when we asked for A16', async () => {
  const { activationMismatch, configCorrections } = await import('../../src/quant/external/index.ts');
  const { getScheme } = await import('../../src/quant/schemes.ts');
  for (const [file, scheme] of [['config_nvfp4a16_rtn_stories260k.json', 'NVFP4A16'], ['config_mxfp4a16_rtn_stories260k.json', 'MXFP4A16']] as const) {
    const recorded = readFileSync(resolve(import.meta.dirname, '../../harness/fixtures/autoround/0.16.1', file), 'utf8');
    const group = Object.values(JSON.parse(recorded).quantization_config.config_groups as Record<string, { input_activations: Record<string, unknown> }>)[0];
    assert.match(activationMismatch(getScheme(scheme), group.input_activations)!, new RegExp(`input_activations are quantized \\(float4 dynamic\\), ${scheme} has 16-bit activations`));
    const dir = fresh();
    (await import('node:fs')).mkdirSync(dir, { recursive: true });
    (await import('node:fs')).writeFileSync(join(dir, 'config.json'), recorded);
    const note = configCorrections(dir, getScheme(scheme), 'auto-round');
    assert.match(note!, /^auto-round was asked for .* \(16-bit activations\) but its export declared input_activations \(group_0: \{.*"num_bits":4.*\}\); set to null in config\.json, weights untouched$/);
    const fixed = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(Object.values(fixed.quantization_config.config_groups as Record<string, { input_activations: unknown }>)[0].input_activations, null);
    assert.equal(activationMismatch(getScheme(scheme), null), null);
    // weights untouched: everything but input_activations is as recorded
    const before = JSON.parse(recorded);
    for (const g of Object.values(before.quantization_config.config_groups as Record<string, { input_activations: unknown }>)) g.input_activations = null;
    assert.deepEqual(fixed, before);
  }
  // llm-compressor 0.14.0.1's A16 presets (recorded) are weight-only as they are: nothing to correct
  for (const [file, scheme] of [['config_mxfp4a16_rtn_synth-llama-h32.json', 'MXFP4A16'], ['config_nvfp4a16_rtn_synth-llama-h32.json', 'NVFP4A16']] as const) {
    const recorded = readFileSync(resolve(import.meta.dirname, '../../harness/fixtures/llmcompressor/0.14.0.1', file), 'utf8');
    const dir = fresh();
    (await import('node:fs')).mkdirSync(dir, { recursive: true });
    (await import('node:fs')).writeFileSync(join(dir, 'config.json'), recorded);
    assert.equal(configCorrections(dir, getScheme(scheme), 'llm-compressor'), null);
    assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), recorded);
  }
  // a W4A4 scheme keeps what it asked for, and a W4A4 scheme without activations is refused
  assert.equal(activationMismatch(getScheme('NVFP4'), { type: 'float', num_bits: 4, dynamic: 'local' }), null);
  assert.match(activationMismatch(getScheme('NVFP4'), null)!, /not quantized, NVFP4 quantizes them/);
  assert.match(activationMismatch(getScheme('W8A8-FP8-STATIC'), { type: 'float', num_bits: 8, dynamic: true })!, /dynamic, W8A8-FP8-STATIC needs static/);
});
