/**
 * compressed-tensors checkpoints (the layout vLLM loads; format reference: the
 * compressed-tensors repository, src/compressed_tensors/compressors/).
 *
 * Writer: config.json gets `quantization_config` in compressed-tensors 0.18's shape (one
 * config group targeting Linear, `ignore` = lm_head + layers left in full precision); each
 * quantized Linear's `weight` is replaced by its codec's tensors (codecs/); everything else
 * (embeddings, norms, lm_head, tokenizer and other files) is copied unchanged. The directory
 * is written under a temporary name and renamed into place.
 *
 * Reader: the same plan as the validator (codecs/index.ts planLayers: one layer-matching rule,
 * every promised tensor checked), then each layer's codec reads its tensors and they are
 * dequantized with the same float32 operations the quantizers use, so quantize -> write ->
 * read gives the quantizer's dequantized weights bit for bit.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../errors.ts';
import type { ModelConfig } from './config.ts';
import { writeAtomic, type TensorToWrite } from './safetensors.ts';
import { CheckpointTensors, writeCheckpointTensors } from './tensors.ts';
import { requireFinite } from './weights.ts';
import type { Scheme, WeightFormat } from '../quant/schemes.ts';
import { dequantizeWeight, type QuantizedWeight } from '../quant/formats/index.ts';
import { codecForWeights, dense, planLayers, quantizationConfig, type PlannedLayer, type StoredWeight } from './codecs/index.ts';

export { CT_VERSION, activationArgs, formatName, linearDims, quantizationConfig, weightArgs } from './codecs/index.ts';

/** The tensors that replace `<layer>.weight` for one quantized layer. */
export function layerTensors(name: string, q: QuantizedWeight, opts: { inputScale?: number; inputGlobalScale?: number } = {}): TensorToWrite[] {
  return codecForWeights(q.fmt).write(name, q, opts);
}

export interface WriteOptions {
  /** Replace an existing output directory. */
  overwrite?: boolean;
  /** Static FP8 activations: input_scale per layer (act_amax/448). */
  inputScales?: ReadonlyMap<string, number>;
  /** NVFP4 W4A4: input_global_scale per layer (448*6/act_amax). */
  inputGlobalScales?: ReadonlyMap<string, number>;
  /** Layers left unquantized, listed in `ignore` besides lm_head. */
  unquantized?: readonly string[];
}

