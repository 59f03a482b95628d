/**
 * KL divergence of a quantized model's next-token distribution from the base (BF16)
 * model's, and the other token statistics of llama.cpp's `llama-perplexity
 * --kl-divergence` (leaderboards.md §2.2), from `topLogprobs` of both engines over the
 * same token windows.
 *
 * Windows (llama.cpp's layout): the scored stories are tokenized one by one, each preceded
 * by BOS (else EOS) as in training, concatenated into one stream and cut into chunks of
 * `windowLength` tokens (the remainder is dropped); the first token of each chunk is
 * replaced by BOS when the tokenizer adds BOS. With score = 'second-half' only positions
 * L/2 .. L-2 (predicting tokens L/2+1 .. L-1) are scored, so every scored token has at
 * least L/2 tokens of context; 'all' scores positions 0 .. L-2.
 *
 * Base side: computed once (`computeKldBase`) and cached as a safetensors file
 * (`saveKldBase`/`loadKldBase`): window tokens, top-k ids and log-probs per scored position,
 * and the log-prob of the actual next token.
 *
 * Top-k approximation (k < vocab): per position let S = base top-k ids whose quant
 * log-prob is known (i.e. also in the quant top-k). KLD is computed between the two
 * distributions coarse-grained onto S plus one "rest" bucket:
 *   KLD ~= sum_{v in S} B(v) ln(B(v)/Q(v)) + B_rest ln(B_rest/Q_rest),
 *   B_rest = 1 - sum_S B, Q_rest = 1 - sum_S Q (both floored at 0).
 * By the data-processing inequality this never exceeds the exact KL, and it equals it when
 * S is the whole vocabulary (k = vocab: the rest term is then omitted, giving the exact
 * sum over all tokens). `extra.baseTopKMass` reports the mean of sum_S B: the closer to 1,
 * the tighter the approximation.
 */
import type { TextTokenizer } from '../checkpoint/tokenizer.ts';
import { SafetensorsFile, writeSafetensors } from '../checkpoint/safetensors.ts';
import type { Engine, TopLogprobsResult } from '../engines/engine.ts';
import { UserError } from '../errors.ts';
import type { MetricValue } from '../results/record.ts';
import { inBatches, type ProgressFn } from './requests.ts';
import { meanWithUncertainty, quantileSorted, sorted } from '../stats/index.ts';

export type KldScore = 'second-half' | 'all';

export type KldMetric = 'kld' | 'same_top_p' | 'delta_p' | 'rms_delta_p' | 'ln_ppl_ratio' | 'ppl_ratio' | 'ppl' | 'ppl_base';

export interface KldBase {
  windowLength: number;
  nWindows: number;
  /** First scored position in a window (L/2 for 'second-half', 0 for 'all'). */
  first: number;
  k: number;
  vocabSize: number;
  /** nWindows × windowLength token ids. */
  tokens: Int32Array;
  /** (nWindows × scored) × k ids and log-probs of the base's top k, most likely first. */
  ids: Int32Array;
  logprobs: Float32Array;
  /** nWindows × scored: base log-prob of the actual next token. */
  targetLogprobs: Float64Array;
}

export function scoredPerWindow(windowLength: number, first: number): number {
  return windowLength - 1 - first;
}

export function firstScored(windowLength: number, score: KldScore): number {
  return score === 'second-half' ? Math.floor(windowLength / 2) : 0;
}

/** The token windows for `texts` (see the module comment), as nWindows × L ids. */
export function buildKldWindows(texts: readonly string[], tok: TextTokenizer, windowLength: number): { tokens: Int32Array; nWindows: number } {
  const sep = tok.bosId ?? tok.eosId;
  const stream: number[] = [];
  for (const t of texts) {
    if (sep !== null) stream.push(sep);
    for (const id of tok.encode(t, { addBos: false })) stream.push(id);
  }
  const nWindows = Math.floor(stream.length / windowLength);
  const tokens = Int32Array.from(stream.slice(0, nWindows * windowLength));
  if (tok.addBosDefault && tok.bosId !== null) for (let w = 0; w < nWindows; w++) tokens[w * windowLength] = tok.bosId;
  return { tokens, nWindows };
}

function windowsOf(tokens: Int32Array, nWindows: number, L: number): number[][] {
  const out: number[][] = [];
  for (let w = 0; w < nWindows; w++) out.push(Array.from(tokens.subarray(w * L, (w + 1) * L)));
  return out;
}

