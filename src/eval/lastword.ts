/**
 * LAMBADA-style final-word prediction (lm-eval.md §3.2): one loglikelihood request per
 * item (context, delimiter + word). acc = the whole word is the greedy continuation
 * (every token the argmax); perplexity = exp(-mean over items of the word's summed
 * log-likelihood), i.e. a per-word perplexity, not per token. Stderr: analytic for acc,
 * bootstrap over items for perplexity (as lm-eval does).
 */
import type { TextTokenizer } from '../checkpoint/tokenizer.ts';
import type { Engine } from '../engines/engine.ts';
import type { MetricItems, MetricValue } from '../results/record.ts';
import { encodePair, inBatches, refuseNaNLogprobs, type ProgressFn } from './requests.ts';
import { bootstrapStderr, DEFAULT_ITERS, meanStderr, type BootstrapOptions } from '../stats/index.ts';

export interface LastWordDoc {
  context: string;
  target: string;
}

export interface LastWordOptions {
  task: string;
  metrics?: readonly ('acc' | 'perplexity')[];
  targetDelimiter?: string;
  addBos: boolean;
  maxLength: number;
  batchSize?: number;
  bootstrap?: BootstrapOptions;
  onProgress?: ProgressFn;
}

export async function runLastWord(docs: readonly LastWordDoc[], engine: Engine, tok: TextTokenizer, opts: LastWordOptions): Promise<MetricValue[]> {
  const delim = opts.targetDelimiter ?? ' ';
  const pairOpts = { addBos: opts.addBos, prefixToken: engine.info.prefixToken, maxLength: opts.maxLength };
  let truncated = 0;
  let targetTokens = 0;
  const requests = docs.map((d) => {
    const r = encodePair(tok, d.context, delim + d.target, pairOpts);
    if (r.truncated) truncated++;
    targetTokens += r.continuation.length;
    return { context: r.context, continuation: r.continuation };
  });
  const results = await inBatches(requests, opts.batchSize ?? 32, (b) => engine.loglikelihood(b), (batch, batches) =>
    opts.onProgress?.({ task: opts.task, batch, batches }),
  );
  refuseNaNLogprobs(opts.task, results);
  const acc: number[] = results.map((r) => (r.isGreedy ? 1 : 0));
  const ll = results.map((r) => r.logprob);
  const extra = { docs: docs.length, targetTokens, truncatedRequests: truncated, addBos: opts.addBos ? 1 : 0, maxLength: opts.maxLength };
  const out: MetricValue[] = [];
  const want = opts.metrics ?? ['acc', 'perplexity'];
  if (want.includes('acc'))
    out.push({
      task: opts.task,
      metric: 'acc',
      value: acc.reduce((a, b) => a + b, 0) / acc.length,
      stderr: meanStderr(acc),
      n: acc.length,
      higherIsBetter: true,
      items: { aggregation: 'mean', values: acc },
      extra,
    });
  if (want.includes('perplexity')) {
    const items: MetricItems = { aggregation: 'perplexity', values: ll, weights: ll.map(() => 1) };
    out.push({
      task: opts.task,
      metric: 'perplexity',
      value: Math.exp(-ll.reduce((a, b) => a + b, 0) / ll.length),
      stderr: bootstrapStderr(items, opts.bootstrap),
      n: ll.length,
      higherIsBetter: false,
      items,
      extra: { ...extra, bootstrapIters: opts.bootstrap?.iters ?? DEFAULT_ITERS },
    });
  }
  return out;
}
