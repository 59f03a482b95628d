/**
 * Test support for the engine tests: random small Llama-family checkpoints written to a
 * temp dir, and (LOCAL ADAPTER, until test/helpers/reference-llama.ts is used everywhere)
 * an independent float64 forward pass written plainly from the HF modeling code's math.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseModelConfig, type ModelConfig } from '../../src/checkpoint/config.ts';
import { writeCheckpointTensors } from '../../src/checkpoint/tensors.ts';
import { llamaTensorShapes } from '../../src/engines/onnx/llama.ts';

/** Deterministic PRNG so every run builds the same model. */
import { uniformSource as rng } from '../../src/stats/index.ts';
export { rng };

export interface RandomModel {
  dir: string;
  config: ModelConfig;
  weights: Map<string, Float32Array>;
}

/** A random checkpoint of the given config.json fields, written as float32 safetensors. */
export function writeRandomModel(raw: Record<string, unknown>, seed: number): RandomModel {
  const config = parseModelConfig(raw);
  const r = rng(seed);
  const weights = new Map<string, Float32Array>();
  for (const [name, dims] of llamaTensorShapes(config)) {
    const n = dims.reduce((a, b) => a * b, 1);
    const w = new Float32Array(n);
    const isNorm = name.endsWith('norm.weight');
    const scale = name.includes('embed') || name.startsWith('lm_head') ? 1 : 1 / Math.sqrt(dims[dims.length - 1]);
    for (let i = 0; i < n; i++) w[i] = isNorm ? 0.8 + 0.4 * r() : (r() * 2 - 1) * 1.7 * scale;
    weights.set(name, w);
  }
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-onnx-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  writeCheckpointTensors(
    dir,
    [...weights].map(([name, w]) => ({ name, dtype: 'F32' as const, shape: llamaTensorShapes(config).get(name)!, data: new Uint8Array(w.buffer) })),
  );
  return { dir, config, weights };
}

export const baseConfig = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  vocab_size: 61,
  max_position_embeddings: 24,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
  ...over,
});

/**
 * Float64 forward pass: log-softmax over the vocabulary at every position of `tokens`
 * (positions × vocab), for one unpadded sequence. Deliberately naive.
 */
export function reference64(
  cfg: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
  tokens: readonly number[],
  /** Optional transform of each Linear's input row (activation quantization), by module name. */
  actQuant?: (module: string, row: Float64Array) => Float64Array,
): Float64Array[] {
  const W = (n: string) => {
    const w = weights.get(n);
    if (!w) throw new Error(`reference: missing ${n}`);
    return w;
  };
  const S = tokens.length;
  const H = cfg.hiddenSize;
  const hd = cfg.headDim;
  const lin = (x: Float64Array[], name: string, out: number, bias?: string) =>
    x.map((row0) => {
      const row = actQuant ? actQuant(name.slice(0, -'.weight'.length), row0) : row0;
      const w = W(name);
      const b = bias ? W(bias) : null;
      const y = new Float64Array(out);
      for (let o = 0; o < out; o++) {
        let s = b ? b[o] : 0;
        for (let i = 0; i < row.length; i++) s += w[o * row.length + i] * row[i];
        y[o] = s;
      }
      return y;
    });
  const rms = (v: Float64Array, w: Float32Array, off = 0, len = v.length) => {
    let ms = 0;
    for (let i = 0; i < len; i++) ms += v[off + i] ** 2;
    const inv = 1 / Math.sqrt(ms / len + cfg.rmsNormEps);
    for (let i = 0; i < len; i++) v[off + i] = v[off + i] * inv * w[i];
  };
  const norm = (x: Float64Array[], name: string) =>
    x.map((row) => {
      const c = Float64Array.from(row);
      rms(c, W(name));
      return c;
    });
  if (cfg.ropeScaling) throw new Error('reference64: rope scaling is not implemented here (test/families checks it against transformers)');
  const rope = (v: Float64Array, off: number, p: number) => {
    const half = hd / 2;
    for (let j = 0; j < half; j++) {
      const ang = p / Math.pow(cfg.ropeTheta, (2 * j) / hd);
      const a = v[off + j];
      const b = v[off + j + half];
      v[off + j] = a * Math.cos(ang) - b * Math.sin(ang);
      v[off + j + half] = b * Math.cos(ang) + a * Math.sin(ang);
    }
  };
  const emb = W('model.embed_tokens.weight');
  let h = tokens.map((t) => Float64Array.from(emb.subarray(t * H, (t + 1) * H)));
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    const x = norm(h, `${p}.input_layernorm.weight`);
    const bias = (n: string) => (cfg.attentionBias ? `${p}.self_attn.${n}.bias` : undefined);
    const q = lin(x, `${p}.self_attn.q_proj.weight`, cfg.numHeads * hd, bias('q_proj'));
    const k = lin(x, `${p}.self_attn.k_proj.weight`, cfg.numKvHeads * hd, bias('k_proj'));
    const v = lin(x, `${p}.self_attn.v_proj.weight`, cfg.numKvHeads * hd, bias('v_proj'));
    for (let s = 0; s < S; s++) {
      for (let hh = 0; hh < cfg.numHeads; hh++) {
        if (cfg.qkNorm) rms(q[s], W(`${p}.self_attn.q_norm.weight`), hh * hd, hd);
        rope(q[s], hh * hd, s);
      }
      for (let hh = 0; hh < cfg.numKvHeads; hh++) {
        if (cfg.qkNorm) rms(k[s], W(`${p}.self_attn.k_norm.weight`), hh * hd, hd);
        rope(k[s], hh * hd, s);
      }
    }
    const ctx = tokens.map(() => new Float64Array(cfg.numHeads * hd));
    const group = cfg.numHeads / cfg.numKvHeads;
    for (let hh = 0; hh < cfg.numHeads; hh++) {
      const kh = Math.floor(hh / group);
      for (let i = 0; i < S; i++) {
        const sc = new Float64Array(i + 1);
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) {
          let d = 0;
          for (let c = 0; c < hd; c++) d += q[i][hh * hd + c] * k[j][kh * hd + c];
          sc[j] = d / Math.sqrt(hd);
          mx = Math.max(mx, sc[j]);
        }
        let z = 0;
        for (let j = 0; j <= i; j++) z += (sc[j] = Math.exp(sc[j] - mx));
        for (let j = 0; j <= i; j++) for (let c = 0; c < hd; c++) ctx[i][hh * hd + c] += (sc[j] / z) * v[j][kh * hd + c];
      }
    }
    const o = lin(ctx, `${p}.self_attn.o_proj.weight`, H);
    h = h.map((row, s) => row.map((val, i) => val + o[s][i]));
    const y = norm(h, `${p}.post_attention_layernorm.weight`);
    const gt = lin(y, `${p}.mlp.gate_proj.weight`, cfg.intermediateSize);
    const up = lin(y, `${p}.mlp.up_proj.weight`, cfg.intermediateSize);
    const act = gt.map((g, s) => g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[s][i]));
    const dn = lin(act, `${p}.mlp.down_proj.weight`, H);
    h = h.map((row, s) => row.map((val, i) => val + dn[s][i]));
  }
  const hn = norm(h, 'model.norm.weight');
  const logits = lin(hn, cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight', cfg.vocabSize);
  return logits.map((row) => {
    const mx = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - mx);
    const lse = mx + Math.log(z);
    return row.map((v) => v - lse);
  });
}
