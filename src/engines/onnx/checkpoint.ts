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
import { OnnxEngine, type OnnxEngineOptions } from './engine.ts';

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

export async function openOnnxCheckpoint(dir: string, opts: Omit<OnnxEngineOptions, 'weights' | 'actQuant'> = {}): Promise<OpenedCheckpoint> {
  if (!isQuantizedCheckpoint(dir)) return { engine: await OnnxEngine.open(dir, opts), quantized: [] };
  const ckpt = readCompressedCheckpoint(dir);
  const actQuant = new Map<string, ActQuant>();
  for (const [name, a] of ckpt.activations) {
    const q = toActQuant(a);
    if (q) actQuant.set(name, q);
  }
  const engine = await OnnxEngine.open(dir, { ...opts, weights: ckpt.weights, actQuant });
  return { engine, quantized: ckpt.quantized };
}
