/**
 * Which job arrays a Slurm run submits. Per model, one array per stage:
 *   q   the quantize jobs (task i quantizes checkpoint i);
 *   b   the base-distribution jobs (kld);
 *   e   per suite, the evals of the new checkpoints, aligned with q so that
 *       `--dependency=aftercorr:q` starts task i as soon as checkpoint i exists;
 *   x   per suite, the evals whose checkpoint is already there (BF16, cached) or is being
 *       made by a task submitted earlier (then `afterok` on that task).
 * Every task runs one job (its slice); an aligned index whose eval needs no run is left out.
 */
import type { EvalJob, Job } from '../../../matrix/plan.ts';

export type Dep = { type: 'aftercorr'; array: string } | { type: 'afterok'; array: string; index: number } | { type: 'afterok-task'; task: string };

export interface ArrayPlan {
  name: string;
  stage: 'quantize' | 'base' | 'eval';
  model: string;
  /** Job id of each task index; null = no task at that index. */
  jobs: (string | null)[];
  deps: Dep[];
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');

/**
 * @param todo     jobs to submit now (no output in the cache, not in flight)
 * @param inFlight jobs being carried out by tasks submitted earlier: job id -> task id (`123_4`)
 * @param round    a number that makes this submission's array names unique within the run
 */
export function planArrays(jobs: readonly Job[], todo: ReadonlySet<string>, inFlight: ReadonlyMap<string, string>, round: number): ArrayPlan[] {
  const out: ArrayPlan[] = [];
  const models = [...new Set(jobs.map((j) => j.model))];
  for (const model of models) {
    const mine = jobs.filter((j) => j.model === model);
    const Q = mine.filter((j) => j.kind === 'quantize' && todo.has(j.id));
    const B = mine.filter((j) => j.kind === 'base' && todo.has(j.id));
    const m = safe(model);
    const qName = `q${round}-${m}`;
    const bName = `b${round}-${m}`;
    if (Q.length) out.push({ name: qName, stage: 'quantize', model, jobs: Q.map((j) => j.id), deps: [] });
    if (B.length) out.push({ name: bName, stage: 'base', model, jobs: B.map((j) => j.id), deps: [] });
    const baseDep = (baseJob: string | null): Dep[] => {
      if (!baseJob) return [];
      const k = B.findIndex((b) => b.id === baseJob);
      if (k >= 0) return [{ type: 'afterok', array: bName, index: k }];
      const t = inFlight.get(baseJob);
      return t ? [{ type: 'afterok-task', task: t }] : [];
    };
    const evals = mine.filter((j): j is EvalJob => j.kind === 'eval' && todo.has(j.id));
    // Suites in plan order, whatever is left of each.
    const suites = [...new Set(mine.flatMap((j) => (j.kind === 'eval' ? [j.suite.name] : [])))];
    for (const suite of suites) {
      const onSuite = evals.filter((e) => e.suite.name === suite);
      if (onSuite.length === 0) continue;
      const baseJob = onSuite[0].baseJob;
      const aligned = Q.map((q) => onSuite.find((e) => e.quantizeJob === q.id)?.id ?? null);
      if (aligned.some((x) => x !== null))
        out.push({ name: `e${round}-${m}-${safe(suite)}`, stage: 'eval', model, jobs: aligned, deps: [{ type: 'aftercorr', array: qName }, ...baseDep(baseJob)] });
      const others = onSuite.filter((e) => !Q.some((q) => q.id === e.quantizeJob));
      if (others.length) {
        const flying = [...new Set(others.map((e) => (e.quantizeJob ? inFlight.get(e.quantizeJob) : undefined)).filter((t): t is string => !!t))];
        out.push({
          name: `x${round}-${m}-${safe(suite)}`, stage: 'eval', model, jobs: others.map((e) => e.id),
          deps: [...flying.map((task): Dep => ({ type: 'afterok-task', task })), ...baseDep(baseJob)],
        });
      }
    }
  }
  return out;
}

/** `--dependency` value, given the ids of arrays submitted so far (name -> id). */
export function dependencyOf(deps: readonly Dep[], ids: (array: string) => string): string {
  const corr = deps.filter((d) => d.type === 'aftercorr').map((d) => ids(d.array));
  const ok = deps.flatMap((d) => (d.type === 'afterok' ? [`${ids(d.array)}_${d.index}`] : d.type === 'afterok-task' ? [d.task] : []));
  return [corr.length ? `aftercorr:${corr.join(':')}` : '', ok.length ? `afterok:${ok.join(':')}` : ''].filter(Boolean).join(',');
}
