/**
 * The `auto-round` CLI (reference autoround.md §5, §6, §9): argv per scheme, method and
 * recipe, exporting compressed-tensors (`--format llm_compressor`), and the export folder
 * auto-round derives from `--output_dir` (§9.3).
 */
import { UserError } from '../../errors.ts';
import { getScheme, type Scheme } from '../schemes.ts';

export type AutoRoundRecipe = 'default' | 'best' | 'light';

export interface AutoRoundJob {
  /** HF repo id or local directory. */
  model: string;
  /** Scheme as our registry names it (W4A16, NVFP4A16, ...), possibly with overrides applied. */
  scheme: Scheme | string;
  method: 'autoround' | 'rtn';
  recipe?: AutoRoundRecipe;
  outputDir: string;
  format?: string;
  iters?: number;
  nsamples?: number;
  seqlen?: number;
  batchSize?: number;
  seed?: number;
  /** `--device_map`, e.g. "0", "0,1", "cpu". */
  device?: string;
  dataset?: string;
  /** `--ignore_layers` (substring match). */
  ignoreLayers?: readonly string[];
  /** Executable override (e.g. a venv's auto-round). */
  command?: string;
}

/** auto-round preset and flag overrides for each scheme of ours. */
interface Preset {
  scheme: string;
  extra: string[];
  /** For the export folder name (§9.3). */
  dataType: string;
  bits: number;
  groupSize: number;
  actBits: number;
  actDataType: string;
}

export function autoRoundPreset(s: Scheme): Preset {
  const w = s.weights;
  switch (w.kind) {
    case 'none':
      throw new UserError(`scheme ${s.name} is the unquantized baseline; there is nothing for auto-round to do`);
    case 'int': {
      if (![2, 3, 4, 8].includes(w.bits)) throw new UserError(`auto-round has no W${w.bits}A16 preset; use W2A16, W3A16, W4A16 or W8A16`);
      const extra: string[] = [];
      if (w.groupSize !== 128) extra.push('--group_size', String(w.groupSize));
      if (!w.symmetric) extra.push('--asym');
      return { scheme: `W${w.bits}A16`, extra, dataType: 'int', bits: w.bits, groupSize: w.groupSize, actBits: 16, actDataType: 'float' };
    }
    case 'mxfp4':
      // auto-round's MXFP4 preset quantizes activations too; weight-only keeps them at 16 bits.
      return { scheme: 'MXFP4', extra: s.activations.kind === 'none' ? ['--act_bits', '16'] : [], dataType: 'mx_fp', bits: 4, groupSize: 32, actBits: 16, actDataType: 'mx_fp' };
    case 'nvfp4':
      return { scheme: 'NVFP4', extra: s.activations.kind === 'none' ? ['--act_bits', '16'] : [], dataType: 'nv_fp', bits: 4, groupSize: 16, actBits: s.activations.kind === 'none' ? 16 : 4, actDataType: 'nv_fp' };
    case 'fp8':
      if (s.activations.kind === 'fp8' && !s.activations.dynamic) return { scheme: 'FP8_STATIC', extra: [], dataType: 'fp', bits: 8, groupSize: -1, actBits: 8, actDataType: 'fp' };
      throw new UserError(`auto-round has no preset for ${s.name} (dynamic per-token FP8 activations); use the llm-compressor driver for it`);
  }
}

/** Argv for one auto-round job; the command is `auto-round` (or the recipe's entry point). */
export function buildAutoRoundArgv(job: AutoRoundJob): { command: string; args: string[] } {
  const s = typeof job.scheme === 'string' ? getScheme(job.scheme) : job.scheme;
  const p = autoRoundPreset(s);
  const recipe = job.recipe ?? 'default';
  const command = job.command ?? (recipe === 'default' || job.method === 'rtn' ? 'auto-round' : `auto-round-${recipe}`);
  const args = ['--model', job.model, '--scheme', p.scheme, ...p.extra, '--format', job.format ?? 'llm_compressor', '--output_dir', job.outputDir];
  if (job.method === 'rtn') {
    // Pure RTN: no tuning and no imatrix-weighted scale search (§6).
    args.push('--iters', '0', '--disable_opt_rtn');
  } else if (job.iters !== undefined) {
    if (!Number.isInteger(job.iters) || job.iters < 1) throw new UserError(`auto-round iters must be a positive integer for method autoround (RTN is method rtn), got ${job.iters}`);
    args.push('--iters', String(job.iters));
  }
  const num = (flag: string, v: number | undefined) => {
    if (v === undefined) return;
    if (!Number.isInteger(v) || v < 0) throw new UserError(`auto-round ${flag} must be a non-negative integer, got ${v}`);
    args.push(flag, String(v));
  };
  if (job.method !== 'rtn') {
    num('--nsamples', job.nsamples);
    num('--seqlen', job.seqlen);
    num('--batch_size', job.batchSize);
    if (job.dataset !== undefined) args.push('--dataset', job.dataset);
  }
  num('--seed', job.seed);
  if (job.device !== undefined) args.push('--device_map', job.device);
  if (job.ignoreLayers?.length) args.push('--ignore_layers', job.ignoreLayers.join(','));
  return { command, args };
}

/**
 * The folder auto-round exports into (§9.3):
 * `<output_dir>/<model basename>[-<dtype prefix>]-w<bits><suffix>`. Pure RTN of integer or
 * MX weights runs model-free and writes straight into `output_dir` (§6).
 */
export function autoRoundExportDir(job: AutoRoundJob): string {
  const s = typeof job.scheme === 'string' ? getScheme(job.scheme) : job.scheme;
  const p = autoRoundPreset(s);
  const base = job.outputDir.replace(/\/+$/, '');
  if (job.method === 'rtn' && (s.weights.kind === 'int' || s.weights.kind === 'mxfp4')) return base;
  const modelBase = job.model.replace(/\/+$/, '').split('/').pop()!;
  const prefix = p.dataType === 'int' ? '' : `-${p.dataType.replace(/_/g, '')}`;
  const suffix = p.groupSize > 0 ? `g${p.groupSize}` : p.actDataType.includes('fp') ? `afp${p.actBits}` : `a${p.actBits}`;
  return `${base}/${modelBase}${prefix}-w${p.bits}${suffix}`;
}
