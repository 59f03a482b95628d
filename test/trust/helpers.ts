/** Running the real CLI and fingerprinting files for the trust corpus. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BENCH = join(ROOT, 'bin', 'bench.js');
export const MODEL = join(ROOT, 'models', 'stories260k');

export function tmp(prefix = 'trust-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export function bench(args: readonly string[], opts: { cwd?: string; timeoutMs?: number } = {}): Ran {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BENCH, ...args], { cwd: opts.cwd ?? ROOT, encoding: 'utf8', timeout: opts.timeoutMs ?? 240_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

/** Exit `code`, and stderr ends in exactly one `bench: error:` line matching `re`, with no stack trace anywhere. */
export function assertOneLineError(r: Ran, code: number, re: RegExp, what: string): void {
  const all = `${r.stderr}\n${r.stdout}`;
  assert.equal(r.status, code, `${what}: exit ${r.status}, wanted ${code}\n${all}`);
  assert.doesNotMatch(all, /^\s+at .+:\d+:\d+\)?$/m, `${what}: stack trace\n${all}`);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('bench: error:'));
  assert.equal(errors.length, 1, `${what}: wanted one error line\n${r.stderr}`);
  assert.match(errors[0], re, what);
  assert.equal(r.stderr.trimEnd().split('\n').at(-1), errors[0], `${what}: the error is the last line`);
}

/** Every path under `p` (or p itself) with its type, mode and sha256: equal fingerprints = no byte changed. */
export function fingerprint(p: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (q: string) => {
    const st = lstatSync(q);
    const rel = relative(p, q) || '.';
    if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(q)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${st.mode.toString(8)}`;
      for (const e of readdirSync(q).sort()) walk(join(q, e));
    } else out[rel] = `file ${st.mode.toString(8)} ${createHash('sha256').update(readFileSync(q)).digest('hex')}`;
  };
  walk(p);
  return out;
}

/** A private copy of the bundled model (tests never write into models/). */
export function modelCopy(dir: string): string {
  const m = join(dir, 'model');
  cpSync(MODEL, m, { recursive: true });
  return m;
}
