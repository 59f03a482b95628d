/**
 * compressed-tensors codecs: one module per format (pack-quantized.ts, fp4.ts, fp8.ts,
 * dense.ts) and the ONE rule that decides which config group, if any, applies to a layer.
 * The writer (compressed-tensors.ts), the reader (same file) and the header-only validator of
 * external tools' output (`validateCompressedTensors` here) all go through `planLayers`.
 *
 * Layer matching is compressed-tensors' own (compressed_tensors.utils.match.match_name and
 * is_match, also vLLM's): an `ignore` or `targets` entry matches a module when it equals the
 * module's full name, or names its class (every layer here is a `Linear`), or starts with
 * `re:` and the regex matches at the START of the full name (Python's re.match). A bare
 * suffix such as `mlp.down_proj` matches nothing.
 */
import { readJsonFile } from '../json.ts';
import { parseQuantizationConfig } from '../quantization-config.ts';

import { join } from 'node:path';
import { UserError } from '../../errors.ts';
import { linearNames, parseModelConfig, type ModelConfig } from '../config.ts';
import { CheckpointTensors } from '../tensors.ts';
import type { ActivationFormat, Scheme, WeightFormat } from '../../quant/schemes.ts';
import { dense } from './dense.ts';
import { mxfp4PackQuantized, nvfp4PackQuantized } from './fp4.ts';
import { floatQuantized } from './fp8.ts';
import { packQuantized } from './pack-quantized.ts';
import { baseArgs, type Args, type Codec, type LayerSpec, type TensorData } from './types.ts';

export type { Args, Codec, LayerSpec, StoredWeight, TensorSpec, WriteExtras } from './types.ts';

export const CT_VERSION = '0.18.0';

/** Every format lowbit-bench writes or reads. */
export const CODECS: readonly Codec[] = [packQuantized, nvfp4PackQuantized, mxfp4PackQuantized, floatQuantized, dense];

export function codecForFormat(format: string): Codec | undefined {
  return CODECS.find((c) => c.format === format || c.aliases.includes(format));
}

export function codecForWeights(w: WeightFormat): Codec {
  const c = CODECS.find((x) => x.writes(w));
  if (!c) throw new Error(`no compressed-tensors codec stores ${w.kind} weights`);
  return c;
}

/** The format name written for a scheme (FP8 weights without FP8 activations: naive-quantized). */
export function formatName(w: WeightFormat, act: ActivationFormat): string {
  if (w.kind === 'fp8' && act.kind !== 'fp8') return 'naive-quantized';
  return codecForWeights(w).format;
}

export function weightArgs(w: WeightFormat): Args {
  return codecForWeights(w).weightArgs(w);
}

export function activationArgs(act: ActivationFormat): Args | null {
  const a = baseArgs();
  switch (act.kind) {
    case 'none':
      return null;
    case 'fp8':
      return act.dynamic
        ? { ...a, num_bits: 8, type: 'float', strategy: 'token', dynamic: true, observer: null }
        : { ...a, num_bits: 8, type: 'float', strategy: 'tensor', dynamic: false, observer: 'static_minmax' };
    case 'nvfp4':
      return { ...a, num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: 16, dynamic: 'local', observer: 'static_minmax', scale_dtype: 'torch.float8_e4m3fn' };
  }
}

export function quantizationConfig(scheme: Scheme, ignore: readonly string[]): Record<string, unknown> {
  const format = formatName(scheme.weights, scheme.activations);
  return {
    config_groups: {
      group_0: { format, input_activations: activationArgs(scheme.activations), output_activations: null, targets: ['Linear'], weights: weightArgs(scheme.weights) },
    },
    format,
    global_compression_ratio: null,
    ignore: [...ignore],
    kv_cache_scheme: null,
    quant_method: 'compressed-tensors',
    quantization_status: 'compressed',
    sparsity_config: {},
    transform_config: {},
    version: CT_VERSION,
  };
}

// ---------------------------------------------------------------------------------------
// The one layer-matching rule

/** compressed-tensors' match for one `targets`/`ignore` entry against a Linear module. */
export function matchesEntry(name: string, entry: string): boolean {
  if (entry.startsWith('re:')) return new RegExp(`^(?:${entry.slice(3)})`).test(name);
  return entry === name || entry === 'Linear';
}

