/**
 * Public face of quant: quantize a model directory with a scheme and a method, and write
 * the compressed-tensors checkpoint. Methods plug in through METHODS (RTN here; AutoRound
 * adds its entry with the same signature).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError, didYouMean } from '../errors.ts';
import { writeCompressedCheckpoint } from '../checkpoint/compressed-tensors.ts';
import { getScheme, withOverrides, type Scheme } from './schemes.ts';
import { rtnQuantizeModel, type QuantizedLayers, type RtnOptions } from './rtn/index.ts';
import { fp8Scale, nvfp4GlobalScale, type ScaleDtype } from './formats/index.ts';
import { writeAtomic } from '../checkpoint/safetensors.ts';
import { autoRound, getRecipe, type AutoRoundOptions, type AutoRoundProgress, type AutoRoundRecord, type Recipe } from './autoround/index.ts';

export interface QuantizeOptions {
  /** Output checkpoint directory. */
  out: string;
  /** Integer schemes: group size override (-1 = per channel). */
  groupSize?: number;
  /** Integer schemes: asymmetric weights. */
  asym?: boolean;
  /** Layers kept in full precision besides embeddings and lm_head. */
  ignore?: string[];
  /** auto-round's layer selection (see RtnOptions.skipUnaligned). */
  skipUnaligned?: boolean;
  /** RTN: quantize the bfloat16 copy of the weights, as auto-round does on a CPU (RtnOptions.bf16Weights). */
  bf16Weights?: boolean;
  /** dtype of integer scales; default: bf16 for bf16 models, else fp16 (auto-round's default). */
  scaleDtype?: ScaleDtype;
  /** Replace an existing output directory. */
  overwrite?: boolean;
  /** Calibrated activation ranges per layer (needed by static FP8 and NVFP4 W4A4). */
  inputAmax?: ReadonlyMap<string, number>;
  onLayer?: (name: string, i: number, n: number) => void;
  /** --method autoround: recipe name, per-value overrides, tuning options, progress callback. */
  autoround?: { /** A recipe name from RECIPES, or resolved values (models.json's). */ recipe?: string | Recipe; overrides?: Partial<Recipe>; options?: AutoRoundOptions; onProgress?: (p: AutoRoundProgress) => void };
}

export interface QuantizeSummary {
  out: string;
  scheme: string;
  method: string;
  groupSize: number;
  symmetric: boolean;
  scaleDtype: ScaleDtype | null;
  quantized: string[];
  skipped: { name: string; reason: string }[];
  seconds: number;
  /** AutoRound's run record (also written to <out>/quantization_record.json). */
  record?: AutoRoundRecord;
}

export type MethodResult = QuantizedLayers & { record?: AutoRoundRecord };
export type QuantMethod = (modelDir: string, scheme: Scheme, opts: RtnOptions & QuantizeOptions) => MethodResult | Promise<MethodResult>;

export const METHODS: Record<string, QuantMethod> = {
  rtn: (dir, scheme, opts) => rtnQuantizeModel(dir, scheme, opts),
  autoround: async (dir, scheme, opts) => {
    const a = opts.autoround ?? {};
    const r = await autoRound(dir, scheme, typeof a.recipe === 'object' ? { ...a.recipe, ...a.overrides } : getRecipe(a.recipe ?? 'default', a.overrides), {
      ...a.options, ignore: opts.ignore, skipUnaligned: opts.skipUnaligned, scaleDtype: opts.scaleDtype,
    }, a.onProgress);
    return { ...r, inputAmax: new Map(Object.entries(r.record.actMax)) };
  },
};

function readRawConfig(modelDir: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  } catch (e) {
    throw new UserError(`${join(modelDir, 'config.json')}: not valid JSON (${(e as Error).message})`);
  }
}

function defaultScaleDtype(modelDir: string): ScaleDtype {
  const raw = readRawConfig(modelDir);
  return (raw.torch_dtype ?? raw.dtype) === 'bfloat16' ? 'BF16' : 'F16';
}

export async function quantizeModel(modelDir: string, schemeName: string, method: string, options: QuantizeOptions): Promise<QuantizeSummary> {
  const t0 = performance.now();
  const run = METHODS[method];
  if (!run) throw new UserError(`unknown quantization method '${method}'; ${didYouMean(method, Object.keys(METHODS))}`);
  if (!existsSync(join(modelDir, 'config.json'))) throw new UserError(`${modelDir}: not a model directory (no config.json); pass --model stories260k or a Hugging Face model directory`);
  if (readRawConfig(modelDir).quantization_config)
    throw new UserError(`${modelDir}: already quantized (config.json has quantization_config); quantize the unquantized model instead`);
  if (existsSync(options.out) && !options.overwrite) throw new UserError(`${options.out} already exists; choose another --out or pass --force to replace it`);
  let scheme = getScheme(schemeName);
  if (scheme.weights.kind === 'none') throw new UserError(`scheme ${scheme.name} is the unquantized baseline; there is nothing to quantize (use the model directory itself)`);
  scheme = withOverrides(scheme, { groupSize: options.groupSize, symmetric: options.asym ? false : undefined });
  const calibrated = scheme.activations.kind === 'nvfp4' || (scheme.activations.kind === 'fp8' && !scheme.activations.dynamic);
  if (calibrated && method === 'rtn' && !options.inputAmax)
    throw new UserError(`scheme ${scheme.name} quantizes activations with calibrated ranges, which RTN does not collect; use AutoRound (quantize --method autoround, run --methods autoround), or ${scheme.activations.kind === 'nvfp4' ? 'NVFP4A16' : 'W8A8-FP8 (dynamic)'}`);
  const scaleDtype = scheme.weights.kind === 'int' ? options.scaleDtype ?? defaultScaleDtype(modelDir) : undefined;
  const q = await run(modelDir, scheme, { ...options, scaleDtype });
  const amax = options.inputAmax ?? q.inputAmax;
  const inputScales = amax && scheme.activations.kind === 'fp8' && !scheme.activations.dynamic
    ? new Map([...amax].map(([k, a]) => [k, fp8Scale(a)])) : undefined;
  const inputGlobalScales = amax && scheme.activations.kind === 'nvfp4'
    ? new Map([...amax].map(([k, a]) => [k, nvfp4GlobalScale(a)])) : undefined;
  writeCompressedCheckpoint(modelDir, options.out, scheme, q.layers, {
    overwrite: options.overwrite, unquantized: q.skipped.map((s) => s.name), inputScales, inputGlobalScales,
  });
  if (q.record) writeAtomic(join(options.out, 'quantization_record.json'), [Buffer.from(JSON.stringify({ method, scheme: scheme.name, ...q.record }, null, 2) + '\n')]);
  return {
    out: options.out, scheme: scheme.name, method, groupSize: scheme.weights.groupSize, symmetric: scheme.weights.symmetric,
    scaleDtype: scaleDtype ?? null, quantized: q.quantized, skipped: q.skipped, seconds: (performance.now() - t0) / 1000,
    ...(q.record ? { record: q.record } : {}),
  };
}

export { rtnQuantizeModel, rtnQuantizeWeights } from './rtn/index.ts';
export { readCompressedCheckpoint, writeCompressedCheckpoint } from '../checkpoint/compressed-tensors.ts';
export { quantizeWeight, dequantizeWeight, quantizeActivations } from './formats/index.ts';