async function topLogprobsOverWindows(engine: Engine, windows: number[][], k: number, task: string, batchSize: number, onProgress?: ProgressFn) {
  if (engine.info.maxLength < windows[0].length - 1)
    throw new UserError(`${task}: windows of ${windows[0].length} tokens do not fit the engine's maxLength ${engine.info.maxLength}; lower the suite's maxLength`);
  return inBatches(
    windows.map((tokens) => ({ tokens, k })),
    batchSize,
    (b) => engine.topLogprobs(b),
    (batch, batches) => onProgress?.({ task, batch, batches }),
  );
}

/** Run the base engine over the windows and keep the scored rows. k = 0 means the whole vocabulary. */
export async function computeKldBase(
  engine: Engine,
  windows: { tokens: Int32Array; nWindows: number },
  opts: { windowLength: number; topK: number; score: KldScore; batchSize?: number; task?: string; onProgress?: ProgressFn },
): Promise<KldBase> {
  const L = opts.windowLength;
  const task = opts.task ?? 'kld';
  if (windows.nWindows === 0) throw new UserError(`${task}: the text gives fewer than ${L} tokens, not one full window; use more text or a shorter window`);
  const vocab = engine.info.vocabSize;
  const k = opts.topK === 0 ? vocab : Math.min(opts.topK, vocab);
  const first = firstScored(L, opts.score);
  const S = scoredPerWindow(L, first);
  const res = await topLogprobsOverWindows(engine, windowsOf(windows.tokens, windows.nWindows, L), k, `${task} (base)`, opts.batchSize ?? 4, opts.onProgress);
  const ids = new Int32Array(windows.nWindows * S * k);
  const logprobs = new Float32Array(windows.nWindows * S * k);
  const targetLogprobs = new Float64Array(windows.nWindows * S);
  res.forEach((r, w) => {
    checkTop(r, L, k, task);
    ids.set(r.ids.subarray(first * k, (first + S) * k), w * S * k);
    logprobs.set(r.logprobs.subarray(first * k, (first + S) * k), w * S * k);
    targetLogprobs.set(r.targetLogprobs.subarray(first, first + S), w * S);
  });
  return { windowLength: L, nWindows: windows.nWindows, first, k, vocabSize: vocab, tokens: windows.tokens, ids, logprobs, targetLogprobs };
}

function checkTop(r: TopLogprobsResult, L: number, k: number, task: string): void {
  if (r.positions !== L - 1 || r.k !== k || r.ids.length !== (L - 1) * k || r.targetLogprobs.length !== L - 1)
    throw new Error(`${task}: engine returned ${r.positions} positions × ${r.k} for a ${L}-token window with k=${k}`);
}

const FORMAT = 'lowbit-bench-kld-base';

