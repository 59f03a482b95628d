/**
 * config.json semantics per family. What we read is checked against what transformers 5.25
 * builds from the same file (test/families/hf_config.py reads the built modules: head_dim,
 * kv heads, biases, q/k norms, eps, tying, per-layer sliding windows, RoPE inv_freq); what we
 * cannot run is refused by name with a UserError.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireToolEnv } from '../helpers/toolenv.ts';
import { parseModelConfig, ropeInvFreq } from '../../src/checkpoint/config.ts';
import { UserError } from '../../src/errors.ts';

const tiny = (modelType: string, over: Record<string, unknown> = {}): Record<string, unknown> => ({
  model_type: modelType, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 3, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 64, max_position_embeddings: 64, bos_token_id: 1, eos_token_id: 2, ...over,
});
const llama3Scaling = { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' };

/** Configs whose reading must agree with transformers', each naming the switch it covers. */
const CASES: [string, Record<string, unknown>][] = [
  ['llama, no RoPE keys: theta 10000, eps default', tiny('llama')],
  ['llama 3 published layout: rope_theta + rope_scaling llama3, head_dim != hidden/heads', tiny('llama', { head_dim: 16, rope_theta: 500000.0, rope_scaling: llama3Scaling, tie_word_embeddings: true, rms_norm_eps: 1e-5 })],
  ['llama 3 transformers 5 layout: rope_parameters', tiny('llama', { head_dim: 16, rope_parameters: { ...llama3Scaling, rope_theta: 500000.0 } })],
  ['llama 3 legacy "type" key, factor 32', tiny('llama', { head_dim: 16, rope_theta: 500000.0, rope_scaling: { factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, type: 'llama3' } })],
  ['llama 3 without original_max_position_embeddings: max_position_embeddings', tiny('llama', { head_dim: 64, max_position_embeddings: 2048, rope_theta: 500000.0, rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, rope_type: 'llama3' } })],
  ['qwen3: head_dim absent means 128, q/k norm, tied', tiny('qwen3', { rope_theta: 1000000, tie_word_embeddings: true, rms_norm_eps: 1e-6 })],
  ['qwen3: explicit layer_types with a sliding layer', tiny('qwen3', { head_dim: 8, use_sliding_window: true, sliding_window: 8, layer_types: ['full_attention', 'sliding_attention', 'full_attention'] })],
  ['qwen2: q/k/v biases, derived head_dim, sliding window off', tiny('qwen2', { sliding_window: 16, use_sliding_window: false, max_window_layers: 1, rope_theta: 1000000.0 })],
  ['qwen2: sliding window on from max_window_layers', tiny('qwen2', { sliding_window: 16, use_sliding_window: true, max_window_layers: 1 })],
  ['qwen2: explicit head_dim', tiny('qwen2', { head_dim: 16 })],
  ['mistral: sliding_window absent means 4096', tiny('mistral', { rope_theta: 1000000.0 })],
  ['mistral: sliding_window null, untied', tiny('mistral', { sliding_window: null, tie_word_embeddings: false })],
];

interface Built { head_dim: number; kv_heads: number; qkv_bias: boolean; o_bias: boolean; qk_norm: boolean; eps: number; tied: boolean; windows: (number | null)[]; inv_freq: number[] }
let tmp = '';
let built: Built[] = [];

