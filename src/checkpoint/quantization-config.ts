/**
 * `quantization_config` of a compressed-tensors checkpoint, validated before any tensor is
 * read. Field names and enum values are those of compressed-tensors 0.18
 * (`quantization/quant_args.py`, `quant_config.py`, `config/base.py` CompressionFormat).
 * A value outside an enum is refused by name instead of being ignored: an unknown
 * strategy or format read with defaults would give a different number from vLLM's.
 * Patterns in `ignore`/`targets` (`re:<regex>`) are compiled once, here, so a broken regex
 * is a one-line error naming the entry.
 */
import { UserError } from '../errors.ts';
import { isObject, printable, show } from './json.ts';

export const FORMATS = [
  'dense', 'int-quantized', 'float-quantized', 'naive-quantized', 'pack-quantized', 'nvfp4-pack-quantized',
  'mxfp4-pack-quantized', 'mxfp8-quantized', 'mixed-precision', 'sparse-bitmask', 'sparse-24-bitmask', 'marlin-24',
] as const;
export const STATUSES = ['initialized', 'calibration', 'frozen', 'compressed'] as const;
export const STRATEGIES = ['tensor', 'channel', 'group', 'block', 'token', 'tensor_group', 'attn_head'] as const;
export const TYPES = ['int', 'float'] as const;
/** ActivationOrdering: `weight`/`static` reorder only during calibration; `group`/`dynamic` store a g_idx permutation. */
export const ACTORDERS = ['group', 'weight', 'static', 'dynamic'] as const;

const FIX = 'fix quantization_config in config.json or re-export the checkpoint';

export type Strategy = (typeof STRATEGIES)[number];

export interface QuantArgs {
  numBits: number;
  type: 'int' | 'float';
  symmetric: boolean;
  strategy: Strategy;
  /** Positive group size, or null (channel/tensor/token strategies). */
  groupSize: number | null;
  dynamic: boolean | 'local';
}

/** A `re:<regex>` or exact module name (or a class name such as `Linear` in targets). */
export interface Pattern {
  text: string;
  test(name: string): boolean;
}

export interface QuantGroup {
  name: string;
  targets: Pattern[];
  weights: QuantArgs | null;
  inputActivations: QuantArgs | null;
  /** The group's compression format, else the top-level one unless that is mixed-precision. */
  format: string | null;
}

export interface QuantConfig {
  format: string | null;
  ignore: Pattern[];
  groups: QuantGroup[];
  version: unknown;
}

function oneOf<T extends string>(v: unknown, values: readonly T[], what: string, where: string): T {
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  throw new UserError(printable(`${where}: ${what} ${show(v)} is not one of ${values.join(', ')}; the quantization_config is corrupt or from an unsupported compressed-tensors version`, 600));
}

/** Compile an ignore/target entry; `what` is its JSON path for messages. */
export function compilePattern(p: unknown, what: string, where: string): Pattern {
  if (typeof p !== 'string' || p === '') throw new UserError(printable(`${where}: ${what} is ${show(p)}, expected a module name or 're:<regex>'; ${FIX}`, 600));
  if (!p.startsWith('re:')) return { text: p, test: (name) => name === p };
  let re: RegExp;
  try {
    re = new RegExp(p.slice(3));
  } catch (e) {
    throw new UserError(printable(`${where}: ${what} ${show(p)} is not a valid regular expression (${(e as Error).message}); fix the pattern`, 600), 2, { cause: e });
  }
  // compressed-tensors matches with re.match: anchored at the start of the name.
  return { text: p, test: (name) => re.exec(name)?.index === 0 };
}

function patterns(v: unknown, what: string, where: string, required: boolean): Pattern[] {
  if (v == null && !required) return [];
  if (!Array.isArray(v) || (required && v.length === 0)) throw new UserError(printable(`${where}: ${what} is ${show(v)}, expected ${required ? 'a non-empty' : 'an'} array of module names or 're:<regex>' patterns; ${FIX}`, 600));
  return v.map((p, i) => compilePattern(p, `${what}[${i}]`, where));
}

