/**
 * The CI baseline: a run's records (with their per-item values, for paired tests, and their
 * coverage, so a run over other items is refused) and its provenance, committed to the
 * repository and reviewed in a pull request like code.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { readLedger } from '../results/ledger.ts';
import type { ResultRecord } from '../results/record.ts';
import { writeAtomic } from '../checkpoint/safetensors.ts';
import { requireCoverage, validateRecords } from './inputs.ts';

export interface BaselineFile {
  schema: 1;
  createdAt: string;
  /** The run the baseline was taken from, and its run.json. */
  run: string;
  provenance: Record<string, unknown>;
  records: ResultRecord[];
}

const updateHint = (path: string) => `take a baseline with 'bench baseline update --run RUN --out ${path}'`;

/** Read and check a baseline: well formed, not empty, every record valid and with coverage. */
export function readBaseline(path: string): BaselineFile {
  if (!existsSync(path)) throw new UserError(`${path}: no baseline; ${updateHint(path)}`);
  if (!statSync(path).isFile()) throw new UserError(`${path}: not a file; pass the baseline JSON written by 'bench baseline update'`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: not valid JSON (${(e as Error).message}); ${updateHint(path)}`);
  }
  const b = json as Partial<BaselineFile> | null;
  if (b === null || typeof b !== 'object' || Array.isArray(b) || b.schema !== 1 || !Array.isArray(b.records))
    throw new UserError(`${path}: not a lowbit-bench baseline (expected an object with schema 1 and a records array); pass --baseline FILE written by 'bench baseline update'`);
  if (b.records.length === 0) throw new UserError(`${path}: the baseline has no records, so nothing could regress; ${updateHint(path)}`);
  validateRecords(b.records, path, updateHint(path));
  requireCoverage(b.records, path, `it predates coverage checks: ${updateHint(path)}`);
  return b as BaselineFile;
}

/** Take a baseline from a run directory; records are sorted so diffs review cleanly. */
export function baselineFromRun(runDir: string): BaselineFile {
  const records = readLedger(runDir);
  if (records.length === 0) throw new UserError(`${runDir}: the run has no results to take a baseline from`);
  validateRecords(records, runDir, 'the ledger is corrupt; rerun with bench run');
  requireCoverage(records, runDir, "the run was written before results recorded coverage; rerun it with 'bench run' and take the baseline from that run");
  const runJson = join(runDir, 'run.json');
  let provenance: Record<string, unknown> = {};
  if (existsSync(runJson)) {
    try {
      const p = JSON.parse(readFileSync(runJson, 'utf8'));
      if (p && typeof p === 'object' && !Array.isArray(p)) provenance = p;
      else throw new Error('not a JSON object');
    } catch (e) {
      throw new UserError(`${runJson}: not a JSON object (${(e as Error).message}); restore it or rerun with bench run`);
    }
  }
  const key = (r: ResultRecord) => [r.model, r.scheme, r.method, r.recipe ?? '', r.suite, r.task, r.metric].join('\u0000');
  records.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return { schema: 1, createdAt: new Date().toISOString(), run: records[0].run, provenance, records };
}

export function writeBaseline(path: string, baseline: BaselineFile): void {
  writeAtomic(path, [Buffer.from(JSON.stringify(baseline, null, 1) + '\n')]);
}
