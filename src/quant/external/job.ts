/**
 * The one runner for external quantization jobs (auto-round CLI, the llm-compressor
 * driver), used by `bench run --engine vllm` and by the tests alike: run the tool under the
 * process supervisor (src/process), find its export, make a weight-only scheme's config say
 * weight-only where the tool's export does not (recorded), validate, and name the tool and
 * its version. Tool failures are `ToolError`s (exit 3).
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { ToolError, UserError } from '../../errors.ts';
import { runTool } from '../../process/index.ts';
import { getScheme, type Scheme } from '../schemes.ts';
import { autoRoundExportDir, buildAutoRoundArgv, type AutoRoundJob } from './autoround.ts';
import { buildLlmCompressorArgv, type LlmCompressorJob } from './llmcompressor.ts';
import { parseProgress, type Progress } from './progress.ts';
import { CheckpointTensors } from '../../checkpoint/tensors.ts';
import { validateQuantizedCheckpoint, type ValidatedCheckpoint } from './validate.ts';

/** A tool's output that fails validation is the tool's failure (exit 3), not the user's. */
function validateOutput(dir: string, tool: string, scheme: Scheme, logPath: string): ValidatedCheckpoint {
  try {
    return validateQuantizedCheckpoint(dir, tool, scheme);
  } catch (e) {
    if (e instanceof UserError) throw new ToolError(`${e.message}; log: ${logPath}`, { cause: e });
    throw e;
  }
}

export interface ExternalRunOptions {
  logPath: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  graceMs?: number;
  env?: Record<string, string>;
  onProgress?: (p: Progress, line: string) => void;
  /** Python of the tool's environment, for the version probe (default python3). */
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
  /** What we changed in the tool's quantization_config, and why; null when nothing. */
  configCorrection: string | null;
}

/** Installed version of a Python distribution, or null (never fails the job). */
export async function pythonPackageVersion(python: string, dist: string): Promise<string | null> {
  try {
    const r = await execa(python, ['-c', 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))', dist], { timeout: 60_000, reject: false, stdin: 'ignore' });
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
    o.onProgress?.(p, line);
  };
  return { state, onLine };
}

const schemeOf = (s: Scheme | string): Scheme => (typeof s === 'string' ? getScheme(s) : s);

/** The export folder: the one auto-round's naming rule predicts, else the single one holding a config.json. */
export function locateExport(job: AutoRoundJob, logPath: string): string {
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
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (existsSync(join(p, 'config.json'))) found.push(p);
      else if (depth < 2) walk(p, depth + 1);
    }
  };
  walk(job.outputDir, 1);
  if (found.length === 1) return found[0];
  if (found.length === 0) throw new ToolError(`auto-round finished but wrote no checkpoint (no config.json under ${job.outputDir}, expected ${predicted}); log: ${logPath}`);
  throw new ToolError(`auto-round wrote several checkpoints under ${job.outputDir} (${found.join(', ')}); use a fresh output_dir per job; log: ${logPath}`);
}

type Obj = Record<string, unknown>;

/** Apply `edit` to the quantization_config in config.json and quantization_config.json (when present). */
function editQuantConfig(dir: string, edit: (qc: Obj, file: string) => boolean): void {
  for (const file of ['config.json', 'quantization_config.json']) {
    const path = join(dir, file);
    if (!existsSync(path)) continue;
    const raw = JSON.parse(readFileSync(path, 'utf8')) as Obj;
    const qc = (file === 'config.json' ? raw.quantization_config : raw) as Obj | undefined;
    if (qc && edit(qc, file)) writeFileSync(path, JSON.stringify(raw, null, 2) + '\n');
  }
}

/**
 * Corrections of a tool's quantization_config where its export says something its tensors do
 * not, each returned as one note for the provenance (weights are never touched):
 *
 * - auto-round (0.16.1) exports MXFP4 and NVFP4 through the compressed-tensors "MXFP4"/"NVFP4"
 *   presets, which declare `input_activations`, even when it quantized weight-only
 *   (`--act_bits 16`: export_to_llmcompressor/export_to_fp.py `_get_scheme` ignores act_bits
 *   for FP4); the config would make vLLM quantize activations. For a weight-only scheme,
 *   `input_activations` becomes null.
 * - auto-round's FP8_STATIC export targets `Linear` with an empty `ignore` while it leaves an
 *   untied `lm_head` dense (recorded on synth-llama-h32): `lm_head` is added to `ignore`.
 */
