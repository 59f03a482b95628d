/**
 * compressed-tensors checkpoints (the layout vLLM loads; ../shared/reference/compressed-tensors.md).
 *
 * Writer: config.json gets `quantization_config` in compressed-tensors 0.18's shape (one
 * config group targeting Linear, `ignore` = lm_head + layers left in full precision); each
 * quantized Linear's `weight` is replaced by its packed tensors; everything else (embeddings,
 * norms, lm_head, tokenizer and other files) is copied unchanged. Integer codes are packed
 * DENSELY (0.18 layout: 3-bit elements may straddle int32 words; identical to the legacy
 * layout for 2/4/8 bits), and `version: "0.18.0"` says so. The directory is written under a
 * temporary name and renamed into place.
 *
 * Reader: validates quantization_config against the tensors (names, dtypes, shapes) and
 * dequantizes every quantized Linear with the same float32 operations the quantizers use,
 * so quantize -> write -> read gives the quantizer's dequantized weights bit for bit.
 * Legacy 3/5/6/7-bit packing (< 0.18) is read too, chosen by `version` or by shape.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../errors.ts';
import { e4m3ToF32, fromFloat32, type DType } from './dtypes.ts';
import { linearNames, parseModelConfig, type ModelConfig } from './config.ts';
import { printable, readJsonFile } from './json.ts';
import { parseQuantizationConfig, type QuantGroup } from './quantization-config.ts';
import { writeAtomic, type TensorToWrite } from './safetensors.ts';
import { position, requireFinite } from './weights.ts';
import { CheckpointTensors, writeCheckpointTensors } from './tensors.ts';
import type { ActivationFormat, Scheme, WeightFormat } from '../quant/schemes.ts';
import {
  dequantizeWeight, e8m0Byte, e8m0Value, packFp4, packInt32, packedWords, unpackFp4, unpackInt32,
  type PackLayout, type QuantizedWeight, type ScaleDtype,
} from '../quant/formats/index.ts';

export const CT_VERSION = '0.18.0';

type Args = Record<string, unknown>;

function baseArgs(): Args {
  return {
    actorder: null, block_structure: null, dynamic: false, group_size: null, num_bits: 8, observer: 'memoryless_minmax',
    observer_kwargs: {}, scale_dtype: null, strategy: 'tensor', symmetric: true, type: 'int', zp_dtype: null,
  };
}

export function weightArgs(w: WeightFormat): Args {
  const a = baseArgs();
  switch (w.kind) {
    case 'int':
      return { ...a, num_bits: w.bits, type: 'int', symmetric: w.symmetric, strategy: w.groupSize === -1 ? 'channel' : 'group', group_size: w.groupSize === -1 ? null : w.groupSize, zp_dtype: w.symmetric ? null : 'torch.int8' };
    case 'mxfp4':
      return { ...a, num_bits: 4, type: 'float', strategy: 'group', group_size: 32, scale_dtype: 'torch.uint8' };
    case 'nvfp4':
      return { ...a, num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: 16, scale_dtype: 'torch.float8_e4m3fn' };
    case 'fp8':
      return { ...a, num_bits: 8, type: 'float', strategy: w.groupSize === 0 ? 'tensor' : 'channel' };
    case 'none':
      throw new Error('unquantized weights have no args');
  }
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

export function formatName(w: WeightFormat, act: ActivationFormat): string {
  switch (w.kind) {
    case 'int':
      return 'pack-quantized';
    case 'mxfp4':
      return 'mxfp4-pack-quantized';
    case 'nvfp4':
      return 'nvfp4-pack-quantized';
    case 'fp8':
      return act.kind === 'fp8' ? 'float-quantized' : 'naive-quantized';
    case 'none':
      return 'dense';
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

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The tensors that replace `<layer>.weight` for one quantized layer. */
export function layerTensors(name: string, q: QuantizedWeight, opts: { inputScale?: number; inputGlobalScale?: number } = {}): TensorToWrite[] {
  const { rows, cols } = q;
  const ng = Math.ceil(cols / q.groupSize);
  const t = (suffix: string, dtype: DType, shape: number[], data: Uint8Array): TensorToWrite => ({ name: `${name}.${suffix}`, dtype, shape, data });
  const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (q.fmt.kind) {
    case 'int': {
      const b = q.fmt.bits;
      const sym = !q.zeros;
      // Stored values: signed codes + 2^(b-1); auto-round's unsigned asym codes already are.
      const stored = sym ? Uint8Array.from(q.codes as Int8Array, (c) => c + 2 ** (b - 1)) : (q.codes as Uint8Array);
      const out = [
        t('weight_packed', 'I32', [rows, packedWords(cols, b, 'dense')], u8(packInt32(stored, rows, cols, b, 'dense'))),
        t('weight_scale', q.scaleDtype ?? 'F16', [rows, ng], fromFloat32(q.scales, q.scaleDtype ?? 'F16')),
        t('weight_shape', 'I64', [2], fromFloat32([rows, cols], 'I64')),
      ];
      if (!sym) {
        const zt = new Uint8Array(rows * ng); // [ng, rows]: zero points pack along dim 0
        for (let r = 0; r < rows; r++) for (let g = 0; g < ng; g++) zt[g * rows + r] = q.zeros![r * ng + g];
        const W = packedWords(rows, b, 'dense');
        const packed = new Int32Array(packInt32(zt, ng, rows, b, 'dense').buffer);
        const tr = new Int32Array(W * ng);
        for (let g = 0; g < ng; g++) for (let k = 0; k < W; k++) tr[k * ng + g] = packed[g * W + k];
        out.push(t('weight_zero_point', 'I32', [W, ng], u8(tr)));
      }
      return out;
    }
    case 'mxfp4':
      return [
        t('weight_packed', 'U8', [rows, cols / 2], packFp4(q.codes as Uint8Array, rows, cols)),
        t('weight_scale', 'U8', [rows, ng], Uint8Array.from(q.scales, e8m0Byte)),
      ];
    case 'nvfp4': {
      const out = [
        t('weight_packed', 'U8', [rows, cols / 2], packFp4(q.codes as Uint8Array, rows, cols)),
        t('weight_scale', 'F8_E4M3', [rows, ng], fromFloat32(q.scales, 'F8_E4M3')),
        t('weight_global_scale', 'F32', [1], fromFloat32([q.globalScale!], 'F32')),
      ];
      if (opts.inputGlobalScale !== undefined) out.push(t('input_global_scale', 'F32', [1], fromFloat32([opts.inputGlobalScale], 'F32')));
      return out;
    }
    case 'fp8': {
      const out = [
        t('weight', 'F8_E4M3', [rows, cols], q.codes as Uint8Array),
        t('weight_scale', 'F32', q.scales.length === 1 ? [1] : [rows, 1], fromFloat32(q.scales, 'F32')),
      ];
      if (opts.inputScale !== undefined) out.push(t('input_scale', 'F32', [1], fromFloat32([opts.inputScale], 'F32')));
      return out;
    }
    case 'none':
      throw new Error('unquantized layer');
  }
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
  const rawConfig = readJsonFile(join(srcDir, 'config.json'), 'fix config.json');
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
      throw new UserError(`scheme ${scheme.name} has static activations: layer '${name}' needs a calibrated input scale (use AutoRound: quantize --method autoround, run --methods autoround; or a dynamic scheme)`);
    if (needsInputGs && inputGlobalScale === undefined)
      throw new UserError(`scheme ${scheme.name} quantizes activations: layer '${name}' needs a calibrated input global scale (use AutoRound: quantize --method autoround, run --methods autoround; or NVFP4A16)`);
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

/** [out, in] of a Llama-family Linear (decoder projections and an untied lm_head), or null for other modules. */
export function linearDims(cfg: ModelConfig, name: string): [number, number] | null {
  if (name === 'lm_head') return [cfg.vocabSize, cfg.hiddenSize];
  const m = /\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$/.exec(name);
  if (!m) return null;
  const H = cfg.hiddenSize, q = cfg.numHeads * cfg.headDim, kv = cfg.numKvHeads * cfg.headDim, I = cfg.intermediateSize;
  const d: Record<string, [number, number]> = { q_proj: [q, H], k_proj: [kv, H], v_proj: [kv, H], o_proj: [H, q], gate_proj: [I, H], up_proj: [I, H], down_proj: [H, I] };
  return d[m[1]];
}

function versionAtLeast(v: unknown, want: string): boolean | null {
  if (typeof v !== 'string') return null;
  const a = v.split(/[.+-]/).map((x) => parseInt(x, 10));
  const b = want.split('.').map((x) => parseInt(x, 10));
  for (let i = 0; i < 3; i++) if ((a[i] || 0) !== b[i]) return (a[i] || 0) > b[i];
  return true;
}

/** Which compression formats store each weight format (compressed-tensors `compressors/format.py`). */
const FORMATS_FOR: Record<WeightFormat['kind'], readonly string[]> = {
  int: ['pack-quantized'],
  mxfp4: ['mxfp4-pack-quantized'],
  nvfp4: ['nvfp4-pack-quantized'],
  fp8: ['float-quantized', 'naive-quantized'],
  none: ['dense'],
};

export function readCompressedCheckpoint(dir: string): CompressedCheckpoint {
  const cfgPath = join(dir, 'config.json');
  const raw = readJsonFile(cfgPath, 're-export the checkpoint');
  if (raw.quantization_config == null) throw new UserError(`${dir}: config.json has no quantization_config; not a compressed-tensors checkpoint (make one with bench quantize)`);
  const qcfg = parseQuantizationConfig(raw.quantization_config, cfgPath);
  const qc = raw.quantization_config as Record<string, unknown>;
  const cfg = parseModelConfig(raw, cfgPath);
  const ckpt = CheckpointTensors.open(dir);
  const fail = (layer: string, problem: string) => new UserError(printable(`${dir}: layer '${layer}': ${problem}; the checkpoint disagrees with its quantization_config (re-export it)`, 600));
  try {
    const linears = new Set<string>();
    for (let i = 0; i < cfg.numLayers; i++) for (const n of linearNames(i)) linears.add(n);
    if (ckpt.has('lm_head.weight') || !cfg.tieWordEmbeddings) linears.add('lm_head');
    const QSUFFIX = /\.(weight_packed|weight_scale|weight_global_scale|weight_zero_point|weight_shape|weight_g_idx|input_scale|input_global_scale)$/;
    const withQTensors = new Set<string>();
    for (const n of ckpt.names()) {
      const m = QSUFFIX.exec(n);
      if (m) withQTensors.add(n.slice(0, m.index));
    }
    for (const name of withQTensors) if (!linears.has(name)) throw fail(name, `has quantized tensors but is not a Linear of this ${cfg.modelType} model`);
    const out: CompressedCheckpoint = { config: cfg, quantizationConfig: qc, weights: new Map(), shapes: new Map(), formats: new Map(), activations: new Map(), quantized: [] };
    for (const name of [...linears].sort()) {
      const ignored = qcfg.ignore.some((p) => p.test(name));
      const group = ignored ? undefined : qcfg.groups.find((g) => g.targets.some((t) => t.text === 'Linear' || t.test(name)));
      if (!group || !group.weights) {
        if (withQTensors.has(name)) throw fail(name, `has quantized tensors but is ${ignored ? 'listed in ignore' : 'not targeted by any config group'}`);
        continue;
      }
      const { q, act } = readLayer(ckpt, name, group, cfg, qcfg.version, fail);
      const w = dequantizeWeight(q);
      requireFinite(w, [q.rows, q.cols], `${dir}: layer '${name}': the dequantized weight`, 'codes times scales overflow float32; the checkpoint is corrupt (re-export it)');
      out.weights.set(`${name}.weight`, w);
      out.shapes.set(`${name}.weight`, [q.rows, q.cols]);
      out.formats.set(name, q.fmt);
      out.activations.set(name, act);
      out.quantized.push(name);
    }
    return out;
  } finally {
    ckpt.close();
  }
}

function readLayer(ckpt: CheckpointTensors, name: string, group: QuantGroup, cfg: ModelConfig, version: unknown, fail: (l: string, p: string) => UserError) {
  const w = group.weights!;
  const bits = w.numBits;
  const type = w.type;
  const strategy = w.strategy;
  const need = (suffix: string, dtypes: DType[], shape?: number[]) => {
    const n = `${name}.${suffix}`;
    if (!ckpt.has(n)) throw fail(name, `missing tensor '${suffix}' that ${type}${bits} weights need`);
    const info = ckpt.info(n);
    if (!dtypes.includes(info.dtype)) throw fail(name, `tensor '${suffix}' is ${info.dtype}, expected ${dtypes.join(' or ')}`);
    if (shape && (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])))
      throw fail(name, `tensor '${suffix}' has shape [${info.shape}], expected [${shape}]`);
    return info;
  };
  const forbid = (suffix: string, why: string) => {
    if (ckpt.has(`${name}.${suffix}`)) throw fail(name, `has '${suffix}' but ${why}`);
  };
  const corrupt = (problem: string) => new UserError(printable(`${ckpt.dir}: layer '${name}': ${problem}; the checkpoint is corrupt; re-download or re-export it`, 600));
  /** Float tensor values, every one finite (a NaN scale makes the whole layer NaN). */
  const finite = (suffix: string, values: Float32Array, shape: readonly number[]) => {
    requireFinite(values, shape, `${ckpt.dir}: layer '${name}': tensor '${suffix}'`);
    return values;
  };
  const expected = linearDims(cfg, name);
  const checkDims = (rows: number, cols: number) => {
    if (expected && (expected[0] !== rows || expected[1] !== cols)) throw fail(name, `weight is [${rows}, ${cols}] but config.json implies [${expected}]`);
  };
  const scalar = (suffix: string) => {
    const info = need(suffix, ['F32', 'BF16', 'F16']);
    if (prod(info.shape) !== 1) throw fail(name, `tensor '${suffix}' has shape [${info.shape}], expected one value`);
    const v = ckpt.readFloat32(`${name}.${suffix}`)[0];
    if (!(v > 0) || !Number.isFinite(v)) throw fail(name, `${suffix} is ${v}, expected a positive finite number`);
    return v;
  };
  forbid('weight_g_idx', 'activation ordering (g_idx) is not applied by this reader');
  let q: Omit<QuantizedWeight, 'dequantized'>;
  if (w.dynamic !== false) throw fail(name, `weights with dynamic ${JSON.stringify(w.dynamic)} are not supported (weights are static)`);
  if (type === 'int') {
    if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw fail(name, `num_bits ${JSON.stringify(bits)} is not an integer in 1..8`);
    if (strategy !== 'group' && strategy !== 'channel') throw fail(name, `int weights with strategy '${strategy}' are not supported (group or channel)`);
    const shapeInfo = ckpt.has(`${name}.weight_shape`) ? need('weight_shape', ['I64', 'I32'], [2]) : null;
    const [rows, cols] = shapeInfo ? Array.from(ckpt.readFloat32(`${name}.weight_shape`)) : expected ?? [0, 0];
    if (!rows) throw fail(name, 'missing tensor \'weight_shape\'');
    if (!expected && !(Number.isSafeInteger(rows) && Number.isSafeInteger(cols) && rows > 0 && cols > 0)) throw fail(name, `weight_shape [${rows}, ${cols}] is not a valid shape`);
    checkDims(rows, cols);
    const G = strategy === 'channel' ? cols : w.groupSize!;
    const ng = Math.ceil(cols / G);
    const packedInfo = need('weight_packed', ['I32']);
    const newer = versionAtLeast(version, '0.18.0');
    const dense = packedWords(cols, bits, 'dense');
    const legacy = packedWords(cols, bits, 'legacy');
    let layout: PackLayout = newer === false ? 'legacy' : 'dense';
    if (newer === null && packedInfo.shape[1] !== dense && packedInfo.shape[1] === legacy) layout = 'legacy';
    need('weight_packed', ['I32'], [rows, packedWords(cols, bits, layout)]);
    const scaleInfo = need('weight_scale', ['F16', 'BF16', 'F32'], [rows, ng]);
    const packed = new Int32Array(ckpt.readBytes(`${name}.weight_packed`).buffer);
    const stored = unpackInt32(packed, rows, cols, bits, layout);
    const sym = w.symmetric;
    let codes: Int8Array | Uint8Array = stored;
    let zeros: Uint8Array | undefined;
    if (sym) {
      forbid('weight_zero_point', 'the scheme is symmetric (vLLM refuses zero points for symmetric schemes)');
      codes = Int8Array.from(stored, (u) => u - 2 ** (bits - 1));
    } else {
      const W = packedWords(rows, bits, layout);
      need('weight_zero_point', ['I32'], [W, ng]);
      const zp = new Int32Array(ckpt.readBytes(`${name}.weight_zero_point`).buffer);
      const tr = new Int32Array(W * ng);
      for (let k = 0; k < W; k++) for (let g = 0; g < ng; g++) tr[g * W + k] = zp[k * ng + g];
      const zt = unpackInt32(tr, ng, rows, bits, layout); // [ng, rows]
      zeros = new Uint8Array(rows * ng);
      for (let g = 0; g < ng; g++) for (let r = 0; r < rows; r++) zeros[r * ng + g] = zt[g * rows + r];
    }
    const fmt: WeightFormat = { kind: 'int', bits, groupSize: strategy === 'channel' ? -1 : G, symmetric: sym };
    const scales = finite('weight_scale', ckpt.readFloat32(`${name}.weight_scale`), [rows, ng]);
    q = { fmt, rows, cols, groupSize: G, codes, zeros, scales, scaleDtype: scaleInfo.dtype as ScaleDtype };
  } else if (type === 'float' && bits === 4) {
    const G = w.groupSize ?? 0;
    const kind = G === 32 && strategy === 'group' ? 'mxfp4' : G === 16 && strategy === 'tensor_group' ? 'nvfp4' : null;
    if (!kind) throw fail(name, `float4 weights with strategy '${strategy}' and group_size ${G} are neither MXFP4 (group, 32) nor NVFP4 (tensor_group, 16)`);
    const pinfo = need('weight_packed', ['U8']);
    if (pinfo.shape.length !== 2) throw fail(name, `tensor 'weight_packed' has shape [${pinfo.shape}], expected 2-D`);
    const [rows, cols] = [pinfo.shape[0], pinfo.shape[1] * 2];
    checkDims(rows, cols);
    const ng = Math.ceil(cols / G);
    const codes = unpackFp4(ckpt.readBytes(`${name}.weight_packed`), rows, cols);
    const fmt: WeightFormat = { kind, bits: 4, groupSize: G, symmetric: true };
    if (kind === 'mxfp4') {
      need('weight_scale', ['U8'], [rows, ng]);
      const bytes = ckpt.readBytes(`${name}.weight_scale`);
      const nan = bytes.indexOf(255);
      if (nan >= 0) throw corrupt(`tensor 'weight_scale' has NaN (E8M0 byte 255) at ${position(nan, [rows, ng])}`);
      q = { fmt, rows, cols, groupSize: G, codes, scales: Float32Array.from(bytes, e8m0Value) };
    } else {
      need('weight_scale', ['F8_E4M3'], [rows, ng]);
      const scales = finite('weight_scale', Float32Array.from(ckpt.readBytes(`${name}.weight_scale`), e4m3ToF32), [rows, ng]);
      const gs = scalar('weight_global_scale');
      q = { fmt, rows, cols, groupSize: G, codes, scales, globalScale: gs };
    }
  } else if (type === 'float' && bits === 8) {
    const info = need('weight', ['F8_E4M3']);
    if (info.shape.length !== 2) throw fail(name, `tensor 'weight' has shape [${info.shape}], expected 2-D`);
    const [rows, cols] = info.shape;
    checkDims(rows, cols);
    if (strategy !== 'channel' && strategy !== 'tensor') throw fail(name, `FP8 weight strategy '${strategy}' is not supported (channel or tensor)`);
    const sinfo = need('weight_scale', ['F32', 'BF16', 'F16'], strategy === 'channel' ? [rows, 1] : undefined);
    if (strategy === 'tensor' && prod(sinfo.shape) !== 1) throw fail(name, `tensor 'weight_scale' has shape [${sinfo.shape}], expected one value for strategy tensor`);
    const codes = ckpt.readBytes(`${name}.weight`);
    for (let i = 0; i < codes.length; i++) {
      if ((codes[i] & 0x7f) === 0x7f) throw corrupt(`tensor 'weight' has NaN (float8_e4m3fn code 0x${codes[i].toString(16)}) at ${position(i, [rows, cols])}`);
    }
    const scales = finite('weight_scale', ckpt.readFloat32(`${name}.weight_scale`), sinfo.shape);
    q = { fmt: { kind: 'fp8', bits: 8, groupSize: strategy === 'tensor' ? 0 : -1, symmetric: true }, rows, cols, groupSize: cols, codes, scales };
  } else {
    throw fail(name, `weights of type ${type} with ${bits} bits are not supported`);
  }
  if (group.format !== null && !FORMATS_FOR[q.fmt.kind].includes(group.format))
    throw fail(name, `format '${group.format}' does not store ${q.fmt.kind} weights (expected ${FORMATS_FOR[q.fmt.kind].join(' or ')})`);
  const a = group.inputActivations;
  // compressed-tensors names the format from the scheme (compressors/format.py): FP8 weights
  // are float-quantized with input activations and naive-quantized without; pack-quantized
  // is weight-only. A declared format that disagrees means input_activations was lost or
  // added, which the tensors alone cannot show for dynamic activations.
  if (group.format === 'float-quantized' && !a) throw fail(name, "format 'float-quantized' implies quantized input activations, but the group has none");
  if (group.format === 'naive-quantized' && a) throw fail(name, "format 'naive-quantized' is weight-only, but the group quantizes input activations");
  if (group.format === 'pack-quantized' && a) throw fail(name, "format 'pack-quantized' is weight-only, but the group quantizes input activations");
  let act: LayerActivation = { kind: 'none', dynamic: true, strategy: null };
  if (a) {
    if (a.type === 'float' && a.numBits === 8) {
      if (a.dynamic === true && a.strategy === 'token') act = { kind: 'fp8', dynamic: true, strategy: a.strategy };
      else if (a.dynamic === false && a.strategy === 'tensor') act = { kind: 'fp8', dynamic: false, strategy: a.strategy, inputScale: scalar('input_scale') };
      else throw fail(name, `FP8 input activations with strategy '${a.strategy}' and dynamic ${JSON.stringify(a.dynamic)} are not supported (token+dynamic or tensor+static)`);
    } else if (a.type === 'float' && a.numBits === 4) {
      if (a.strategy !== 'tensor_group' || a.groupSize !== 16 || a.dynamic !== 'local')
        throw fail(name, `FP4 input activations must be NVFP4 (strategy tensor_group, group_size 16, dynamic 'local'), got strategy '${a.strategy}', group_size ${a.groupSize}, dynamic ${JSON.stringify(a.dynamic)}`);
      act = { kind: 'nvfp4', dynamic: 'local', strategy: a.strategy, inputGlobalScale: scalar('input_global_scale') };
    } else {
      throw fail(name, `input activations of type ${a.type} with ${a.numBits} bits are not supported`);
    }
  }
  if (act.inputScale === undefined) forbid('input_scale', 'the group has no static FP8 input activations');
  if (act.inputGlobalScale === undefined) forbid('input_global_scale', 'the group has no NVFP4 input activations');
  if (q.fmt.kind !== 'nvfp4') forbid('weight_global_scale', `${q.fmt.kind} weights have no global scale`);
  return { q, act };
}
