/**
 * Shared pieces of the parity tests: running the real Python tools (argv arrays, bounded in
 * time), the calibration jsonl auto-round reads, and the job lists.
 */
import { execa } from 'execa';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { calibrationStories, defaultCalibrationFile } from '../../src/quant/calibration.ts';
import { requireToolEnv } from '../helpers/toolenv.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const TOOLS = join(import.meta.dirname, 'tools');
export const MODELS = { stories260k: join(ROOT, 'models', 'stories260k'), synth: join(ROOT, 'models', 'synth-llama-h32') } as const;

/** Run a Python script of tools/ in a built tool environment; throws with the tail of stderr. */
export async function runTool(env: string, script: string, args: string[], timeoutMs: number, extraEnv: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  const te = await requireToolEnv(env);
  const r = await execa(te.python, [join(TOOLS, script), ...args], {
    timeout: timeoutMs, reject: false, all: false, cwd: ROOT,
    // One interop thread and a quiet tqdm keep CI's two cores and logs sane; HF_HUB_OFFLINE: nothing is downloaded.
    env: { HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false', PYTHONUNBUFFERED: '1', ...extraEnv },
  });
  if (r.exitCode !== 0 || r.timedOut) throw new Error(`${script} ${r.timedOut ? 'timed out' : `exited ${r.exitCode}`}:\n${String(r.stderr).split('\n').slice(-25).join('\n')}`);
  return { stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** JSON lines of a tool's stdout. */
export function jsonLines<T = Record<string, unknown>>(stdout: string): T[] {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T);
}

/** The calibration stories (1-500, never the scored ones) as the jsonl auto-round's --dataset reads. */
export function calibrationJsonl(dir: string, count = 64): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'calibration.jsonl');
  const stories = calibrationStories(readFileSync(defaultCalibrationFile(), 'utf8')).slice(0, count);
  writeFileSync(path, stories.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  return path;
}

/** auto-round flags for a CPU run with torch.compile off (no GPU here). */
export const CPU_FLAGS = ['--device_map', 'cpu', '--disable_torch_compile'];
/** auto-round's pure RTN exported as compressed-tensors. */
export const RTN_FLAGS = ['--iters', '0', '--disable_opt_rtn', '--format', 'llm_compressor', ...CPU_FLAGS];
