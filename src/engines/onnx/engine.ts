/**
 * The embedded engine: an ONNX graph built from a Llama-family checkpoint, run in-process
 * by onnxruntime-node on CPU. Implements `Engine` (token ids in, log-probs out).
 *
 * Determinism: sequences are scored in batches (longest first) padded on the right;
 * padding never reaches a real position (causal mask + key mask). Same inputs, batch size
 * and threads give identical bits. Across batch sizes 1-11 and 1-2 threads we observed
 * bit-identical log-probs with onnxruntime 1.30 on x86-64 (MLAS does not split the
 * reduction dimension by batch shape); another CPU's kernels could differ in the last
 * float32 bits, so the test allows 2e-6.
 *
 * Size limit: weights are protobuf initializers, so the model must stay under 2 GB
 * (small embedded models; larger ones go through the vLLM engine).
 */
import * as ort from 'onnxruntime-node';
import { readModelConfig, type ModelConfig } from '../../checkpoint/config.ts';
import { CheckpointTensors } from '../../checkpoint/tensors.ts';
import { readFloatWeight, requireFinite } from '../../checkpoint/weights.ts';
import { UserError } from '../../errors.ts';
import type {
  Engine,
  EngineInfo,
  LoglikelihoodRequest,
  LoglikelihoodResult,
  RollingRequest,
  RollingResult,
  TopLogprobsRequest,
  TopLogprobsResult,
} from '../engine.ts';
import { rollingWindows } from '../rolling.ts';
import type { ActQuant } from './actquant.ts';
import type { Int4Linear } from './nbits.ts';
import { buildLlamaGraph, llamaTensorShapes } from './llama.ts';

export interface OnnxEngineOptions {
  /** onnxruntime intra-op threads (default 1: deterministic and friendly to shared machines). */
  threads?: number;
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  /** Float32 tensors overriding the checkpoint's by name (e.g. dequantized Linear weights). */
  weights?: ReadonlyMap<string, Float32Array>;
  /** Per-Linear activation quantization, keyed by module name (`model.layers.0.self_attn.q_proj`). */
  actQuant?: ReadonlyMap<string, ActQuant>;
  /**
   * Optional: Linears given as int4 codes + group scales, run with onnxruntime's
   * MatMulNBits instead of a float32 Gemm (keyed by module name; replaces `weights` there).
   */
  int4?: ReadonlyMap<string, Int4Linear>;
  /** Prefix token for rolling windows and empty contexts (default: BOS, else EOS). */
  prefixToken?: number;
  /** Longest sequence fed at once (default: max_position_embeddings). */
  maxLength?: number;
}

/** One sequence to score: `input[i]` is fed, `targets[i]` is the token it should predict. */
interface Scored {
  input: readonly number[];
  targets: readonly number[];
}

interface ScoredOut {
  logprobs: Float32Array;
  argmax: Int32Array;
  topLogprobs?: Float32Array;
  topIds?: Int32Array;
}

export class OnnxEngine implements Engine {
  readonly info: EngineInfo;
  readonly config: ModelConfig;
  readonly batchSize: number;
  readonly threads: number;
  private session: ort.InferenceSession;

  private constructor(info: EngineInfo, config: ModelConfig, session: ort.InferenceSession, batchSize: number, threads: number) {
    this.info = info;
    this.config = config;
    this.session = session;
    this.batchSize = batchSize;
    this.threads = threads;
  }

