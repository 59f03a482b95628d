/**
 * Turning text into engine requests exactly as lm-evaluation-harness does (lm-eval.md
 * §1.1): trailing whitespace of the context moves to the continuation; continuation tokens
 * are the tail of encode(context + continuation) after len(encode(context)); an empty
 * context becomes the prefix token; too-long inputs lose context from the left.
 */
import type { TextTokenizer } from '../checkpoint/tokenizer.ts';
import type { LoglikelihoodRequest } from '../engines/engine.ts';
import { UserError } from '../errors.ts';

export interface PairOptions {
  /** Add BOS when encoding (the tokenizer's own default under lm-eval >= 0.4.9.2). */
  addBos: boolean;
  /** Token standing in for an empty context (BOS, else EOS). */
  prefixToken: number;
  /** Tokens the model sees in one pass; ctx + cont may be maxLength + 1 long (the last token is only a target). */
  maxLength: number;
}

export interface PairRequest extends LoglikelihoodRequest {
  /** Context tokens dropped from the left to fit the window. */
  truncated: number;
}

/** Move trailing whitespace of the context to the front of the continuation. */
export function moveTrailingWhitespace(context: string, continuation: string): [string, string] {
  const kept = context.replace(/\s+$/u, '');
  return [kept, context.slice(kept.length) + continuation];
}

export function encodePair(tok: TextTokenizer, context: string, continuation: string, opts: PairOptions): PairRequest {
  const [ctxText, contText] = moveTrailingWhitespace(context, continuation);
  let ctx: number[];
  let cont: number[];
  if (ctxText === '') {
    cont = tok.encode(contText, { addBos: false });
    ctx = [opts.prefixToken];
    // A continuation that already starts with the prefix token gives it up as the context.
    if (cont.length > 1 && cont[0] === opts.prefixToken) {
      ctx = [cont[0]];
      cont = cont.slice(1);
    }
  } else {
    const whole = tok.encode(ctxText + contText, { addBos: opts.addBos });
    ctx = tok.encode(ctxText, { addBos: opts.addBos });
    cont = whole.slice(ctx.length);
    if (ctx.length === 0) ctx = [opts.prefixToken];
  }
  if (cont.length === 0) throw new Error(`continuation ${JSON.stringify(contText)} encodes to no tokens after its context`);
  if (cont.length > opts.maxLength)
    throw new Error(`continuation of ${cont.length} tokens does not fit a window of ${opts.maxLength} tokens with at least one context token`);
  const room = opts.maxLength + 1 - cont.length;
  let truncated = 0;
  if (ctx.length > room) {
    truncated = ctx.length - room;
    ctx = ctx.slice(truncated);
  }
  return { context: ctx, continuation: cont, truncated };
}

/** Run requests in batches, reporting progress (batch i of n, 1-based) after each. */
export async function inBatches<Q, R>(
  requests: readonly Q[],
  batchSize: number,
  run: (batch: Q[]) => Promise<R[]>,
  onBatch?: (batch: number, batches: number) => void,
): Promise<R[]> {
  const out: R[] = [];
  const batches = Math.ceil(requests.length / batchSize);
  for (let b = 0; b < batches; b++) {
    const batch = requests.slice(b * batchSize, (b + 1) * batchSize);
    const res = await run(batch);
    if (res.length !== batch.length) throw new Error(`engine answered ${res.length} of ${batch.length} requests`);
    for (const r of res) out.push(r);
    onBatch?.(b + 1, batches);
  }
  return out;
}

/**
 * A NaN log-probability means the model computes garbage (non-finite weights or scales,
 * an invalid config value); accuracy over it would still look like a number, so stop here.
 */
export function refuseNaNLogprobs(task: string, results: readonly { logprob: number }[]): void {
  const i = results.findIndex((r) => Number.isNaN(r.logprob));
  if (i >= 0) throw new UserError(`${task}: the model returned a NaN log-probability (request ${i + 1} of ${results.length}); its weights, scales or config hold non-finite or invalid values`);
}

/** Progress callback of every task: batch i of n (1-based) of the named task. */
export type ProgressFn = (e: { task: string; batch: number; batches: number }) => void;
