/**
 * Multiple choice as lm-eval's `multiple_choice` output type (lm-eval.md §3.1): one
 * loglikelihood request per choice (context, delimiter + choice); acc = argmax of the
 * log-likelihoods is gold; acc_norm = argmax of log-likelihood / characters of the choice
 * (code points, without the delimiter). Ties go to the first index, as numpy's argmax.
 */
import type { TextTokenizer } from '../checkpoint/tokenizer.ts';
import type { Engine } from '../engines/engine.ts';
import type { MetricValue } from '../results/record.ts';
import { encodePair, inBatches, refuseNaNLogprobs, type ProgressFn } from './requests.ts';
import { meanStderr } from '../stats/index.ts';

export interface MultipleChoiceDoc {
  context: string;
  choices: string[];
  gold: number;
}

export interface MultipleChoiceOptions {
  task: string;
  metrics?: readonly ('acc' | 'acc_norm')[];
  targetDelimiter?: string;
  addBos: boolean;
  maxLength: number;
  batchSize?: number;
  onProgress?: ProgressFn;
}

/** First index of the maximum (numpy argmax). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Number of Unicode code points (Python's len on str). */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Per-document acc and acc_norm from the choices' log-likelihoods. */
export function scoreChoices(lls: readonly number[], choices: readonly string[], gold: number): { acc: number; accNorm: number } {
  const norm = lls.map((ll, j) => ll / codePoints(choices[j]));
  return { acc: argmax(lls) === gold ? 1 : 0, accNorm: argmax(norm) === gold ? 1 : 0 };
}

export async function runMultipleChoice(
  docs: readonly MultipleChoiceDoc[],
  engine: Engine,
  tok: TextTokenizer,
  opts: MultipleChoiceOptions,
): Promise<MetricValue[]> {
  const delim = opts.targetDelimiter ?? ' ';
  const pairOpts = { addBos: opts.addBos, prefixToken: engine.info.prefixToken, maxLength: opts.maxLength };
  const requests = [];
  let truncated = 0;
  for (const d of docs) {
    if (!Number.isInteger(d.gold) || d.gold < 0 || d.gold >= d.choices.length) throw new Error(`${opts.task}: gold ${d.gold} out of range for ${d.choices.length} choices`);
    for (const c of d.choices) {
      const r = encodePair(tok, d.context, delim + c, pairOpts);
      if (r.truncated) truncated++;
      requests.push({ context: r.context, continuation: r.continuation });
    }
  }
  const results = await inBatches(requests, opts.batchSize ?? 32, (b) => engine.loglikelihood(b), (batch, batches) =>
    opts.onProgress?.({ task: opts.task, batch, batches }),
  );
  refuseNaNLogprobs(opts.task, results);
  const acc: number[] = [];
  const accNorm: number[] = [];
  let k = 0;
  for (const d of docs) {
    const lls = d.choices.map(() => results[k++].logprob);
    const s = scoreChoices(lls, d.choices, d.gold);
    acc.push(s.acc);
    accNorm.push(s.accNorm);
  }
  const extra = { docs: docs.length, choices: requests.length, truncatedRequests: truncated, addBos: opts.addBos ? 1 : 0, maxLength: opts.maxLength };
  const make = (metric: string, values: number[]): MetricValue => ({
    task: opts.task,
    metric,
    value: values.reduce((a, b) => a + b, 0) / values.length,
    stderr: meanStderr(values),
    n: values.length,
    higherIsBetter: true,
    items: { aggregation: 'mean', values },
    extra,
  });
  const want = opts.metrics ?? ['acc', 'acc_norm'];
  const out: MetricValue[] = [];
  if (want.includes('acc')) out.push(make('acc', acc));
  if (want.includes('acc_norm')) out.push(make('acc_norm', accNorm));
  return out;
}
