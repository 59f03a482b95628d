/**
 * Before an external quantizer's job counts as done: its output must be a compressed-tensors
 * checkpoint whose config.json has a `quantization_config` and whose safetensors hold every
 * tensor that config promises for every targeted Linear (names, dtypes, leading dims).
 * Headers only: no weight is read, so this is cheap for 70B checkpoints too. For a deep
 * check (dequantize everything) use readCompressedCheckpoint of src/checkpoint.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { linearDims } from '../../checkpoint/compressed-tensors.ts';
import { parseQuantizationConfig } from '../../checkpoint/quantization-config.ts';
import { linearNames, parseModelConfig } from '../../checkpoint/config.ts';
import { CheckpointTensors } from '../../checkpoint/tensors.ts';
import { UserError } from '../../errors.ts';
import type { Scheme } from '../schemes.ts';

type Obj = Record<string, unknown>;

export interface ValidatedCheckpoint {
  dir: string;
  format: string;
  quantizationConfig: Obj;
  /** Module names whose quantized tensors were found. */
  quantized: string[];
  /** compressed-tensors version recorded in the config, when present. */
  compressedTensorsVersion: string | null;
}

function matches(name: string, pattern: string): boolean {
  return pattern.startsWith('re:') ? new RegExp(pattern.slice(3)).test(name) : name === pattern || name.endsWith(`.${pattern}`);
}

/** Tensors (suffix -> allowed dtypes) that a config group promises per Linear. */
function promised(format: string, group: Obj): [string, string[]][] {
  const w = (group.weights ?? {}) as Obj;
  const act = group.input_activations as Obj | null | undefined;
  const sym = w.symmetric !== false;
  switch (format) {
    case 'pack-quantized':
      return [['weight_packed', ['I32']], ['weight_scale', ['F16', 'BF16', 'F32']], ['weight_shape', ['I64', 'I32']], ...(sym ? [] : [['weight_zero_point', ['I32']] as [string, string[]]])];
    case 'nvfp4-pack-quantized':
      return [['weight_packed', ['U8']], ['weight_scale', ['F8_E4M3']], ['weight_global_scale', ['F32']], ...(act ? [['input_global_scale', ['F32']] as [string, string[]]] : [])];
    case 'mxfp4-pack-quantized':
      return [['weight_packed', ['U8']], ['weight_scale', ['U8']]];
    case 'mxfp8-quantized':
      return [['weight', ['F8_E4M3']], ['weight_scale', ['U8']]];
    case 'float-quantized':
      return [['weight', ['F8_E4M3']], ['weight_scale', ['F32', 'BF16', 'F16']], ...(act && act.dynamic === false ? [['input_scale', ['F32', 'BF16', 'F16']] as [string, string[]]] : [])];
    case 'int-quantized':
      return [['weight', ['I8']], ['weight_scale', ['F32', 'BF16', 'F16']]];
    case 'naive-quantized':
      return [['weight', ['F8_E4M3', 'I8']], ['weight_scale', ['F32', 'BF16', 'F16']]];
    default:
      throw new UserError(`quantization format '${format}' is not one lowbit-bench can validate (pack-quantized, nvfp4-pack-quantized, mxfp4-pack-quantized, float-quantized, ...)`);
  }
}

/** Why a config group's weights are not `scheme`'s, or null when they match. */
export function schemeMismatch(scheme: Scheme, weights: Obj): string | null {
  const w = scheme.weights;
  const type = weights.type;
  const bits = weights.num_bits;
  const got = `${type}${bits} group ${weights.group_size ?? weights.strategy}`;
  switch (w.kind) {
    case 'none':
      return 'the baseline scheme has no quantized weights';
    case 'int':
      if (type !== 'int' || bits !== w.bits) return `weights are ${got}, ${scheme.name} needs int${w.bits}`;
      if (w.groupSize > 0 && weights.group_size !== w.groupSize) return `weights are ${got}, ${scheme.name} needs group ${w.groupSize}`;
      if ((weights.symmetric !== false) !== w.symmetric) return `weights are ${weights.symmetric === false ? 'asymmetric' : 'symmetric'}, ${scheme.name} is not`;
      return null;
    case 'mxfp4':
    case 'nvfp4':
      return type === 'float' && bits === 4 && weights.group_size === w.groupSize ? null : `weights are ${got}, ${scheme.name} needs float4 group ${w.groupSize}`;
    case 'fp8':
      return type === 'float' && bits === 8 ? null : `weights are ${got}, ${scheme.name} needs float8`;
  }
}

/**
 * Why a config group's `input_activations` are not `scheme`'s, or null when they match: a
 * weight-only scheme needs none (a checkpoint that quantizes activations must never be
 * scored as A16), an activation scheme needs them with its type, bits and dynamic flag.
 */
