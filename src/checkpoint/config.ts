/**
 * `config.json` of a Llama-family causal LM (Llama 2/3.x, Mistral, Qwen2, Qwen3), reduced to
 * the numbers that determine the forward pass. The families differ in a few switches, read the
 * way transformers 5.25's modeling code reads them (models/{llama,mistral,qwen2,qwen3}):
 *   - Qwen3: per-head RMSNorm on q and k; head_dim defaults to 128, not hidden/heads.
 *   - Qwen2: q/k/v biases always (its modeling ignores attention_bias).
 *   - Llama, Qwen3: attention_bias puts a bias on q/k/v AND o_proj (refused: o_proj bias).
 *   - Mistral: sliding_window defaults to 4096 when the key is absent; Qwen2/3 only slide
 *     with use_sliding_window, on the layers from max_window_layers (or as layer_types says).
 * RoPE comes either as `rope_parameters` (transformers 5) or as `rope_theta` + `rope_scaling`
 * (older checkpoints); both are read, and they must agree when both are present. Every key is
 * either read, known not to change the forward pass, or refused by name: a key we do not
 * understand never falls back silently to a default.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { parseJsonObject } from './json.ts';

/** Llama 3.1 RoPE frequency scaling (rope_type 'llama3'). */
export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

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
  /** Llama 3 frequency scaling; null = plain RoPE with `ropeTheta`. */
  ropeScaling: Llama3RopeScaling | null;
  /** Smallest sliding-attention window of any layer (a key sees queries less than this many positions ahead); null = full attention everywhere. */
  slidingWindow: number | null;
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

interface Family {
  qkNorm: boolean;
  /** 'fixed': q/k/v biases regardless of attention_bias (Qwen2); 'none': never (Mistral); 'config': attention_bias (q/k/v/o). */
  bias: 'fixed' | 'none' | 'config';
  /** head_dim when the key is absent: a number (Qwen3's class default) or derived from hidden/heads. */
  headDim: number | 'derived';
  /** num_key_value_heads when the key is absent (the config class default); 'heads' = num_attention_heads. */
  kvHeads: number | 'heads';
  sliding: 'none' | 'mistral' | 'qwen';
}

const FAMILIES: Record<string, Family> = {
  llama: { qkNorm: false, bias: 'config', headDim: 'derived', kvHeads: 'heads', sliding: 'none' },
  mistral: { qkNorm: false, bias: 'none', headDim: 'derived', kvHeads: 8, sliding: 'mistral' },
  qwen2: { qkNorm: false, bias: 'fixed', headDim: 'derived', kvHeads: 32, sliding: 'qwen' },
  qwen3: { qkNorm: true, bias: 'config', headDim: 128, kvHeads: 32, sliding: 'qwen' },
};

/**
 * Keys that do not change the forward pass of a causal LM in float32 inference: provenance,
 * training-only settings (dropout, init, tensor-parallel split), generation defaults, and
 * quantization metadata that the checkpoint readers handle themselves.
 */
const METADATA_KEYS = new Set([
  'architectures', '_name_or_path', '_commit_hash', 'transformers_version', 'torch_dtype', 'dtype', 'use_cache',
  'initializer_range', 'attention_dropout', 'pretraining_tp', 'pad_token_id', 'sep_token_id', 'decoder_start_token_id',
  'output_hidden_states', 'output_attentions', 'return_dict', 'chunk_size_feed_forward', 'is_encoder_decoder',
  'problem_type', 'id2label', 'label2id', 'tokenizer_class', 'task_specific_params', 'finetuning_task', 'prefix',
  'quantization_config', 'compression_config', 'max_length', 'min_length', 'do_sample', 'temperature', 'top_p', 'top_k',
  'num_beams', 'repetition_penalty', 'use_bfloat16', 'tf_legacy_loss', 'torchscript', 'is_llama_config',
]);

/** Keys this reader interprets (per family, some only to check they hold the neutral value). */
const READ_KEYS = new Set([
  'model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'vocab_size', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'rope_parameters',
  'partial_rotary_factor', 'original_max_position_embeddings', 'tie_word_embeddings', 'hidden_act', 'mlp_bias',
  'attention_bias', 'bos_token_id', 'eos_token_id', 'sliding_window', 'use_sliding_window', 'max_window_layers',
  'layer_types', 'use_mrope', 'rope_interleaved',
]);

