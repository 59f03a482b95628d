/**
 * Writes models/synth-llama-h32: a small Llama with random (seeded) weights and shapes that
 * the real tools accept whole. stories260k (head_dim 8, a 172-wide MLP) makes auto-round
 * leave layers in 16 bit and vLLM's CPU attention refuse it; this model has head_dim 32
 * (vLLM CPU supports 32, 64, 80, ...), widths that are multiples of 128, GQA (4 query heads,
 * 2 KV heads), an untied lm_head, and stories260k's 512-token tokenizer.
 *
 * It exists for equality tests between implementations, not for quality: the weights are
 * random. Values are drawn from N(0, 1/fan_in) (embeddings N(0, 1), norms 1 + N(0, 0.01)) with
 * the project's seeded SplitMix64 and rounded to bfloat16, so that the float32 file and a
 * bfloat16 copy of it hold the same numbers.
 *
 *   node --import tsx scripts/make-synth-llama.ts [--out models/synth-llama-h32]
 *
 * The same seed gives the same bytes (the test in test/checkpoint/synth-model.test.ts checks
 * that the committed file is what this script writes).
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors.ts';
import { SplitMix64 } from '../src/stats/rng.ts';

export const SYNTH_SEED = 20261208;

export const SYNTH_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 128,
  intermediate_size: 384,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 32,
  vocab_size: 512,
  max_position_embeddings: 1024,
  hidden_act: 'silu',
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  rope_scaling: null,
  attention_bias: false,
  attention_dropout: 0,
  mlp_bias: false,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  initializer_range: 0.02,
  pretraining_tp: 1,
  use_cache: true,
  torch_dtype: 'float32',
};

/** float32 -> nearest bfloat16 (round half to even), returned as float32. */
function toBf16(x: number, f: Float32Array, u: Uint32Array): number {
  f[0] = x;
  const bits = u[0];
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000;
  u[0] = rounded >>> 0;
  return f[0];
}

/** The model's tensors, in a fixed draw order (names sorted), so the bytes depend only on the seed. */
export function synthTensors(seed = SYNTH_SEED): TensorToWrite[] {
  const c = SYNTH_CONFIG;
  const H = c.hidden_size;
  const kv = c.num_key_value_heads * c.head_dim;
  const shapes: Array<[string, number[], 'normal' | 'norm' | 'embed']> = [['model.embed_tokens.weight', [c.vocab_size, H], 'embed']];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    shapes.push(
      [`${p}.input_layernorm.weight`, [H], 'norm'],
      [`${p}.self_attn.q_proj.weight`, [c.num_attention_heads * c.head_dim, H], 'normal'],
      [`${p}.self_attn.k_proj.weight`, [kv, H], 'normal'],
      [`${p}.self_attn.v_proj.weight`, [kv, H], 'normal'],
      [`${p}.self_attn.o_proj.weight`, [H, c.num_attention_heads * c.head_dim], 'normal'],
      [`${p}.post_attention_layernorm.weight`, [H], 'norm'],
      [`${p}.mlp.gate_proj.weight`, [c.intermediate_size, H], 'normal'],
      [`${p}.mlp.up_proj.weight`, [c.intermediate_size, H], 'normal'],
      [`${p}.mlp.down_proj.weight`, [H, c.intermediate_size], 'normal'],
    );
  }
  shapes.push(['model.norm.weight', [H], 'norm'], ['lm_head.weight', [c.vocab_size, H], 'normal']);
  shapes.sort((a, b) => (a[0] < b[0] ? -1 : 1));

  const rng = new SplitMix64(seed);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  // Box-Muller on the generator's doubles; (1 - u) keeps log() finite.
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng.nextFloat())) * Math.cos(2 * Math.PI * rng.nextFloat());
  return shapes.map(([name, shape, kind]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const std = kind === 'embed' ? 1 : kind === 'norm' ? 0.1 : 1 / Math.sqrt(shape[1]);
    for (let i = 0; i < n; i++) v[i] = toBf16((kind === 'norm' ? 1 : 0) + std * normal(), f, u);
    return { name, dtype: 'F32', shape, data: new Uint8Array(v.buffer) } as TensorToWrite;
  });
}

export function writeSynthLlama(out: string): void {
  mkdirSync(out, { recursive: true });
  writeSafetensors(join(out, 'model.safetensors'), synthTensors(), { format: 'pt' });
  writeFileSync(join(out, 'config.json'), JSON.stringify(SYNTH_CONFIG, null, 2) + '\n');
  writeFileSync(join(out, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }, null, 2) + '\n');
  const tok = resolve(import.meta.dirname, '../models/stories260k');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tok, f), join(out, f));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--out');
  const out = resolve(i > 0 ? process.argv[i + 1] : resolve(import.meta.dirname, '../models/synth-llama-h32'));
  writeSynthLlama(out);
  process.stdout.write(`wrote ${out}\n`);
}
