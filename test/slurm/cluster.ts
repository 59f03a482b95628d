/**
 * The one-node Slurm cluster the slurm tests run against: started with scripts/slurm/up.sh
 * when it is not up (and then stopped again with down.sh at the end), and helpers to run
 * `bench` and read the queue.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');
export const BENCH = join(ROOT, 'bin', 'bench.js');

function clusterUp(): boolean {
  const r = spawnSync('sinfo', ['-h', '-o', '%T'], { encoding: 'utf8' });
  return r.status === 0 && /idle|mixed|allocated|completing/.test(r.stdout);
}

/** Bring the cluster up if needed; returns the function that undoes what this did. */
export function ensureCluster(): () => void {
  if (clusterUp()) return () => {};
  const up = spawnSync('bash', [join(ROOT, 'scripts', 'slurm', 'up.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (up.status !== 0) throw new Error(`scripts/slurm/up.sh failed (${up.status}): ${up.stderr}`);
  return () => {
    const down = spawnSync('bash', [join(ROOT, 'scripts', 'slurm', 'down.sh')], { encoding: 'utf8' });
    if (down.status !== 0) throw new Error(`scripts/slurm/down.sh failed: ${down.stderr}`);
  };
}

export interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Start `bench ARGS`; `done` resolves when it exits. */
export function bench(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BENCH, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const done = new Promise<Done>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr }));
  });
  return { child, done, err: () => stderr };
}

/** Array job ids a run submitted (from its slurm/state.json). */
export function arrayIds(runDir: string): string[] {
  const st = JSON.parse(readFileSync(join(runDir, 'slurm', 'state.json'), 'utf8'));
  return st.arrays.map((a: { arrayJobId: string | null }) => a.arrayJobId).filter(Boolean);
}

/** `id state` of every task of these array jobs that slurmctld knows. */
export function queue(ids: string[]): { id: string; state: string }[] {
  if (!ids.length) return [];
  const r = spawnSync('squeue', ['-h', '-r', '--states=all', '-j', ids.join(','), '-o', '%i %T'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const [id, state] = l.trim().split(/\s+/);
    return { id, state };
  });
}

/** Pids of processes whose command line mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until `cond()` holds, polling; throws after `ms`. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}