export type LayerAssignment = { kind: 'ignored'; entry: string } | { kind: 'untargeted' } | { kind: 'group'; id: string; group: Args };

/** Which config group applies to Linear module `name` (ignore first, then the first group whose targets match). */
export function assignLayer(name: string, qc: { ignore?: unknown; config_groups?: unknown }): LayerAssignment {
  const ignore = Array.isArray(qc.ignore) ? (qc.ignore as unknown[]).filter((x): x is string => typeof x === 'string') : [];
  const hit = ignore.find((e) => matchesEntry(name, e));
  if (hit !== undefined) return { kind: 'ignored', entry: hit };
  const groups = (qc.config_groups ?? {}) as Record<string, Args>;
  for (const [id, g] of Object.entries(groups)) {
    const targets = Array.isArray(g?.targets) ? (g.targets as unknown[]).filter((x): x is string => typeof x === 'string') : [];
    if (targets.some((t) => matchesEntry(name, t))) return { kind: 'group', id, group: g };
  }
  return { kind: 'untargeted' };
}

/** [out, in] of a standard Llama-family Linear, or null for other modules. */
export function linearDims(cfg: ModelConfig, name: string): [number, number] | null {
  if (name === 'lm_head') return [cfg.vocabSize, cfg.hiddenSize];
  const m = /\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$/.exec(name);
  if (!m) return null;
  const H = cfg.hiddenSize, q = cfg.numHeads * cfg.headDim, kv = cfg.numKvHeads * cfg.headDim, I = cfg.intermediateSize;
  const d: Record<string, [number, number]> = { q_proj: [q, H], k_proj: [kv, H], v_proj: [kv, H], o_proj: [H, q], gate_proj: [I, H], up_proj: [I, H], down_proj: [H, I] };
  return d[m[1]];
}

/** Names of tensors that only a quantized layer has. */
const QUANT_SUFFIX = /\.(weight_packed|weight_scale|weight_global_scale|weight_zero_point|weight_shape|input_scale|input_global_scale)$/;

export interface PlannedLayer extends LayerSpec {
  codec: Codec;
  format: string;
  groupId: string;
}

export interface CheckpointPlan {
  dir: string;
  config: ModelConfig;
  quantizationConfig: Record<string, unknown>;
  /** Targeted layers, sorted by name, each checked against its codec's promised tensors. */
  layers: PlannedLayer[];
}

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Read config.json, decide every Linear's config group with `assignLayer`, and check each
 * targeted layer's tensors against what its codec promises (headers, plus weight_shape's two
 * numbers). `where` prefixes every message (e.g. "auto-round output DIR"). `weightsOnly`
 * leaves input_activations out of the plan (and so the activation tensors they promise).
 */
