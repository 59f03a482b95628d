/**
 * A served engine seen through a suite's window: the bound that decides whether a vLLM-style
 * server can score a suite exactly as the embedded engine does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine, LoglikelihoodRequest, RollingRequest, TopLogprobsRequest } from '../engine.ts';
import { UserError } from '../../errors.ts';
import type { VllmEngine } from './engine.ts';

/** max_position_embeddings from a checkpoint's config.json, or null where it has none. */
export function maxPositions(dir: string): number | null {
  try {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    return typeof c.max_position_embeddings === 'number' ? c.max_position_embeddings : null;
  } catch {
    return null;
  }
}

/**
 * The served engine seen with the suite's window L. VllmEngine windows rolling requests at
 * max_model_len - 2; when that differs from L (the model has too few positions for L + 2), a
 * document longer than the smaller window would be split differently than the embedded
 * engine splits it, so it is refused instead of giving a different number.
 */
export function suiteWindowEngine(engine: VllmEngine, L: number, task: string): Engine {
  const W = engine.rollingWindowLength;
  const promptLimit = engine.maxModelLen - 1;
  return {
    info: { ...engine.info, maxLength: L },
    loglikelihood(reqs: readonly LoglikelihoodRequest[]) {
      for (const q of reqs) {
        const n = q.context.length + q.continuation.length;
        if (n > promptLimit && n <= L + 1)
          throw new UserError(`${task}: a request of ${n} tokens exceeds the server's max_model_len ${engine.maxModelLen} - 1; serve with --max-model-len ${L + 2} (the model needs that many positions)`);
      }
      return engine.loglikelihood(reqs);
    },
    loglikelihoodRolling(reqs: readonly RollingRequest[]) {
      if (W !== L) {
        const long = reqs.find((r) => r.tokens.length > Math.min(W, L));
        if (long)
          throw new UserError(`${task}: a document of ${long.tokens.length} tokens needs rolling windows of ${L}, but the server's max_model_len ${engine.maxModelLen} gives ${W}; the model must allow max_model_len ${L + 2} (for vLLM: VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 with RoPE models) or the suite a shorter window`);
      }
      return engine.loglikelihoodRolling(reqs);
    },
    topLogprobs: (reqs: readonly TopLogprobsRequest[]) => engine.topLogprobs(reqs),
    generateGreedy: (p: readonly number[], n: number) => engine.generateGreedy(p, n),
    close: () => engine.close(),
  };
}
