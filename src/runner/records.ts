/**
 * The record builder: the ledger records of a finished eval job, built from what the cache
 * holds (its result, its checkpoint's manifest). Every executor's results end up as these
 * records, whether the job ran here or on a cluster node.
 */
import type { EvalJob, ModelInfo, QuantizeJob } from '../matrix/plan.ts';
import type { MetricValue, ResultRecord } from '../results/record.ts';
import type { Cache, CachedResult, DirManifest } from './cache.ts';
import type { HostInfo } from './provenance.ts';
import type { QuantizeResult } from './run.ts';

/** Identity of one record in a ledger. */
export function recordKey(jobId: string, task: string, metric: string): string {
  return `${jobId}\u0000${task}\u0000${metric}`;
}

/** Every record of an eval job whose result is in the cache; throws if it is not. */
export function buildRecords(runId: string, j: EvalJob, mi: ModelInfo, cache: Cache, qj: QuantizeJob | null): ResultRecord[] {
  const r = cache.readResult(j.id);
  if (!r) throw new Error(`${j.label}: result vanished from the cache`);
  const q = j.quantizeJob ? cache.readDir<QuantizeResult>('ckpt', j.quantizeJob) : null;
  return r.metrics.map((m) => toRecord(runId, j, mi, m, r, q, qj));
}

function toRecord(
  runId: string,
  j: EvalJob,
  mi: ModelInfo,
  m: MetricValue,
  r: CachedResult,
  q: DirManifest<QuantizeResult> | null,
  qj: QuantizeJob | null,
): ResultRecord {
  const quant = q?.result ?? null;
  return {
    schema: 1,
    jobId: j.id,
    run: runId,
    model: j.model,
    scheme: j.scheme.name,
    method: j.method,
    recipe: j.recipe,
    suite: j.suite.name,
    engine: j.engine,
    bitsPerWeight: quant?.bitsPerWeight ?? j.bitsPerWeight,
    ...m,
    coverage: r.coverage,
    timings: { quantSeconds: q ? q.seconds : null, evalSeconds: r.seconds, ...(r.peakMemoryMB !== null ? { peakMemoryMB: Math.max(r.peakMemoryMB, q?.peakMemoryMB ?? 0) } : {}) },
    provenance: {
      versions: (r.provenance.versions as Record<string, string>) ?? { 'lowbit-bench': String(j.identity.tool) },
      seed: j.seed,
      scheme: { weights: j.scheme.weights, activations: j.scheme.activations },
      recipeValues: j.recipeValues,
      seqlenCap: j.seqlenCap,
      hashes: {
        model: mi.identity,
        suite: j.suite.hash,
        suiteFiles: j.suite.files,
        quantizeJob: j.quantizeJob,
        baseJob: j.baseJob,
        calibration: qj?.calibration ?? null,
        checkpointFiles: q ? Object.fromEntries(Object.entries(q.files).map(([f, x]) => [f, x.sha256])) : null,
      },
      quantizer: quant ? { layers: quant.layers ?? null, ...(quant.provenance ?? {}) } : null,
      evaluator: (r.provenance.evaluator as Record<string, unknown>) ?? {},
      host: r.provenance.host as HostInfo,
      computedInRun: r.run,
      computedAt: r.createdAt,
    },
    createdAt: r.createdAt,
  };
}
