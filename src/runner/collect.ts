/**
 * Results of a plan that are already in the cache, as records (no run needed): what
 * `bench compare` reads. Eval jobs whose result is not cached are listed as missing.
 */
import { join } from 'node:path';
import type { EvalJob, Plan } from '../matrix/plan.ts';
import type { ResultRecord } from '../results/record.ts';
import { Cache } from './cache.ts';

export interface Collected {
  records: ResultRecord[];
  missing: EvalJob[];
}

export function collectCached(plan: Plan, benchDir: string): Collected {
  const cache = new Cache(join(benchDir, 'cache'));
  const records: ResultRecord[] = [];
  const missing: EvalJob[] = [];
  for (const j of plan.jobs) {
    if (j.kind !== 'eval') continue;
    const r = cache.readResult(j.id);
    if (!r) {
      missing.push(j);
      continue;
    }
    for (const m of r.metrics) {
      records.push({
        schema: 1, jobId: j.id, run: r.run, model: j.model, scheme: j.scheme.name, method: j.method, recipe: j.recipe,
        suite: j.suite.name, engine: j.engine, bitsPerWeight: j.bitsPerWeight, ...m, coverage: r.coverage,
        timings: { quantSeconds: null, evalSeconds: r.seconds }, provenance: {}, createdAt: r.createdAt,
      });
    }
  }
  return { records, missing };
}