const ROPE_KEYS: Record<string, string[]> = {
  default: ['rope_type', 'type', 'rope_theta', 'partial_rotary_factor'],
  llama3: ['rope_type', 'type', 'rope_theta', 'partial_rotary_factor', 'factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
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

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseModelConfig(raw: Record<string, unknown>, where = 'config.json'): ModelConfig {
  if (!isObject(raw)) throw new UserError(`${where}: must be a JSON object`);
  const modelType = String(raw.model_type ?? '');
  const family = FAMILIES[modelType];
  if (!family) throw new UserError(`${where}: model_type '${modelType}' is not supported (supported: ${Object.keys(FAMILIES).join(', ')})`);
  const refuse = (what: string): never => {
    throw new UserError(`${where}: ${what} is not supported by lowbit-bench's embedded engine and quantizers (a ${modelType} model); use the vLLM engine and the external quantizers for it`);
  };
  for (const key of Object.keys(raw)) {
    if (!READ_KEYS.has(key) && !METADATA_KEYS.has(key)) refuse(`key '${key}' (not understood, and it may change the forward pass)`);
  }
  // AutoModelForCausalLM dispatches on model_type; a head other than a causal LM's is not ours.
  if (raw.architectures != null && !(Array.isArray(raw.architectures) && raw.architectures.some((a) => typeof a === 'string' && a.endsWith('ForCausalLM')))) {
    refuse(`architectures ${JSON.stringify(raw.architectures)} (not a causal LM head)`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new UserError(`${where}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'boolean') throw new UserError(`${where}: '${key}' must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const kvAbsent = !('num_key_value_heads' in raw);
  const numKvHeads = kvAbsent ? (family.kvHeads === 'heads' ? numHeads : family.kvHeads) : int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) throw new UserError(`${where}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}${kvAbsent ? ` (${modelType}'s default when the key is absent)` : ''}`);
  let headDim: number;
  if (raw.head_dim == null) {
    if (!('head_dim' in raw) && typeof family.headDim === 'number') headDim = family.headDim;
    else {
      headDim = hiddenSize / numHeads;
      if (!Number.isInteger(headDim)) throw new UserError(`${where}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}; set head_dim`);
    }
  } else headDim = int('head_dim');
  if (headDim % 2 !== 0) throw new UserError(`${where}: head_dim ${headDim} is odd; rotate-half RoPE needs an even head_dim`);
  const vocabSize = int('vocab_size');
  const maxPositions = int('max_position_embeddings');

  const eps = raw.rms_norm_eps ?? 1e-6;
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0) throw new UserError(`${where}: 'rms_norm_eps' must be a positive number, got ${JSON.stringify(raw.rms_norm_eps)}`);

  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') refuse(`hidden_act ${JSON.stringify(act)} (only silu)`);
  if (bool('mlp_bias', false)) refuse('mlp_bias true');
  if (bool('use_mrope', false)) refuse('use_mrope true (multimodal RoPE)');
  // SmolLM-style configs state the RoPE pairing; transformers always rotates halves.
  if (bool('rope_interleaved', false)) refuse('rope_interleaved true (interleaved RoPE pairs)');
  let attentionBias: boolean;
  if (family.bias === 'fixed') {
    if ('attention_bias' in raw && raw.attention_bias !== true) refuse(`attention_bias ${JSON.stringify(raw.attention_bias)} (${modelType} always has q/k/v biases)`);
    attentionBias = true;
  } else if (family.bias === 'none') {
    if ('attention_bias' in raw && raw.attention_bias !== false) refuse(`attention_bias ${JSON.stringify(raw.attention_bias)} (${modelType} has no attention biases)`);
    attentionBias = false;
  } else {
    if (bool('attention_bias', false)) refuse('attention_bias true (biases on q/k/v and o_proj)');
    attentionBias = false;
  }

  const { theta, scaling } = readRope(raw, maxPositions, where, refuse);
  const numLayers = int('num_hidden_layers');
  const slidingWindow = readSlidingWindow(raw, family, numLayers, where, refuse);

  const tokenId = (key: string, v: unknown): number | null => {
    if (v == null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocabSize) throw new UserError(`${where}: '${key}' ${JSON.stringify(v)} is not a token id in 0..${vocabSize - 1} (vocab_size)`);
    return v;
  };
  const bosTokenId = tokenId('bos_token_id', raw.bos_token_id);
  tokenId('pad_token_id', raw.pad_token_id);
  const eos = Array.isArray(raw.eos_token_id) ? raw.eos_token_id.map((v) => tokenId('eos_token_id', v)) : [tokenId('eos_token_id', raw.eos_token_id)];
  return {
    architecture: Array.isArray(raw.architectures) ? String(raw.architectures.find((a) => String(a).endsWith('ForCausalLM'))) : '',
    modelType,
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    maxPositions,
    rmsNormEps: eps,
    ropeTheta: theta,
    ropeScaling: scaling,
    slidingWindow,
    tieWordEmbeddings: bool('tie_word_embeddings', false),
    qkNorm: family.qkNorm,
    attentionBias,
    bosTokenId,
    eosTokenId: eos[0] ?? null,
    raw,
  };
}

/**
 * RoPE settings from either layout. transformers 5 lets rope_scaling replace rope_parameters
 * and fills a missing rope_theta from the top-level key (default 10000); here every place
 * that states a value must state the same one, so no layout can hide a different number.
 */
function readRope(raw: Record<string, unknown>, maxPositions: number, where: string, refuse: (what: string) => never): { theta: number; scaling: Llama3RopeScaling | null } {
  const dicts: [string, Record<string, unknown>][] = [];
  for (const key of ['rope_parameters', 'rope_scaling']) {
    const v = raw[key];
    if (v == null) continue;
    if (!isObject(v)) throw new UserError(`${where}: '${key}' must be an object or null, got ${JSON.stringify(v)}`);
    dicts.push([key, v]);
  }
  // One merged view; a key stated twice with different values is ambiguous.
  const merged: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  const put = (source: string, key: string, value: unknown): void => {
    if (key in merged && JSON.stringify(merged[key]) !== JSON.stringify(value)) {
      throw new UserError(`${where}: ${from[key]} says ${key} ${JSON.stringify(merged[key])} but ${source} says ${JSON.stringify(value)}; keep one`);
    }
    merged[key] = value;
    from[key] = source;
  };
  for (const [name, d] of dicts) {
    for (const [k, v] of Object.entries(d)) put(`${name}.${k}`, k === 'type' ? 'rope_type' : k, v);
  }
  // transformers lets rope_scaling replace rope_parameters whole: a key only one of them states
  // would be dropped, so both must state the same keys.
  if (dicts.length === 2) {
    const keys = dicts.map(([, d]) => Object.keys(d).map((k) => (k === 'type' ? 'rope_type' : k)).sort().join(','));
    if (keys[0] !== keys[1]) throw new UserError(`${where}: rope_parameters {${keys[0]}} and rope_scaling {${keys[1]}} state different keys; keep one`);
  }
  for (const k of ['rope_theta', 'partial_rotary_factor']) if (raw[k] != null) put(k, k, raw[k]);
  const type = merged.rope_type ?? 'default';
  if (typeof type !== 'string' || !(type in ROPE_KEYS)) refuse(`RoPE type ${JSON.stringify(type)} (supported: default, llama3)`);
  const allowed = new Set(ROPE_KEYS[type as string]);
  for (const [name, d] of dicts) for (const k of Object.keys(d)) if (!allowed.has(k)) refuse(`${name}.${k} for RoPE type '${type}'`);
  const num = (key: string, value: unknown, positive = true): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || (positive && value <= 0)) throw new UserError(`${where}: RoPE ${key} must be a positive number, got ${JSON.stringify(value)}`);
    return value;
  };
  const theta = num('rope_theta', merged.rope_theta ?? 10000);
  if (merged.partial_rotary_factor != null && merged.partial_rotary_factor !== 1) refuse(`partial_rotary_factor ${JSON.stringify(merged.partial_rotary_factor)}`);
  if (type === 'default') {
    if (raw.original_max_position_embeddings != null) refuse('original_max_position_embeddings without a scaled RoPE type');
    return { theta, scaling: null };
  }
  for (const k of ['factor', 'low_freq_factor', 'high_freq_factor']) {
    if (merged[k] == null) throw new UserError(`${where}: RoPE type 'llama3' needs '${k}' in rope_scaling / rope_parameters`);
  }
  // As transformers: a top-level original_max_position_embeddings takes priority, then the
  // RoPE dict's, then max_position_embeddings.
  const orig = raw.original_max_position_embeddings ?? merged.original_max_position_embeddings ?? maxPositions;
  if (typeof orig !== 'number' || !Number.isInteger(orig) || orig <= 0) throw new UserError(`${where}: original_max_position_embeddings must be a positive integer, got ${JSON.stringify(orig)}`);
  const scaling: Llama3RopeScaling = {
    factor: num('factor', merged.factor),
    lowFreqFactor: num('low_freq_factor', merged.low_freq_factor),
    highFreqFactor: num('high_freq_factor', merged.high_freq_factor),
    originalMaxPositions: orig,
  };
  if (scaling.highFreqFactor <= scaling.lowFreqFactor) throw new UserError(`${where}: RoPE high_freq_factor ${scaling.highFreqFactor} must exceed low_freq_factor ${scaling.lowFreqFactor}`);
  return { theta, scaling };
}

/** The window of sliding-attention layers, as the family's transformers config resolves it. */
function readSlidingWindow(raw: Record<string, unknown>, family: Family, numLayers: number, where: string, refuse: (what: string) => never): number | null {
  const window = (fallback: number): number | null => {
    const v = 'sliding_window' in raw ? raw.sliding_window : fallback;
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new UserError(`${where}: 'sliding_window' must be a positive integer or null, got ${JSON.stringify(v)}`);
    return v;
  };
  if (family.sliding === 'none') {
    for (const k of ['sliding_window', 'use_sliding_window', 'max_window_layers', 'layer_types']) if (k in raw) refuse(`key '${k}' (${String(raw.model_type)} has no sliding-window attention)`);
    return null;
  }
  if (family.sliding === 'mistral') {
    for (const k of ['use_sliding_window', 'max_window_layers', 'layer_types']) if (k in raw) refuse(`key '${k}' (Mistral's modeling ignores it; Ministral-style per-layer windows)`);
    return window(4096);
  }
  const use = raw.use_sliding_window ?? false;
  if (typeof use !== 'boolean') throw new UserError(`${where}: 'use_sliding_window' must be true or false, got ${JSON.stringify(use)}`);
  const w = use ? window(4096) : null;
  let types: unknown[];
  if (raw.layer_types != null) {
    if (!Array.isArray(raw.layer_types) || raw.layer_types.length !== numLayers) throw new UserError(`${where}: 'layer_types' must list ${numLayers} entries (num_hidden_layers)`);
    types = raw.layer_types;
  } else {
    const first = raw.max_window_layers ?? 28;
    if (typeof first !== 'number' || !Number.isInteger(first) || first < 0) throw new UserError(`${where}: 'max_window_layers' must be a non-negative integer, got ${JSON.stringify(first)}`);
    types = Array.from({ length: numLayers }, (_, i) => (w !== null && i >= first ? 'sliding_attention' : 'full_attention'));
  }
  for (const t of types) if (t !== 'full_attention' && t !== 'sliding_attention') refuse(`layer type ${JSON.stringify(t)}`);
  return w !== null && types.includes('sliding_attention') ? w : null;
}

/**
 * RoPE inverse frequencies θ^(-2i/d), i < d/2, with Llama 3 scaling applied. 'float32' rounds
 * after every operation as transformers computes them (modeling_rope_utils, float32 tensors);
 * 'float64' keeps the exact values (the ONNX engine's tables are rounded once, at the end).
 */
export function ropeInvFreq(cfg: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>, precision: 'float32' | 'float64'): Float64Array {
  const d = cfg.headDim;
  const inv = new Float64Array(d / 2);
  const r = precision === 'float32' ? Math.fround : (x: number) => x;
  for (let i = 0; i < d / 2; i++) {
    inv[i] = precision === 'float32' ? r(1 / r(cfg.ropeTheta ** r((2 * i) / d))) : Math.pow(cfg.ropeTheta, (-2 * i) / d);
  }
  const s = cfg.ropeScaling;
  if (!s) return inv;
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i];
    const wavelen = r(r(2 * Math.PI) / f);
    if (wavelen < highWavelen) continue; // high frequencies: unchanged
    if (wavelen > lowWavelen) { inv[i] = r(f / s.factor); continue; } // low: divided by factor
    // In between: interpolate between the scaled and the unscaled frequency.
    const smooth = r(r(r(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
    inv[i] = r(r(r(r(1 - smooth) * f) / s.factor) + r(smooth * f));
  }
  return inv;
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
