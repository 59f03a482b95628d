/**
 * A plain float64 forward pass of a Hugging Face-layout Llama-family causal LM, for tests.
 * Written for clarity and independent of any engine code: one token at a time, full causal
 * attention, no caching tricks. Covers Llama/Mistral (RMSNorm, rotate-half RoPE, grouped-query
 * attention, SwiGLU), tied or untied lm_head, Qwen2's q/k/v biases and Qwen3's per-head
 * q/k RMSNorm. Weights are read as given (float32 or float64) and widened to float64.
 */
import type { ModelConfig } from '../../src/checkpoint/config.ts';
import { CheckpointTensors } from '../../src/checkpoint/tensors.ts';

export type Weights = Map<string, Float64Array | Float32Array>;

/** All tensors of a checkpoint directory, decoded to float32 (for `referenceLogits`). */
export function loadWeights(dir: string): Map<string, Float32Array> {
  const ckpt = CheckpointTensors.open(dir);
  try {
    return new Map(ckpt.names().map((n) => [n, ckpt.readFloat32(n)]));
  } finally {
    ckpt.close();
  }
}

function get(weights: Weights, name: string, size: number): Float64Array | Float32Array {
  const w = weights.get(name);
  if (!w) throw new Error(`reference forward: missing weight '${name}'`);
  if (w.length !== size) throw new Error(`reference forward: '${name}' has ${w.length} values, expected ${size}`);
  return w;
}

/** y = W x (+ b), W stored (out, in) row-major like nn.Linear.weight. */
function linear(W: ArrayLike<number>, x: Float64Array, outDim: number, bias?: ArrayLike<number>): Float64Array {
  const inDim = x.length;
  const y = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let s = bias ? bias[o] : 0;
    for (let i = 0; i < inDim; i++) s += W[o * inDim + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** RMSNorm over x[off, off+n): x / sqrt(mean(x^2) + eps) * w. */
function rmsNorm(x: Float64Array, w: ArrayLike<number>, eps: number, off = 0, n = x.length): Float64Array {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
  const inv = 1 / Math.sqrt(ss / n + eps);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) y[i] = x[off + i] * inv * w[i];
  return y;
}

/** HF rotate-half RoPE on one head in place: pairs (i, i + d/2) rotated by pos * theta^(-2i/d). */
function rope(v: Float64Array, off: number, headDim: number, pos: number, theta: number): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = pos * Math.pow(theta, (-2 * i) / headDim);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const a = v[off + i];
    const b = v[off + i + half];
    v[off + i] = a * c - b * s;
    v[off + i + half] = b * c + a * s;
  }
}

