/**
 * Python tool environments: create them from `harness/envs/<name>/requirements.txt`, find
 * them, check them, and turn them into the argv the runner uses for each tool.
 *
 * Where they live: `$LOWBIT_ENV_HOME`, else `$XDG_CACHE_HOME/lowbit-bench/envs`, else
 * `~/.cache/lowbit-bench/envs`, one folder `<name>-<hash>` per environment, where the hash
 * covers the requirements file, the torch pin and the Python version. Outside the checkout,
 * so every clone on a machine shares them and a second run installs nothing; a changed
 * requirements file gets a new folder (the old one stays until removed by hand).
 *
 * A folder counts only once `READY.json` is in it, written after every install step and an
 * import check passed; a folder without it is a broken attempt of ours and is rebuilt.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { ToolError, UserError } from '../errors.ts';
import { runTool } from '../process/index.ts';
import { TOOL_ENVS, TORCH_PIN, toolEnvSpec, type ToolEnvSpec } from './registry.ts';

export { TOOL_ENVS, TORCH_PIN, toolEnvSpec, type ToolEnvSpec } from './registry.ts';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MARKER = 'READY.json';

export interface ToolEnvState {
  spec: ToolEnvSpec;
  dir: string;
  requirements: string;
  hash: string;
  ready: boolean;
  /** Versions recorded when the environment was built (from READY.json). */
  versions: Record<string, string>;
  /** Seconds the build took, as recorded. */
  buildSeconds?: number;
}

/** Root folder of all environments. */
export function envHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LOWBIT_ENV_HOME) return resolve(env.LOWBIT_ENV_HOME);
  const cache = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return join(cache, 'lowbit-bench', 'envs');
}

/** The base interpreter environments are made from. */
export function basePython(env: NodeJS.ProcessEnv = process.env): string {
  return env.LOWBIT_BASE_PYTHON || 'python3';
}

function requirementsPath(spec: ToolEnvSpec): string {
  return join(PROJECT_ROOT, 'harness', 'envs', spec.name, 'requirements.txt');
}

async function pythonVersion(python: string): Promise<string> {
  try {
    const r = await execa(python, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])']);
    return r.stdout.trim();
  } catch (e) {
    throw new UserError(`cannot run '${python}' to make tool environments; install Python 3.11 or set LOWBIT_BASE_PYTHON`, 2, { cause: e });
  }
}

/** Where an environment is and whether it is built. */
export async function toolEnvState(name: string, env: NodeJS.ProcessEnv = process.env): Promise<ToolEnvState> {
  const spec = toolEnvSpec(name);
  if (!spec) throw new UserError(`unknown tool environment '${name}'; known: ${TOOL_ENVS.map((e) => e.name).join(', ')}`);
  const requirements = requirementsPath(spec);
  const text = readFileSync(requirements, 'utf8');
  const py = await pythonVersion(basePython(env));
  const hash = createHash('sha256').update(`${TORCH_PIN}\npython ${py}\n${text}`).digest('hex').slice(0, 16);
  const dir = join(envHome(env), `${spec.name}-${hash}`);
  let ready = false;
  let versions: Record<string, string> = {};
  let buildSeconds: number | undefined;
  try {
    const m = JSON.parse(readFileSync(join(dir, MARKER), 'utf8')) as { hash: string; versions: Record<string, string>; buildSeconds?: number };
    ready = m.hash === hash;
    versions = m.versions ?? {};
    buildSeconds = m.buildSeconds;
  } catch {
    ready = false;
  }
  return { spec, dir, requirements, hash, ready, versions, buildSeconds };
}

/** Path of an executable inside an environment (`python`, `auto-round`, `lm_eval`). */
export function envBin(state: ToolEnvState, exe: string): string {
  return join(state.dir, 'bin', exe);
}

/**
 * Build an environment if it is not ready. Steps: venv, `torch==2.13.0` alone, the pinned
 * requirements, an import check; then READY.json. Holds a lock file so two processes never
 * build the same folder; pip's output goes to `<dir>.log`.
 */