function bytesOf(a: Int32Array | Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Cache the base side as safetensors (deterministic bytes, atomic write). */
export function saveKldBase(path: string, base: KldBase, meta: Record<string, string> = {}): void {
  const S = scoredPerWindow(base.windowLength, base.first);
  writeSafetensors(
    path,
    [
      { name: 'tokens', dtype: 'I32', shape: [base.nWindows, base.windowLength], data: bytesOf(base.tokens) },
      { name: 'top_ids', dtype: 'I32', shape: [base.nWindows, S, base.k], data: bytesOf(base.ids) },
      { name: 'top_logprobs', dtype: 'F32', shape: [base.nWindows, S, base.k], data: bytesOf(base.logprobs) },
      { name: 'target_logprobs', dtype: 'F64', shape: [base.nWindows, S], data: bytesOf(base.targetLogprobs) },
    ],
    { ...meta, format: FORMAT, version: '1', window_length: String(base.windowLength), first: String(base.first), k: String(base.k), vocab_size: String(base.vocabSize) },
  );
}

export function loadKldBase(path: string): KldBase {
  const f = SafetensorsFile.open(path);
  try {
    const m = f.metadata;
    const bad = (what: string) => new UserError(`${path}: not a KLD base cache (${what}); delete it and recompute the base`);
    if (m.format !== FORMAT || m.version !== '1') throw bad(`format ${m.format ?? 'missing'} v${m.version ?? '?'}`);
    const L = Number(m.window_length);
    const first = Number(m.first);
    const k = Number(m.k);
    const vocab = Number(m.vocab_size);
    const tok = f.info('tokens');
    const nWindows = tok.shape[0];
    const S = scoredPerWindow(L, first);
    const expect: Record<string, number[]> = { tokens: [nWindows, L], top_ids: [nWindows, S, k], top_logprobs: [nWindows, S, k], target_logprobs: [nWindows, S] };
    for (const [name, shape] of Object.entries(expect))
      if (f.info(name).shape.join() !== shape.join()) throw bad(`${name} has shape [${f.info(name).shape}], expected [${shape}]`);
    const view = (name: string) => {
      const b = f.readBytes(name);
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    };
    return {
      windowLength: L,
      nWindows,
      first,
      k,
      vocabSize: vocab,
      tokens: new Int32Array(view('tokens')),
      ids: new Int32Array(view('top_ids')),
      logprobs: new Float32Array(view('top_logprobs')),
      targetLogprobs: new Float64Array(view('target_logprobs')),
    };
  } finally {
    f.close();
  }
}

/** Per scored position statistics of quant vs base. */
export interface KldPositions {
  kld: Float64Array;
  /** Q(x_t) - B(x_t) for the actual next token. */
  deltaP: Float64Array;
  sameTop: Uint8Array;
  nllQ: Float64Array;
  nllB: Float64Array;
  /** Sum of B over the support S used (1 up to rounding when exact). */
  baseMass: Float64Array;
}

/**
 * Compare the cached base rows with the quant engine's top-k rows of the same windows.
 * `quant[w]` is the engine's answer for window w (all L-1 positions).
 */
export function compareWithBase(base: KldBase, quant: readonly TopLogprobsResult[]): KldPositions {
  const L = base.windowLength;
  const S = scoredPerWindow(L, base.first);
  const n = base.nWindows * S;
  if (quant.length !== base.nWindows) throw new Error(`kld: ${quant.length} quant windows for ${base.nWindows} base windows`);
  const out: KldPositions = {
    kld: new Float64Array(n),
    deltaP: new Float64Array(n),
    sameTop: new Uint8Array(n),
    nllQ: new Float64Array(n),
    nllB: new Float64Array(n),
    baseMass: new Float64Array(n),
  };
  // Sparse lookup of quant log-probs by id: stamp marks which ids belong to the current row.
  const stamp = new Int32Array(base.vocabSize).fill(-1);
  const qval = new Float64Array(base.vocabSize);
  const kb = base.k;
  for (let w = 0; w < base.nWindows; w++) {
    const q = quant[w];
    if (q.positions !== L - 1) throw new Error(`kld: quant window ${w} has ${q.positions} positions, expected ${L - 1}`);
    const kq = q.k;
    for (let s = 0; s < S; s++) {
      const t = w * S + s;
      const pos = base.first + s;
      const row = t;
      for (let j = 0; j < kq; j++) {
        const id = q.ids[pos * kq + j];
        stamp[id] = row;
        qval[id] = q.logprobs[pos * kq + j];
      }
      let sumB = 0;
      let sumQ = 0;
      let acc = 0;
      let covered = 0;
      for (let j = 0; j < kb; j++) {
        const id = base.ids[t * kb + j];
        if (stamp[id] !== row) continue;
        const lb = base.logprobs[t * kb + j];
        const lq = qval[id];
        const pb = Math.exp(lb);
        sumB += pb;
        sumQ += Math.exp(lq);
        acc += pb * (lb - lq);
        covered++;
      }
      if (covered < base.vocabSize) {
        const restB = Math.max(0, 1 - sumB);
        const restQ = Math.max(0, 1 - sumQ);
        // A quant that leaves (numerically) no mass outside S while the base does: floor Q_rest
        // at 1e-30 so the term is large and finite rather than infinite.
        if (restB > 0) acc += restB * Math.log(restB / Math.max(restQ, 1e-30));
      }
      out.kld[t] = acc;
      out.baseMass[t] = sumB;
      const tq = q.targetLogprobs[pos];
      const tb = base.targetLogprobs[t];
      out.deltaP[t] = Math.exp(tq) - Math.exp(tb);
      out.nllQ[t] = -tq;
      out.nllB[t] = -tb;
      out.sameTop[t] = base.ids[t * kb] === q.ids[pos * kq] ? 1 : 0;
    }
  }
  return out;
}

const PERCENTILES: [string, number][] = [
  ['p99_9', 0.999],
  ['p99', 0.99],
  ['p95', 0.95],
  ['p90', 0.9],
  ['median', 0.5],
  ['p10', 0.1],
  ['p5', 0.05],
  ['p1', 0.01],
  ['p0_1', 0.001],
];

function distribution(values: Float64Array): Record<string, number> {
  const s = sorted(values);
  const out: Record<string, number> = { max: s[s.length - 1], min: s[0] };
  for (const [name, f] of PERCENTILES) out[name] = quantileSorted(s, f);
  return out;
}

/** llama.cpp's summary statistics as metrics (no per-item list: per-token values are too many for a ledger line). */
export function kldMetrics(p: KldPositions, task: string, metrics: readonly KldMetric[], extraIn: Record<string, number> = {}): MetricValue[] {
  const n = p.kld.length;
  if (n < 2) throw new UserError(`${task}: only ${n} scored positions; use more text or a longer window`);
  let massSum = 0;
  for (let i = 0; i < n; i++) massSum += p.baseMass[i];
  const extra = { ...extraIn, positions: n, baseTopKMass: massSum / n };
  const lnRatio = new Float64Array(n);
  const dp2 = new Float64Array(n);
  const same = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    lnRatio[i] = p.nllQ[i] - p.nllB[i];
    dp2[i] = p.deltaP[i] * p.deltaP[i];
    same[i] = p.sameTop[i];
  }
  const out: MetricValue[] = [];
  const add = (metric: KldMetric, value: number, stderr: number | null, higherIsBetter: boolean, more: Record<string, number> = {}) =>
    out.push({ task, metric, value, stderr, n, higherIsBetter, extra: { ...extra, ...more } });
  for (const m of metrics) {
    switch (m) {
      case 'kld': {
        const u = meanWithUncertainty(p.kld);
        add('kld', u.mean, u.stderr, false, distribution(p.kld));
        break;
      }
      case 'same_top_p': {
        const ps = meanWithUncertainty(same).mean;
        add('same_top_p', ps, Math.sqrt((ps * (1 - ps)) / (n - 1)), true);
        break;
      }
      case 'delta_p': {
        const u = meanWithUncertainty(p.deltaP);
        add('delta_p', u.mean, u.stderr, true, distribution(p.deltaP));
        break;
      }
      case 'rms_delta_p': {
        const u = meanWithUncertainty(dp2);
        const rms = Math.sqrt(u.mean);
        // d sqrt(x) = dx / (2 sqrt x), as llama.cpp propagates it.
        add('rms_delta_p', rms, u.stderr === null || rms === 0 ? null : u.stderr / (2 * rms), false);
        break;
      }
      case 'ln_ppl_ratio': {
        // Stderr of the paired difference = sqrt(se_Q^2 + se_B^2 - 2 cov).
        const u = meanWithUncertainty(lnRatio);
        add('ln_ppl_ratio', u.mean, u.stderr, false);
        break;
      }
      case 'ppl_ratio': {
        const u = meanWithUncertainty(lnRatio);
        const r = Math.exp(u.mean);
        add('ppl_ratio', r, u.stderr === null ? null : r * u.stderr, false);
        break;
      }
      case 'ppl':
      case 'ppl_base': {
        const u = meanWithUncertainty(m === 'ppl' ? p.nllQ : p.nllB);
        const v = Math.exp(u.mean);
        add(m, v, u.stderr === null ? null : v * u.stderr, false);
        break;
      }
    }
  }
  return out;
}

