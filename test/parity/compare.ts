/**
 * Comparisons for the parity tests: stored codes and scales of two checkpoints, and float
 * weights against what compressed-tensors decompressed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/checkpoint/dtypes.ts';
import { readStoredLayers } from '../../src/checkpoint/compressed-tensors.ts';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.ts';
import { toFloat32 } from '../../src/checkpoint/dtypes.ts';

/** The folder holding config.json with a quantization_config: `dir` itself or one level down (auto-round's export folder). */
export function exportDir(dir: string): string {
  const isCkpt = (d: string) => existsSync(join(d, 'config.json')) && 'quantization_config' in JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
  if (isCkpt(dir)) return dir;
  const subs = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.') && isCkpt(join(dir, e.name)));
  if (subs.length !== 1) throw new Error(`${dir}: expected one exported checkpoint, found ${subs.map((s) => s.name).join(', ') || 'none'}`);
  return join(dir, subs[0].name);
}

export interface StoredDiff {
  /** Layers quantized in one checkpoint only. */
  onlyA: string[];
  onlyB: string[];
  layers: number;
  codes: number;
  /** Codes that differ where the layer's scale (and global scale) agree. */
  codesSameScale: number;
  scales: number;
  zeros: number;
  globalScales: number;
  elements: number;
  /** First differing layers with counts, for the failure message. */
  examples: string[];
}

/** Compare the stored integer/FP4 codes, scales, zero points and global scales of two checkpoints. */
export function diffStored(a: string, b: string): StoredDiff {
  const A = readStoredLayers(a);
  const B = readStoredLayers(b);
  const d: StoredDiff = { onlyA: [...A.keys()].filter((k) => !B.has(k)), onlyB: [...B.keys()].filter((k) => !A.has(k)), layers: 0, codes: 0, codesSameScale: 0, scales: 0, zeros: 0, globalScales: 0, elements: 0, examples: [] };
  for (const [name, x] of A) {
    const y = B.get(name);
    if (!y) continue;
    d.layers++;
    if (x.rows !== y.rows || x.cols !== y.cols || x.groupSize !== y.groupSize || x.fmt.kind !== y.fmt.kind) {
      d.examples.push(`${name}: [${x.rows},${x.cols}]/g${x.groupSize} ${x.fmt.kind} vs [${y.rows},${y.cols}]/g${y.groupSize} ${y.fmt.kind}`);
      d.codes += x.rows * x.cols;
      continue;
    }
    const ng = x.scales.length / x.rows;
    let codes = 0, sameScale = 0, scales = 0, zeros = 0;
    const gsSame = x.globalScale === y.globalScale;
    for (let i = 0; i < x.scales.length; i++) if (!Object.is(x.scales[i], y.scales[i])) scales++;
    for (let i = 0; i < (x.zeros?.length ?? 0); i++) if (x.zeros![i] !== y.zeros?.[i]) zeros++;
    if (!!x.zeros !== !!y.zeros) zeros += x.rows * ng;
    for (let i = 0; i < x.codes.length; i++) {
      if (x.codes[i] === y.codes[i]) continue;
      codes++;
      const g = Math.floor(i / x.cols) * ng + Math.floor((i % x.cols) / x.groupSize);
      if (gsSame && Object.is(x.scales[g], y.scales[g])) sameScale++;
    }
    d.codes += codes;
    d.codesSameScale += sameScale;
    d.scales += scales;
    d.zeros += zeros;
    if (!gsSame) d.globalScales++;
    d.elements += x.codes.length;
    if ((codes || scales || zeros || !gsSame) && d.examples.length < 4) d.examples.push(`${name}: ${codes} codes (${sameScale} under equal scales), ${scales} scales, ${zeros} zero points${gsSame ? '' : `, global scale ${x.globalScale} vs ${y.globalScale}`}`);
  }
  return d;
}

/** x rounded to `dtype` (round to nearest even), as a float32 value. */
export function roundTo(x: number, dtype: string): number {
  if (dtype === 'float32') return Math.fround(x);
  if (dtype === 'float16') return f16BitsToF32(f32ToF16Bits(x));
  if (dtype === 'bfloat16') return bf16BitsToF32(f32ToBf16Bits(x));
  throw new Error(`no rounding to ${dtype}`);
}

/**
 * Elements where compressed-tensors' decompressed weights (file `deq`, in the dtype it
 * computed them in) differ from ours rounded to that dtype. compressed-tensors dequantizes in
 * the scale's dtype (F16 for integer formats) or bfloat16 (FP4), so equality there is the
 * exact statement; `ours` are float32.
 */
export function diffDecompressed(deq: string, ours: Map<string, Float32Array>, dtypes: Record<string, string>): { weights: number; elements: number; differing: number; missing: string[]; extra: string[]; examples: string[] } {
  const ck = SafetensorsFile.open(deq);
  const r = { weights: 0, elements: 0, differing: 0, missing: [] as string[], extra: [] as string[], examples: [] as string[] };
  try {
    const theirs = new Set(ck.tensors.keys());
    r.missing = [...ours.keys()].filter((k) => !theirs.has(k));
    r.extra = [...theirs].filter((k) => !ours.has(k));
    for (const [name, w] of ours) {
      if (!theirs.has(name)) continue;
      const t = toFloat32(ck.readBytes(name), ck.info(name).dtype);
      r.weights++;
      let n = 0;
      for (let i = 0; i < w.length; i++) if (!Object.is(roundTo(w[i], dtypes[name]), t[i])) n++;
      if (t.length !== w.length) n += Math.abs(t.length - w.length);
      r.elements += w.length;
      r.differing += n;
      if (n && r.examples.length < 4) r.examples.push(`${name}: ${n}/${w.length} differ (${dtypes[name]})`);
    }
  } finally {
    ck.close();
  }
  return r;
}