export async function ensureToolEnv(
  name: string,
  opts: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<ToolEnvState> {
  const env = opts.env ?? process.env;
  const say = opts.log ?? (() => {});
  let state = await toolEnvState(name, env);
  if (state.ready) return state;
  mkdirSync(envHome(env), { recursive: true });
  const lock = `${state.dir}.lock`;
  await acquireLock(lock, say);
  try {
    state = await toolEnvState(name, env);
    if (state.ready) return state;
    const started = Date.now();
    const logPath = `${state.dir}.log`;
    // Only ever remove a folder whose name is ours (<name>-<hash> under the env home).
    if (existsSync(state.dir)) rmSync(state.dir, { recursive: true, force: true });
    writeFileSync(logPath, '');
    // pip steps are idempotent; a download cut short fails its hash check, so try again
    // (pip's own --retries covers only failed connections).
    const step = async (what: string, cmd: string, args: string[], attempts = 1) => {
      for (let attempt = 1; ; attempt++) {
        say(`${name}: ${what}${attempt > 1 ? ` (attempt ${attempt} of ${attempts})` : ''}`);
        try {
          // The one process supervisor: own group, log appended, killed with us.
          await runTool({ tool: `${name}: ${what}`, command: cmd, args, logPath, env: envStrings({ ...env, PIP_DISABLE_PIP_VERSION_CHECK: '1' }), fix: 'read the log' });
          return;
        } catch (e) {
          if (attempt >= attempts) throw new ToolEnvError(`${name}: ${what} failed; see ${logPath}`, { cause: e });
        }
      }
    };
    const py = join(state.dir, 'bin', 'python');
    await step('creating the virtual environment', basePython(env), ['-m', 'venv', state.dir]);
    await step(`installing ${TORCH_PIN} first`, py, ['-m', 'pip', 'install', '--no-input', '--retries', '10', TORCH_PIN], 3);
    await step('installing the pinned tools', py, ['-m', 'pip', 'install', '--no-input', '--retries', '10', ...(state.spec.noDeps ? ['--no-deps'] : []), '-r', state.requirements], 3);
    const versions = await probeVersions(py, state.spec);
    const buildSeconds = (Date.now() - started) / 1000;
    writeFileSync(join(state.dir, MARKER), JSON.stringify({ name, hash: state.hash, requirementsSha256: requirementsSha(state.spec), versions, buildSeconds, createdAt: new Date().toISOString() }, null, 2) + '\n');
    say(`${name}: ready in ${buildSeconds.toFixed(0)} s`);
    return { ...state, ready: true, versions, buildSeconds };
  } finally {
    rmSync(lock, { force: true });
  }
}

function envStrings(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** A tool environment could not be built or does not work (not the user's input). */
export class ToolEnvError extends ToolError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ToolEnvError';
  }
}

/** Import the spec's modules and read its distributions' versions; throws if an import fails. */
export async function probeVersions(python: string, spec: ToolEnvSpec): Promise<Record<string, string>> {
  const code = [
    'import importlib, importlib.metadata as m, json, sys',
    `mods = ${JSON.stringify(spec.imports)}`,
    `dists = ${JSON.stringify(spec.versionOf)}`,
    'for x in mods: importlib.import_module(x)',
    'print(json.dumps({d: m.version(d) for d in dists}))',
  ].join('\n');
  try {
    const r = await execa(python, ['-c', code], { env: { ...process.env, TRANSFORMERS_NO_ADVISORY_WARNINGS: '1' } });
    const last = r.stdout.trim().split('\n').pop() ?? '{}';
    return JSON.parse(last) as Record<string, string>;
  } catch (e) {
    throw new ToolEnvError(`${spec.name}: the environment's imports fail (${spec.imports.join(', ')}); rebuild it with 'bench env ${spec.name} --rebuild'`, { cause: e });
  }
}

async function acquireLock(lock: string, say: (s: string) => void): Promise<void> {
  for (let waited = 0; ; waited++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return;
    } catch {
      let holder = NaN;
      try {
        holder = Number(readFileSync(lock, 'utf8'));
      } catch {
        continue;
      }
      if (!Number.isInteger(holder) || !alive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (waited % 30 === 0) say(`waiting for process ${holder}, which is building ${lock.replace(/\.lock$/, '')}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The argv for a tool: the user's LOWBIT_* variable (a JSON array) wins; else the built
 * environment's executable; else `fallback` (looked up on PATH).
 * Synchronous and cheap: it only reads READY.json, never runs Python.
 */
export function toolArgv(variable: string, fallback: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env[variable];
  if (raw !== undefined && raw !== '') {
    let argv: unknown;
    try {
      argv = raw.trim().startsWith('[') ? JSON.parse(raw) : [raw];
    } catch (e) {
      throw new UserError(`${variable} must be a JSON array of strings, e.g. ["/opt/venv/bin/tool"]; got ${raw.slice(0, 60)}`, 2, { cause: e });
    }
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string' && a !== '')) {
      throw new UserError(`${variable} must be a non-empty JSON array of strings, e.g. ["/opt/venv/bin/tool"]`);
    }
    return argv as string[];
  }
  const built = builtCommand(variable, env);
  return built ? [built] : fallback;
}

/** The executable a ready environment offers for a LOWBIT_* variable, if any. */
export function builtCommand(variable: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const spec = TOOL_ENVS.find((s) => variable in s.commands);
  if (!spec) return undefined;
  const home = envHome(env);
  let names: string[];
  try {
    names = readdirSync(home).filter((n) => n.startsWith(`${spec.name}-`) && !n.includes('.'));
  } catch {
    return undefined;
  }
  const want = requirementsSha(spec);
  for (const n of names) {
    try {
      const m = JSON.parse(readFileSync(join(home, n, MARKER), 'utf8')) as { requirementsSha256?: string };
      if (m.requirementsSha256 !== want) continue;
      const exe = join(home, n, 'bin', spec.commands[variable]);
      if (existsSync(exe)) return exe;
    } catch {
      /* not built, or built from other requirements */
    }
  }
  return undefined;
}

/** sha256 of what an environment is built from, minus the Python version (cheap to compute). */
function requirementsSha(spec: ToolEnvSpec): string {
  return createHash('sha256').update(`${TORCH_PIN}\n${readFileSync(requirementsPath(spec), 'utf8')}`).digest('hex');
}
