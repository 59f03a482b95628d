/**
 * Progress from auto-round's stderr (reference autoround.md §4, §9.4) and from the
 * llm-compressor driver's `[lowbit] stage:` lines. Lines arrive ANSI-stripped and split on
 * `\r` too (tqdm redraws), prefixed by `YYYY-MM-DD HH:MM:SS LEVEL file.py L<n>: ` or not.
 */

export type Progress =
  | { kind: 'block'; layer: number; done: number | null; total: number | null }
  | { kind: 'block-loss'; quantized: number; total: number; lossFirst: number; bestIter: number; lossBest: number }
  | { kind: 'memory'; peakRamGB: number | null; peakVramGB: number | null }
  | { kind: 'tuning-time'; seconds: number }
  | { kind: 'summary'; quantized: number; total: number; unquantized: string }
  | { kind: 'stage'; stage: string };

const NUM = '([-+]?\\d*\\.?\\d+(?:[eE][-+]?\\d+)?)';
const BLOCK = /Quantizing model\.layers\.(\d+)(?:.*?\|\s*(\d+)\/(\d+))?/;
const LOSS = new RegExp(`quantized (\\d+)/(\\d+) layers in the block, loss iter 0: ${NUM} -> iter (\\d+): ${NUM}`);
const MEM = /'peak_ram': ([\d.]+)\s*GB(?:, 'peak_vram': ([\d.]+)\s*GB)?/;
const TUNING = new RegExp(`quantization tuning time ${NUM}`);
const SUMMARY = /Summary: quantized (\d+)\/(\d+) in the model(?:, unquantized layers: (.*))?/;
const STAGE = /^\[lowbit\] stage: (.+)$/;

export function parseProgress(line: string): Progress | null {
  let m = LOSS.exec(line);
  if (m) return { kind: 'block-loss', quantized: +m[1], total: +m[2], lossFirst: +m[3], bestIter: +m[4], lossBest: +m[5] };
  m = BLOCK.exec(line);
  if (m) return { kind: 'block', layer: +m[1], done: m[2] ? +m[2] : null, total: m[3] ? +m[3] : null };
  m = MEM.exec(line);
  if (m) return { kind: 'memory', peakRamGB: +m[1], peakVramGB: m[2] ? +m[2] : null };
  m = TUNING.exec(line);
  if (m) return { kind: 'tuning-time', seconds: +m[1] };
  m = SUMMARY.exec(line);
  if (m) return { kind: 'summary', quantized: +m[1], total: +m[2], unquantized: (m[3] ?? '').trim() };
  m = STAGE.exec(line.trim());
  if (m) return { kind: 'stage', stage: m[1].trim() };
  return null;
}
