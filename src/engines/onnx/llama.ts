/**
 * The ONNX graph of a Llama-family decoder (Llama 2/3.x, Mistral, Qwen2 with q/k/v biases,
 * Qwen3 with per-head q/k RMSNorm; GQA; rotate-half RoPE, Llama 3 frequency scaling; RMSNorm;
 * SwiGLU; tied or untied lm_head), with float32 weights as initializers. Scoring happens inside the
 * graph so that full logits never cross into JS:
 *
 *   inputs   input_ids [B,S] int64, attention_mask [B,S] int64 (right padding),
 *            targets [B,S] int64 (next token per position), k [1] int64 (top-k size)
 *   outputs  target_logprobs [B,S] f32, argmax [B,S] int64 (greedy token id),
 *            topk_logprobs [B,S,k] f32, topk_ids [B,S,k] int64
 *
 * Activations are kept 2-D ([B·S, features]) outside attention so every Linear is one
 * Gemm with transB (the PyTorch [out, in] layout needs no transposed copy).
 */
import type { ModelConfig } from '../../checkpoint/config.ts';
import { linearNames, ropeInvFreq } from '../../checkpoint/config.ts';
import { DT } from './proto.ts';
import { GraphBuilder } from './graph.ts';
import { fakeQuantActivation, validateActQuant, type ActQuant } from './actquant.ts';
import { checkInt4, matMulNBits, NBITS_DOMAIN, type Int4Linear } from './nbits.ts';

export type WeightSource = (name: string, expectedLength: number) => Float32Array;

export interface LlamaGraphOptions {
  /** Per-Linear activation quantization, keyed by module name (e.g. `model.layers.0.mlp.down_proj`). */
  actQuant?: ReadonlyMap<string, ActQuant>;
  /** Linears to run as MatMulNBits from int4 codes (their float weights are then not read). */
  int4?: ReadonlyMap<string, Int4Linear>;
}

/** Tensor names (and element counts) the graph reads, for validation and loading. */
export function llamaTensorShapes(cfg: ModelConfig): Map<string, number[]> {
  const H = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [cfg.vocabSize, H]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const [qp, kp, vp, op, gp, up, dp] = linearNames(i);
    m.set(`${p}.input_layernorm.weight`, [H]);
    m.set(`${qp}.weight`, [q, H]);
    m.set(`${kp}.weight`, [kv, H]);
    m.set(`${vp}.weight`, [kv, H]);
    if (cfg.attentionBias) {
      m.set(`${qp}.bias`, [q]);
      m.set(`${kp}.bias`, [kv]);
      m.set(`${vp}.bias`, [kv]);
    }
    if (cfg.qkNorm) {
      m.set(`${p}.self_attn.q_norm.weight`, [cfg.headDim]);
      m.set(`${p}.self_attn.k_norm.weight`, [cfg.headDim]);
    }
    m.set(`${op}.weight`, [H, q]);
    m.set(`${p}.post_attention_layernorm.weight`, [H]);
    m.set(`${gp}.weight`, [cfg.intermediateSize, H]);
    m.set(`${up}.weight`, [cfg.intermediateSize, H]);
    m.set(`${dp}.weight`, [H, cfg.intermediateSize]);
  }
  m.set('model.norm.weight', [H]);
  if (!cfg.tieWordEmbeddings) m.set('lm_head.weight', [cfg.vocabSize, H]);
  return m;
}

/**
 * RoPE tables [maxPositions, headDim] (halves duplicated): inverse frequencies (Llama 3 scaling
 * included) and angles in float64, rounded to float32 once.
 */
export function ropeTables(cfg: ModelConfig): { cos: Float32Array; sin: Float32Array } {
  const d = cfg.headDim;
  const half = d / 2;
  const inv = ropeInvFreq(cfg, 'float64');
  const cos = new Float32Array(cfg.maxPositions * d);
  const sin = new Float32Array(cfg.maxPositions * d);
  for (let p = 0; p < cfg.maxPositions; p++) {
    for (let j = 0; j < half; j++) {
      const angle = p * inv[j];
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * d + j] = cos[p * d + j + half] = c;
      sin[p * d + j] = sin[p * d + j + half] = s;
    }
  }
  return { cos, sin };
}

