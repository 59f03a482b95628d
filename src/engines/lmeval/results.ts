/**
 * Ingest lm-eval's results JSON (reference lm-eval.md §5.2) into `MetricValue`s, so
 * leaderboard tasks (arc, hellaswag, mmlu, wikitext ...) sit in the ledger beside ours.
 * Stderr "N/A" (wikitext perplexities, n = 1) becomes null: lm-eval defines none.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../errors.ts';
import type { MetricValue } from '../../results/record.ts';
import { sanitizeModelName } from './argv.ts';

export interface LmEvalResults {
  metrics: MetricValue[];
  /** Versions, seeds, model args and task versions, for the record's provenance. */
  provenance: Record<string, unknown>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Metrics that lm-eval reports where lower is better, when the file has no higher_is_better. */
const LOWER_IS_BETTER = /perplexity|bits_per_byte|^ppl|loss/;

export function parseLmEvalResults(json: unknown, where = 'lm-eval results'): LmEvalResults {
  if (!isObj(json) || !isObj(json.results)) throw new UserError(`${where}: no "results" object; not an lm-eval results file`);
  const results = json.results as Record<string, Obj>;
  const nSamples = isObj(json['n-samples']) ? (json['n-samples'] as Record<string, Obj>) : {};
  const hib = isObj(json.higher_is_better) ? (json.higher_is_better as Record<string, Record<string, unknown>>) : {};
  const groupSubtasks = isObj(json.group_subtasks) ? (json.group_subtasks as Record<string, unknown>) : {};
  const nShot = isObj(json['n-shot']) ? (json['n-shot'] as Record<string, unknown>) : {};

  const effective = (task: string, seen = new Set<string>()): number | null => {
    const ns = nSamples[task];
    if (isObj(ns) && typeof ns.effective === 'number') return ns.effective;
    const subs = groupSubtasks[task];
    if (!Array.isArray(subs) || seen.has(task)) return null;
    seen.add(task);
    let sum = 0;
    for (const s of subs) {
      const n = effective(String(s), seen);
      if (n === null) return null;
      sum += n;
    }
    return sum;
  };

  const metrics: MetricValue[] = [];
  for (const task of Object.keys(results).sort()) {
    const r = results[task];
    if (!isObj(r)) continue;
    for (const key of Object.keys(r).sort()) {
      const comma = key.indexOf(',');
      if (comma < 0) continue; // alias, name, sample_len
      const metric = key.slice(0, comma);
      const filter = key.slice(comma + 1);
      if (metric.endsWith('_stderr')) continue;
      const value = r[key];
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      const se = r[`${metric}_stderr,${filter}`];
      const n = effective(task);
      const h = hib[task]?.[metric];
      const extra: Record<string, number> = {};
      const ns = nSamples[task];
      if (isObj(ns) && typeof ns.original === 'number') extra.nOriginal = ns.original;
      if (typeof nShot[task] === 'number') extra.numFewshot = nShot[task] as number;
      metrics.push({
        task,
        metric: filter === 'none' ? metric : `${metric}/${filter}`,
        value,
        stderr: typeof se === 'number' && Number.isFinite(se) ? se : null,
        n: n ?? 0,
        higherIsBetter: typeof h === 'boolean' ? h : !LOWER_IS_BETTER.test(metric),
        ...(Object.keys(extra).length ? { extra } : {}),
      });
    }
  }
  if (metrics.length === 0) throw new UserError(`${where}: "results" holds no numeric metrics; did every task fail?`);
  const config = isObj(json.config) ? json.config : {};
  const provenance: Record<string, unknown> = {
    tool: 'lm-eval',
    lm_eval_version: json.lm_eval_version ?? null,
    git_hash: json.git_hash ?? null,
    transformers_version: json.transformers_version ?? null,
    backend: config.model ?? json.model_source ?? null,
    model_args: config.model_args ?? null,
    batch_size: config.batch_size ?? null,
    seeds: { random: config.random_seed ?? null, numpy: config.numpy_seed ?? null, torch: config.torch_seed ?? null, fewshot: config.fewshot_seed ?? null },
    limit: config.limit ?? null,
    bootstrap_iters: config.bootstrap_iters ?? null,
    versions: json.versions ?? null,
    n_shot: json['n-shot'] ?? null,
    max_length: json.max_length ?? null,
    tokenizer_bos_token: json.tokenizer_bos_token ?? null,
    date: json.date ?? null,
    total_evaluation_time_seconds: json.total_evaluation_time_seconds ?? null,
  };
  return { metrics, provenance };
}

/**
 * The newest `results_*.json` lm-eval wrote for `modelName` under `outputPath` (§5.1): a
 * folder `<outputPath>/<sanitized model>/`, or, when outputPath ends in .json, files
 * `<stem>_<date>.json` beside it.
 */
export function findResultsFile(outputPath: string, modelName: string, notBefore = 0): string {
  let dir: string;
  let re: RegExp;
  if (outputPath.endsWith('.json')) {
    const slash = outputPath.lastIndexOf('/');
    dir = slash >= 0 ? outputPath.slice(0, slash) || '/' : '.';
    const stem = outputPath.slice(slash + 1, -'.json'.length);
    re = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_.+\\.json$`);
  } else {
    dir = join(outputPath, sanitizeModelName(modelName));
    re = /^results_.+\.json$/;
  }
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => re.test(f));
  } catch {
    throw new UserError(`lm_eval wrote no results folder ${dir}; check its log (wrong --output_path or the run failed)`);
  }
  // Names carry an ISO date, so they sort by time; prefer mtime against clock-skewed names.
  const fresh = names.map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs })).filter((x) => x.t >= notBefore);
  if (fresh.length === 0) throw new UserError(`lm_eval wrote no new results file in ${dir}; check its log`);
  fresh.sort((a, b) => a.t - b.t || (a.f < b.f ? -1 : 1));
  return join(dir, fresh[fresh.length - 1].f);
}

export function readLmEvalResults(path: string): LmEvalResults {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: not valid JSON (${(e as Error).message}); the lm_eval run may have been cut short`);
  }
  return parseLmEvalResults(json, path);
}
