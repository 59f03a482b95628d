/**
 * Batch scripts for job arrays. Every value written into an `#SBATCH` line is checked to
 * need no quoting there (sbatch splits those lines on white space); the command the task
 * runs is a shell line in which every word is single-quoted.
 */
import { UserError } from '../../../errors.ts';
import type { SlurmSettings } from '../../../matrix/models.ts';

/** One word for the shell, single-quoted ('it'\''s'). */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const SAFE = /^[A-Za-z0-9_.,:+@%=\/\[\]-]+$/;

function directive(option: string, value: string, what: string): string {
  if (!SAFE.test(value)) throw new UserError(`${what} '${value}' has characters an #SBATCH line cannot carry (spaces, quotes, $ ...); use a value or path without them`);
  return `#SBATCH ${option}=${value}`;
}

/** `0,2,3,4` -> `0,2-4` */
export function indexRanges(indices: readonly number[]): string {
  const xs = [...indices].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let k = i;
    while (k + 1 < xs.length && xs[k + 1] === xs[k] + 1) k++;
    parts.push(k === i ? `${xs[i]}` : `${xs[i]}-${xs[k]}`);
    i = k + 1;
  }
  return parts.join(',');
}

export interface ScriptSpec {
  jobName: string;
  /** Indices of the array's tasks. */
  indices: number[];
  /** Log file pattern (`%A_%a` for array job and task). */
  log: string;
  /** `aftercorr:12,afterok:13_4`, or empty. */
  dependency: string;
  settings: SlurmSettings;
  /** Working directory of the task. */
  cwd: string;
  /** The task's command line; `$SLURM_ARRAY_TASK_ID` is appended as its last argument. */
  argv: string[];
  /** Comment lines (what the array runs), written as `# ...`. */
  comments: string[];
}

export function renderScript(s: ScriptSpec): string {
  const st = s.settings;
  const lines = ['#!/bin/bash', ...s.comments.map((c) => `# ${c.replace(/[\r\n]+/g, ' ')}`)];
  lines.push(directive('--job-name', s.jobName, 'job name'));
  lines.push(directive('--array', `${indexRanges(s.indices)}${st.maxParallel ? `%${st.maxParallel}` : ''}`, 'array'));
  lines.push(directive('--output', s.log, 'log path'));
  lines.push('#SBATCH --ntasks=1');
  if (s.dependency) lines.push(`#SBATCH --dependency=${s.dependency}`); // built from job ids, never from user text
  if (st.partition) lines.push(directive('--partition', st.partition, 'partition'));
  if (st.account) lines.push(directive('--account', st.account, 'account'));
  if (st.time) lines.push(directive('--time', st.time, 'time limit'));
  if (st.gpusPerTask !== undefined) lines.push(directive('--gpus-per-task', String(st.gpusPerTask), 'GPUs per task'));
  for (const a of st.sbatchArgs ?? []) {
    if (!/^--?[A-Za-z]/.test(a) || !SAFE.test(a)) throw new UserError(`sbatch argument '${a}' must be one option like --mem=64G with no spaces or quotes`);
    lines.push(`#SBATCH ${a}`);
  }
  lines.push('set -eu', `cd ${shQuote(s.cwd)}`, `exec ${s.argv.map(shQuote).join(' ')} "$SLURM_ARRAY_TASK_ID"`, '');
  return lines.join('\n');
}
