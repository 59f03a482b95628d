/**
 * The `auto-round` CLI (checked against auto-round 0.16.1's source, auto_round/cli/ and
 * compressors/): argv per scheme, method and recipe, exporting compressed-tensors
 * (`--format llm_compressor`), and the export folder auto-round derives from `--output_dir`
 * (`BaseCompressor._get_export_dir`: `<output_dir>/<model basename>[-<dtype>]-w<bits>g<group>`;
 * the model-free route that pure RTN of MX-FP weights takes writes into `output_dir` itself).
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
  /** AutoRound's learning rates (null/undefined = its default) and switches. */
  lr?: number | null;
  minmaxLr?: number | null;
  enableQuantedInput?: boolean;
  enableMinmaxTuning?: boolean;
  /** `--device_map`, e.g. "0", "0,1", "cpu"; "cpu" also adds `--disable_torch_compile`. */
  device?: string;
  /** `--dataset`: auto-round's dataset spec (a local jsonl, or `ORG/NAME[:split=S]`). */
  dataset?: string;
  /** `--ignore_layers` (substring match). */
  ignoreLayers?: readonly string[];
  /** argv prefix replacing the entry point (a venv's auto-round, `toolArgv`). */
  command?: readonly string[];
}

const WEIGHT_ONLY = ['--act_bits', '16', '--act_data_type', 'float'];

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
    // auto-round's MXFP4 and NVFP4 presets quantize activations too. Weight-only needs
    // --act_bits 16 AND a 16-bit activation data type: with the preset's `nv_fp4...` type
    // left in place auto-round resets act_bits to 4 (schemes.py _reconcile_bits_and_dtype).
    // Its llm_compressor export still writes the W4A4 preset config; see weightOnlyConfigFix.
    case 'mxfp4':
      return { scheme: 'MXFP4', extra: s.activations.kind === 'none' ? WEIGHT_ONLY : [], dataType: 'mx_fp', bits: 4, groupSize: 32, actBits: s.activations.kind === 'none' ? 16 : 4, actDataType: 'mx_fp' };
    case 'nvfp4':
      return { scheme: 'NVFP4', extra: s.activations.kind === 'none' ? WEIGHT_ONLY : [], dataType: 'nv_fp', bits: 4, groupSize: 16, actBits: s.activations.kind === 'none' ? 16 : 4, actDataType: 'nv_fp' };
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
  const prefix = job.command ?? [recipe === 'default' || job.method === 'rtn' ? 'auto-round' : `auto-round-${recipe}`];
  const args = [...prefix.slice(1), '--model', job.model, '--scheme', p.scheme, ...p.extra, '--format', job.format ?? 'llm_compressor', '--output_dir', job.outputDir];
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
  // Calibration goes to RTN too: NVFP4's global scales are computed from it.
  num('--nsamples', job.nsamples);
  num('--seqlen', job.seqlen);
  if (job.method !== 'rtn') {
    num('--batch_size', job.batchSize);
    if (job.lr != null) args.push('--lr', String(job.lr));
    if (job.minmaxLr != null) args.push('--minmax_lr', String(job.minmaxLr));
    if (job.enableQuantedInput === false) args.push('--disable_quanted_input');
    if (job.enableMinmaxTuning === false) args.push('--disable_minmax_tuning');
  }
  if (job.dataset !== undefined) args.push('--dataset', job.dataset);
  num('--seed', job.seed);
  if (job.device !== undefined) args.push('--device_map', job.device);
  // torch.compile needs a compiler toolchain and buys nothing on a CPU.
  if (job.device === 'cpu') args.push('--disable_torch_compile');
  if (job.ignoreLayers?.length) args.push('--ignore_layers', job.ignoreLayers.join(','));
  return { command: prefix[0], args };
}

/**
 * The folder auto-round exports into: `<output_dir>/<model basename>[-<dtype prefix>]-w<bits><suffix>`
 * (recorded: integer RTN of stories260k at group 32 -> `<out>/stories260k-w4g32/`). Pure RTN
 * of MX weights is routed model-free and writes straight into `output_dir` (recorded with
 * auto-round 0.16.1). `locateExport` falls back to searching, so a changed rule is found.
 */
export function autoRoundExportDir(job: AutoRoundJob): string {
  const s = typeof job.scheme === 'string' ? getScheme(job.scheme) : job.scheme;
  const p = autoRoundPreset(s);
  const base = job.outputDir.replace(/\/+$/, '');
  if (job.method === 'rtn' && s.weights.kind === 'mxfp4') return base;
  const modelBase = job.model.replace(/\/+$/, '').split('/').pop()!;
  const prefix = p.dataType === 'int' ? '' : `-${p.dataType.replace(/_/g, '')}`;
  const suffix = p.groupSize > 0 ? `g${p.groupSize}` : p.actDataType.includes('fp') ? `afp${p.actBits}` : `a${p.actBits}`;
  return `${base}/${modelBase}${prefix}-w${p.bits}${suffix}`;
}