/** Write a compressed-tensors checkpoint of `srcDir` with `layers` quantized, atomically. */
export function writeCompressedCheckpoint(srcDir: string, outDir: string, scheme: Scheme, layers: ReadonlyMap<string, QuantizedWeight>, opts: WriteOptions = {}): void {
  if (existsSync(outDir) && !opts.overwrite) throw new UserError(`${outDir} already exists; choose another --out or pass --force to replace it`);
  const rawConfig = JSON.parse(readFileSync(join(srcDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const needsInputScale = scheme.activations.kind === 'fp8' && !scheme.activations.dynamic;
  const needsInputGs = scheme.activations.kind === 'nvfp4';
  const src = CheckpointTensors.open(srcDir);
  const tensors: TensorToWrite[] = [];
  const replaced = new Set<string>();
  try {
    for (const n of src.names()) {
      const layer = n.endsWith('.weight') ? n.slice(0, -'.weight'.length) : null;
      if (layer && layers.has(layer)) {
        replaced.add(layer);
        continue;
      }
      const info = src.info(n);
      tensors.push({ name: n, dtype: info.dtype, shape: info.shape, data: src.readBytes(n) });
    }
  } finally {
    src.close();
  }
  for (const [name, q] of layers) {
    if (!replaced.has(name))
      throw new UserError(`${srcDir}: quantized layer '${name}' has no '${name}.weight' in the source checkpoint`);
    const inputScale = opts.inputScales?.get(name);
    const inputGlobalScale = opts.inputGlobalScales?.get(name);
    if (needsInputScale && inputScale === undefined)
      throw new UserError(`scheme ${scheme.name} has static activations: layer '${name}' needs a calibrated input scale (use --method autoround, or a dynamic scheme)`);
    if (needsInputGs && inputGlobalScale === undefined)
      throw new UserError(`scheme ${scheme.name} quantizes activations: layer '${name}' needs a calibrated input global scale (use --method autoround, or NVFP4A16)`);
    tensors.push(...layerTensors(name, q, { inputScale: needsInputScale ? inputScale : undefined, inputGlobalScale: needsInputGs ? inputGlobalScale : undefined }));
  }
  const ignore = ['lm_head', ...[...(opts.unquantized ?? [])].sort()];
  const config = { ...rawConfig, quantization_config: quantizationConfig(scheme, ignore) };

  const parent = dirname(outDir);
  mkdirSync(parent, { recursive: true });
  const tmp = join(parent, `.${basename(outDir)}.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmp);
  try {
    writeCheckpointTensors(tmp, tensors);
    writeAtomic(join(tmp, 'config.json'), [Buffer.from(JSON.stringify(config, null, 2) + '\n')]);
    for (const f of readdirSync(srcDir)) {
      if (f === 'config.json' || f.endsWith('.safetensors') || f === 'model.safetensors.index.json' || f === 'quantization_config.json') continue;
      const p = join(srcDir, f);
      if (statSync(p).isFile()) copyFileSync(p, join(tmp, f));
    }
    if (existsSync(outDir)) {
      const old = join(parent, `.${basename(outDir)}.old-${process.pid}-${Date.now()}`);
      renameSync(outDir, old);
      renameSync(tmp, outDir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, outDir);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// Reader

export interface LayerActivation {
  kind: 'none' | 'fp8' | 'nvfp4';
  dynamic: boolean | 'local';
  strategy: string | null;
  /** Static FP8: the calibrated per-tensor scale. */
  inputScale?: number;
  /** NVFP4 W4A4: the calibrated input global scale (a divisor). */
  inputGlobalScale?: number;
}

export interface CompressedCheckpoint {
  config: ModelConfig;
  quantizationConfig: Record<string, unknown>;
  /** Dequantized Linear weights by HF weight name (`<layer>.weight`), row-major [out, in]. */
  weights: Map<string, Float32Array>;
  shapes: Map<string, [number, number]>;
  /** Per quantized layer: its weight format and activation setting. */
  formats: Map<string, WeightFormat>;
  activations: Map<string, LayerActivation>;
  /** Quantized layer (module) names, sorted. */
  quantized: string[];
}

export function readCompressedCheckpoint(dir: string): CompressedCheckpoint {
  const ckpt = CheckpointTensors.open(dir);
  try {
    const plan = planLayers(dir, ckpt);
    const fail = (layer: string, problem: string) => new UserError(`${dir}: layer '${layer}': ${problem}; the checkpoint disagrees with its quantization_config (re-export it)`);
    const out: CompressedCheckpoint = { config: plan.config, quantizationConfig: plan.quantizationConfig, weights: new Map(), shapes: new Map(), formats: new Map(), activations: new Map(), quantized: [] };
    for (const l of plan.layers) {
      out.shapes.set(`${l.name}.weight`, [l.rows, l.cols]);
      const { weight, fmt } = decodeLayer(l, ckpt, fail);
      requireFinite(weight, [l.rows, l.cols], `${dir}: layer '${l.name}': the dequantized weight`, 'codes times scales overflow float32; the checkpoint is corrupt (re-export it)');
      out.weights.set(`${l.name}.weight`, weight);
      if (!fmt) continue;
      out.formats.set(l.name, fmt);
      out.activations.set(l.name, readActivation(l.activations, l.name, ckpt, fail));
      out.quantized.push(l.name);
    }
    return out;
  } finally {
    ckpt.close();
  }
}

/** One planned layer's float32 weight as its codec decodes it (fmt null for dense layers). */
function decodeLayer(l: PlannedLayer, ckpt: CheckpointTensors, fail: (l: string, p: string) => UserError): { weight: Float32Array; fmt: WeightFormat | null } {
  if (l.codec === dense) return { weight: ckpt.readFloat32(`${l.name}.weight`), fmt: null };
  const q = l.codec.read(l, ckpt);
  // Scales are checked where they are stored, so the message names the tensor and position.
  requireFinite(q.scales, [q.rows, q.scales.length / q.rows], `layer '${l.name}': tensor 'weight_scale'`, 'the checkpoint is corrupt; re-export it');
  if (q.fmt.kind === 'fp8') {
    // float8_e4m3fn has NaN codes (0x7f, 0xff) and no infinities.
    for (let i = 0; i < q.codes.length; i++)
      if ((q.codes[i] & 0x7f) === 0x7f) throw fail(l.name, `tensor 'weight' has NaN (float8_e4m3fn code 0x${q.codes[i].toString(16)}) at [${Math.floor(i / q.cols)}, ${i % q.cols}]`);
  }
  if (q.fmt.kind === 'nvfp4' && !(q.globalScale! > 0 && Number.isFinite(q.globalScale))) throw fail(l.name, `weight_global_scale is ${q.globalScale}, expected a positive finite number`);
  return { weight: dequantizeWeight(q), fmt: q.fmt };
}

/**
 * Only the dequantized weights (`<layer>.weight` -> float32), through the same plan and
 * codecs as readCompressedCheckpoint but without interpreting input_activations: for
 * comparing weights of checkpoints whose activation settings we do not run (auto-round's
 * MXFP4A16 export declares dynamic MX activations, its NVFP4A16 export NVFP4 activations
 * without their input_global_scale).
 */
export function readCompressedWeights(dir: string): Map<string, Float32Array> {
  const ckpt = CheckpointTensors.open(dir);
  try {
    const fail = (layer: string, problem: string) => new UserError(`${dir}: layer '${layer}': ${problem}`);
    return new Map(planLayers(dir, ckpt, dir, { weightsOnly: true }).layers.map((l) => [`${l.name}.weight`, decodeLayer(l, ckpt, fail).weight]));
  } finally {
    ckpt.close();
  }
}

function readActivation(a: Record<string, unknown> | null, name: string, ckpt: CheckpointTensors, fail: (l: string, p: string) => UserError): LayerActivation {
  if (!a) return { kind: 'none', dynamic: true, strategy: null };
  const kind = a.type === 'float' && a.num_bits === 8 ? 'fp8' : a.type === 'float' && a.num_bits === 4 && a.group_size === 16 ? 'nvfp4' : null;
  if (!kind) throw fail(name, `input activations ${String(a.type)}${String(a.num_bits)} group ${String(a.group_size)} are not supported (FP8, or NVFP4 in blocks of 16)`);
  // Only the combinations we score are accepted, each spelled out (a missing `dynamic` is not a default).
  if (kind === 'fp8' && !((a.dynamic === true && a.strategy === 'token') || (a.dynamic === false && a.strategy === 'tensor')))
    throw fail(name, `FP8 input activations with strategy '${String(a.strategy)}' and dynamic ${JSON.stringify(a.dynamic)} are not supported (token+dynamic or tensor+static)`);
  if (kind === 'nvfp4' && !(a.strategy === 'tensor_group' && a.dynamic === 'local'))
    throw fail(name, `FP4 input activations must be NVFP4 (strategy tensor_group, group_size 16, dynamic 'local'), got strategy '${String(a.strategy)}', dynamic ${JSON.stringify(a.dynamic)}`);
  const act: LayerActivation = { kind, dynamic: a.dynamic as boolean | 'local', strategy: (a.strategy as string) ?? null };
  // One positive finite value, or the checkpoint is refused by the tensor's name.
  const scalar = (suffix: string) => {
    if (!ckpt.has(`${name}.${suffix}`)) throw fail(name, `missing tensor '${suffix}' that ${kind} input activations need`);
    const v = ckpt.readFloat32(`${name}.${suffix}`);
    if (v.length !== 1) throw fail(name, `tensor '${suffix}' has ${v.length} values, expected one`);
    if (!(v[0] > 0) || !Number.isFinite(v[0])) throw fail(name, `${suffix} is ${v[0]}, expected a positive finite number`);
    return v[0];
  };
  if (kind === 'fp8' && a.dynamic === false) act.inputScale = scalar('input_scale');
  if (kind === 'nvfp4') act.inputGlobalScale = scalar('input_global_scale');
  return act;
}

/** The stored pieces (codes, scales, zero points, global scale) of every quantized layer, as its codec reads them. */
export function readStoredLayers(dir: string): Map<string, StoredWeight> {
  const ckpt = CheckpointTensors.open(dir);
  try {
    const out = new Map<string, StoredWeight>();
    for (const l of planLayers(dir, ckpt, dir, { weightsOnly: true }).layers) if (l.codec !== dense) out.set(l.name, l.codec.read(l, ckpt));
    return out;
  } finally {
    ckpt.close();
  }
}
