/**
 * `config.json` of a Llama-family causal LM (Llama, Mistral, Qwen2, Qwen3), reduced to
 * the numbers that determine the forward pass. Qwen3 adds per-head RMSNorm on q and k;
 * Qwen2 adds biases on q/k/v.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { parseJsonObject } from './json.ts';

export interface ModelConfig {
  architecture: string;
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  /** Qwen3: RMSNorm over each head of q and k before RoPE. */
  qkNorm: boolean;
  /** Qwen2: q/k/v projections carry biases. */
  attentionBias: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** The raw JSON, for fields we pass through (e.g. quantization_config). */
  raw: Record<string, unknown>;
}

const FAMILIES: Record<string, { qkNorm: boolean; attentionBias: boolean }> = {
  llama: { qkNorm: false, attentionBias: false },
  mistral: { qkNorm: false, attentionBias: false },
  qwen2: { qkNorm: false, attentionBias: true },
  qwen3: { qkNorm: true, attentionBias: false },
};

export function readModelConfig(dir: string): ModelConfig {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(`${path}: missing; a model directory needs config.json (Hugging Face layout)`);
  }
  const raw = parseJsonObject(text, path, 'fix config.json');
  return parseModelConfig(raw, path);
}

export function parseModelConfig(raw: Record<string, unknown>, where = 'config.json'): ModelConfig {
  const modelType = String(raw.model_type ?? '');
  const family = FAMILIES[modelType];
  if (!family) throw new UserError(`${where}: model_type '${modelType}' is not supported (supported: ${Object.keys(FAMILIES).join(', ')})`);
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new UserError(`${where}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) throw new UserError(`${where}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  const headDim = raw.head_dim == null ? hiddenSize / numHeads : int('head_dim');
  if (!Number.isInteger(headDim)) throw new UserError(`${where}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  const eos = raw.eos_token_id;
  return {
    architecture: Array.isArray(raw.architectures) ? String(raw.architectures[0]) : '',
    modelType,
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int('vocab_size'),
    maxPositions: int('max_position_embeddings'),
    rmsNormEps: typeof raw.rms_norm_eps === 'number' ? raw.rms_norm_eps : 1e-6,
    ropeTheta: typeof raw.rope_theta === 'number' ? raw.rope_theta : 10000,
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    qkNorm: family.qkNorm,
    attentionBias: raw.attention_bias === true || family.attentionBias,
    bosTokenId: typeof raw.bos_token_id === 'number' ? raw.bos_token_id : null,
    eosTokenId: typeof eos === 'number' ? eos : Array.isArray(eos) && typeof eos[0] === 'number' ? eos[0] : null,
    raw,
  };
}

/** Hugging Face tensor names of decoder layer `i`'s Linear weights, in forward order. */
export function linearNames(i: number): string[] {
  const p = `model.layers.${i}`;
  return [
    `${p}.self_attn.q_proj`,
    `${p}.self_attn.k_proj`,
    `${p}.self_attn.v_proj`,
    `${p}.self_attn.o_proj`,
    `${p}.mlp.gate_proj`,
    `${p}.mlp.up_proj`,
    `${p}.mlp.down_proj`,
  ];
}