  static async open(modelDir: string, options: OnnxEngineOptions = {}): Promise<OnnxEngine> {
    const threads = options.threads ?? 1;
    const batchSize = options.batchSize ?? 8;
    if (!Number.isInteger(threads) || threads < 1) throw new UserError(`threads must be a positive integer, got ${threads}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
    const config = readModelConfig(modelDir);
    const unsupported = unsupportedFeature(config, options.maxLength ?? config.maxPositions);
    if (unsupported) throw new UserError(`${modelDir}/config.json: ${unsupported} is not supported by the embedded ONNX engine; score this model with the vLLM engine`);
    const model = buildModelBytes(modelDir, config, options);
    const session = await ort.InferenceSession.create(model, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
    const prefix = options.prefixToken ?? config.bosTokenId ?? config.eosTokenId;
    if (prefix == null) throw new UserError(`${modelDir}/config.json: no bos_token_id or eos_token_id; pass prefixToken explicitly`);
    const maxLength = options.maxLength ?? config.maxPositions;
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > config.maxPositions) {
      throw new UserError(`maxLength must be an integer in 1..${config.maxPositions} (max_position_embeddings), got ${maxLength}`);
    }
    const info: EngineInfo = { engine: 'onnx', model: modelDir, maxLength, vocabSize: config.vocabSize, prefixToken: prefix };
    return new OnnxEngine(info, config, session, batchSize, threads);
  }

  async loglikelihood(requests: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    const L = this.info.maxLength;
    const seqs: Scored[] = [];
    const nCont: number[] = [];
    for (const r of requests) {
      if (r.context.length === 0) throw new UserError('loglikelihood: empty context; put the prefix token (BOS) in the context');
      if (r.continuation.length === 0) throw new UserError('loglikelihood: empty continuation; nothing to score');
      if (r.continuation.length > L) throw new UserError(`loglikelihood: continuation of ${r.continuation.length} tokens exceeds the window of ${L}`);
      this.checkIds(r.context);
      this.checkIds(r.continuation);
      // Keep the last L+1 tokens (left-truncate the context, as lm-eval does); the last is only a target.
      const whole = [...r.context, ...r.continuation].slice(-(L + 1));
      seqs.push({ input: whole.slice(0, -1), targets: whole.slice(1) });
      nCont.push(r.continuation.length);
    }
    const outs = await this.score(seqs, 0);
    return outs.map((o, i) => {
      const n = nCont[i];
      const off = seqs[i].input.length - n;
      const tokenLogprobs = new Float64Array(n);
      let sum = 0;
      let greedy = true;
      for (let j = 0; j < n; j++) {
        tokenLogprobs[j] = o.logprobs[off + j];
        sum += tokenLogprobs[j];
        if (o.argmax[off + j] !== seqs[i].targets[off + j]) greedy = false;
      }
      return { logprob: sum, isGreedy: greedy, tokenLogprobs };
    });
  }

  async loglikelihoodRolling(requests: readonly RollingRequest[]): Promise<RollingResult[]> {
    const seqs: Scored[] = [];
    const owner: { doc: number; start: number; count: number }[] = [];
    for (let d = 0; d < requests.length; d++) {
      this.checkIds(requests[d].tokens);
      for (const w of rollingWindows(requests[d].tokens, this.info.maxLength, this.info.prefixToken)) {
        seqs.push({ input: w.tokens.slice(0, -1), targets: w.tokens.slice(1) });
        owner.push({ doc: d, start: w.scoredStart, count: w.scoredCount });
      }
    }
    const outs = await this.score(seqs, 0);
    const results: RollingResult[] = requests.map((r) => ({ logprob: 0, tokenLogprobs: new Float64Array(r.tokens.length) }));
    outs.forEach((o, i) => {
      const { doc, start, count } = owner[i];
      const off = seqs[i].input.length - count;
      for (let j = 0; j < count; j++) results[doc].tokenLogprobs[start + j] = o.logprobs[off + j];
    });
    // Sum in float64, in document order, independent of batching.
    for (const r of results) r.logprob = r.tokenLogprobs.reduce((a, b) => a + b, 0);
    return results;
  }

  async topLogprobs(requests: readonly TopLogprobsRequest[]): Promise<TopLogprobsResult[]> {
    const V = this.info.vocabSize;
    const results: TopLogprobsResult[] = [];
    // Group by k so each forward pass has one k.
    const byK = new Map<number, number[]>();
    requests.forEach((r, i) => {
      if (!Number.isInteger(r.k) || r.k < 1 || r.k > V) throw new UserError(`topLogprobs: k must be an integer in 1..${V} (vocabulary size), got ${r.k}`);
      if (r.tokens.length < 2) throw new UserError('topLogprobs: need at least 2 tokens (position i predicts token i+1)');
      if (r.tokens.length - 1 > this.info.maxLength) throw new UserError(`topLogprobs: ${r.tokens.length} tokens exceed the window of ${this.info.maxLength}+1; split the sequence`);
      this.checkIds(r.tokens);
      byK.set(r.k, [...(byK.get(r.k) ?? []), i]);
    });
    for (const [k, idx] of byK) {
      const seqs = idx.map((i) => ({ input: requests[i].tokens.slice(0, -1), targets: requests[i].tokens.slice(1) }));
      const outs = await this.score(seqs, k);
      idx.forEach((i, j) => {
        const o = outs[j];
        results[i] = {
          positions: seqs[j].input.length,
          k,
          ids: o.topIds!,
          logprobs: o.topLogprobs!,
          targetLogprobs: Float64Array.from(o.logprobs),
        };
      });
    }
    return results;
  }

  async generateGreedy(prompt: readonly number[], maxNewTokens: number): Promise<number[]> {
    if (prompt.length === 0) throw new UserError('generateGreedy: empty prompt; start it with BOS');
    this.checkIds(prompt);
    if (prompt.length + maxNewTokens - 1 > this.info.maxLength) {
      throw new UserError(`generateGreedy: prompt of ${prompt.length} + ${maxNewTokens} new tokens exceeds the window of ${this.info.maxLength}`);
    }
    const seq = [...prompt];
    const out: number[] = [];
    // Full recompute per token: simple, and the model is small.
    for (let i = 0; i < maxNewTokens; i++) {
      const [o] = await this.score([{ input: seq, targets: new Array(seq.length).fill(0) }], 0);
      const next = o.argmax[seq.length - 1];
      out.push(next);
      seq.push(next);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }

  private checkIds(ids: readonly number[]): void {
    const V = this.info.vocabSize;
    for (const t of ids) if (!Number.isInteger(t) || t < 0 || t >= V) throw new UserError(`token id ${t} is outside the vocabulary 0..${V - 1}`);
  }

  /** Score sequences in batches (longest first, to keep padding small); k > 0 adds top-k. */
  private async score(seqs: readonly Scored[], k: number): Promise<ScoredOut[]> {
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[b].input.length - seqs[a].input.length || a - b);
    const outs: ScoredOut[] = new Array(seqs.length);
    for (let b0 = 0; b0 < order.length; b0 += this.batchSize) {
      const batch = order.slice(b0, b0 + this.batchSize);
      const S = seqs[batch[0]].input.length;
      const B = batch.length;
      const ids = new BigInt64Array(B * S);
      const mask = new BigInt64Array(B * S);
      const tg = new BigInt64Array(B * S);
      batch.forEach((si, r) => {
        const s = seqs[si];
        for (let j = 0; j < s.input.length; j++) {
          ids[r * S + j] = BigInt(s.input[j]);
          tg[r * S + j] = BigInt(s.targets[j]);
          mask[r * S + j] = 1n;
        }
      });
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', ids, [B, S]),
        attention_mask: new ort.Tensor('int64', mask, [B, S]),
        targets: new ort.Tensor('int64', tg, [B, S]),
        // onnxruntime-node ignores feeds for initializer-backed inputs, so k is a plain input.
        k: new ort.Tensor('int64', BigInt64Array.from([BigInt(Math.max(k, 1))]), [1]),
      };
      const fetch = ['target_logprobs', 'argmax'];
      if (k > 0) fetch.push('topk_logprobs', 'topk_ids');
      const res = await this.session.run(feeds, fetch);
      const lp = res.target_logprobs.data as Float32Array;
      const am = res.argmax.data as BigInt64Array;
      batch.forEach((si, r) => {
        const n = seqs[si].input.length;
        const o: ScoredOut = {
          logprobs: lp.slice(r * S, r * S + n),
          argmax: Int32Array.from(am.subarray(r * S, r * S + n), Number),
        };
        if (k > 0) {
          o.topLogprobs = (res.topk_logprobs.data as Float32Array).slice(r * S * k, (r * S + n) * k);
          o.topIds = Int32Array.from((res.topk_ids.data as BigInt64Array).subarray(r * S * k, (r * S + n) * k), Number);
        }
        outs[si] = o;
      });
      for (const t of Object.values(res)) t.dispose();
    }
    return outs;
  }
}

/**
 * What the graph cannot run for this window. Everything else a config can say is read or
 * refused by `parseModelConfig`; a sliding window only changes results once a sequence is
 * longer than the window.
 */
export function unsupportedFeature(config: ModelConfig, maxLength: number): string | null {
  const sw = config.slidingWindow;
  if (sw !== null && sw < maxLength) return `sliding_window ${sw} shorter than the window ${maxLength}`;
  return null;
}

/** Read and check every tensor the graph needs, then encode the model. */
function buildModelBytes(modelDir: string, config: ModelConfig, options: OnnxEngineOptions): Uint8Array {
  const shapes = llamaTensorShapes(config);
  const overrides = options.weights ?? new Map<string, Float32Array>();
  for (const name of (options.actQuant ?? new Map()).keys()) {
    if (!shapes.has(`${name}.weight`) && !(name === 'lm_head' && config.tieWordEmbeddings)) {
      throw new UserError(`activation quantization for '${name}': no such Linear in this model (names look like 'model.layers.0.self_attn.q_proj')`);
    }
  }
  let bytes = 2 * config.maxPositions * config.headDim * 4; // RoPE tables
  for (const dims of shapes.values()) bytes += dims.reduce((a, b) => a * b, 4);
  if (bytes > 2 ** 31 - 2 ** 24) {
    throw new UserError(`${modelDir}: ${(bytes / 2 ** 30).toFixed(1)} GiB of float32 weights exceeds the embedded ONNX engine's 2 GB limit; score this model with the vLLM engine`);
  }
  const int4 = options.int4 ?? new Map<string, Int4Linear>();
  for (const name of int4.keys()) {
    if (!shapes.has(`${name}.weight`) || name === 'model.embed_tokens' || name === 'lm_head') throw new UserError(`int4 weights for '${name}': no such Linear in this model (names look like 'model.layers.0.self_attn.q_proj')`);
    if (overrides.has(`${name}.weight`)) throw new UserError(`'${name}' has both a float weights override and int4 weights; pass one`);
  }
  const weights = readGraphWeights(modelDir, config, overrides, int4);
  try {
    return buildLlamaGraph(
      config,
      (name, expected) => {
        const w = weights.get(name);
        if (!w) throw new Error(`internal: graph reads '${name}', which readGraphWeights did not provide`);
        if (w.length !== expected) throw new UserError(`${name}: ${w.length} values, the config implies ${expected}; weights and config.json disagree`);
        return w;
      },
      { actQuant: options.actQuant, int4 },
    );
  } catch (e) {
    if (e instanceof Error && !(e instanceof UserError) && /^(activation quantization|int4 weights)/.test(e.message)) throw new UserError(e.message);
    throw e;
  }
}

/**
 * Every float tensor the graph reads, by name: `overrides` as given, the rest from the
 * checkpoint (opened only if needed), each checked: dtype, shape against config.json, every
 * value finite. Linears given as `int4` are skipped (their codes are not float weights).
 */
export function readGraphWeights(
  modelDir: string,
  config: ModelConfig,
  overrides: ReadonlyMap<string, Float32Array>,
  int4: ReadonlyMap<string, Int4Linear> = new Map(),
): Map<string, Float32Array> {
  const shapes = llamaTensorShapes(config);
  for (const name of overrides.keys()) {
    if (!shapes.has(name)) throw new UserError(`weights override '${name}' is not a tensor of this ${config.modelType} model (e.g. 'model.layers.0.mlp.down_proj.weight')`);
  }
  const out = new Map<string, Float32Array>();
  const fromCkpt: string[] = [];
  for (const [name, dims] of shapes) {
    if (int4.has(name.replace(/\.weight$/, ''))) continue;
    const o = overrides.get(name);
    if (!o) {
      fromCkpt.push(name);
      continue;
    }
    const n = dims.reduce((a, b) => a * b, 1);
    if (o.length !== n) throw new UserError(`${name}: ${o.length} values, the config implies ${n}; weights and config.json disagree`);
    requireFinite(o, dims, `${modelDir}: weight '${name}'`);
    out.set(name, o);
  }
  if (fromCkpt.length === 0) return out;
  const ckpt = CheckpointTensors.open(modelDir);
  try {
    for (const name of fromCkpt) out.set(name, ckpt.has(name) ? readFloatWeight(ckpt, name, shapes.get(name)!) : missing(modelDir, name));
  } finally {
    ckpt.close();
  }
  return out;
}

function missing(dir: string, name: string): never {
  throw new UserError(`${dir}: checkpoint has no tensor '${name}' (and no override was given); is it a Llama-family checkpoint with float weights?`);
}
