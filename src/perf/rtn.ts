/**
 * `bench perf` entry for RTN: throughput of RTN quantization in GB/s of float32 weights on a
 * synthetic tensor set (default 1 GiB: 16 tensors of 4096x4096), beside a plain typed-array
 * copy of the same bytes measured in the same run, reported as a ratio (RTN / copy). The
 * copy is the memory-bandwidth ceiling for a pass over the weights on this machine.
 * Until the perf registry exists this module exports a plain function; register it there.
 */
import { getScheme, withOverrides } from '../quant/schemes.ts';
import { quantizeWeight } from '../quant/formats/index.ts';

export interface RtnPerf {
  scheme: string;
  groupSize: number;
  tensors: number;
  shape: [number, number];
  bytes: number;
  rtnSeconds: number;
  /** CPU seconds of this process during the RTN pass (wall time is inflated on a shared machine). */
  rtnCpuSeconds: number;
  rtnGBps: number;
  copySeconds: number;
  copyGBps: number;
  /** rtnGBps / copyGBps. */
  ratio: number;
}

export function perfRtn(opts: { bytes?: number; scheme?: string; groupSize?: number; rows?: number; cols?: number; log?: (s: string) => void } = {}): RtnPerf {
  const rows = opts.rows ?? 4096;
  const cols = opts.cols ?? 4096;
  const per = rows * cols * 4;
  const n = Math.max(1, Math.ceil((opts.bytes ?? 2 ** 30) / per));
  let scheme = getScheme(opts.scheme ?? 'W4A16');
  if (opts.groupSize !== undefined) scheme = withOverrides(scheme, { groupSize: opts.groupSize });
  // Deterministic synthetic weights (xorshift32 -> roughly uniform in ±0.05): fast to make.
  const tensors: Float32Array[] = [];
  let x = 0x9e3779b9;
  for (let t = 0; t < n; t++) {
    const w = new Float32Array(rows * cols);
    for (let i = 0; i < w.length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      w[i] = ((x >>> 0) / 4294967296 - 0.5) * 0.1;
    }
    tensors.push(w);
  }
  const bytes = n * per;
  // Copy baseline: best of two passes over every tensor into one scratch buffer.
  const scratch = new Float32Array(rows * cols);
  let copySeconds = Infinity;
  for (let rep = 0; rep < 2; rep++) {
    const t0 = performance.now();
    for (const w of tensors) scratch.set(w);
    copySeconds = Math.min(copySeconds, (performance.now() - t0) / 1000);
  }
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let check = 0;
  tensors.forEach((w, i) => {
    const q = quantizeWeight(w, rows, cols, scheme.weights);
    check += q.dequantized[i];
    opts.log?.(`rtn perf: tensor ${i + 1}/${n}`);
  });
  const rtnSeconds = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(c0);
  const rtnCpuSeconds = (cu.user + cu.system) / 1e6;
  if (!Number.isFinite(check)) throw new Error('non-finite dequantized output');
  const rtnGBps = bytes / rtnSeconds / 1e9;
  const copyGBps = bytes / copySeconds / 1e9;
  return { scheme: scheme.name, groupSize: scheme.weights.groupSize, tensors: n, shape: [rows, cols], bytes, rtnSeconds, rtnCpuSeconds, rtnGBps, copySeconds, copyGBps, ratio: rtnGBps / copyGBps };
}
