/** Test helpers: a seeded PRNG and a tiny random Llama checkpoint (stories260k-like widths: 64 and 172). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromFloat32, type DType } from '../../src/checkpoint/dtypes.ts';
import { writeCheckpointTensors } from '../../src/checkpoint/tensors.ts';
import type { TensorToWrite } from '../../src/checkpoint/safetensors.ts';

/** Seeded uniform source on [0, 1). */
import { uniformSource as rng } from '../../src/stats/index.ts';
export { rng };

export function gaussian(n: number, seed: number, std = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

export const TINY = { hidden: 64, inter: 172, layers: 2, heads: 8, kvHeads: 4, vocab: 32 };

/** Write a random Llama checkpoint with a tokenizer file; returns the directory. */
export function makeTinyModel(dir: string, seed = 1, dtype: DType = 'F32'): string {
  mkdirSync(dir, { recursive: true });
  const { hidden: H, inter: I, layers: L, heads, kvHeads, vocab: V } = TINY;
  const hd = H / heads;
  const tensors: TensorToWrite[] = [];
  let s = seed;
  const add = (name: string, shape: number[], std = 0.05) =>
    tensors.push({ name, dtype, shape, data: fromFloat32(gaussian(shape.reduce((a, b) => a * b, 1), s++, std), dtype) });
  add('model.embed_tokens.weight', [V, H]);
  add('lm_head.weight', [V, H]);
  add('model.norm.weight', [H], 1);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [H], 1);
    add(`${p}.post_attention_layernorm.weight`, [H], 1);
    add(`${p}.self_attn.q_proj.weight`, [heads * hd, H]);
    add(`${p}.self_attn.k_proj.weight`, [kvHeads * hd, H], 0.2);
    add(`${p}.self_attn.v_proj.weight`, [kvHeads * hd, H]);
    add(`${p}.self_attn.o_proj.weight`, [H, heads * hd]);
    add(`${p}.mlp.gate_proj.weight`, [I, H]);
    add(`${p}.mlp.up_proj.weight`, [I, H], 0.1);
    add(`${p}.mlp.down_proj.weight`, [H, I]);
  }
  writeCheckpointTensors(dir, tensors);
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: H, intermediate_size: I, num_hidden_layers: L,
    num_attention_heads: heads, num_key_value_heads: kvHeads, vocab_size: V, max_position_embeddings: 256, rms_norm_eps: 1e-5,
    torch_dtype: dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32', tie_word_embeddings: false,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, 'tokenizer.json'), '{"version":"1.0","model":{"type":"BPE"}}');
  return dir;
}
