/**
 * Run one external quantization job (auto-round CLI or the llm-compressor driver) and
 * accept its output only after validation. The result names the tool and version that
 * produced the checkpoint.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { UserError } from '../../errors.ts';
import { getScheme } from '../schemes.ts';
import { autoRoundExportDir, buildAutoRoundArgv, type AutoRoundJob } from './autoround.ts';
import { buildLlmCompressorArgv, type LlmCompressorJob } from './llmcompressor.ts';
import { parseProgress, type Progress } from './progress.ts';
import { failure, runLogged } from './run.ts';
import { validateQuantizedCheckpoint } from './validate.ts';

export interface ExternalRunOptions {
  logPath: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  graceMs?: number;
  env?: Record<string, string>;
  onProgress?: (p: Progress) => void;
  /** Python of the tools' environment, for the version probe (default python3). */
  python?: string;
  onSpawn?: (pid: number) => void;
}

export interface ExternalQuantResult {
  tool: 'auto-round' | 'llm-compressor';
  toolVersion: string | null;
  versions: Record<string, string | null>;
  checkpoint: string;
  argv: string[];
  seconds: number;
  logPath: string;
  format: string;
  quantizedLayers: string[];
  compressedTensorsVersion: string | null;
  /** auto-round's own `quantization tuning time`, when printed. */
  tuningSeconds: number | null;
  /** Per-block best loss (`loss iter 0: a -> iter k: b`), in block order. */
  blockLosses: number[];
}

/** Installed version of a Python distribution, or null (never fails the job). */
export async function pythonPackageVersion(python: string, dist: string): Promise<string | null> {
  try {
    const r = await execa(python, ['-c', 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))', dist], { timeout: 30_000, reject: false, stdin: 'ignore' });
    const v = String(r.stdout ?? '').trim();
    return r.exitCode === 0 && v ? v : null;
  } catch {
    return null;
  }
}

function collector(o: ExternalRunOptions) {
  const state = { tuningSeconds: null as number | null, blockLosses: [] as number[], json: null as Record<string, unknown> | null };
  const onLine = (line: string, stream: 'stdout' | 'stderr') => {
    if (stream === 'stdout' && line.trim().startsWith('{')) {
      try {
        state.json = JSON.parse(line);
      } catch {
        /* not the summary */
      }
    }
    const p = parseProgress(line);
    if (!p) return;
    if (p.kind === 'tuning-time') state.tuningSeconds = p.seconds;
    if (p.kind === 'block-loss') state.blockLosses.push(p.lossBest);
    o.onProgress?.(p);
  };
  return { state, onLine };
}

/** The export folder: the one auto-round's naming rule predicts, else the single one holding a config.json. */
function locateExport(job: AutoRoundJob): string {
  const predicted = autoRoundExportDir(job);
  if (existsSync(join(predicted, 'config.json'))) return predicted;
  if (existsSync(join(job.outputDir, 'config.json'))) return job.outputDir;
  const found: string[] = [];
  const walk = (d: string, depth: number) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(d, e.name);
      if (existsSync(join(p, 'config.json'))) found.push(p);
      else if (depth < 2) walk(p, depth + 1);
    }
  };
  walk(job.outputDir, 1);
  if (found.length === 1) return found[0];
  if (found.length === 0) throw new UserError(`auto-round finished but wrote no checkpoint (no config.json under ${job.outputDir}, expected ${predicted}); see its log`);
  throw new UserError(`auto-round wrote several checkpoints under ${job.outputDir} (${found.join(', ')}); use a fresh output_dir per job`);
}

export async function runAutoRound(job: AutoRoundJob, o: ExternalRunOptions): Promise<ExternalQuantResult> {
  const { command, args } = buildAutoRoundArgv(job);
  const { state, onLine } = collector(o);
  const ro = { command, args, env: o.env, logPath: o.logPath, timeoutMs: o.timeoutMs, signal: o.signal, graceMs: o.graceMs, onLine, onSpawn: o.onSpawn };
  const r = await runLogged(ro);
  if (r.exitCode !== 0) throw failure('auto-round', ro, r, 'fix the cause above (scheme/format support, GPU memory, model path)');
  const dir = locateExport(job);
  const v = validateQuantizedCheckpoint(dir, 'auto-round', typeof job.scheme === 'string' ? getScheme(job.scheme) : job.scheme);
  const python = o.python ?? 'python3';
  const versions = { 'auto-round': await pythonPackageVersion(python, 'auto-round'), 'compressed-tensors': await pythonPackageVersion(python, 'compressed-tensors') };
  return {
    tool: 'auto-round',
    toolVersion: versions['auto-round'],
    versions,
    checkpoint: dir,
    argv: [command, ...args],
    seconds: r.seconds,
    logPath: o.logPath,
    format: v.format,
    quantizedLayers: v.quantized,
    compressedTensorsVersion: v.compressedTensorsVersion,
    tuningSeconds: state.tuningSeconds,
    blockLosses: state.blockLosses,
  };
}

export async function runLlmCompressor(job: LlmCompressorJob, o: ExternalRunOptions): Promise<ExternalQuantResult> {
  const { command, args } = buildLlmCompressorArgv(job);
  const { state, onLine } = collector(o);
  const ro = { command, args, env: o.env, logPath: o.logPath, timeoutMs: o.timeoutMs, signal: o.signal, graceMs: o.graceMs, onLine, onSpawn: o.onSpawn };
  const r = await runLogged(ro);
  if (r.exitCode !== 0) throw failure('llm-compressor driver', ro, r, 'fix the cause above (scheme support, GPU memory, model path)');
  const v = validateQuantizedCheckpoint(job.outputDir, 'llm-compressor', typeof job.scheme === 'string' ? getScheme(job.scheme) : job.scheme);
  const reported = (state.json?.versions ?? {}) as Record<string, string | null>;
  const versions: Record<string, string | null> = { ...reported };
  if (!('llmcompressor' in versions)) versions.llmcompressor = await pythonPackageVersion(job.python ?? 'python3', 'llmcompressor');
  return {
    tool: 'llm-compressor',
    toolVersion: versions.llmcompressor ?? null,
    versions,
    checkpoint: job.outputDir,
    argv: [command, ...args],
    seconds: r.seconds,
    logPath: o.logPath,
    format: v.format,
    quantizedLayers: v.quantized,
    compressedTensorsVersion: v.compressedTensorsVersion,
    tuningSeconds: state.tuningSeconds,
    blockLosses: state.blockLosses,
  };
}