/** Logits for every position, row-major (tokens.length x vocabSize). */
export function referenceLogits(config: ModelConfig, weights: Weights, tokens: number[]): Float64Array {
  const { hiddenSize: D, intermediateSize: F, numHeads: H, numKvHeads: KV, headDim: hd, vocabSize: V, rmsNormEps: eps, ropeTheta } = config;
  // Plain RoPE only; scaled RoPE is checked against transformers in test/families.
  if (config.ropeScaling) throw new Error('reference forward: rope scaling is not implemented here');
  const T = tokens.length;
  const groups = H / KV;
  const embed = get(weights, 'model.embed_tokens.weight', V * D);
  const head = config.tieWordEmbeddings ? embed : get(weights, 'lm_head.weight', V * D);

  // residual stream, one Float64Array per position
  const xs: Float64Array[] = tokens.map((t) => {
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`reference forward: token ${t} outside vocabulary`);
    return Float64Array.from(embed.subarray(t * D, (t + 1) * D));
  });

  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    const wq = get(weights, `${p}.self_attn.q_proj.weight`, H * hd * D);
    const wk = get(weights, `${p}.self_attn.k_proj.weight`, KV * hd * D);
    const wv = get(weights, `${p}.self_attn.v_proj.weight`, KV * hd * D);
    const wo = get(weights, `${p}.self_attn.o_proj.weight`, D * H * hd);
    const bq = config.attentionBias ? get(weights, `${p}.self_attn.q_proj.bias`, H * hd) : undefined;
    const bk = config.attentionBias ? get(weights, `${p}.self_attn.k_proj.bias`, KV * hd) : undefined;
    const bv = config.attentionBias ? get(weights, `${p}.self_attn.v_proj.bias`, KV * hd) : undefined;
    const qNorm = config.qkNorm ? get(weights, `${p}.self_attn.q_norm.weight`, hd) : undefined;
    const kNorm = config.qkNorm ? get(weights, `${p}.self_attn.k_norm.weight`, hd) : undefined;

    // attention: q, k, v for every position first, then causal softmax(q k^T / sqrt(hd)) v
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const h = rmsNorm(xs[t], get(weights, `${p}.input_layernorm.weight`, D), eps);
      const q = linear(wq, h, H * hd, bq);
      const k = linear(wk, h, KV * hd, bk);
      const v = linear(wv, h, KV * hd, bv);
      if (qNorm && kNorm) {
        for (let i = 0; i < H; i++) q.set(rmsNorm(q, qNorm, eps, i * hd, hd), i * hd);
        for (let i = 0; i < KV; i++) k.set(rmsNorm(k, kNorm, eps, i * hd, hd), i * hd);
      }
      for (let i = 0; i < H; i++) rope(q, i * hd, hd, t, ropeTheta);
      for (let i = 0; i < KV; i++) rope(k, i * hd, hd, t, ropeTheta);
      qs.push(q);
      ks.push(k);
      vs.push(v);
    }
    for (let t = 0; t < T; t++) {
      const att = new Float64Array(H * hd);
      for (let i = 0; i < H; i++) {
        const kvh = Math.floor(i / groups); // query head i reads KV head i / (H / KV)
        const scores = new Float64Array(t + 1);
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += qs[t][i * hd + d] * ks[s][kvh * hd + d];
          scores[s] = dot / Math.sqrt(hd);
          if (scores[s] > max) max = scores[s];
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += (scores[s] = Math.exp(scores[s] - max));
        for (let s = 0; s <= t; s++) {
          const w = scores[s] / sum;
          for (let d = 0; d < hd; d++) att[i * hd + d] += w * vs[s][kvh * hd + d];
        }
      }
      const o = linear(wo, att, D);
      for (let d = 0; d < D; d++) xs[t][d] += o[d];
    }

    // SwiGLU MLP: down(silu(gate h) * up h)
    const wg = get(weights, `${p}.mlp.gate_proj.weight`, F * D);
    const wu = get(weights, `${p}.mlp.up_proj.weight`, F * D);
    const wd = get(weights, `${p}.mlp.down_proj.weight`, D * F);
    for (let t = 0; t < T; t++) {
      const h = rmsNorm(xs[t], get(weights, `${p}.post_attention_layernorm.weight`, D), eps);
      const g = linear(wg, h, F);
      const u = linear(wu, h, F);
      for (let j = 0; j < F; j++) g[j] = (g[j] / (1 + Math.exp(-g[j]))) * u[j];
      const y = linear(wd, g, D);
      for (let d = 0; d < D; d++) xs[t][d] += y[d];
    }
  }

  const out = new Float64Array(T * V);
  const normW = get(weights, 'model.norm.weight', D);
  for (let t = 0; t < T; t++) out.set(linear(head, rmsNorm(xs[t], normW, eps), V), t * V);
  return out;
}

/** Log-softmax of `referenceLogits` over the vocabulary, per position (tokens.length x vocabSize). */
export function referenceLogprobs(config: ModelConfig, weights: Weights, tokens: number[]): Float64Array {
  const logits = referenceLogits(config, weights, tokens);
  const V = config.vocabSize;
  for (let t = 0; t < tokens.length; t++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[t * V + v] - max);
    const lse = max + Math.log(sum);
    for (let v = 0; v < V; v++) logits[t * V + v] -= lse;
  }
  return logits;
}