export function configCorrections(dir: string, scheme: Scheme, tool: string): string | null {
  const notes: string[] = [];
  if (scheme.activations.kind === 'none') {
    const removed: string[] = [];
    editQuantConfig(dir, (qc, file) => {
      let changed = false;
      for (const [name, g] of Object.entries((qc.config_groups ?? {}) as Record<string, Obj>)) {
        if (g.input_activations === null || g.input_activations === undefined) continue;
        if (file === 'config.json') removed.push(`${name}: ${JSON.stringify(g.input_activations)}`);
        g.input_activations = null;
        changed = true;
      }
      return changed;
    });
    if (removed.length) notes.push(`${tool} was asked for ${scheme.name} (16-bit activations) but its export declared input_activations (${removed.join('; ')}); set to null in config.json, weights untouched`);
  }
  let denseHead = false;
  let ckpt: CheckpointTensors | null = null;
  try {
    ckpt = CheckpointTensors.open(dir);
  } catch {
    ckpt = null; // no readable tensors: the validator says so next
  }
  if (ckpt) {
    try {
      denseHead = ckpt.has('lm_head.weight') && !ckpt.has('lm_head.weight_scale') && ['F32', 'F16', 'BF16'].includes(ckpt.info('lm_head.weight').dtype);
    } finally {
      ckpt.close();
    }
  }
  if (denseHead) {
    let added = false;
    editQuantConfig(dir, (qc) => {
      const ignore = Array.isArray(qc.ignore) ? (qc.ignore as string[]) : [];
      const targetsLinear = Object.values((qc.config_groups ?? {}) as Record<string, Obj>).some((g) => Array.isArray(g.targets) && (g.targets as string[]).includes('Linear'));
      if (!targetsLinear || ignore.some((i) => i === 'lm_head' || i.endsWith('.lm_head') || (i.startsWith('re:') && new RegExp(i.slice(3)).test('lm_head')))) return false;
      qc.ignore = [...ignore, 'lm_head'];
      added = true;
      return true;
    });
    if (added) notes.push(`${tool}'s config targets Linear without ignoring lm_head, which it left dense; 'lm_head' added to ignore in config.json, weights untouched`);
  }
  return notes.length ? notes.join('. ') : null;
}

export async function runAutoRound(job: AutoRoundJob, o: ExternalRunOptions): Promise<ExternalQuantResult> {
  const { command, args } = buildAutoRoundArgv(job);
  const { state, onLine } = collector(o);
  const r = await runTool({
    tool: 'auto-round', command, args, env: o.env, logPath: o.logPath, timeoutMs: o.timeoutMs, signal: o.signal, graceMs: o.graceMs, onLine, onSpawn: o.onSpawn,
    fix: 'fix the cause above (scheme/format support, memory, model path)',
  });
  const scheme = schemeOf(job.scheme);
  const dir = locateExport(job, o.logPath);
  const configCorrection = configCorrections(dir, scheme, 'auto-round');
  const v = validateOutput(dir, 'auto-round', scheme, o.logPath);
  const python = o.python ?? 'python3';
  const versions = { 'auto-round': await pythonPackageVersion(python, 'auto-round'), 'compressed-tensors': await pythonPackageVersion(python, 'compressed-tensors') };
  return {
    tool: 'auto-round', toolVersion: versions['auto-round'], versions, checkpoint: dir, argv: [command, ...args], seconds: r.seconds, logPath: o.logPath,
    format: v.format, quantizedLayers: v.quantized, compressedTensorsVersion: v.compressedTensorsVersion ?? versions['compressed-tensors'],
    tuningSeconds: state.tuningSeconds, blockLosses: state.blockLosses, configCorrection,
  };
}

export async function runLlmCompressor(job: LlmCompressorJob, o: ExternalRunOptions): Promise<ExternalQuantResult> {
  const { command, args } = buildLlmCompressorArgv(job);
  const { state, onLine } = collector(o);
  const r = await runTool({
    tool: 'llm-compressor driver', command, args, env: o.env, logPath: o.logPath, timeoutMs: o.timeoutMs, signal: o.signal, graceMs: o.graceMs, onLine, onSpawn: o.onSpawn,
    fix: 'fix the cause above (scheme support, memory, model path)',
  });
  const scheme = schemeOf(job.scheme);
  const configCorrection = configCorrections(job.outputDir, scheme, 'llm-compressor');
  const v = validateOutput(job.outputDir, 'llm-compressor', scheme, o.logPath);
  const reported = (state.json?.versions ?? {}) as Record<string, string | null>;
  const versions: Record<string, string | null> = { ...reported };
  if (!('llmcompressor' in versions)) versions.llmcompressor = await pythonPackageVersion(command, 'llmcompressor');
  return {
    tool: 'llm-compressor', toolVersion: versions.llmcompressor ?? null, versions, checkpoint: job.outputDir, argv: [command, ...args], seconds: r.seconds, logPath: o.logPath,
    format: v.format, quantizedLayers: v.quantized, compressedTensorsVersion: v.compressedTensorsVersion ?? versions['compressed-tensors'] ?? null,
    tuningSeconds: state.tuningSeconds, blockLosses: state.blockLosses, configCorrection,
  };
}
