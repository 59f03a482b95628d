/**
 * A scoring server (`vllm serve`, or `bench serve` in its place) under the process
 * supervisor: a free port, started in its own group with its output on a per-job log file
 * and a watchdog, ready once /health answers 200 and /v1/models serves OUR name (so another
 * server on the port is never scored), stopped by the kill ladder. Server failures are
 * `ToolError`s (exit 3); only a fixed port the user configured that is taken is theirs.
 */
import { createServer, connect } from 'node:net';
import { ToolError, UserError } from '../errors.ts';
import { buildServerArgv, type ServerCommand } from '../engines/vllm/config.ts';
import { startProcess, type ProcessExit, type ProcessHandle } from './index.ts';

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  /** From /v1/models once ready. */
  maxModelLen = 0;
  /** From /version when the server has it. */
  version: string | null = null;
  private readonly proc: ProcessHandle;

  private constructor(proc: ProcessHandle, o: { host: string; port: number; argv: string[]; servedName: string }) {
    this.proc = proc;
    this.pid = proc.pid!;
    this.host = o.host;
    this.port = o.port;
    this.url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
    this.argv = o.argv;
    this.logPath = proc.logPath;
    this.servedName = o.servedName;
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
    const proc = startProcess({
      tool: `server '${o.servedName}'`, command: cmd.command, args: argv, env: cmd.env, logPath: o.logPath, output: 'file', graceMs: cmd.graceMs ?? 30_000, watchdog: true,
    });
    if (proc.pid === undefined) {
      const e = await proc.waitExit();
      throw new ToolError(`could not start '${cmd.command}' (${e.spawnError}); install it or set the server command in models.json (or LOWBIT_VLLM_COMMAND); log: ${o.logPath}`);
    }
    const s = new ManagedServer(proc, { host, port, argv, servedName: o.servedName });
    try {
      await s.waitReady(cmd.startupTimeoutMs ?? 15 * 60_000, cmd.pollMs ?? 500, o.signal);
    } catch (e) {
      await s.stop();
      throw e;
    }
    return s;
  }

  get alive(): boolean {
    return this.proc.alive;
  }

  /** Set once the process has exited. */
  get exit(): ProcessExit | null {
    return this.proc.exit;
  }

  get graceMs(): number {
    return this.proc.graceMs;
  }

  get watchdog(): number | undefined {
    return this.proc.watchdog;
  }

  logTail(): string {
    return this.proc.logText();
  }

  /** `exited with code 1: ValueError: ...`, for error messages. */
  describeExit(): string {
    return this.proc.describeExit();
  }

  private async waitReady(timeoutMs: number, pollMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const name = this.servedName;
    const exited = this.proc.waitExit();
    for (;;) {
      if (signal?.aborted) throw new ToolError(`server start cancelled; log: ${this.logPath}`, { cause: signal.reason });
      if (this.exit || (await Promise.race([exited.then(() => true), sleep(0).then(() => false)]))) {
        throw new ToolError(`server '${name}' ${this.describeExit()} before becoming ready; fix the cause above (flags, model path, GPU memory) and retry; log: ${this.logPath}`);
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
          throw new ToolError(`server on port ${this.port} answers /health but not /v1/models (${(e as Error).message}); is it an OpenAI-compatible server? log: ${this.logPath}`, { cause: e });
        }
        const data = (body as { data?: { id?: unknown; max_model_len?: unknown }[] })?.data;
        const mine = Array.isArray(data) ? data.find((d) => d?.id === name) : undefined;
        if (!mine) {
          const ids = Array.isArray(data) ? data.map((d) => String(d?.id)).join(', ') : '(none)';
          throw new ToolError(`port ${this.port} serves model '${ids}', not '${name}': another server holds that port; stop it or let a free port be picked; log: ${this.logPath}`);
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
        throw new ToolError(`server '${name}' did not become healthy within ${Math.round(timeoutMs / 1000)} s; raise startupTimeoutMs in the server config or read the log: ${this.logPath}`);
      }
      await Promise.race([sleep(pollMs), exited]);
    }
  }

  /** Signal the whole process group now (no waiting); safe to call when already gone. */
  killNow(sig: NodeJS.Signals): void {
    this.proc.killNow(sig);
  }

  /** The kill ladder; resolves once reaped. */
  stop(): Promise<ProcessExit> {
    return this.proc.stop();
  }

  /** Wait for the process to end by itself (tests, supervision). */
  waitExit(): Promise<ProcessExit> {
    return this.proc.waitExit();
  }
}
