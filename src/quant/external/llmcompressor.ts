/**
 * argv for `harness/llmcompressor_quantize.py`, the driver around llm-compressor's
 * `oneshot` with `AutoRoundModifier` (method autoround) or `QuantizationModifier`
 * (method rtn) (reference autoround.md §10, compressed-tensors.md §1.5 presets).
 */
import { UserError } from '../../errors.ts';
import { getScheme, type Scheme } from '../schemes.ts';

export interface LlmCompressorJob {
  model: string;
  scheme: Scheme | string;
  method: 'autoround' | 'rtn';
  outputDir: string;
  iters?: number;
  nsamples?: number;
  seqlen?: number;
  batchSize?: number;
  seed?: number;
  /** A local jsonl of `{"text": ...}` lines (src/quant/external/calibration.ts); else auto-round's get_dataset default. */
  dataset?: string;
  ignore?: readonly string[];
  /** "cpu": no torch.compile in AutoRoundModifier. */
  device?: string;
  /** Python interpreter of the llmcompressor environment (argv prefix from `toolArgv`); default `python3`. */
  python?: string | readonly string[];
  /** Driver path; default `harness/llmcompressor_quantize.py` of this checkout. */
  driver: string;
}

/** llm-compressor / compressed-tensors preset name for each scheme of ours. */
export function llmCompressorPreset(s: Scheme): string {
  const w = s.weights;
  switch (w.kind) {
    case 'none':
      throw new UserError(`scheme ${s.name} is the unquantized baseline; there is nothing for llm-compressor to do`);
    case 'int':
      if (w.groupSize !== 128) throw new UserError(`llm-compressor presets use group size 128; ${s.name} with group size ${w.groupSize} needs a custom config_groups recipe (not supported by the driver)`);
      return w.symmetric ? `W${w.bits}A16` : w.bits === 4 ? 'W4A16_ASYM' : (() => { throw new UserError(`llm-compressor has no asymmetric W${w.bits}A16 preset`); })();
    case 'mxfp4':
      return s.activations.kind === 'none' ? 'MXFP4A16' : 'MXFP4';
    case 'nvfp4':
      return s.activations.kind === 'none' ? 'NVFP4A16' : 'NVFP4';
    case 'fp8':
      return s.activations.dynamic ? 'FP8_DYNAMIC' : 'FP8';
  }
}

export function buildLlmCompressorArgv(job: LlmCompressorJob): { command: string; args: string[] } {
  const s = typeof job.scheme === 'string' ? getScheme(job.scheme) : job.scheme;
  const args = [job.driver, '--model', job.model, '--scheme', llmCompressorPreset(s), '--method', job.method, '--output-dir', job.outputDir];
  const num = (flag: string, v: number | undefined, min: number) => {
    if (v === undefined) return;
    if (!Number.isInteger(v) || v < min) throw new UserError(`llm-compressor ${flag} must be an integer >= ${min}, got ${v}`);
    args.push(flag, String(v));
  };
  if (job.method === 'autoround') num('--iters', job.iters, 1);
  num('--nsamples', job.nsamples, 1);
  num('--seqlen', job.seqlen, 1);
  num('--batch-size', job.batchSize, 1);
  num('--seed', job.seed, 0);
  if (job.dataset !== undefined) args.push('--dataset', job.dataset);
  if (job.device !== undefined) args.push('--device', job.device);
  for (const i of job.ignore ?? ['lm_head']) args.push('--ignore', i);
  const py = typeof job.python === 'string' ? [job.python] : job.python ?? ['python3'];
  return { command: py[0], args: [...py.slice(1), ...args] };
}
