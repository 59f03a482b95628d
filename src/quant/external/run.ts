/**
 * Run an external tool (auto-round, the llm-compressor driver, lm_eval) through execa:
 * argv arrays only, output appended to a per-job log, stderr split into lines (tqdm's `\r`
 * too, ANSI colours stripped) for progress parsing, a wall-clock timeout and cancellation
 * (SIGTERM, then SIGKILL after a grace period), and the child killed if we exit.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { execa } from 'execa';
import { UserError } from '../../errors.ts';

export interface RunOptions {
  command: string;
  args: readonly string[];
  env?: Record<string, string>;
  cwd?: string;
  logPath: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  graceMs?: number;
  /** Each line of stderr and stdout, ANSI codes removed. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Called with the child's pid once it started (supervision, tests). */
  onSpawn?: (pid: number) => void;
}

export interface RunOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  seconds: number;
  /** Could not start (e.g. not installed): the OS's reason. */
  spawnError: string | null;
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

export async function runLogged(o: RunOptions): Promise<RunOutcome> {
  mkdirSync(dirname(o.logPath), { recursive: true });
  const fd = openSync(o.logPath, 'a');
  writeSync(fd, `# ${new Date().toISOString()} run: ${JSON.stringify([o.command, ...o.args])}\n`);
  const t0 = performance.now();
  try {
    const sub = execa(o.command, [...o.args], {
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      env: o.env ?? {},
      extendEnv: true,
      cwd: o.cwd,
      timeout: o.timeoutMs,
      cancelSignal: o.signal,
      killSignal: 'SIGTERM',
      forceKillAfterDelay: o.graceMs ?? 10_000,
      cleanup: true,
      reject: false,
      buffer: false,
    });
    if (sub.pid !== undefined) o.onSpawn?.(sub.pid);
    const pending: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
    const feed = (stream: 'stdout' | 'stderr', chunk: Buffer) => {
      writeSync(fd, chunk);
      if (!o.onLine) return;
      const parts = (pending[stream] + chunk.toString('utf8')).split(/\r\n|\r|\n/);
      pending[stream] = parts.pop() ?? '';
      for (const p of parts) if (p.trim() !== '') o.onLine(stripAnsi(p), stream);
    };
    sub.stdout?.on('data', (c: Buffer) => feed('stdout', c));
    sub.stderr?.on('data', (c: Buffer) => feed('stderr', c));
    const r = await sub;
    for (const s of ['stdout', 'stderr'] as const) if (pending[s].trim() !== '' && o.onLine) o.onLine(stripAnsi(pending[s]), s);
    const spawnError = r.exitCode === undefined && !r.signal && !r.timedOut && !r.isCanceled ? String(r.originalMessage || r.shortMessage || 'spawn failed').split('\n')[0] : null;
    const outcome: RunOutcome = {
      exitCode: r.exitCode ?? null,
      signal: r.signal ?? null,
      timedOut: Boolean(r.timedOut),
      cancelled: Boolean(r.isCanceled),
      seconds: (performance.now() - t0) / 1000,
      spawnError,
    };
    writeSync(fd, `# ${new Date().toISOString()} end: ${JSON.stringify(outcome)}\n`);
    return outcome;
  } finally {
    closeSync(fd);
  }
}

/** The most telling error line of a Python tool's log: the last `XxxError: ...` line. */
export function lastErrorLine(logPath: string): string | null {
  let text: string;
  try {
    text = readFileSync(logPath, 'utf8').slice(-200_000);
  } catch {
    return null;
  }
  const lines = text.split(/\r\n|\r|\n/).map(stripAnsi).filter((l) => l.trim() !== '' && !l.startsWith('# '));
  for (let i = lines.length - 1; i >= 0; i--) if (/^\s*\w+(\.\w+)*(Error|Exception|Interrupt)\b.*/.test(lines[i]) || /error: /.test(lines[i])) return lines[i].trim().slice(0, 300);
  return lines.length ? lines[lines.length - 1].trim().slice(0, 300) : null;
}

/** Turn a failed run into the one-line error the CLI prints. */
export function failure(tool: string, o: RunOptions, r: RunOutcome, fix: string): UserError {
  const line = lastErrorLine(o.logPath);
  if (r.spawnError) return new UserError(`could not start ${tool} '${o.command}' (${r.spawnError}); install it (harness/requirements.txt) or set its command; log: ${o.logPath}`);
  if (r.timedOut) return new UserError(`${tool} did not finish within ${Math.round((o.timeoutMs ?? 0) / 1000)} s and was stopped; raise the timeout or shrink the job; log: ${o.logPath}`);
  if (r.cancelled) return new UserError(`${tool} was cancelled; log: ${o.logPath}`);
  const how = r.signal ? `was killed by ${r.signal}` : `exited with code ${r.exitCode}`;
  return new UserError(`${tool} ${how}${line ? `: ${line}` : ''}; ${fix}; log: ${o.logPath}`);
}