/** QuantizationArgs, with compressed-tensors' defaults and strategy inference. */
function quantArgs(v: unknown, what: string, where: string): QuantArgs | null {
  if (v == null) return null;
  if (!isObject(v)) throw new UserError(printable(`${where}: ${what} is ${show(v)}, expected an object of quantization arguments or null; ${FIX}`, 600));
  const bad = (field: string, expected: string) => new UserError(printable(`${where}: ${what}.${field} is ${show(v[field])}, expected ${expected}; ${FIX}`, 600));
  const numBits = v.num_bits ?? 8;
  if (typeof numBits !== 'number' || !Number.isInteger(numBits) || numBits < 1 || numBits > 8) throw bad('num_bits', 'an integer 1..8');
  const type = oneOf(v.type ?? 'int', TYPES, `${what}.type`, where);
  const symmetric = v.symmetric ?? true;
  if (typeof symmetric !== 'boolean') throw bad('symmetric', 'true or false');
  const gs = v.group_size ?? null;
  if (gs !== null && !(typeof gs === 'number' && Number.isInteger(gs) && (gs > 0 || gs === -1))) throw bad('group_size', 'a positive integer, -1 or null');
  const strategy: Strategy = v.strategy == null ? (gs === null ? 'tensor' : gs > 0 ? 'group' : 'channel') : oneOf(v.strategy, STRATEGIES, `${what}.strategy`, where);
  const groupSize = gs !== null && gs > 0 ? gs : null;
  if ((strategy === 'group' || strategy === 'tensor_group') && groupSize === null) throw bad('group_size', `a positive integer for strategy '${strategy}'`);
  const dynamic = v.dynamic ?? false;
  if (dynamic !== true && dynamic !== false && dynamic !== 'local') throw bad('dynamic', "true, false or 'local'");
  if (v.actorder != null) {
    const a = oneOf(v.actorder, ACTORDERS, `${what}.actorder`, where);
    if (a === 'group' || a === 'dynamic') throw new UserError(`${where}: ${what}.actorder '${a}' stores a weight_g_idx permutation, which this reader does not apply; re-export without group activation ordering`);
  }
  return { numBits, type, symmetric, strategy, groupSize, dynamic };
}

function emptyOrNull(v: unknown): boolean {
  return v == null || (isObject(v) && Object.keys(v).length === 0);
}

/** Validate `quantization_config`; `where` names config.json in messages. */
export function parseQuantizationConfig(qc: unknown, where: string): QuantConfig {
  if (!isObject(qc)) throw new UserError(`${where}: no quantization_config object; not a compressed-tensors checkpoint (make one with bench quantize)`);
  if (qc.quant_method !== 'compressed-tensors') throw new UserError(printable(`${where}: quantization_config.quant_method is ${show(qc.quant_method)}, expected "compressed-tensors"; ${FIX}`, 600));
  const format = qc.format == null ? null : oneOf(qc.format, FORMATS, 'quantization_config.format', where);
  if (qc.quantization_status != null) {
    const status = oneOf(qc.quantization_status, STATUSES, 'quantization_config.quantization_status', where);
    if (status !== 'compressed') throw new UserError(`${where}: quantization_status '${status}': the weights are not stored compressed; save the model compressed (save_compressed=True)`);
  }
  if (qc.kv_cache_scheme != null) throw new UserError(`${where}: kv_cache_scheme is set; KV-cache quantization is not emulated here, so the numbers would not match vLLM's`);
  if (!emptyOrNull(qc.sparsity_config)) throw new UserError(`${where}: sparsity_config is set; sparse compressed-tensors checkpoints are not supported`);
  const tc = qc.transform_config;
  if (tc != null && !(isObject(tc) && emptyOrNull(tc.config_groups))) throw new UserError(`${where}: transform_config declares transforms, which this reader does not apply`);
  const groupsRaw = qc.config_groups;
  if (!isObject(groupsRaw) || Object.keys(groupsRaw).length === 0) throw new UserError(`${where}: quantization_config has no config_groups; ${FIX}`);
  const groups: QuantGroup[] = [];
  for (const [name, g] of Object.entries(groupsRaw)) {
    const what = `config_groups.${printable(name, 60)}`;
    if (!isObject(g)) throw new UserError(printable(`${where}: ${what} is ${show(g)}, expected an object with targets and weights; ${FIX}`, 600));
    if (g.output_activations != null) throw new UserError(`${where}: ${what}.output_activations is set; output activation quantization is not supported`);
    groups.push({
      name,
      targets: patterns(g.targets, `${what}.targets`, where, true),
      weights: quantArgs(g.weights, `${what}.weights`, where),
      inputActivations: quantArgs(g.input_activations, `${what}.input_activations`, where),
      format: g.format != null ? oneOf(g.format, FORMATS, `${what}.format`, where) : format === 'mixed-precision' ? null : format,
    });
  }
  return { format, ignore: patterns(qc.ignore, 'quantization_config.ignore', where, false), groups, version: qc.version };
}
