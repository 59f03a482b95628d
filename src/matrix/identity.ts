/**
 * Job identity: a sha256 over canonical JSON (keys sorted at every level, no spaces) of
 * everything that determines a job's result. Two jobs with the same identity must give
 * the same numbers, so the cache may hand one's result to the other; anything that can
 * change a number belongs in the identity.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { UserError } from '../errors.ts';

/** JSON with object keys sorted recursively; `undefined` members dropped as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`canonicalJson: non-finite number ${value}`);
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const keys = Object.keys(value as Record<string, unknown>)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The identity hash of a JSON-able description. */
export function identityHash(description: unknown): string {
  return sha256Hex(canonicalJson(description));
}

/** sha256 of a file's bytes, streamed in 1 MiB chunks (model shards can be many GB). */
export function hashFile(path: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    throw new UserError(`${path}: cannot read it to hash; check the path in models.json or the suite`);
  }
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Every regular file under `dir` (hidden entries skipped), as sorted '/'-separated relative paths. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() || (e.isSymbolicLink() && statSync(p).isFile())) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

/** Content hashes of a directory's files: { relativePath: sha256 }, sorted by path. */
export function hashDir(dir: string): Record<string, string> {
  let files: string[];
  if (!existsSync(dir)) throw new UserError(`${dir}: does not exist; point the model's source at an HF-layout model directory`);
  if (!statSync(dir).isDirectory()) throw new UserError(`${dir}: not a directory; point the model's source at an HF-layout model directory`);
  try {
    files = listFiles(dir);
  } catch (e) {
    throw new UserError(`${dir}: cannot list the model directory (${(e as Error).message}); fix or remove the unreadable entry`);
  }
  if (files.length === 0) throw new UserError(`${dir}: empty directory; a model directory needs config.json and weights`);
  const out: Record<string, string> = {};
  for (const f of files) out[f] = hashFile(join(dir, f));
  return out;
}

/** Short form of an identity for display. */
export function shortId(id: string): string {
  return id.slice(0, 12);
}