export function planLayers(dir: string, ckpt: TensorData, where = dir, opts: { weightsOnly?: boolean } = {}): CheckpointPlan {
  const cfgPath = join(dir, 'config.json');
  // Strict: duplicate keys refused (json.ts); then every enum, pattern and group checked by name.
  const raw = readJsonFile(cfgPath, 'a checkpoint needs a readable config.json; re-export it');
  const qc = raw.quantization_config as Record<string, unknown> | undefined;
  if (!qc || typeof qc !== 'object') throw new UserError(`${where}: config.json has no quantization_config; not a compressed-tensors checkpoint (make one with bench quantize, or export with --format llm_compressor)`);
  parseQuantizationConfig(qc, cfgPath);
  if (qc.quant_method !== 'compressed-tensors') throw new UserError(`${where}: quantization_config.quant_method is ${JSON.stringify(qc.quant_method)}, expected "compressed-tensors" (export with --format llm_compressor)`);
  const groups = qc.config_groups as Record<string, Args> | undefined;
  if (!groups || typeof groups !== 'object' || Object.keys(groups).length === 0) throw new UserError(`${where}: quantization_config has no config_groups`);
  const cfg = parseModelConfig(raw, cfgPath);
  const version = typeof qc.version === 'string' ? qc.version : null;
  const fail = (layer: string, problem: string) => new UserError(`${where}: layer '${layer}': ${problem}; the checkpoint disagrees with its quantization_config (re-export it)`);

  const linears = new Set<string>();
  for (let i = 0; i < cfg.numLayers; i++) for (const n of linearNames(i)) linears.add(n);
  if (ckpt.has('lm_head.weight') || ckpt.has('lm_head.weight_packed')) linears.add('lm_head');
  const withQTensors = new Set<string>();
  for (const n of ckpt.names()) {
    const m = QUANT_SUFFIX.exec(n);
    if (m) withQTensors.add(n.slice(0, m.index));
  }
  for (const name of withQTensors) if (!linears.has(name)) throw fail(name, `has quantized tensors but is not a Linear of this ${cfg.modelType} model`);
  const layers: PlannedLayer[] = [];
  for (const name of [...new Set([...linears, ...withQTensors])].sort()) {
    const a = assignLayer(name, qc);
    if (a.kind !== 'group' || !a.group.weights) {
      if (withQTensors.has(name)) throw fail(name, `has quantized tensors but is ${a.kind === 'ignored' ? 'listed in ignore' : 'not targeted by any config group'}`);
      continue;
    }
    const format = String(a.group.format ?? qc.format ?? '');
    const codec = codecForFormat(format);
    if (!codec) throw new UserError(`${where}: quantization format '${format}' is not one lowbit-bench reads (${CODECS.map((c) => c.format).join(', ')})`);
    const weights = a.group.weights as Args;
    const configDims = linearDims(cfg, name);
    const dims = codec.dims(ckpt, name, weights, configDims);
    if (typeof dims === 'string') throw fail(name, dims);
    const [rows, cols] = dims;
    if (configDims && (configDims[0] !== rows || configDims[1] !== cols)) throw fail(name, `weight is [${rows}, ${cols}] but config.json implies [${configDims}]`);
    const activations = opts.weightsOnly ? null : ((a.group.input_activations ?? null) as Args | null);
    const layer: PlannedLayer = { name, weights, activations, rows, cols, version, codec, format, groupId: a.id };
    const specs = codec.tensors(layer, ckpt);
    if (typeof specs === 'string') throw fail(name, specs);
    for (const s of specs) {
      const t = `${name}.${s.suffix}`;
      if (!ckpt.has(t)) throw fail(name, `missing tensor '${s.suffix}' that ${format} promises`);
      const info = ckpt.info(t);
      if (!s.dtypes.includes(info.dtype)) throw fail(name, `tensor '${s.suffix}' is ${info.dtype}, expected ${s.dtypes.join(' or ')}`);
      if (s.shape && (info.shape.length !== s.shape.length || info.shape.some((d, i) => d !== s.shape![i]))) throw fail(name, `tensor '${s.suffix}' has shape [${info.shape}], expected [${s.shape}]`);
      if (s.scalar && prod(info.shape) !== 1) throw fail(name, `tensor '${s.suffix}' has shape [${info.shape}], expected one value`);
    }
    for (const [suffix, why] of codec.forbidden(layer)) if (ckpt.has(`${name}.${suffix}`)) throw fail(name, `has '${suffix}' but ${why}`);
    // compressed-tensors names the format from the scheme (compressors/format.py): FP8 weights
    // are float-quantized with input activations and naive-quantized without; pack-quantized is
    // weight-only. A declared format that disagrees means input_activations was lost or added,
    // which the tensors alone cannot show for dynamic activations.
    const declaredActs = (a.group.input_activations ?? null) !== null;
    if (format === 'float-quantized' && !declaredActs) throw fail(name, "format 'float-quantized' implies quantized input activations, but the group has none");
    if ((format === 'naive-quantized' || format === 'pack-quantized') && declaredActs) throw fail(name, `format '${format}' is weight-only, but the group quantizes input activations`);
    const acts = (a.group.input_activations ?? null) as Args | null;
    const staticFp8 = acts?.type === 'float' && acts.num_bits === 8 && acts.dynamic === false;
    const nvfp4Acts = acts?.type === 'float' && acts.num_bits === 4;
    if (!staticFp8 && ckpt.has(`${name}.input_scale`)) throw fail(name, "has 'input_scale' but the group has no static FP8 input activations");
    if (!nvfp4Acts && ckpt.has(`${name}.input_global_scale`)) throw fail(name, "has 'input_global_scale' but the group has no NVFP4 input activations");
    if (codec !== dense && !specs.some((s) => s.suffix === 'weight') && ckpt.has(`${name}.weight`)) throw fail(name, `'weight' is still dense next to its ${format} tensors`);
    layers.push(layer);
  }
  return { dir, config: cfg, quantizationConfig: qc, layers };
}

