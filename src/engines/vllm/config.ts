/**
 * How to start an OpenAI-compatible scoring server: the command, an argv template, extra
 * flags and environment. Sites point this at their own vLLM install (a venv's `vllm`,
 * tensor parallelism, `CUDA_VISIBLE_DEVICES`); tests point it at `bench serve`.
 * The argv is an array from start to finish: no shell ever sees a model path.
 */
import { UserError } from '../../errors.ts';

export interface ServerCommand {
  /** Executable (looked up on PATH when bare), e.g. `vllm` or `/opt/venv/bin/vllm`. */
  command: string;
  /**
   * Argument template. An element that is exactly `{model}`, `{name}`, `{host}` or `{port}`
   * is replaced by that value; nothing else is touched (a path containing `{port}` stays).
   */
  args: string[];
  /** Appended after `args`, e.g. `["--tensor-parallel-size", "2", "--max-model-len", "4096"]`. */
  extraArgs?: string[];
  /** Added to the inherited environment, e.g. `{ "CUDA_VISIBLE_DEVICES": "0,1" }`. */
  env?: Record<string, string>;
  /** Bind address; loopback unless a site says otherwise. */
  host?: string;
  /** Fixed port; unset or 0 = pick a free one per start. */
  port?: number;
  /** How long `/health` may take to answer 200 (vLLM: minutes for big models). */
  startupTimeoutMs?: number;
  /** SIGTERM-to-SIGKILL grace period when stopping. */
  graceMs?: number;
  /** Health poll interval. */
  pollMs?: number;
}

export const PLACEHOLDERS = ['{model}', '{name}', '{host}', '{port}'] as const;

/** `vllm serve` for scoring: flags per reference vllm.md §1 and §7. */
export function vllmServeCommand(overrides: Partial<ServerCommand> = {}): ServerCommand {
  return {
    command: 'vllm',
    args: ['serve', '{model}', '--served-model-name', '{name}', '--host', '{host}', '--port', '{port}'],
    // Reproducible defaults; prefix caching off because logprob requests cannot use it anyway
    // and some builds returned stale values for cached positions (vllm.md §4.6).
    extraArgs: ['--generation-config', 'vllm', '--no-enable-prefix-caching', '--max-logprobs', '20', '--seed', '0'],
    startupTimeoutMs: 15 * 60_000,
    graceMs: 30_000,
    pollMs: 500,
    ...overrides,
  };
}

/** `bench serve` standing in for vLLM (CPU, the embedded engine), same argv shape. */
export function benchServeCommand(benchBin: string, overrides: Partial<ServerCommand> = {}): ServerCommand {
  return {
    command: process.execPath,
    args: [benchBin, 'serve', '{model}', '--served-model-name', '{name}', '--host', '{host}', '--port', '{port}'],
    extraArgs: [],
    startupTimeoutMs: 120_000,
    graceMs: 5_000,
    pollMs: 200,
    ...overrides,
  };
}

/** The argv for one start: placeholders filled, extra flags appended. */
export function buildServerArgv(cmd: ServerCommand, v: { model: string; name: string; host: string; port: number }): string[] {
  const map: Record<string, string> = { '{model}': v.model, '{name}': v.name, '{host}': v.host, '{port}': String(v.port) };
  return [...cmd.args.map((a) => (a in map ? map[a] : a)), ...(cmd.extraArgs ?? [])];
}

/** Validate a server command read from models.json / config (one-line errors). */
export function parseServerCommand(raw: unknown, where: string): ServerCommand {
  const bad = (what: string) => new UserError(`${where}: ${what}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('server must be an object like {"command": "vllm", "extraArgs": [...]}');
  const r = raw as Record<string, unknown>;
  const strArr = (k: string) => {
    const v = r[k];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad(`${k} must be a list of strings`);
    return v as string[];
  };
  const num = (k: string, min: number) => {
    const v = r[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw bad(`${k} must be a number >= ${min}`);
    return v;
  };
  const known = ['command', 'args', 'extraArgs', 'env', 'host', 'port', 'startupTimeoutMs', 'graceMs', 'pollMs'];
  for (const k of Object.keys(r)) if (!known.includes(k)) throw bad(`unknown key '${k}' in server; known: ${known.join(', ')}`);
  const env = r.env;
  if (env !== undefined && (typeof env !== 'object' || env === null || Object.values(env).some((x) => typeof x !== 'string')))
    throw bad('env must be an object of strings');
  if (r.command !== undefined && (typeof r.command !== 'string' || r.command === '')) throw bad('command must be a non-empty string');
  if (r.host !== undefined && typeof r.host !== 'string') throw bad('host must be a string');
  const base = vllmServeCommand();
  const args = strArr('args') ?? base.args;
  if (!args.includes('{port}')) throw bad('args must contain "{port}" so each start gets its own port');
  return {
    ...base,
    command: (r.command as string | undefined) ?? base.command,
    args,
    extraArgs: strArr('extraArgs') ?? base.extraArgs,
    env: env as Record<string, string> | undefined,
    host: (r.host as string | undefined) ?? '127.0.0.1',
    port: num('port', 0),
    startupTimeoutMs: num('startupTimeoutMs', 1) ?? base.startupTimeoutMs,
    graceMs: num('graceMs', 0) ?? base.graceMs,
    pollMs: num('pollMs', 10) ?? base.pollMs,
  };
}