before(async () => {
  const env = await requireToolEnv('eval');
  tmp = mkdtempSync(join(tmpdir(), 'lowbit-config-'));
  writeFileSync(join(tmp, 'in.json'), JSON.stringify(CASES.map(([, raw]) => raw)));
  await promisify(execFile)(env.python, [join(import.meta.dirname, 'hf_config.py'), join(tmp, 'in.json'), join(tmp, 'out.json')], { timeout: 600_000 });
  built = JSON.parse(readFileSync(join(tmp, 'out.json'), 'utf8'));
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

CASES.forEach(([name, raw], i) => {
  test(`reads as transformers builds it: ${name}`, () => {
    const cfg = parseModelConfig(structuredClone(raw));
    const hf = built[i];
    assert.equal(cfg.headDim, hf.head_dim, 'head_dim');
    assert.equal(cfg.numKvHeads, hf.kv_heads, 'kv heads');
    assert.equal(cfg.attentionBias, hf.qkv_bias, 'q/k/v bias');
    assert.equal(hf.o_bias, false, 'o_proj bias (never accepted)');
    assert.equal(cfg.qkNorm, hf.qk_norm, 'q/k norm');
    assert.equal(cfg.rmsNormEps, hf.eps, 'rms_norm_eps');
    assert.equal(cfg.tieWordEmbeddings, hf.tied, 'tie_word_embeddings');
    const windows = hf.windows.filter((w): w is number => w !== null);
    assert.equal(cfg.slidingWindow, windows.length ? Math.min(...windows) : null, 'sliding window');
    const inv = ropeInvFreq(cfg, 'float32');
    assert.equal(inv.length, hf.inv_freq.length);
    // float32 pow may round differently by an ulp; a wrong theta or scaling band is far off.
    hf.inv_freq.forEach((f, j) => assert.ok(Math.abs(inv[j] - f) <= 2e-7 * f, `inv_freq[${j}] ${inv[j]} vs ${f}`));
  });
});

test('what the engine cannot run is refused by name, with a UserError', () => {
  const refused: [Record<string, unknown>, RegExp][] = [
    [tiny('llama', { rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 } }), /RoPE type "yarn"/],
    [tiny('llama', { rope_scaling: { rope_type: 'linear', factor: 2 } }), /RoPE type "linear"/],
    [tiny('llama', { rope_parameters: { rope_type: 'dynamic', factor: 2, rope_theta: 10000 } }), /RoPE type "dynamic"/],
    [tiny('llama', { rope_scaling: { ...llama3Scaling, mscale: 1 } }), /rope_scaling\.mscale/],
    [tiny('llama', { partial_rotary_factor: 0.5 }), /partial_rotary_factor 0\.5/],
    [tiny('llama', { attention_bias: true }), /attention_bias true/],
    [tiny('llama', { mlp_bias: true }), /mlp_bias/],
    [tiny('llama', { hidden_act: 'gelu' }), /hidden_act "gelu"/],
    [tiny('llama', { sliding_window: 16 }), /sliding_window/],
    [tiny('mistral', { attention_bias: true }), /attention_bias true/],
    [tiny('qwen2', { use_mrope: true }), /use_mrope/],
    [tiny('llama', { rope_interleaved: true }), /rope_interleaved true/],
    [tiny('qwen3', { layer_types: ['full_attention', 'chunked_attention', 'full_attention'] }), /layer type "chunked_attention"/],
    [tiny('qwen3', { num_experts: 8, num_experts_per_tok: 2 }), /key 'num_experts'/],
    [tiny('llama', { some_new_switch: true }), /key 'some_new_switch'/],
    [tiny('gemma'), /model_type 'gemma' is not supported/],
    [tiny('qwen2', { architectures: ['Qwen2ForSequenceClassification'] }), /architectures .*not a causal LM head/],
  ];
  for (const [raw, named] of refused) {
    assert.throws(() => parseModelConfig(raw), (e: unknown) => e instanceof UserError && named.test(e.message) && !e.message.includes('\n'), JSON.stringify(raw));
  }
});

test('bad numbers are refused: ambiguous RoPE, eps, head_dim, token ids', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [tiny('llama', { rope_theta: 10000, rope_parameters: { rope_type: 'default', rope_theta: 500000 } }), /rope_parameters\.rope_theta.*rope_theta|says rope_theta/],
    [tiny('llama', { rope_scaling: { ...llama3Scaling, rope_theta: 1 }, rope_parameters: { ...llama3Scaling, rope_theta: 2 } }), /keep one/],
    [tiny('llama', { rope_scaling: { rope_type: 'llama3', factor: 8 } }), /needs 'low_freq_factor'/],
    [tiny('llama', { rope_parameters: { rope_type: 'default', rope_theta: 1e6 }, rope_scaling: { rope_type: 'default' } }), /state different keys; keep one/],
    [tiny('llama', { rope_scaling: { ...llama3Scaling, low_freq_factor: 4, high_freq_factor: 1 } }), /high_freq_factor 1 must exceed/],
    [tiny('llama', { rope_theta: -5 }), /rope_theta must be a positive number/],
    [tiny('llama', { rms_norm_eps: 0 }), /rms_norm_eps/],
    [tiny('llama', { rms_norm_eps: -1e-5 }), /rms_norm_eps/],
    [tiny('llama', { head_dim: 7 }), /head_dim 7 is odd/],
    [tiny('llama', { hidden_size: 30 }), /not divisible/],
    [tiny('llama', { bos_token_id: 64 }), /bos_token_id' 64 is not a token id in 0\.\.63/],
    [tiny('llama', { eos_token_id: [2, 99] }), /eos_token_id' 99/],
    [tiny('llama', { pad_token_id: -1 }), /pad_token_id/],
    [tiny('llama', { tie_word_embeddings: 'yes' }), /tie_word_embeddings/],
    [tiny('qwen2', { use_sliding_window: true, sliding_window: 0 }), /sliding_window/],
  ];
  for (const [raw, named] of bad) {
    assert.throws(() => parseModelConfig(raw), (e: unknown) => e instanceof UserError && named.test(e.message), JSON.stringify(raw));
  }
  // The same value stated in both layouts is not ambiguous.
  const both = parseModelConfig(tiny('llama', { rope_theta: 500000.0, rope_parameters: { rope_type: 'default', rope_theta: 500000 } }));
  assert.equal(both.ropeTheta, 500000);
});
