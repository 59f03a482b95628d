/**
 * Where commands write: checked before any work starts (so that an hour of AutoRound is
 * never lost to an unwritable --out), and replaced only when we made it. A directory we
 * create carries OUTPUT_MARKER; `--force` replaces such a directory and nothing else.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { UserError } from '../errors.ts';
import { checkOutDir } from '../outputs.ts';
import { isAlive } from '../runner/cache.ts';

/** Written into every checkpoint directory `bench quantize` creates. */
export const OUTPUT_MARKER = '.lowbit-bench-output';

const why = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** A UserError that keeps the system error behind it. */
function failed(message: string, cause: unknown): UserError {
  return new UserError(message, 2, { cause });
}

function inside(child: string, parent: string): boolean {
  const r = relative(parent, child);
  return r === '' || (!r.startsWith('..') && !r.startsWith(sep) && r !== '..');
}

/** The real path of `p`, resolving symlinks in its nearest existing ancestor when `p` does not exist yet. */
function real(p: string): string {
  const abs = resolve(p);
  try {
    return realpathSync(abs);
  } catch {
    const up = dirname(abs);
    return up === abs ? abs : join(real(up), basename(abs));
  }
}

/**
 * An output directory that is staged next to its final place and swapped in at the end:
 * `stage` is where the command writes; `commit()` writes the marker, moves any old
 * output (ours, marked) aside, renames the stage into place and removes the old one;
 * `abort()` removes the stage. All checks happen in `prepareOutputDir`, before work.
 */
export interface StagedOutput {
  stage: string;
  commit(): void;
  abort(): void;
}

/**
 * Check `out` before any work and stage it. Refused, with no byte touched: a regular file
 * or anything not a directory; the source (`protect`, or a folder holding or inside it);
 * an existing non-empty directory without our marker; an existing output without
 * `force`. An empty directory is taken.
 */
export function prepareOutputDir(out: string, o: { force?: boolean; protect?: string[]; flag?: string }): StagedOutput {
  const flag = o.flag ?? '--out';
  const target = resolve(out);
  for (const p of o.protect ?? []) {
    const src = real(p);
    if (inside(real(target), src) || inside(src, real(target)))
      throw new UserError(`${flag} ${out}: is or overlaps the source model ${p}; pick another output directory`);
  }
  let replace = false;
  if (existsSync(target) || isSymlink(target)) {
    const st = lstatSync(target);
    if (!st.isDirectory()) throw new UserError(`${flag} ${out}: exists and is not a directory; pick another output directory`);
    const entries = readdirSync(target);
    if (entries.length) {
      if (!entries.includes(OUTPUT_MARKER))
        throw new UserError(`${flag} ${out}: exists and was not written by bench (no ${OUTPUT_MARKER}); pick another output directory or empty it`);
      if (!o.force) throw new UserError(`${flag} ${out}: already exists; choose another ${flag} or pass --force to replace it`);
    }
    replace = true;
  }
  const parent = dirname(target);
  checkOutDir(flag, parent, { create: true, named: out });
  cleanStaleStages(parent, basename(target));
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const staging = join(parent, `.${basename(target)}.stage-${tag}`);
  try {
    mkdirSync(staging);
  } catch (e) {
    throw failed(`${flag} ${out}: cannot stage the output in ${parent} (${why(e)}); pick a writable location`, e);
  }
  const stage = join(staging, 'out');
  return {
    stage,
    commit() {
      writeFileSync(join(stage, OUTPUT_MARKER), 'written by bench quantize; bench quantize --force may replace this folder\n');
      if (replace && existsSync(target)) renameSync(target, join(staging, 'old'));
      renameSync(stage, target);
      rmSync(staging, { recursive: true, force: true });
    },
    abort() {
      rmSync(staging, { recursive: true, force: true });
    },
  };
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Staging folders of `name` left by a process that was killed. */
function cleanStaleStages(parent: string, name: string): void {
  const prefix = `.${name}.stage-`;
  for (const e of readdirSync(parent)) {
    if (!e.startsWith(prefix)) continue;
    const pid = Number(e.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !isAlive(pid)) rmSync(join(parent, e), { recursive: true, force: true });
  }
}
