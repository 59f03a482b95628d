/**
 * Command builders produce exactly the argv the references specify: auto-round
 * (autoround.md §6, §9), the llm-compressor driver (§10, compressed-tensors.md §1.5 presets),
 * lm_eval (lm-eval.md §5, §6) — table tests per scheme / method / recipe / backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildAutoRoundArgv, autoRoundExportDir, buildLlmCompressorArgv } from '../../src/quant/external/index.ts';
import { buildLmEvalArgv, sanitizeModelName } from '../../src/engines/lmeval/index.ts';
import { getScheme, withOverrides } from '../../src/quant/schemes.ts';
import { UserError } from '../../src/errors.ts';

const M = 'Qwen/Qwen3-0.6B';
const base = ['--model', M];

test('auto-round argv per scheme and method (llm_compressor format; RTN = --iters 0 --disable_opt_rtn)', () => {
  const table: [string, 'autoround' | 'rtn', string[]][] = [
    ['W4A16', 'autoround', ['--scheme', 'W4A16', '--format', 'llm_compressor', '--output_dir', 'out']],
    ['W2A16', 'autoround', ['--scheme', 'W2A16', '--format', 'llm_compressor', '--output_dir', 'out']],
    ['W3A16', 'rtn', ['--scheme', 'W3A16', '--format', 'llm_compressor', '--output_dir', 'out', '--iters', '0', '--disable_opt_rtn']],
    ['W8A16', 'rtn', ['--scheme', 'W8A16', '--format', 'llm_compressor', '--output_dir', 'out', '--iters', '0', '--disable_opt_rtn']],
    ['NVFP4', 'autoround', ['--scheme', 'NVFP4', '--format', 'llm_compressor', '--output_dir', 'out']],
    // weight-only FP4: --act_data_type too, or auto-round resets act_bits to the preset's 4 (0.16.1, recorded warning)
    ['NVFP4A16', 'autoround', ['--scheme', 'NVFP4', '--act_bits', '16', '--act_data_type', 'float', '--format', 'llm_compressor', '--output_dir', 'out']],
    ['MXFP4A16', 'rtn', ['--scheme', 'MXFP4', '--act_bits', '16', '--act_data_type', 'float', '--format', 'llm_compressor', '--output_dir', 'out', '--iters', '0', '--disable_opt_rtn']],
    ['W8A8-FP8-STATIC', 'autoround', ['--scheme', 'FP8_STATIC', '--format', 'llm_compressor', '--output_dir', 'out']],
  ];
  for (const [scheme, method, rest] of table) {
    const { command, args } = buildAutoRoundArgv({ model: M, scheme, method, outputDir: 'out' });
    assert.equal(command, 'auto-round', scheme);
    assert.deepEqual(args, [...base, ...rest], `${scheme} ${method}`);
  }
});

test('auto-round recipes pick the entry point; explicit values and overrides become flags; no --sym flag exists', () => {
  assert.equal(buildAutoRoundArgv({ model: M, scheme: 'W2A16', method: 'autoround', recipe: 'best', outputDir: 'o' }).command, 'auto-round-best');
  assert.equal(buildAutoRoundArgv({ model: M, scheme: 'W4A16', method: 'autoround', recipe: 'light', outputDir: 'o' }).command, 'auto-round-light');
  assert.equal(buildAutoRoundArgv({ model: M, scheme: 'W4A16', method: 'rtn', recipe: 'best', outputDir: 'o' }).command, 'auto-round');
  const asym64 = withOverrides(getScheme('W2A16'), { groupSize: 64, symmetric: false });
  const { args } = buildAutoRoundArgv({
    model: M, scheme: asym64, method: 'autoround', outputDir: 'o', iters: 1000, nsamples: 512, seqlen: 2048, batchSize: 8, seed: 42, device: '0,1', ignoreLayers: ['mlp.down_proj', 'lm_head'],
    lr: 0.005, minmaxLr: null, enableQuantedInput: false, enableMinmaxTuning: true, dataset: '/cal/x.jsonl',
  });
  assert.deepEqual(args, [
    '--model', M, '--scheme', 'W2A16', '--group_size', '64', '--asym', '--format', 'llm_compressor', '--output_dir', 'o',
    '--iters', '1000', '--nsamples', '512', '--seqlen', '2048', '--batch_size', '8', '--lr', '0.005', '--disable_quanted_input', '--dataset', '/cal/x.jsonl',
    '--seed', '42', '--device_map', '0,1', '--ignore_layers', 'mlp.down_proj,lm_head',
  ]);
  // no GPU: cpu device map and no torch.compile; RTN still gets calibration (NVFP4 caches block inputs); the argv prefix comes from toolArgv
  const cpu = buildAutoRoundArgv({ model: M, scheme: 'NVFP4A16', method: 'rtn', outputDir: 'o', nsamples: 16, seqlen: 256, seed: 42, dataset: 'c.jsonl', device: 'cpu', command: ['/env/bin/python', '-m', 'auto_round'] });
  assert.equal(cpu.command, '/env/bin/python');
  assert.deepEqual(cpu.args, [
    '-m', 'auto_round', '--model', M, '--scheme', 'NVFP4', '--act_bits', '16', '--act_data_type', 'float', '--format', 'llm_compressor', '--output_dir', 'o',
    '--iters', '0', '--disable_opt_rtn', '--nsamples', '16', '--seqlen', '256', '--dataset', 'c.jsonl', '--seed', '42', '--device_map', 'cpu', '--disable_torch_compile',
  ]);
  assert.ok(!args.includes('--sym'));
  assert.throws(() => buildAutoRoundArgv({ model: M, scheme: 'BF16', method: 'rtn', outputDir: 'o' }), UserError);
  assert.throws(() => buildAutoRoundArgv({ model: M, scheme: 'W8A8-FP8', method: 'rtn', outputDir: 'o' }), /llm-compressor driver/);
  assert.throws(() => buildAutoRoundArgv({ model: M, scheme: 'W4A16', method: 'autoround', outputDir: 'o', iters: 0 }), /method rtn/);
});

test("auto-round export folder naming follows auto-round 0.16.1's _get_export_dir (int and NVFP4 RTN recorded on stories260k)", () => {
  const dir = (scheme: Parameters<typeof autoRoundExportDir>[0]['scheme'], method: 'autoround' | 'rtn' = 'autoround') => autoRoundExportDir({ model: M, scheme, method, outputDir: 'tmp_autoround' });
  assert.equal(dir('W4A16'), 'tmp_autoround/Qwen3-0.6B-w4g128');
  assert.equal(dir(withOverrides(getScheme('W2A16'), { groupSize: 64 })), 'tmp_autoround/Qwen3-0.6B-w2g64');
  assert.equal(dir('NVFP4'), 'tmp_autoround/Qwen3-0.6B-nvfp-w4g16');
  assert.equal(dir('MXFP4A16'), 'tmp_autoround/Qwen3-0.6B-mxfp-w4g32');
  assert.equal(dir('W8A8-FP8-STATIC'), 'tmp_autoround/Qwen3-0.6B-fp-w8afp8');
  // recorded with auto-round 0.16.1: integer and NVFP4 RTN export into the named folder; MX RTN runs model-free into output_dir
  assert.equal(autoRoundExportDir({ model: '/m/stories260k', scheme: withOverrides(getScheme('W4A16'), { groupSize: 32 }), method: 'rtn', outputDir: '/o' }), '/o/stories260k-w4g32');
  assert.equal(autoRoundExportDir({ model: '/m/stories260k', scheme: 'NVFP4A16', method: 'rtn', outputDir: '/o' }), '/o/stories260k-nvfp-w4g16');
  assert.equal(dir('MXFP4A16', 'rtn'), 'tmp_autoround');
  assert.equal(autoRoundExportDir({ model: '/ckpt/my model/', scheme: 'W4A16', method: 'autoround', outputDir: '/out/' }), '/out/my model-w4g128');
});

test('llm-compressor driver argv per scheme and method (compressed-tensors presets)', () => {
  const table: [string, string][] = [
    ['W4A16', 'W4A16'], ['W8A16', 'W8A16'], ['W2A16', 'W2A16'], ['MXFP4A16', 'MXFP4A16'], ['NVFP4A16', 'NVFP4A16'], ['NVFP4', 'NVFP4'], ['W8A8-FP8', 'FP8_DYNAMIC'], ['W8A8-FP8-STATIC', 'FP8'],
  ];
  for (const [scheme, preset] of table) {
    for (const method of ['autoround', 'rtn'] as const) {
      const r = buildLlmCompressorArgv({ model: M, scheme, method, outputDir: '/o', driver: 'harness/llmcompressor_quantize.py' });
      assert.equal(r.command, 'python3');
      assert.deepEqual(r.args, ['harness/llmcompressor_quantize.py', '--model', M, '--scheme', preset, '--method', method, '--output-dir', '/o', '--ignore', 'lm_head'], `${scheme} ${method}`);
    }
  }
  const r = buildLlmCompressorArgv({ model: M, scheme: 'W4A16', method: 'autoround', outputDir: '/o', driver: 'd.py', iters: 200, nsamples: 128, seqlen: 2048, batchSize: 8, seed: 42, python: '/venv/bin/python', ignore: ['lm_head', 're:.*router'] });
  assert.deepEqual(r.args, ['d.py', '--model', M, '--scheme', 'W4A16', '--method', 'autoround', '--output-dir', '/o', '--iters', '200', '--nsamples', '128', '--seqlen', '2048', '--batch-size', '8', '--seed', '42', '--ignore', 'lm_head', '--ignore', 're:.*router']);
  assert.equal(r.command, '/venv/bin/python');
  assert.equal(buildLlmCompressorArgv({ model: M, scheme: withOverrides(getScheme('W4A16'), { symmetric: false }), method: 'rtn', outputDir: '/o', driver: 'd.py' }).args[4], 'W4A16_ASYM');
});

test('lm_eval argv for the vllm backend matches lm-eval.md §5 (add_bos_token always explicit)', () => {
  const { command, args } = buildLmEvalArgv({
    backend: 'vllm', pretrained: '/ckpt/llama3-8b-w4a16', tasks: ['arc_challenge', 'arc_easy', 'boolq', 'hellaswag', 'lambada_openai', 'mmlu', 'openbookqa', 'piqa', 'truthfulqa_mc1', 'winogrande'],
    outputPath: 'results/', addBosToken: true, gpuMemoryUtilization: 0.8, maxModelLen: 4096, modelSeed: 1234, logSamples: true,
  });
  assert.equal(command, 'lm_eval');
  assert.deepEqual(args, [
    '--model', 'vllm',
    '--model_args', 'pretrained=/ckpt/llama3-8b-w4a16,tensor_parallel_size=1,dtype=auto,gpu_memory_utilization=0.8,max_model_len=4096,add_bos_token=True,seed=1234',
    '--tasks', 'arc_challenge,arc_easy,boolq,hellaswag,lambada_openai,mmlu,openbookqa,piqa,truthfulqa_mc1,winogrande',
    '--output_path', 'results/', '--batch_size', 'auto', '--log_samples', '--seed', '0',
  ]);
  const f = buildLmEvalArgv({ backend: 'vllm', pretrained: 'm', tasks: ['piqa'], outputPath: 'o', addBosToken: false });
  assert.match(f.args[3], /add_bos_token=False/);
});

test('lm_eval argv for local-completions matches lm-eval.md §6; paths with spaces, quotes and ; pass untouched', () => {
  const weird = `/ckpt/my "model"; rm -rf x`;
  const { args } = buildLmEvalArgv({
    backend: 'local-completions', model: 'job-3f2a', baseUrl: 'http://127.0.0.1:41873/v1/completions', tokenizer: weird, maxLength: 4096, numConcurrent: 8, maxRetries: 3,
    tasks: ['arc_easy'], outputPath: 'o', addBosToken: false, batchSize: 16,
  });
  assert.deepEqual(args, [
    '--model', 'local-completions',
    '--model_args', `model=job-3f2a,base_url=http://127.0.0.1:41873/v1/completions,tokenizer=${weird},tokenizer_backend=huggingface,tokenized_requests=True,max_length=4096,num_concurrent=8,max_retries=3,add_bos_token=False`,
    '--tasks', 'arc_easy', '--output_path', 'o', '--batch_size', '16', '--seed', '0',
  ]);
  assert.throws(() => buildLmEvalArgv({ backend: 'vllm', pretrained: '/ckpt/a,b', tasks: ['piqa'], outputPath: 'o', addBosToken: true }), /comma/);
  assert.throws(() => buildLmEvalArgv({ backend: 'vllm', pretrained: 'm', tasks: ['piqa;rm'], outputPath: 'o', addBosToken: true }), /not a plain task name/);
});

test('lm-eval output folder names are sanitized as lm-eval.md §5.1 shows', () => {
  assert.equal(sanitizeModelName('meta-llama/Llama-3.1-8B'), 'meta-llama__Llama-3.1-8B');
  assert.equal(sanitizeModelName('/ckpt/run1'), '__ckpt__run1');
  assert.equal(sanitizeModelName('a:/b'), 'a__b');
});
