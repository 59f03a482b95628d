/**
 * RTN baseline: auto-round's pure RTN (iters 0, disable_opt_rtn): every Linear inside the
 * decoder blocks quantized with V = 0, α = β = 1. Embeddings and lm_head are not decoder
 * Linears and stay in full precision; `ignore` keeps more layers in full precision;
 * `skipUnaligned` applies auto-round's layer selection (autoRoundSkips; int: skip layers whose in or out is not a
 * multiple of 32), off by default. NVFP4 layers fused by vLLM (q/k/v, gate/up) share one
 * global scale, the smallest of the group (largest amax), as auto-round and llm-compressor do.
 */
import { UserError } from '../../errors.ts';
import { readModelConfig, linearNames } from '../../checkpoint/config.ts';
import { roundToBf16 } from '../../checkpoint/dtypes.ts';
import { CheckpointTensors } from '../../checkpoint/tensors.ts';
import { linearDims } from '../../checkpoint/compressed-tensors.ts';
import { readFloatWeight } from '../../checkpoint/weights.ts';
import type { Scheme, WeightFormat } from '../schemes.ts';
import { absMax, fusedGlobalScale, intGroupSize, quantizeWeight, type QuantizedWeight, type ScaleDtype } from '../formats/index.ts';

export interface LayerWeight {
  w: Float32Array;
  rows: number;
  cols: number;
}

export interface RtnOptions {
  /** Layer names kept in full precision: exact, substring, or "re:<regex>". */
  ignore?: readonly string[];
  /**
   * auto-round's layer-selection rule (auto_round/compressors/layer_config_resolver.py,
   * 0.16.1): integer weight-only schemes leave a Linear in 16 bits when its out or in
   * features are not multiples of 32; MXFP4/NVFP4 when its in features are not a multiple
   * of the block (32 or 16). Off by default: lowbit-bench quantizes every decoder Linear,
   * padding the last group.
   */
  skipUnaligned?: boolean;
  /**
   * Quantize the bfloat16 copy of the weights, as auto-round 0.16.1 does on a CPU: it loads a
   * float32 model in bfloat16 and computes its RTN scales and codes from that copy (found by
   * comparing its output with ours; --disable_amp and --model_dtype float32 do not change it).
   */
  bf16Weights?: boolean;
  /** Integer formats: dtype of the stored scales (the quantizer rounds to it). */
  scaleDtype?: ScaleDtype;
  /** Progress line per layer (stderr in the CLI). */
  onLayer?: (name: string, i: number, n: number) => void;
}

export interface QuantizedLayers {
  /** Quantized layers by module name (e.g. model.layers.0.self_attn.q_proj). */
  layers: Map<string, QuantizedWeight>;
  /** Names of the quantized layers, in model order. */
  quantized: string[];
  /** Layers left in full precision, with why. */
  skipped: { name: string; reason: string }[];
  /** Calibrated max |input activation| per layer, when the method collects it (static activation schemes). */
  inputAmax?: Map<string, number>;
}

export function matchesIgnore(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.startsWith('re:') ? ignoreRegex(p).test(name) : name === p || name.includes(p)));
}

function ignoreRegex(p: string): RegExp {
  try {
    return new RegExp(p.slice(3));
  } catch (e) {
    throw new UserError(`--ignore ${JSON.stringify(p)}: not a valid regular expression (${(e as Error).message}); fix the pattern`, 2, { cause: e });
  }
}

/** Which fused group a layer belongs to for NVFP4 global scales (null if none). */
export function fusionKey(name: string): string | null {
  const m = /^(.*)\.(self_attn\.(q|k|v)_proj|mlp\.(gate|up)_proj)$/.exec(name);
  if (!m) return null;
  return m[3] ? `${m[1]}.self_attn.qkv` : `${m[1]}.mlp.gate_up`;
}