/** Why a config group is not `scheme`'s (weights and input activations), or null when it is. */
export function schemeMismatch(scheme: Scheme, group: Args): string | null {
  const weights = (group.weights ?? {}) as Args;
  const w = scheme.weights;
  const type = weights.type;
  const bits = weights.num_bits;
  const got = `${String(type)}${String(bits)} group ${String(weights.group_size ?? weights.strategy)}`;
  switch (w.kind) {
    case 'none':
      return 'the baseline scheme has no quantized weights';
    case 'int':
      if (type !== 'int' || bits !== w.bits) return `weights are ${got}, ${scheme.name} needs int${w.bits}`;
      if (w.groupSize > 0 && weights.group_size !== w.groupSize) return `weights are ${got}, ${scheme.name} needs group ${w.groupSize}`;
      if ((weights.symmetric !== false) !== w.symmetric) return `weights are ${weights.symmetric === false ? 'asymmetric' : 'symmetric'}, ${scheme.name} is not`;
      break;
    case 'mxfp4':
    case 'nvfp4':
      if (!(type === 'float' && bits === 4 && weights.group_size === w.groupSize)) return `weights are ${got}, ${scheme.name} needs float4 group ${w.groupSize}`;
      break;
    case 'fp8':
      if (!(type === 'float' && bits === 8)) return `weights are ${got}, ${scheme.name} needs float8`;
      break;
  }
  const a = (group.input_activations ?? null) as Args | null;
  const act = scheme.activations;
  if (act.kind === 'none') return a ? `input_activations are ${String(a.type)}${String(a.num_bits)}, but ${scheme.name} keeps activations at 16 bits` : null;
  if (!a) return `input_activations are 16-bit, but ${scheme.name} quantizes them`;
  const wantBits = act.kind === 'fp8' ? 8 : 4;
  if (a.type !== 'float' || a.num_bits !== wantBits) return `input_activations are ${String(a.type)}${String(a.num_bits)}, ${scheme.name} needs float${wantBits}`;
  if (act.kind === 'fp8' && (a.dynamic === false) === act.dynamic) return `input_activations are ${a.dynamic === false ? 'static' : 'dynamic'}, ${scheme.name} is not`;
  return null;
}

export interface ValidatedCheckpoint {
  dir: string;
  format: string;
  quantizationConfig: Record<string, unknown>;
  /** Module names whose quantized tensors were found (sorted). */
  quantized: string[];
  /** compressed-tensors version recorded in the config, when present. */
  compressedTensorsVersion: string | null;
}

/**
 * Header-only check of a compressed-tensors checkpoint, for external tools' output (cheap for
 * 70B checkpoints: no weight is read). Same plan as the reader; `expect` also checks every
 * targeted group against the scheme, input activations included.
 */
export function validateCompressedTensors(dir: string, opts: { tool?: string; expect?: Scheme } = {}): ValidatedCheckpoint {
  const where = opts.tool ? `${opts.tool} output ${dir}` : dir;
  const ckpt = CheckpointTensors.open(dir);
  try {
    const plan = planLayers(dir, ckpt, where);
    const quantized = plan.layers.filter((l) => l.codec !== dense);
    if (quantized.length === 0) throw new UserError(`${where}: quantization_config targets no Linear layer with quantized tensors; nothing was quantized`);
    if (opts.expect) {
      for (const l of quantized) {
        const group = (plan.quantizationConfig.config_groups as Record<string, Args>)[l.groupId];
        const bad = schemeMismatch(opts.expect, group);
        if (bad) throw new UserError(`${where}: layer '${l.name}': ${bad}; the tool did not produce the requested scheme`);
      }
    }
    const qc = plan.quantizationConfig;
    return { dir, format: String(qc.format ?? ''), quantizationConfig: qc, quantized: quantized.map((l) => l.name), compressedTensorsVersion: typeof qc.version === 'string' ? qc.version : null };
  } finally {
    ckpt.close();
  }
}

export { dense, floatQuantized, mxfp4PackQuantized, nvfp4PackQuantized, packQuantized };
