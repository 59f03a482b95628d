/**
 * A run's ledger: `ledger.jsonl` in the run directory, one ResultRecord per line,
 * append-only. Each append writes whole lines and fsyncs, so a reader never sees a
 * half-written record except possibly a torn last line after a crash, which is ignored
 * (and dropped on the next append).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import type { ResultRecord } from './record.ts';

export const LEDGER_FILE = 'ledger.jsonl';

export function ledgerPath(runDir: string): string {
  return join(runDir, LEDGER_FILE);
}

/** Read all complete records of a ledger (a file path or a run directory). */
export function readLedger(pathOrDir: string): ResultRecord[] {
  const path = pathOrDir.endsWith('.jsonl') ? pathOrDir : ledgerPath(pathOrDir);
  if (!existsSync(path)) throw new UserError(`${path}: no ledger here; pass a run directory written by 'bench run'`);
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  // A torn final line (no trailing newline) is a write that never finished.
  if (!text.endsWith('\n')) lines.pop();
  const out: ResultRecord[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line) as ResultRecord);
    } catch {
      throw new UserError(`${path}:${i + 1}: not a JSON record; the ledger is corrupt (restore it or delete the line)`);
    }
  });
  return out;
}

/** Append records as whole lines, then fsync. Drops a torn last line first. */
export function appendRecords(pathOrDir: string, records: readonly ResultRecord[]): void {
  if (records.length === 0) return;
  const path = pathOrDir.endsWith('.jsonl') ? pathOrDir : ledgerPath(pathOrDir);
  if (existsSync(path)) {
    const text = readFileSync(path, 'utf8');
    if (text.length && !text.endsWith('\n')) truncateSync(path, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)));
  }
  const fd = openSync(path, 'a');
  try {
    const buf = Buffer.from(records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    let done = 0;
    while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
