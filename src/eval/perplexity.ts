/**
 * Rolling perplexity as lm-eval's `loglikelihood_rolling` tasks (wikitext; lm-eval.md
 * §2-3.3). Each document is scored on its own by `engine.loglikelihoodRolling` (every token
 * predicted once, the first conditioned on the prefix token, windows of the engine's L).
 * Corpus metrics are ratios of sums over documents, not means of per-document values:
 *   token_perplexity = exp(-sum ll / sum tokens)   (not an lm-eval metric)
 *   word_perplexity  = exp(-sum ll / sum words)    (words: pieces of split on \s+)
 *   byte_perplexity  = exp(-sum ll / sum bytes)    (UTF-8 bytes)
 *   bits_per_byte    = -sum ll / sum bytes / ln 2
 * lm-eval reports no stderr for these ("N/A"). We report a bootstrap stderr over
 * documents (resampling whole documents, recomputing the ratio), marked in `extra` by
 * `stderrBootstrap: 1`; it is ours, not lm-eval's.
 */
import type { TextTokenizer } from '../checkpoint/tokenizer.ts';
import type { Engine } from '../engines/engine.ts';
import { UserError } from '../errors.ts';
import type { MetricItems, MetricValue } from '../results/record.ts';
import { inBatches, type ProgressFn } from './requests.ts';
import { bootstrapStderr, DEFAULT_ITERS, type BootstrapOptions } from '../stats/index.ts';
import { countBytes, countWords } from './text.ts';

export type PerplexityMetric = 'token_perplexity' | 'word_perplexity' | 'byte_perplexity' | 'bits_per_byte';

/**
 * BOS policy: 'prefix' = document tokens carry no BOS and the first is conditioned on the
 * prefix token (lm-eval <= 0.4.9.1 and API backends); 'document' = the document is encoded
 * with BOS as well (lm-eval >= 0.4.9.2 with a BOS-adding tokenizer), so BOS is both the
 * prefix and the first scored token.
 */
export type BosPolicy = 'prefix' | 'document';

export interface PerplexityOptions {
  task: string;
  metrics?: readonly PerplexityMetric[];
  /** Expected rolling window L; must equal the engine's maxLength (the engine windows). */
  maxLength: number;
  bos: BosPolicy;
  batchSize?: number;
  bootstrap?: BootstrapOptions;
  onProgress?: ProgressFn;
}

export interface DocumentScore {
  ll: number;
  tokens: number;
  words: number;
  bytes: number;
}

/** Corpus metrics from per-document scores (exactly lm-eval's weighted sums). */
export function corpusPerplexity(docs: readonly DocumentScore[]) {
  let ll = 0;
  let tokens = 0;
  let words = 0;
  let bytes = 0;
  for (const d of docs) {
    ll += d.ll;
    tokens += d.tokens;
    words += d.words;
    bytes += d.bytes;
  }
  return {
    ll,
    tokens,
    words,
    bytes,
    token_perplexity: Math.exp(-ll / tokens),
    word_perplexity: Math.exp(-ll / words),
    byte_perplexity: Math.exp(-ll / bytes),
    bits_per_byte: -ll / bytes / Math.LN2,
  };
}

export async function runPerplexity(texts: readonly string[], engine: Engine, tok: TextTokenizer, opts: PerplexityOptions): Promise<MetricValue[]> {
  if (engine.info.maxLength !== opts.maxLength)
    throw new UserError(
      `${opts.task}: the suite's window is ${opts.maxLength} tokens but the engine's is ${engine.info.maxLength}; open the engine with maxLength ${opts.maxLength} or change the suite`,
    );
  const addBos = opts.bos === 'document';
  const encoded = texts.map((t) => tok.encode(t, { addBos }));
  const results = await inBatches(
    encoded.map((tokens) => ({ tokens })),
    opts.batchSize ?? 8,
    (b) => engine.loglikelihoodRolling(b),
    (batch, batches) => opts.onProgress?.({ task: opts.task, batch, batches }),
  );
  const scores: DocumentScore[] = texts.map((t, i) => {
    const r = results[i];
    if (r.tokenLogprobs.length !== encoded[i].length)
      throw new Error(`${opts.task}: engine scored ${r.tokenLogprobs.length} tokens of a ${encoded[i].length}-token document`);
    return { ll: r.logprob, tokens: encoded[i].length, words: countWords(t), bytes: countBytes(t) };
  });
  const c = corpusPerplexity(scores);
  const ll = scores.map((s) => s.ll);
  const bootIters = opts.bootstrap?.iters ?? DEFAULT_ITERS;
  const bosInDocument = addBos && tok.bosId !== null && encoded.length > 0 && encoded[0][0] === tok.bosId ? 1 : 0;
  const extra = {
    docs: texts.length,
    tokens: c.tokens,
    words: c.words,
    bytes: c.bytes,
    loglikelihood: c.ll,
    windowLength: opts.maxLength,
    prefixToken: engine.info.prefixToken,
    bosInDocument,
    stderrBootstrap: 1,
    bootstrapIters: bootIters,
  };
  const defs: Record<PerplexityMetric, MetricItems> = {
    token_perplexity: { aggregation: 'perplexity', values: ll, weights: scores.map((s) => s.tokens) },
    word_perplexity: { aggregation: 'perplexity', values: ll, weights: scores.map((s) => s.words) },
    byte_perplexity: { aggregation: 'perplexity', values: ll, weights: scores.map((s) => s.bytes) },
    bits_per_byte: { aggregation: 'bits_per_unit', values: ll, weights: scores.map((s) => s.bytes) },
  };
  const want = opts.metrics ?? (Object.keys(defs) as PerplexityMetric[]);
  return want.map((metric) => ({
    task: opts.task,
    metric,
    value: c[metric],
    stderr: bootstrapStderr(defs[metric], opts.bootstrap),
    n: texts.length,
    higherIsBetter: false,
    items: defs[metric],
    extra,
  }));
}
