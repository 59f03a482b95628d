/**
 * Reading run directories for the report: ledger records (validated field by field,
 * since a ledger is data from elsewhere) and `run.json` provenance (any shape accepted,
 * kept as untrusted JSON).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UserError } from '../errors.ts';
import { readLedger } from '../results/ledger.ts';
import type { MetricItems, ResultRecord } from '../results/record.ts';

export interface RunInfo {
  dir: string;
  id: string;
  /** run.json as found (untrusted; null when absent or unreadable). */
  meta: Record<string, unknown> | null;
  records: number;
}

export interface LoadedRuns {
  records: ResultRecord[];
  runs: RunInfo[];
  /** Lines that were not usable records, with why. */
  skipped: string[];
}

const isStr = (x: unknown): x is string => typeof x === 'string';
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const numOrNull = (x: unknown): number | null => (isNum(x) ? x : null);

function cleanItems(x: unknown): MetricItems | undefined {
  if (!x || typeof x !== 'object') return undefined;
  const it = x as Record<string, unknown>;
  if (it.aggregation !== 'mean' && it.aggregation !== 'perplexity' && it.aggregation !== 'bits_per_unit') return undefined;
  if (!Array.isArray(it.values) || !it.values.every(isNum)) return undefined;
  if (it.weights !== undefined && (!Array.isArray(it.weights) || it.weights.length !== it.values.length || !it.weights.every(isNum))) return undefined;
  return { aggregation: it.aggregation, values: it.values as number[], weights: it.weights as number[] | undefined };
}

/** A record with every field the report reads checked; null (and why) when unusable. */
export function cleanRecord(x: unknown, runId: string): ResultRecord | string {
  if (!x || typeof x !== 'object') return 'not an object';
  const r = x as Record<string, unknown>;
  for (const k of ['model', 'scheme', 'method', 'task', 'metric'] as const) {
    if (!isStr(r[k]) || r[k] === '') return `field '${k}' is not a non-empty string`;
  }
  if (!isNum(r.value)) return `value is not a finite number`;
  const timings = (r.timings && typeof r.timings === 'object' ? r.timings : {}) as Record<string, unknown>;
  return {
    schema: 1,
    jobId: isStr(r.jobId) ? r.jobId : '',
    run: isStr(r.run) ? r.run : runId,
    model: r.model as string,
    scheme: r.scheme as string,
    method: r.method as string,
    recipe: isStr(r.recipe) && r.recipe !== '' ? r.recipe : null,
    suite: isStr(r.suite) ? r.suite : '',
    task: r.task as string,
    metric: r.metric as string,
    value: r.value as number,
    stderr: numOrNull(r.stderr),
    n: isNum(r.n) ? r.n : 0,
    higherIsBetter: typeof r.higherIsBetter === 'boolean' ? r.higherIsBetter : !/perplexity|kld|bits_per|loss/.test(r.metric as string),
    items: cleanItems(r.items),
    bitsPerWeight: isNum(r.bitsPerWeight) ? r.bitsPerWeight : NaN,
    engine: isStr(r.engine) ? r.engine : '',
    timings: { quantSeconds: numOrNull(timings.quantSeconds), evalSeconds: isNum(timings.evalSeconds) ? timings.evalSeconds : 0 },
    provenance: r.provenance && typeof r.provenance === 'object' && !Array.isArray(r.provenance) ? (r.provenance as Record<string, unknown>) : {},
    createdAt: isStr(r.createdAt) ? r.createdAt : '',
  };
}

/** Load every run directory; a directory holding run directories is expanded one level. */
export function loadRuns(dirs: readonly string[]): LoadedRuns {
  const runDirs: string[] = [];
  for (const d of dirs) {
    if (!existsSync(d)) throw new UserError(`${d}: does not exist; pass run directories (default .bench/runs) with --runs`);
    if (!statSync(d).isDirectory()) throw new UserError(`${d}: is a file, not a folder; pass run directories (default .bench/runs) with --runs`);
    if (existsSync(join(d, 'ledger.jsonl'))) runDirs.push(d);
    else {
      const kids = readdirSync(d)
        .sort()
        .map((k) => join(d, k))
        .filter((k) => existsSync(join(k, 'ledger.jsonl')));
      if (!kids.length) throw new UserError(`${d}: no ledger.jsonl here or in its subdirectories; run 'bench run' first or pass --runs`);
      runDirs.push(...kids);
    }
  }
  const out: LoadedRuns = { records: [], runs: [], skipped: [] };
  for (const dir of runDirs) {
    let meta: Record<string, unknown> | null = null;
    const metaPath = join(dir, 'run.json');
    if (existsSync(metaPath)) {
      try {
        const m = JSON.parse(readFileSync(metaPath, 'utf8'));
        meta = m && typeof m === 'object' && !Array.isArray(m) ? m : null;
        if (!meta) out.skipped.push(`${metaPath}: not a JSON object`);
      } catch {
        out.skipped.push(`${metaPath}: not valid JSON`);
      }
    }
    const id = meta && isStr(meta.id) ? meta.id : basename(dir);
    const raw = readLedger(dir);
    let count = 0;
    raw.forEach((x, i) => {
      const r = cleanRecord(x, id);
      if (typeof r === 'string') out.skipped.push(`${join(dir, 'ledger.jsonl')}:${i + 1}: ${r}`);
      else {
        out.records.push(r);
        count++;
      }
    });
    out.runs.push({ dir, id, meta, records: count });
  }
  return out;
}
