/**
 * Sharding a plan across machines: `--shard i/n` keeps a deterministic slice of the jobs,
 * balanced by estimated cost, not count. The unit of assignment is a checkpoint (its
 * quantize job and every eval of it), since evals need their checkpoint on the same
 * machine; base-distribution jobs are replicated into every shard that needs them.
 */
import { UserError } from '../errors.ts';
import type { Job, Plan } from '../matrix/plan.ts';

/** Relative cost of a job (arbitrary units, ~seconds on stories260k with 2 cores). */
export function estimatedCost(j: Job): number {
  if (j.kind === 'eval') return 30;
  if (j.kind === 'base') return 30;
  if (j.method === 'rtn') return 1;
  const rv = j.recipeValues;
  if (!rv) return 100;
  return (rv.iters * rv.batchSize * rv.seqlen) / 2048;
}

/**
 * `i/n` with 1 <= i <= n; with `jobs`, n may not exceed the plan's job count (more
 * shards than jobs is a typo, and the assignment is O(n)).
 */
export function parseShard(spec: string, jobs?: number): { index: number; count: number } {
  const m = /^(\d{1,15})\/(\d{1,15})$/.exec(spec.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) throw new UserError(`--shard wants i/n with integers 1 <= i <= n (e.g. 2/4), got '${spec}'`);
  if (jobs !== undefined && count > Math.max(1, jobs))
    throw new UserError(`--shard ${spec}: the plan has ${jobs} job${jobs === 1 ? '' : 's'}, so n can be at most ${Math.max(1, jobs)}; use fewer shards`);
  return { index, count };
}

/** Groups of jobs that must run on the same shard, with their cost. */
function groups(plan: Plan): { key: string; jobs: Job[]; cost: number }[] {
  const byKey = new Map<string, Job[]>();
  for (const j of plan.jobs) {
    if (j.kind === 'base') continue;
    const key = j.kind === 'quantize' ? j.id : (j.quantizeJob ?? `base-model:${j.model}`);
    byKey.set(key, [...(byKey.get(key) ?? []), j]);
  }
  return [...byKey].map(([key, jobs]) => ({ key, jobs, cost: jobs.reduce((a, j) => a + estimatedCost(j), 0) }));
}

/** Assignment of every group to a shard: longest-processing-time first, ties by key. */
export function assignShards(plan: Plan, count: number): { key: string; jobs: Job[]; cost: number; shard: number }[] {
  const gs = groups(plan).sort((a, b) => b.cost - a.cost || (a.key < b.key ? -1 : 1));
  const load = new Array<number>(count).fill(0);
  return gs.map((g) => {
    let best = 0;
    for (let s = 1; s < count; s++) if (load[s] < load[best]) best = s;
    load[best] += g.cost;
    return { ...g, shard: best + 1 };
  });
}

export function shardPlan(plan: Plan, spec: string): Plan {
  const { index, count } = parseShard(spec, plan.jobs.length);
  const keep = new Set<string>();
  for (const g of assignShards(plan, count)) if (g.shard === index) for (const j of g.jobs) keep.add(j.id);
  // Replicate the base jobs that kept evals depend on.
  for (const j of plan.jobs) if (keep.has(j.id)) for (const d of j.deps) keep.add(d);
  return { ...plan, jobs: plan.jobs.filter((j) => keep.has(j.id)) };
}