export interface KldOptions {
  task: string;
  metrics: readonly KldMetric[];
  windowLength: number;
  topK: number;
  score: KldScore;
  batchSize?: number;
  /** The base side: a cached base, or an engine to compute it with (and `cachePath` to save it to). */
  base: { cached: KldBase } | { engine: Engine; cachePath?: string };
  onProgress?: ProgressFn;
}

/** KLD of `engine` against the base over the windows of `texts`. */
export async function runKld(texts: readonly string[], engine: Engine, tok: TextTokenizer, opts: KldOptions): Promise<MetricValue[]> {
  const windows = buildKldWindows(texts, tok, opts.windowLength);
  let base: KldBase;
  if ('cached' in opts.base) {
    base = opts.base.cached;
    const same =
      base.windowLength === opts.windowLength &&
      base.nWindows === windows.nWindows &&
      base.first === firstScored(opts.windowLength, opts.score) &&
      base.tokens.every((v, i) => v === windows.tokens[i]);
    if (!same) throw new UserError(`${opts.task}: the cached base was computed over other tokens or windows; delete the cache and recompute the base`);
  } else {
    base = await computeKldBase(opts.base.engine, windows, { ...opts, task: opts.task });
    if (opts.base.cachePath) saveKldBase(opts.base.cachePath, base, { model: opts.base.engine.info.model });
  }
  if (engine.info.vocabSize < base.vocabSize) throw new UserError(`${opts.task}: quant vocabulary ${engine.info.vocabSize} is smaller than the base's ${base.vocabSize}; KLD needs the same tokenizer`);
  const quant = await topLogprobsOverWindows(
    engine,
    windowsOf(base.tokens, base.nWindows, base.windowLength),
    base.k,
    opts.task,
    opts.batchSize ?? 4,
    opts.onProgress,
  );
  quant.forEach((r) => checkTop(r, base.windowLength, base.k, opts.task));
  const positions = compareWithBase(base, quant);
  return kldMetrics(positions, opts.task, opts.metrics, {
    windows: base.nWindows,
    windowLength: base.windowLength,
    firstScored: base.first,
    topK: base.k,
    vocabSize: base.vocabSize,
    exact: base.k >= base.vocabSize ? 1 : 0,
  });
}
