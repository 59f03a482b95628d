/**
 * The CI baseline: a run's records (with their per-item values, for paired tests) and its
 * provenance, committed to the repository and reviewed in a pull request like code.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { readLedger } from '../results/ledger.ts';
import type { ResultRecord } from '../results/record.ts';
import { writeAtomic } from '../checkpoint/safetensors.ts';

export interface BaselineFile {
  schema: 1;
  createdAt: string;
  /** The run the baseline was taken from, and its run.json. */
  run: string;
  provenance: Record<string, unknown>;
  records: ResultRecord[];
}

export function readBaseline(path: string): BaselineFile {
  if (!existsSync(path)) throw new UserError(`${path}: no baseline; create one with 'bench baseline update --run RUN --out ${path}'`);
  let json: BaselineFile;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (json?.schema !== 1 || !Array.isArray(json.records)) throw new UserError(`${path}: not a lowbit-bench baseline (expected schema 1 with a records array)`);
  return json;
}

/** Take a baseline from a run directory; records are sorted so diffs review cleanly. */
export function baselineFromRun(runDir: string): BaselineFile {
  const records = readLedger(runDir);
  if (records.length === 0) throw new UserError(`${runDir}: the run has no results to take a baseline from`);
  const runJson = join(runDir, 'run.json');
  const provenance = existsSync(runJson) ? (JSON.parse(readFileSync(runJson, 'utf8')) as Record<string, unknown>) : {};
  const key = (r: ResultRecord) => [r.model, r.scheme, r.method, r.recipe ?? '', r.suite, r.task, r.metric].join('\u0000');
  records.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return { schema: 1, createdAt: new Date().toISOString(), run: records[0].run, provenance, records };
}

export function writeBaseline(path: string, baseline: BaselineFile): void {
  writeAtomic(path, [Buffer.from(JSON.stringify(baseline, null, 1) + '\n')]);
}