export function buildLlamaGraph(cfg: ModelConfig, weight: WeightSource, opts: LlamaGraphOptions = {}): Uint8Array {
  if (cfg.headDim % 2 !== 0) throw new Error(`head_dim ${cfg.headDim} must be even for rotate-half RoPE`);
  const shapes = llamaTensorShapes(cfg);
  const g = new GraphBuilder();
  const W = (name: string): string => {
    const dims = shapes.get(name);
    if (!dims) throw new Error(`internal: no shape for ${name}`);
    return g.weight(name, dims, weight(name, dims.reduce((a, b) => a * b, 1)));
  };
  const actQuant = opts.actQuant ?? new Map<string, ActQuant>();
  for (const [name, q] of actQuant) validateActQuant(name, q);

  const H = cfg.hiddenSize;
  const nH = cfg.numHeads;
  const nKV = cfg.numKvHeads;
  const hd = cfg.headDim;
  const groups = nH / nKV;

  const ids = g.input('input_ids', DT.INT64, ['batch', 'seq']);
  const mask = g.input('attention_mask', DT.INT64, ['batch', 'seq']);
  const targets = g.input('targets', DT.INT64, ['batch', 'seq']);
  const k = g.input('k', DT.INT64, [1]);

  const bs = g.op('Shape', [ids]); // [B, S]
  const seqLen = g.op('Slice', [bs, g.constI64([1]), g.constI64([2]), g.constI64([0])]); // [1]
  const shapeOf = (...tail: number[]) => g.op('Concat', [bs, g.constI64(tail)], { axis: { int: 0 } });

  // Additive attention bias [B,1,S,S]: causal and key padding.
  const pos = g.op('Range', [g.constI64(0), g.op('Squeeze', [seqLen, g.constI64([0])]), g.constI64(1)]);
  const causal = g.op('LessOrEqual', [g.op('Unsqueeze', [pos, g.constI64([0])]), g.op('Unsqueeze', [pos, g.constI64([1])])]);
  const keyOk = g.op('Cast', [g.op('Unsqueeze', [mask, g.constI64([1, 2])])], { to: { int: DT.BOOL } });
  const allowed = g.op('And', [causal, keyOk]);
  // A large finite negative (not -inf) keeps an all-masked padding row free of NaN.
  const bias = g.op('Where', [allowed, g.constF(0), g.constF(-1e30)]);

  const { cos, sin } = ropeTables(cfg);
  const ropeSlice = (t: string) => g.op('Slice', [t, g.constI64([0]), seqLen, g.constI64([0])]);
  const cosS = ropeSlice(g.weight('rope_cos', [cfg.maxPositions, hd], cos));
  const sinS = ropeSlice(g.weight('rope_sin', [cfg.maxPositions, hd], sin));

  const rmsNorm = (x: string, w: string): string => {
    const ms = g.op('ReduceMean', [g.op('Mul', [x, x]), g.constI64([-1])], { keepdims: { int: 1 } });
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constF(cfg.rmsNormEps)])])]);
    return g.op('Mul', [g.op('Mul', [x, inv]), w]);
  };
  const int4 = opts.int4 ?? new Map<string, Int4Linear>();
  const linear = (x: string, module: string, inF: number, withBias = false): string => {
    const q = actQuant.get(module);
    const xin = q ? fakeQuantActivation(g, x, inF, q) : x;
    const packed = int4.get(module);
    if (packed) {
      const out = shapes.get(`${module}.weight`)![0];
      const problem = checkInt4(packed, out, inF);
      if (problem) throw new Error(`int4 weights of '${module}': ${problem}`);
      const y = matMulNBits(g, xin, module, packed, out, inF);
      return withBias ? g.op('Add', [y, W(`${module}.bias`)]) : y;
    }
    const ins = [xin, W(`${module}.weight`)];
    if (withBias) ins.push(W(`${module}.bias`));
    return g.op('Gemm', ins, { transB: { int: 1 } });
  };
  const rope = (x: string): string => {
    const [x1, x2] = g.opN('Split', [x], 2, { axis: { int: -1 }, num_outputs: { int: 2 } });
    const rot = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: { int: -1 } });
    return g.op('Add', [g.op('Mul', [x, cosS]), g.op('Mul', [rot, sinS])]);
  };
  // [T, n·hd] -> [B, n, S, hd]
  const heads = (x: string, n: number): string => g.op('Transpose', [g.op('Reshape', [x, shapeOf(n, hd)])], { perm: { ints: [0, 2, 1, 3] } });
  const repeatKv = (x: string): string => {
    if (groups === 1) return x;
    const x5 = g.op('Unsqueeze', [x, g.constI64([2])]); // [B, nKV, 1, S, hd]
    const shp5 = g.op('Concat', [g.op('Slice', [bs, g.constI64([0]), g.constI64([1]), g.constI64([0])]), g.constI64([nKV, groups]), seqLen, g.constI64([hd])], { axis: { int: 0 } });
    const e = g.op('Expand', [x5, shp5]);
    return g.op('Reshape', [e, g.op('Concat', [g.op('Slice', [bs, g.constI64([0]), g.constI64([1]), g.constI64([0])]), g.constI64([nH]), seqLen, g.constI64([hd])], { axis: { int: 0 } })]);
  };

  let h = g.op('Gather', [W('model.embed_tokens.weight'), g.op('Reshape', [ids, g.constI64([-1])])], { axis: { int: 0 } }); // [T, H]
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const [qp, kp, vp, op, gp, up, dp] = linearNames(i);
    const x = rmsNorm(h, W(`${p}.input_layernorm.weight`));
    let q = heads(linear(x, qp, H, cfg.attentionBias), nH);
    let kk = heads(linear(x, kp, H, cfg.attentionBias), nKV);
    const v = heads(linear(x, vp, H, cfg.attentionBias), nKV);
    if (cfg.qkNorm) {
      q = rmsNorm(q, W(`${p}.self_attn.q_norm.weight`));
      kk = rmsNorm(kk, W(`${p}.self_attn.k_norm.weight`));
    }
    q = rope(q);
    kk = repeatKv(rope(kk));
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [kk], { perm: { ints: [0, 1, 3, 2] } })]), g.constF(1 / Math.sqrt(hd))]), bias]);
    const probs = g.op('Softmax', [scores], { axis: { int: -1 } });
    const ctx = g.op('MatMul', [probs, repeatKv(v)]); // [B, nH, S, hd]
    const ctx2 = g.op('Reshape', [g.op('Transpose', [ctx], { perm: { ints: [0, 2, 1, 3] } }), g.constI64([-1, nH * hd])]);
    h = g.op('Add', [h, linear(ctx2, op, nH * hd)]);
    const y = rmsNorm(h, W(`${p}.post_attention_layernorm.weight`));
    const gate = linear(y, gp, H);
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), linear(y, up, H)]);
    h = g.op('Add', [h, linear(act, dp, cfg.intermediateSize)]);
  }
  const hn = rmsNorm(h, W('model.norm.weight'));
  // A tied head reuses the embedding initializer: no second copy of a [V, H] matrix.
  const headW = cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : W('lm_head.weight');
  const headQ = actQuant.get('lm_head');
  const logits = g.op('Gemm', [headQ ? fakeQuantActivation(g, hn, H, headQ) : hn, headW], { transB: { int: 1 } }); // [T, V]
  const logp = g.op('LogSoftmax', [logits], { axis: { int: -1 } }); // [T, V]
  const tgt = g.op('Unsqueeze', [g.op('Reshape', [targets, g.constI64([-1])]), g.constI64([1])]);
  const tlp = g.op('Reshape', [g.op('GatherElements', [logp, tgt], { axis: { int: 1 } }), bs]);
  // Argmax over the log-softmax, as lm-eval's HF backend does; ties go to the lowest id.
  const am = g.op('Reshape', [g.op('ArgMax', [logp], { axis: { int: 1 }, keepdims: { int: 0 } }), bs]);
  const [tv, ti] = g.opN('TopK', [logp, k], 2, { axis: { int: -1 }, largest: { int: 1 }, sorted: { int: 1 } }, 'topk');
  const topShape = g.op('Concat', [bs, k], { axis: { int: 0 } });
  g.output('target_logprobs', tlp, DT.FLOAT, ['batch', 'seq']);
  g.output('argmax', am, DT.INT64, ['batch', 'seq']);
  g.output('topk_logprobs', g.op('Reshape', [tv, topShape]), DT.FLOAT, ['batch', 'seq', 'k']);
  g.output('topk_ids', g.op('Reshape', [ti, topShape]), DT.INT64, ['batch', 'seq', 'k']);
  return g.build('lowbit-bench', int4.size ? [NBITS_DOMAIN] : []);
}