export function activationMismatch(scheme: Scheme, act: Obj | null | undefined): string | null {
  const a = scheme.activations;
  const present = act !== null && act !== undefined;
  if (a.kind === 'none') return present ? `input_activations are quantized (${act.type}${act.num_bits}${act.dynamic ? ' dynamic' : ''}), ${scheme.name} has 16-bit activations` : null;
  if (!present) return `input_activations are not quantized, ${scheme.name} quantizes them`;
  const bits = a.kind === 'fp8' ? 8 : 4;
  if (act.type !== 'float' || act.num_bits !== bits) return `input_activations are ${act.type}${act.num_bits}, ${scheme.name} needs float${bits}`;
  // NVFP4 activations: per-forward block scales under a calibrated global scale, written `dynamic: "local"`.
  const dynamic = act.dynamic === true || act.dynamic === 'local';
  if (dynamic !== a.dynamic) return `input_activations are ${dynamic ? 'dynamic' : 'static'}, ${scheme.name} needs ${a.dynamic ? 'dynamic' : 'static'}`;
  return null;
}

export function validateQuantizedCheckpoint(dir: string, tool: string, expect?: Scheme): ValidatedCheckpoint {
  const cfgPath = join(dir, 'config.json');
  let raw: Obj;
  try {
    raw = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new UserError(`${tool} output ${dir} has no readable config.json (${(e as Error).message.split('\n')[0]}); the job did not finish: see its log`);
  }
  const qc = raw.quantization_config as Obj | undefined;
  if (!qc || typeof qc !== 'object') throw new UserError(`${tool} output ${cfgPath} has no quantization_config; export with --format llm_compressor (compressed-tensors)`);
  // The reader's checks (enum values, config groups, ignore/targets patterns) first, so a bad
  // pattern or group is a one-line error here rather than a crash below.
  if (qc.quant_method === 'compressed-tensors') parseQuantizationConfig(qc, `${tool} output ${cfgPath}`);
  if (qc.quant_method !== 'compressed-tensors') throw new UserError(`${tool} output ${cfgPath} has quant_method ${JSON.stringify(qc.quant_method)}, not "compressed-tensors"; export with --format llm_compressor`);
  const groups = qc.config_groups as Record<string, Obj> | undefined;
  if (!groups || typeof groups !== 'object' || Object.keys(groups).length === 0) throw new UserError(`${tool} output ${cfgPath}: quantization_config has no config_groups`);
  const ignore = Array.isArray(qc.ignore) ? (qc.ignore as string[]) : [];
  const cfg = parseModelConfig(raw, cfgPath);
  const ckpt = CheckpointTensors.open(dir);
  const quantized: string[] = [];
  try {
    for (let i = 0; i < cfg.numLayers; i++) {
      for (const name of linearNames(i)) {
        if (ignore.some((p) => matches(name, p))) continue;
        const group = Object.values(groups).find((g) => Array.isArray(g.targets) && (g.targets as string[]).some((t) => t === 'Linear' || matches(name, t)));
        if (!group || !group.weights) continue;
        const format = String(group.format ?? qc.format ?? '');
        const bad = expect ? schemeMismatch(expect, group.weights as Obj) ?? activationMismatch(expect, group.input_activations as Obj | null | undefined) : null;
        if (bad) throw new UserError(`${tool} output ${dir}: layer '${name}': ${bad}; the tool did not produce the requested scheme`);
        const dims = linearDims(cfg, name);
        for (const [suffix, dtypes] of promised(format, group)) {
          const t = `${name}.${suffix}`;
          if (!ckpt.has(t)) throw new UserError(`${tool} output ${dir}: tensor '${t}' is missing although quantization_config (${format}) promises it; the export is incomplete, rerun the job`);
          const info = ckpt.info(t);
          if (!dtypes.includes(info.dtype)) throw new UserError(`${tool} output ${dir}: tensor '${t}' is ${info.dtype}, ${format} needs ${dtypes.join(' or ')}`);
          const rowsWanted = dims && ['weight_packed', 'weight_scale', 'weight'].includes(suffix) && info.shape.length === 2 ? dims[0] : null;
          if (rowsWanted !== null && info.shape[0] !== rowsWanted) throw new UserError(`${tool} output ${dir}: tensor '${t}' has ${info.shape[0]} rows, config.json implies ${rowsWanted}`);
        }
        if (format !== 'float-quantized' && format !== 'naive-quantized' && format !== 'int-quantized' && format !== 'mxfp8-quantized' && ckpt.has(`${name}.weight`))
          throw new UserError(`${tool} output ${dir}: '${name}.weight' is still dense next to its packed form; the export is inconsistent`);
        quantized.push(name);
      }
    }
  } finally {
    ckpt.close();
  }
  if (quantized.length === 0) throw new UserError(`${tool} output ${dir}: quantization_config targets no decoder Linear layer; nothing was quantized`);
  return { dir, format: String(qc.format ?? ''), quantizationConfig: qc, quantized, compressedTensorsVersion: typeof qc.version === 'string' ? qc.version : null };
}
