/**
 * RTN baseline: auto-round's pure RTN (iters 0, disable_opt_rtn): every Linear inside the
 * decoder blocks quantized with V = 0, α = β = 1. Embeddings and lm_head are not decoder
 * Linears and stay in full precision; `ignore` keeps more layers in full precision;
 * `skipUnaligned` applies auto-round's exporter rule (skip layers whose in or out is not a
 * multiple of 32), off by default. NVFP4 layers fused by vLLM (q/k/v, gate/up) share one
 * global scale, the smallest of the group (largest amax), as auto-round and llm-compressor do.
 */
import { UserError } from '../../errors.ts';
import { readModelConfig, linearNames } from '../../checkpoint/config.ts';
import { CheckpointTensors } from '../../checkpoint/tensors.ts';
import { linearDims } from '../../checkpoint/compressed-tensors.ts';
import { readFloatWeight } from '../../checkpoint/weights.ts';
import type { Scheme } from '../schemes.ts';
import { absMax, fusedGlobalScale, intGroupSize, quantizeWeight, type QuantizedWeight, type ScaleDtype } from '../formats/index.ts';

export interface LayerWeight {
  w: Float32Array;
  rows: number;
  cols: number;
}

export interface RtnOptions {
  /** Layer names kept in full precision: exact, substring, or "re:<regex>". */
  ignore?: readonly string[];
  /** auto-round's exporter rule: leave layers whose dims are not multiples of 32 unquantized. */
  skipUnaligned?: boolean;
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

/** Decide which layers are quantized (names in model order) and which are skipped. */
export function selectLayers(names: readonly string[], dims: (name: string) => { rows: number; cols: number }, opts: RtnOptions) {
  const quantized: string[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const name of names) {
    if (opts.ignore && matchesIgnore(name, opts.ignore)) skipped.push({ name, reason: 'ignored' });
    else if (opts.skipUnaligned && (dims(name).rows % 32 !== 0 || dims(name).cols % 32 !== 0))
      skipped.push({ name, reason: `shape [${dims(name).rows}, ${dims(name).cols}] not divisible by 32` });
    else quantized.push(name);
  }
  return { quantized, skipped };
}

/** RTN over in-memory weights (the benchmark and tests use this directly). */
export function rtnQuantizeWeights(weights: ReadonlyMap<string, LayerWeight>, scheme: Scheme, opts: RtnOptions = {}): QuantizedLayers {
  if (scheme.weights.kind === 'none') throw new UserError(`scheme ${scheme.name} is not quantized; there is nothing for RTN to do`);
  const names = [...weights.keys()];
  const { quantized, skipped } = selectLayers(names, (n) => weights.get(n)!, opts);
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
