/**
 * The one supervisor for every process lowbit-bench starts from outside: quantizer jobs
 * (auto-round, the llm-compressor driver), lm_eval, and scoring servers (`vllm serve`, or
 * `bench serve` in its place). execa's habits: options normalised once (`normalise`), one
 * result shape (`ProcessExit`), the failure's `cause` kept.
 *
 * - argv arrays only (never a shell), environment = ours plus `env`;
 * - its own process group (detached), so the kill ladder reaches a tool's workers too:
 *   SIGTERM to the group, `graceMs`, then SIGKILL to the group; the same on timeout, on
 *   cancel (AbortSignal), and when the orchestrator exits or is signalled;
 * - output appended to a per-job log file: piped through us (`output: 'lines'`, for
 *   progress from stderr) or handed to the child as a file descriptor (`output: 'file'`,
 *   servers: no pipe through us, so no SIGPIPE if we die);
 * - `watchdog: true` (servers) adds a detached process that kills the group if the
 *   orchestrator dies without running its hooks (SIGKILL, crash);
 * - the one-line error of a failure comes from the log by one rule (`errorLine`).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { ToolError } from '../errors.ts';

const WATCHDOG = join(dirname(fileURLToPath(import.meta.url)), 'watchdog.mjs');

export interface ProcessOptions {
  /** What the process is, for messages: `auto-round`, `lm_eval`, `server 'x'`. */
  tool: string;
  command: string;
  args: readonly string[];
  /** Added to our environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Log file (created with its folder, appended to). */
  logPath: string;
  /** `lines`: piped through us, split into lines for `onLine`; `file`: the child writes the log itself. */
  output?: 'lines' | 'file';
  /** Wall-clock limit; then the kill ladder. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Between SIGTERM and SIGKILL. */
  graceMs?: number;
  /** Kill the group if the orchestrator dies without its exit hooks (servers). */
  watchdog?: boolean;
  /** Each non-empty line of stdout and stderr (tqdm's `\r` redraws split too), ANSI codes removed. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** The child's pid once it started (supervision, tests). */
  onSpawn?: (pid: number) => void;
}

type Normalised = Required<Pick<ProcessOptions, 'tool' | 'command' | 'logPath' | 'output' | 'graceMs' | 'watchdog'>> &
  Omit<ProcessOptions, 'args' | 'env'> & { args: string[]; env: Record<string, string> };

function normalise(o: ProcessOptions): Normalised {
  return { ...o, args: [...o.args], env: o.env ?? {}, output: o.output ?? 'lines', graceMs: o.graceMs ?? 10_000, watchdog: o.watchdog ?? false };
}

/** How a process ended: the one result shape. */
export interface ProcessExit {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  /** Could not start (not installed, not executable): the OS's reason. */
  spawnError: string | null;
  seconds: number;
  argv: string[];
  logPath: string;
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

const WRAPPER = /See root cause above|Engine core initialization failed|^\s*Traceback \(most recent call last\)|^\s*raise\b/;
const ERROR = /^\s*(\w+\.)*\w*(Error|Exception|Interrupt|Exit)\b\s*(:|$)|\berror: |EADDRINUSE|Address already in use/;

/**
 * The most telling line of a tool's or server's log: the last error line (a Python
 * exception line `XxxError: ...`, an `error: ` line, a bind failure) that is not a wrapper
 * re-raising an earlier one (vLLM's "Engine core initialization failed. See root cause
 * above", `Traceback`, `raise`); else the last non-empty line. Our own `# ` lines are skipped.
 */
export function errorLine(logText: string): string | null {
  const lines = logText
    .slice(-200_000)
    .split(/\r\n|\r|\n/)
    .map(stripAnsi)
    .filter((l) => l.trim() !== '' && !l.startsWith('# '));
  for (let i = lines.length - 1; i >= 0; i--) if (ERROR.test(lines[i]) && !WRAPPER.test(lines[i])) return lines[i].trim().slice(0, 300);
  return lines.length ? lines[lines.length - 1].trim().slice(0, 300) : null;
}

/** The error line of a log file, or null when it cannot be read. */
export function logErrorLine(logPath: string): string | null {
  try {
    return errorLine(readFileSync(logPath, 'utf8'));
  } catch {
    return null;
  }
}

/** Every started, not yet reaped process; killed when the orchestrator goes away. */
const live = new Set<ProcessHandle>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.killNow('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      void Promise.all([...live].map((p) => p.stop())).finally(() => {
        // If nobody else handles the signal, do what the default action would have done.
        if (process.listenerCount(sig) === 1) {
          process.removeListener(sig, handler);
          process.kill(process.pid, sig);
        }
      });
    };
    process.on(sig, handler);
  }
}

