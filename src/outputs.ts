/**
 * Output locations are checked before any work starts, so a bad `--out` costs nothing and
 * ends in a one-line error. Writability is probed by creating (and at once removing) a
 * temporary folder: access(2) says yes for root on read-only pseudo-filesystems such as /sys.
 * (Node's recursive mkdir loops forever under /proc, where mkdir answers ENOENT: so callers
 * create folders only after this check found the nearest existing one writable.)
 */
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError } from './errors.ts';

function probeWritable(flag: string, path: string, dir: string): void {
  try {
    rmdirSync(mkdtempSync(join(dir, '.bench-write-probe-')));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new UserError(`${flag} ${path}: cannot write in ${dir} (${code}); pick a writable location`);
  }
}

/** The nearest existing folder at or above `path`; an existing non-folder on the way is an error. */
function nearestFolder(flag: string, path: string, what: string): string {
  let d = resolve(path);
  while (!existsSync(d)) d = dirname(d);
  if (!statSync(d).isDirectory()) throw new UserError(`${flag} ${path}: ${d} is a file, so ${what} cannot be created there; pick another ${flag}`);
  return d;
}

/**
 * `path` will be a folder we write into: an existing folder, or creatable under a writable one.
 * `create`: make it now (only after the probe, see above). `named`: what the user typed, when
 * `path` is derived from it (the parent of a staged output).
 */
export function checkOutDir(flag: string, path: string, opts: { create?: boolean; named?: string } = {}): void {
  const shown = opts.named ?? path;
  if (existsSync(path) && !statSync(path).isDirectory())
    throw new UserError(`${flag} ${shown}: ${opts.named ? `${path} ` : ''}is a file, not a folder; ${flag} names a folder to write into, pick another`);
  probeWritable(flag, shown, nearestFolder(flag, path, 'the folder'));
  if (opts.create) mkdirSync(path, { recursive: true });
}

/** `path` will be a file written atomically (temporary file beside it, then rename). */
export function checkOutFile(flag: string, path: string): void {
  if (existsSync(path) && !statSync(path).isFile())
    throw new UserError(`${flag} ${path}: ${statSync(path).isDirectory() ? 'is a folder, not a regular file' : 'is not a regular file'}; pass a file path`);
  const parent = dirname(resolve(path));
  if (!existsSync(parent)) throw new UserError(`${flag} ${path}: the folder ${dirname(path)} does not exist; create it or pick another ${flag}`);
  probeWritable(flag, path, nearestFolder(flag, parent, 'the file'));
}
