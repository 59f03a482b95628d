/**
 * Replacing a published site without a moment where readers see half of one. The new site is
 * built in `.<name>.tmp-<pid>` beside it, its marker file written last; the swap is three steps:
 *   1. rename site -> `.<name>.old-<pid>`
 *   2. rename `.<name>.tmp-<pid>` -> site
 *   3. remove `.<name>.old-<pid>`
 * Each rename is atomic, so a kill leaves the state after some prefix of these steps. Only a
 * kill between 1 and 2 leaves no site; `recoverSite` (run by the next report) then publishes
 * the complete staging folder (it has the marker), or else puts the old site back. Every
 * other leftover of a dead process (a half-built staging folder, an old site already
 * replaced) is removed. Linux has an atomic exchange (renameat2 RENAME_EXCHANGE), but Node
 * does not expose it.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface SwapNames {
  out: string;
  stage: string;
  old: string;
}

export function swapNames(out: string, pid = process.pid): SwapNames {
  return { out, stage: join(dirname(out), `.${basename(out)}.tmp-${pid}`), old: join(dirname(out), `.${basename(out)}.old-${pid}`) };
}

/** The swap as separate steps, so tests can stop after any of them as a kill would. */
export function swapSteps(n: SwapNames): (() => void)[] {
  let hadOld = false;
  return [
    () => {
      hadOld = existsSync(n.out);
      if (hadOld) renameSync(n.out, n.old);
    },
    () => {
      mkdirSync(dirname(n.out), { recursive: true });
      renameSync(n.stage, n.out);
    },
    () => {
      if (hadOld) rmSync(n.old, { recursive: true, force: true });
    },
  ];
}

export function swapIn(n: SwapNames): void {
  for (const step of swapSteps(n)) step();
}

/** A process that no longer runs. Our own pid here means a dead earlier holder of the same pid. */
function gone(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'EPERM';
  }
}

/**
 * Put back a site that a killed swap left missing, and remove leftovers of dead processes.
 * `marker` is the file a complete site has.
 * Folders of live processes (a concurrent report) are left alone. Returns what it did.
 */
export function recoverSite(out: string, marker: string): string[] {
  const dir = dirname(out);
  const name = basename(out);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const left = new Map<number, { tmp?: string; old?: string }>();
  for (const e of entries) {
    if (!e.startsWith(`.${name}.`)) continue;
    const m = /^(tmp|old)-(\d+)$/.exec(e.slice(name.length + 2));
    if (!m || !gone(Number(m[2]))) continue;
    const pid = Number(m[2]);
    const slot = left.get(pid) ?? {};
    slot[m[1] as 'tmp' | 'old'] = join(dir, e);
    left.set(pid, slot);
  }
  const done: string[] = [];
  if (!existsSync(out)) {
    const newest = (ps: (string | undefined)[]) =>
      ps.filter((p): p is string => p !== undefined).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
    const slots = [...left.values()];
    const pick = newest(slots.map((s) => (s.tmp && existsSync(join(s.tmp, marker)) ? s.tmp : undefined))) ?? newest(slots.map((s) => s.old));
    if (pick) {
      renameSync(pick, out);
      done.push(`restored ${out} from ${basename(pick)}`);
    }
  }
  for (const slot of left.values()) {
    for (const p of [slot.tmp, slot.old]) {
      if (p && existsSync(p)) {
        rmSync(p, { recursive: true, force: true });
        done.push(`removed ${basename(p)}`);
      }
    }
  }
  return done;
}