/** Why auto-round leaves a [rows, cols] Linear unquantized in format `w`, or null (see RtnOptions.skipUnaligned). */
export function autoRoundSkips(w: WeightFormat, rows: number, cols: number): string | null {
  if (w.kind === 'int' && (rows % 32 !== 0 || cols % 32 !== 0)) return `shape [${rows}, ${cols}] not divisible by 32`;
  if ((w.kind === 'mxfp4' || w.kind === 'nvfp4') && cols % w.groupSize !== 0) return `input width ${cols} not divisible by the block ${w.groupSize}`;
  return null;
}

/** Decide which layers are quantized (names in model order) and which are skipped. */
export function selectLayers(names: readonly string[], dims: (name: string) => { rows: number; cols: number }, fmt: WeightFormat, opts: RtnOptions) {
  const quantized: string[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const name of names) {
    const why = opts.skipUnaligned ? autoRoundSkips(fmt, dims(name).rows, dims(name).cols) : null;
    if (opts.ignore && matchesIgnore(name, opts.ignore)) skipped.push({ name, reason: 'ignored' });
    else if (why) skipped.push({ name, reason: why });
    else quantized.push(name);
  }
  return { quantized, skipped };
}

/** RTN over in-memory weights (the benchmark and tests use this directly). */
export function rtnQuantizeWeights(source: ReadonlyMap<string, LayerWeight>, scheme: Scheme, opts: RtnOptions = {}): QuantizedLayers {
  if (scheme.weights.kind === 'none') throw new UserError(`scheme ${scheme.name} is not quantized; there is nothing for RTN to do`);
  const weights = opts.bf16Weights ? new Map([...source].map(([n, l]) => [n, { ...l, w: Float32Array.from(l.w, roundToBf16) }])) : source;
  const names = [...weights.keys()];
  const { quantized, skipped } = selectLayers(names, (n) => weights.get(n)!, scheme.weights, opts);
  const globalScales = new Map<string, number>();
  if (scheme.weights.kind === 'nvfp4') {
    const groups = new Map<string, number[]>();
    for (const n of quantized) {
      const k = fusionKey(n) ?? n;
      groups.set(k, [...(groups.get(k) ?? []), absMax(weights.get(n)!.w)]);
    }
    for (const n of quantized) globalScales.set(n, fusedGlobalScale(groups.get(fusionKey(n) ?? n)!));
  }
  // Fail on a group size that does not fit before spending time on any layer.
  if (scheme.weights.kind === 'int') for (const n of quantized) intGroupSize(scheme.weights, weights.get(n)!.cols, n);
  const layers = new Map<string, QuantizedWeight>();
  quantized.forEach((n, i) => {
    opts.onLayer?.(n, i, quantized.length);
    const { w, rows, cols } = weights.get(n)!;
    layers.set(n, quantizeWeight(w, rows, cols, scheme.weights, { scaleDtype: opts.scaleDtype, globalScale: globalScales.get(n) }, n));
  });
  return { layers, quantized, skipped };
}

/** The decoder-block Linear weights of an HF model directory, by module name. */
export function readDecoderLinears(modelDir: string): Map<string, LayerWeight> {
  const cfg = readModelConfig(modelDir);
  const ckpt = CheckpointTensors.open(modelDir);
  try {
    const out = new Map<string, LayerWeight>();
    for (let i = 0; i < cfg.numLayers; i++) {
      for (const name of linearNames(i)) {
        const t = `${name}.weight`;
        if (!ckpt.has(t)) throw new UserError(`${modelDir}: missing tensor '${t}' (config.json says ${cfg.numLayers} layers)`);
        // dtype, shape against config.json, and every value finite: a NaN source weight would quantize to NaN scales.
        const [rows, cols] = linearDims(cfg, name)!;
        out.set(name, { w: readFloatWeight(ckpt, t, [rows, cols]), rows, cols });
      }
    }
    return out;
  } finally {
    ckpt.close();
  }
}

export function rtnQuantizeModel(modelDir: string, scheme: Scheme, opts: RtnOptions = {}): QuantizedLayers {
  return rtnQuantizeWeights(readDecoderLinears(modelDir), scheme, opts);
}
