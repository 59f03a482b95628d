/**
 * The Slurm commands the executor uses, always as argv arrays through execa (no shell):
 * sbatch to submit, squeue for the state of every array task, scontrol (or sacct where
 * accounting exists) for a finished task's exit code, scancel to cancel.
 */
import { execa } from 'execa';
import { UserError } from '../../../errors.ts';

/** States after which a task will not run again. */
export const TERMINAL = new Set([
  'COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'BOOT_FAIL', 'DEADLINE', 'PREEMPTED', 'SPECIAL_EXIT', 'REVOKED',
]);

export interface TaskState {
  /** Array job id and task index: `123_4`. */
  id: string;
  arrayJobId: string;
  index: number;
  state: string;
  reason: string;
}

async function slurmCmd(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  try {
    const r = await execa(cmd, args, { reject: false, timeout: 60_000, stdin: 'ignore' });
    return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? 1 };
  } catch (e) {
    const err = new UserError(`${cmd} cannot be run (${(e as Error).message}); run on a host with Slurm's client commands, or use --executor local`);
    err.cause = e;
    throw err;
  }
}

/** Submit a batch script; returns the job id. */
export async function sbatch(script: string): Promise<string> {
  const r = await slurmCmd('sbatch', ['--parsable', script]);
  const id = r.stdout.trim().split(';')[0];
  if (r.exitCode !== 0 || !/^\d+$/.test(id)) throw new UserError(`sbatch ${script} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
  return id;
}

/** Every task of the given array jobs that slurmctld still knows, one per task (`squeue -r --states=all`). */
export async function squeueTasks(arrayJobIds: readonly string[]): Promise<TaskState[]> {
  if (arrayJobIds.length === 0) return [];
  const r = await slurmCmd('squeue', ['-h', '-r', '--states=all', '-j', arrayJobIds.join(','), '-o', '%i|%F|%K|%T|%r']);
  if (r.exitCode !== 0) {
    // One unknown id (purged after MinJobAge) fails the whole call: ask for each id alone.
    if (arrayJobIds.length > 1) return (await Promise.all(arrayJobIds.map((id) => squeueTasks([id])))).flat();
    if (/invalid job id/i.test(r.stderr)) return [];
    throw new Error(`squeue failed: ${r.stderr.trim()}`);
  }
  const out: TaskState[] = [];
  for (const line of r.stdout.split('\n')) {
    const [id, arrayJobId, index, state, reason] = line.trim().split('|');
    if (!id || !/^\d+$/.test(index ?? '')) continue;
    out.push({ id, arrayJobId, index: Number(index), state: state.split(' ')[0], reason: reason ?? '' });
  }
  return out;
}

/** The array job id of a live job with this name, or null (for a submission whose id was never recorded). */
export async function findByName(name: string): Promise<string | null> {
  const r = await slurmCmd('squeue', ['-h', '--name', name, '-o', '%F']);
  const id = r.stdout.trim().split('\n')[0]?.trim();
  return r.exitCode === 0 && id && /^\d+$/.test(id) ? id : null;
}

/** State and exit code of one finished task: scontrol while slurmctld remembers it, else sacct. */
export async function taskDetails(id: string): Promise<{ state: string; exitCode: string } | null> {
  const sc = await slurmCmd('scontrol', ['show', 'job', '-o', id]);
  if (sc.exitCode === 0) {
    const kv = new Map(sc.stdout.split(/\s+/).map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)] as const));
    if (kv.get('JobState')) return { state: kv.get('JobState')!, exitCode: kv.get('ExitCode') ?? '?' };
  }
  const sa = await slurmCmd('sacct', ['-n', '-P', '-X', '-j', id, '-o', 'JobID,State,ExitCode']);
  const line = sa.exitCode === 0 ? sa.stdout.split('\n').find((l) => l.startsWith(`${id}|`)) : undefined;
  if (!line) return null;
  const [, state, exitCode] = line.split('|');
  return { state: state.split(' ')[0], exitCode };
}

/** Cancel jobs or single tasks (`123`, `123_4`). */
export async function scancel(ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  const r = await slurmCmd('scancel', [...ids]);
  if (r.exitCode !== 0 && !/already completing|invalid job id|job has already finished/i.test(r.stderr)) throw new Error(`scancel failed: ${r.stderr.trim()}`);
}
