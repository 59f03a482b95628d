/**
 * Open any checkpoint directory in the ONNX engine: a plain float model as it is, or a
 * compressed-tensors checkpoint decompressed to exactly the dequantized weights its
 * quantizer produced, with its activation quantization emulated in the graph.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readCompressedCheckpoint, type LayerActivation } from '../../checkpoint/compressed-tensors.ts';
import { readJsonFile } from '../../checkpoint/json.ts';
import type { ActQuant } from './actquant.ts';
import { OnnxEngine, readGraphWeights, type OnnxEngineOptions } from './engine.ts';
import { readModelConfig, type ModelConfig } from '../../checkpoint/config.ts';

/** True when config.json declares a quantization_config (a config.json that cannot be parsed is a UserError). */
export function isQuantizedCheckpoint(dir: string): boolean {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return false;
  return readJsonFile(path, 'fix config.json').quantization_config != null;
}

function toActQuant(a: LayerActivation): ActQuant | null {
  if (a.kind === 'fp8') {
    return a.dynamic === true
      ? { kind: 'fp8', dynamic: true, granularity: 'token' }
      : { kind: 'fp8', dynamic: false, granularity: 'tensor', staticScale: a.inputScale };
  }
  if (a.kind === 'nvfp4') {
    // Block scales are computed per forward ('local'); the global scale is calibrated.
    return a.inputGlobalScale != null
      ? { kind: 'nvfp4', dynamic: false, granularity: 'tensor', staticScale: a.inputGlobalScale }
      : { kind: 'nvfp4', dynamic: true, granularity: 'token' };
  }
  return null;
}

export interface OpenedCheckpoint {
  engine: OnnxEngine;
  /** Quantized Linear modules (empty for a float model). */
  quantized: string[];
}

/** Everything the engine's graph is built from, read and checked (the fuzz tests compare these bit for bit). */
export interface EngineWeights {
  config: ModelConfig;
  /** Every float tensor the graph reads, by name (dequantized for quantized Linears). */
  weights: Map<string, Float32Array>;
  actQuant: Map<string, ActQuant>;
  /** Quantized Linear modules (empty for a float model). */
  quantized: string[];
}

export function loadEngineWeights(dir: string): EngineWeights {
  const config = readModelConfig(dir);
  const actQuant = new Map<string, ActQuant>();
  let overrides = new Map<string, Float32Array>();
  let quantized: string[] = [];
  if (isQuantizedCheckpoint(dir)) {
    const ckpt = readCompressedCheckpoint(dir);
    for (const [name, a] of ckpt.activations) {
      const q = toActQuant(a);
      if (q) actQuant.set(name, q);
    }
    overrides = ckpt.weights;
    quantized = ckpt.quantized;
  }
  return { config, weights: readGraphWeights(dir, config, overrides), actQuant, quantized };
}

export async function openOnnxCheckpoint(dir: string, opts: Omit<OnnxEngineOptions, 'weights' | 'actQuant'> = {}): Promise<OpenedCheckpoint> {
  const { weights, actQuant, quantized } = loadEngineWeights(dir);
  const engine = await OnnxEngine.open(dir, { ...opts, weights, actQuant });
  return { engine, quantized };
}