/** A started process in its own group. */
export class ProcessHandle {
  readonly pid: number | undefined;
  readonly argv: string[];
  readonly logPath: string;
  readonly graceMs: number;
  /** Set once the process has ended. */
  exit: ProcessExit | null = null;
  private readonly ended: Promise<ProcessExit>;
  private watchdogPid: number | undefined;
  private stopReason: 'timeout' | 'cancel' | null = null;

  constructor(o: ProcessOptions) {
    const n = normalise(o);
    this.argv = [n.command, ...n.args];
    this.logPath = n.logPath;
    this.graceMs = n.graceMs;
    mkdirSync(dirname(n.logPath), { recursive: true });
    const fd = openSync(n.logPath, 'a');
    writeSync(fd, `# ${new Date().toISOString()} start: ${JSON.stringify(this.argv)}\n`);
    const t0 = performance.now();
    // execa's typings list only literal fds 3-9; at run time any open fd works.
    const out = n.output === 'file' ? (fd as 3) : 'pipe';
    const sub = execa(n.command, n.args, {
      detached: true, cleanup: false, stdin: 'ignore', stdout: out, stderr: out, env: n.env, extendEnv: true, cwd: n.cwd, reject: false, buffer: false,
    });
    this.pid = sub.pid;
    if (n.output === 'lines') {
      const pending = { stdout: '', stderr: '' };
      const feed = (stream: 'stdout' | 'stderr', chunk: Buffer) => {
        writeSync(fd, chunk);
        if (!n.onLine) return;
        const parts = (pending[stream] + chunk.toString('utf8')).split(/\r\n|\r|\n/);
        pending[stream] = parts.pop() ?? '';
        for (const p of parts) if (p.trim() !== '') n.onLine(stripAnsi(p), stream);
      };
      sub.stdout?.on('data', (c: Buffer) => feed('stdout', c));
      sub.stderr?.on('data', (c: Buffer) => feed('stderr', c));
      sub.then(() => {
        for (const s of ['stdout', 'stderr'] as const) if (pending[s].trim() !== '') n.onLine?.(stripAnsi(pending[s]), s);
      }, () => undefined);
    } else {
      // The child has its own copy of the fd since spawn.
      closeSync(fd);
    }
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      this.stopReason ??= 'cancel';
      void this.stop();
    };
    this.ended = sub.then((r) => {
      clearTimeout(timer);
      n.signal?.removeEventListener('abort', onAbort);
      const spawnError = this.pid === undefined ? String(r.originalMessage || r.shortMessage || 'spawn failed').split('\n')[0] : null;
      const e: ProcessExit = {
        exitCode: r.exitCode ?? null, signal: r.signal ?? null, timedOut: this.stopReason === 'timeout', cancelled: this.stopReason === 'cancel',
        spawnError, seconds: (performance.now() - t0) / 1000, argv: this.argv, logPath: this.logPath,
      };
      if (n.output === 'lines') {
        writeSync(fd, `# ${new Date().toISOString()} end: ${JSON.stringify({ exitCode: e.exitCode, signal: e.signal, timedOut: e.timedOut, cancelled: e.cancelled, seconds: e.seconds })}\n`);
        closeSync(fd);
      }
      this.exit = e;
      live.delete(this);
      this.killWatchdog();
      return e;
    });
    if (this.pid === undefined) return;
    live.add(this);
    installHooks();
    n.onSpawn?.(this.pid);
    if (n.watchdog) this.startWatchdog();
    if (n.timeoutMs !== undefined && n.timeoutMs > 0) {
      timer = setTimeout(() => {
        this.stopReason ??= 'timeout';
        void this.stop();
      }, n.timeoutMs);
    }
    if (n.signal?.aborted) onAbort();
    else n.signal?.addEventListener('abort', onAbort, { once: true });
  }

  get alive(): boolean {
    return this.exit === null;
  }

  /** Resolves once the process has ended by itself or was stopped. */
  waitExit(): Promise<ProcessExit> {
    return this.ended;
  }

  /** Signal the whole group now (no waiting); safe when already gone. */
  killNow(sig: NodeJS.Signals): void {
    if (this.exit || this.pid === undefined) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      try {
        process.kill(this.pid, sig);
      } catch {
        /* already gone */
      }
    }
  }

  /** The kill ladder: SIGTERM the group, wait up to the grace period, SIGKILL; resolves once reaped. */
  async stop(): Promise<ProcessExit> {
    if (!this.exit) {
      this.killNow('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const graceful = await Promise.race([this.ended.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.graceMs)))]);
      clearTimeout(timer);
      if (!graceful) this.killNow('SIGKILL');
    }
    const e = await this.ended;
    this.killGroupLeftovers();
    return e;
  }

  /** A tool's workers (vLLM's engine core, TP workers) may outlive its main process. */
  private killGroupLeftovers(): void {
    if (this.pid === undefined) return;
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* group empty */
    }
  }

  logText(maxChars = 64_000): string {
    try {
      return readFileSync(this.logPath, 'utf8').slice(-maxChars);
    } catch {
      return '';
    }
  }

  /** `exited with code 1: ValueError: ...`, for messages. */
  describeExit(): string {
    return describeExit(this.exit, this.logPath);
  }

  private startWatchdog(): void {
    const w = spawn(process.execPath, [WATCHDOG, String(process.pid), String(this.pid), String(this.graceMs)], { detached: true, stdio: 'ignore' });
    w.on('error', () => undefined);
    w.unref();
    this.watchdogPid = w.pid;
  }

  get watchdog(): number | undefined {
    return this.watchdogPid;
  }

  private killWatchdog(): void {
    if (this.watchdogPid === undefined) return;
    try {
      process.kill(this.watchdogPid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function describeExit(e: ProcessExit | null, logPath: string): string {
  const how = !e ? 'is running' : e.signal ? `was killed by ${e.signal}` : `exited with code ${e.exitCode}`;
  const line = logErrorLine(logPath);
  return `${how}${line ? `: ${line}` : ''}`;
}

/** Start a process under supervision; see the module header. */
export function startProcess(o: ProcessOptions): ProcessHandle {
  return new ProcessHandle(o);
}

/** Run a process to its end; never rejects for a failing process (see `runTool`). */
export function runProcess(o: ProcessOptions): Promise<ProcessExit> {
  return startProcess(o).waitExit();
}

/** Whether a run succeeded. */
export function succeeded(e: ProcessExit): boolean {
  return e.exitCode === 0 && !e.timedOut && !e.cancelled && e.spawnError === null;
}

/**
 * The ToolError for a failed run: one line naming how it ended, the error line of its log,
 * the fix, and the log's path.
 */
export function toolFailure(tool: string, e: ProcessExit, fix: string, timeoutMs?: number): ToolError {
  const log = `log: ${e.logPath}`;
  if (e.spawnError) return new ToolError(`could not start ${tool} '${e.argv[0]}' (${e.spawnError}); build its environment with 'bench env' or set its LOWBIT_*_COMMAND; ${log}`);
  if (e.timedOut) return new ToolError(`${tool} did not finish within ${Math.round((timeoutMs ?? 0) / 1000)} s and was stopped; raise the timeout or shrink the job; ${log}`);
  if (e.cancelled) return new ToolError(`${tool} was cancelled; ${log}`);
  return new ToolError(`${tool} ${describeExit(e, e.logPath)}; ${fix}; ${log}`);
}

/** Run a tool to its end; throws `ToolError` unless it exited with 0. */
export async function runTool(o: ProcessOptions & { fix: string }): Promise<ProcessExit> {
  const e = await runProcess(o);
  if (!succeeded(e)) throw toolFailure(o.tool, e, o.fix, o.timeoutMs);
  return e;
}
