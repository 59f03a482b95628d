/**
 * Supervises one scoring server process (`vllm serve`, or `bench serve` in its place):
 * free port, start through execa in its own process group with output to a per-job log,
 * wait for /health then check /v1/models names OUR model, stop with SIGTERM then SIGKILL,
 * and never let the server outlive the orchestrator (exit/signal hooks, plus a watchdog
 * process that kills the group if the orchestrator dies without running its hooks).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { UserError } from '../../errors.ts';
import { buildServerArgv, type ServerCommand } from './config.ts';

const WATCHDOG = join(dirname(fileURLToPath(import.meta.url)), 'watchdog.mjs');

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** Every started, not yet reaped server; killed when the orchestrator goes away. */
const live = new Set<ManagedServer>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const s of live) s.killNow('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      const servers = [...live];
      void Promise.all(servers.map((s) => s.stop())).finally(() => {
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

/** A port nobody listens on right now (the kernel's pick). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on host:port. */
export function portInUse(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    const done = (v: boolean) => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Start `command` in its own process group with stdout+stderr on `fd`; never rejects. */
function spawnGroup(command: string, argv: string[], fd: number, env: Record<string, string>) {
  // The fd goes to the child directly (no pipe through us, so no SIGPIPE if we die).
  // execa's typings list only literal fds 3-9; at run time any open fd works.
  const out = fd as 3;
  return execa(command, argv, { detached: true, cleanup: false, stdin: 'ignore', stdout: out, stderr: out, env, extendEnv: true, reject: false });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The most telling error line of a server log (vllm.md §2.3: first error above the wrapper). */
export function errorLine(logText: string): string | null {
  const lines = logText.split(/\r?\n/).slice(-250);
  const wrapper = /Engine core initialization failed|^\s*raise |Traceback/;
  for (const l of lines) {
    if (/(Error|Exception)\b.*:|error:|EADDRINUSE|Address already in use/.test(l) && !wrapper.test(l)) return l.trim().slice(0, 300);
  }
  const last = lines.filter((l) => l.trim() !== '' && !l.startsWith('#')).pop();
  return last ? last.trim().slice(0, 300) : null;
}

export interface StartOptions {
  command: ServerCommand;
  /** Positional model argument: checkpoint dir or repo id. */
  model: string;
  /** `--served-model-name`: short, stable, what requests send and /v1/models must answer. */
  servedName: string;
  /** Log file (created with its directory; appended to). */
  logPath: string;
  signal?: AbortSignal;
}

export class ManagedServer {
  readonly pid: number;
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly argv: string[];
  readonly logPath: string;
  readonly servedName: string;
  /** Set once the process has exited. */
  exit: ExitInfo | null = null;
  /** From /v1/models once ready. */
  maxModelLen = 0;
  /** From /version when the server has it. */
  version: string | null = null;
  readonly graceMs: number;
  private readonly exited: Promise<ExitInfo>;
  private watchdogPid: number | undefined;

  private constructor(o: { pid: number; host: string; port: number; argv: string[]; logPath: string; servedName: string; graceMs: number; exited: Promise<ExitInfo> }) {
    this.pid = o.pid;
    this.host = o.host;
    this.port = o.port;
    this.url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
    this.argv = o.argv;
    this.logPath = o.logPath;
    this.servedName = o.servedName;
    this.graceMs = o.graceMs;
    this.exited = o.exited.then((e) => {
      this.exit = e;
      live.delete(this);
      this.killWatchdog();
      return e;
    });
  }

  static async start(o: StartOptions): Promise<ManagedServer> {
    const cmd = o.command;
    const host = cmd.host ?? '127.0.0.1';
    let port: number;
    if (cmd.port) {
      if (await portInUse(cmd.port, host))
        throw new UserError(`port ${cmd.port} on ${host} is already in use by another process; stop it, choose another port, or leave the port unset so a free one is picked`);
      port = cmd.port;
    } else {
      port = await freePort(host);
    }
    const argv = buildServerArgv(cmd, { model: o.model, name: o.servedName, host, port });
    mkdirSync(dirname(o.logPath), { recursive: true });
    const fd = openSync(o.logPath, 'a');
    writeSync(fd, `# ${new Date().toISOString()} start: ${JSON.stringify([cmd.command, ...argv])}\n`);
    // Own process group (detached) so stop() can signal vLLM's engine/worker children too.
    // The child gets its own copy of the log fd at spawn, so ours is closed right after.
    const sub = spawnGroup(cmd.command, argv, fd, cmd.env ?? {});
    closeSync(fd);
    const exitedP = sub.then((r) => ({ code: r.exitCode ?? null, signal: r.signal ?? null }));
    const pid = sub.pid;
    if (pid === undefined) {
      const r = await sub;
      throw new UserError(`could not start '${cmd.command}' (${String((r as { shortMessage?: string }).shortMessage ?? '').split('\n')[0]}); install it or set the server command in models.json; log: ${o.logPath}`);
    }
    const s = new ManagedServer({ pid, host, port, argv, logPath: o.logPath, servedName: o.servedName, graceMs: cmd.graceMs ?? 30_000, exited: exitedP });
    live.add(s);
    installHooks();
    s.startWatchdog();
    try {
      await s.waitReady(cmd.startupTimeoutMs ?? 15 * 60_000, cmd.pollMs ?? 500, o.signal);
    } catch (e) {
      await s.stop();
      throw e;
    }
    return s;
  }

  get alive(): boolean {
    return this.exit === null;
  }

  logTail(): string {
    try {
      const t = readFileSync(this.logPath, 'utf8');
      return t.slice(-64_000);
    } catch {
      return '';
    }
  }

  /** One-line description of how the process ended, for error messages. */
  describeExit(): string {
    const e = this.exit;
    const how = e ? (e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`) : 'is running';
    const line = errorLine(this.logTail());
    return `${how}${line ? `: ${line}` : ''}`;
  }

  private async waitReady(timeoutMs: number, pollMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const name = this.servedName;
    for (;;) {
      if (signal?.aborted) throw new UserError(`server start cancelled; log: ${this.logPath}`);
      if (this.exit || (await Promise.race([this.exited.then(() => true), sleep(0).then(() => false)]))) {
        throw new UserError(`server '${name}' ${this.describeExit()} before becoming ready; fix the cause above (flags, model path, GPU memory) and retry; log: ${this.logPath}`);
      }
      let healthy = false;
      try {
        const r = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(Math.max(1000, pollMs * 5)) });
        await r.arrayBuffer();
        healthy = r.status === 200;
      } catch {
        healthy = false;
      }
      if (healthy) {
        let body: unknown;
        try {
          const r = await fetch(`${this.url}/v1/models`, { signal: AbortSignal.timeout(10_000) });
          body = await r.json();
        } catch (e) {
          throw new UserError(`server on port ${this.port} answers /health but not /v1/models (${(e as Error).message}); is it an OpenAI-compatible server? log: ${this.logPath}`);
        }
        const data = (body as { data?: { id?: unknown; max_model_len?: unknown }[] })?.data;
        const mine = Array.isArray(data) ? data.find((d) => d?.id === name) : undefined;
        if (!mine) {
          const ids = Array.isArray(data) ? data.map((d) => String(d?.id)).join(', ') : '(none)';
          throw new UserError(`port ${this.port} serves model '${ids}', not '${name}': another server holds that port; stop it or let a free port be picked; log: ${this.logPath}`);
        }
        if (this.exit) continue; // answered by someone else while ours died: report the death
        this.maxModelLen = typeof mine.max_model_len === 'number' ? mine.max_model_len : 0;
        try {
          const r = await fetch(`${this.url}/version`, { signal: AbortSignal.timeout(5000) });
          if (r.ok) this.version = String(((await r.json()) as { version?: unknown }).version ?? '') || null;
        } catch {
          this.version = null;
        }
        return;
      }
      if (Date.now() >= deadline) {
        throw new UserError(`server '${name}' did not become healthy within ${Math.round(timeoutMs / 1000)} s; raise startupTimeoutMs in the server config or read the log: ${this.logPath}`);
      }
      await Promise.race([sleep(pollMs), this.exited]);
    }
  }

  /** Signal the whole process group now (no waiting); safe to call when already gone. */
  killNow(sig: NodeJS.Signals): void {
    if (this.exit) return;
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

  /** SIGTERM the group, wait up to the grace period, then SIGKILL; resolves once reaped. */
  async stop(): Promise<ExitInfo> {
    if (this.exit) {
      this.killGroupLeftovers();
      return this.exit;
    }
    this.killNow('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.graceMs)))]);
    clearTimeout(timer);
    if (!graceful) this.killNow('SIGKILL');
    const e = await this.exited;
    this.killGroupLeftovers();
    return e;
  }

  /** Children of the server (engine core, TP workers) may outlive its main process. */
  private killGroupLeftovers(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* group empty */
    }
  }

  /** Wait for the process to end by itself (tests, supervision). */
  waitExit(): Promise<ExitInfo> {
    return this.exited;
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
