/** `bench schemes [--group-size N] [--asym] [--json]`: the scheme registry with bits per weight. */
import type { Command } from 'commander';
import { SCHEMES, bitsPerWeight, withOverrides, NOMINAL_IN_FEATURES } from '../quant/schemes.ts';
import { parseGroupSize } from './quantize.ts';

export function register(program: Command): void {
  program
    .command('schemes')
    .description('list quantization schemes with bits per weight (scale and zero-point overhead included)')
    .option('--group-size <n>', 'group size for integer schemes (-1 = per channel)')
    .option('--asym', 'asymmetric integer weights (adds zero points)')
    .option('--json', 'print JSON on stdout')
    .action((opts: { groupSize?: string; asym?: boolean; json?: boolean }) => {
      const g = opts.groupSize === undefined ? undefined : parseGroupSize(opts.groupSize);
      const rows = SCHEMES.map((s0) => {
        const s = s0.weights.kind === 'int' ? withOverrides(s0, { groupSize: g, symmetric: opts.asym ? false : undefined }) : s0;
        return {
          name: s.name, description: s.description, weights: s.weights, activations: s.activations,
          bitsPerWeight: Number(bitsPerWeight(s).toFixed(4)),
        };
      });
      if (opts.json) {
        process.stdout.write(JSON.stringify({ nominalInFeatures: NOMINAL_IN_FEATURES, schemes: rows }, null, 2) + '\n');
        return;
      }
      const w = Math.max(...rows.map((r) => r.name.length));
      for (const r of rows) {
        const wf = r.weights;
        const grp = wf.kind === 'none' ? '' : wf.groupSize === -1 ? 'per-channel' : `g${wf.groupSize}`;
        const act = r.activations.kind === 'none' ? 'A16' : `act ${r.activations.kind} ${r.activations.dynamic ? 'dynamic' : 'static'} per ${r.activations.granularity}`;
        process.stdout.write(`${r.name.padEnd(w)}  ${r.bitsPerWeight.toFixed(3).padStart(7)} bits/weight  ${(wf.kind + (wf.kind === 'int' && !wf.symmetric ? ' asym' : '')).padEnd(9)} ${grp.padEnd(11)} ${act}\n`);
      }
      process.stdout.write(`(per-channel scales counted over ${NOMINAL_IN_FEATURES} input features)\n`);
    });
}
