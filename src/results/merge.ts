/**
 * Merging shard runs into one run: the union of their records, each result once, in a
 * canonical order, so that merging the shards of a matrix gives the same ledger as running
 * it whole (up to run ids and timings).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UserError } from '../errors.ts';
import { writeAtomic } from '../checkpoint/safetensors.ts';
import { appendRecords, ledgerPath, readLedger } from './ledger.ts';
import { cellKey, describeItemSet, sameItemSet, type ResultRecord } from './record.ts';

export function canonicalKey(r: ResultRecord): string {
  return [r.model, r.scheme, r.method, r.recipe ?? '', r.suite, r.task, r.metric, r.jobId].join('\u0000');
}

export function mergeRecords(runs: readonly { dir: string; records: readonly ResultRecord[] }[], runId: string): ResultRecord[] {
  const seen = new Map<string, { rec: ResultRecord; dir: string }>();
  const cells = new Map<string, { rec: ResultRecord; dir: string }>();
  for (const { dir, records } of runs) {
    for (const r of records) {
      // A merged run, like any run, never holds two item sets in one cell (records from
      // before coverage existed merge only with each other).
      const cell = cells.get(cellKey(r));
      if (!cell) cells.set(cellKey(r), { rec: r, dir });
      else if (!sameItemSet(cell.rec.coverage, r.coverage) && (cell.rec.coverage || r.coverage))
        throw new UserError(
          `${dir} and ${cell.dir} cover different items in ${r.model}/${r.scheme}/${r.method}/${r.suite} (${describeItemSet(r.coverage)} vs ${describeItemSet(cell.rec.coverage)}); merge shards of one run with one --limit`,
        );
      const key = `${r.jobId}\u0000${r.task}\u0000${r.metric}`;
      const prev = seen.get(key);
      if (prev && (prev.rec.value !== r.value || prev.rec.stderr !== r.stderr))
        throw new UserError(`${dir} and ${prev.dir} disagree on ${r.model}/${r.scheme}/${r.method}/${r.task}/${r.metric} (${prev.rec.value} vs ${r.value}); the shards did not run the same code or inputs`);
      if (!prev) seen.set(key, { rec: r, dir });
    }
  }
  return [...seen.values()]
    .map(({ rec }) => ({ ...rec, run: runId, provenance: { ...rec.provenance, computedInRun: rec.provenance.computedInRun ?? rec.run } }))
    .sort((a, b) => (canonicalKey(a) < canonicalKey(b) ? -1 : canonicalKey(a) > canonicalKey(b) ? 1 : 0));
}

export function mergeRuns(dirs: readonly string[], outDir: string): { records: number; runs: number } {
  if (dirs.length === 0) throw new UserError('bench merge needs at least one run directory');
  if (existsSync(ledgerPath(outDir))) throw new UserError(`${outDir} already has a ledger; merge into a new directory`);
  const runs = dirs.map((dir) => ({ dir, records: readLedger(dir) }));
  const runId = basename(outDir);
  const merged = mergeRecords(runs, runId);
  mkdirSync(outDir, { recursive: true });
  const shardInfo = dirs.map((dir) => {
    const p = join(dir, 'run.json');
    return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : { dir };
  });
  writeAtomic(join(outDir, 'run.json'), [Buffer.from(JSON.stringify({ runId, mergedFrom: shardInfo, mergedAt: new Date().toISOString() }, null, 2) + '\n')]);
  appendRecords(outDir, merged);
  return { records: merged.length, runs: dirs.length };
}
