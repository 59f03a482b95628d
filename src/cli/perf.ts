/** `bench perf [--only a,b] [--json]`: run named performance benchmarks (src/perf/registry.ts). */
import type { Command } from 'commander';
import { UserError } from '../errors.ts';
import { BENCHMARKS, selectBenchmarks } from '../perf/registry.ts';

const positiveInt = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} must be a positive integer, got '${v}'`);
  return n;
};

export function register(program: Command): void {
  program
    .command('perf')
    .description(`run performance benchmarks (${BENCHMARKS.map((b) => b.name).join(', ')}); each is reported against a reference measured in the same run`)
    .option('--only <names>', 'comma-separated benchmark names (default: all)')
    .option('--threads <n>', 'threads for onnxruntime', positiveInt('--threads'), 1)
    .option('--batch-size <n>', 'sequences per forward pass', positiveInt('--batch-size'), 8)
    .option('--quick', 'short time budgets and small inputs (smoke runs)')
    .option('--json', 'print JSON on stdout (progress stays on stderr)')
    .action(async (opts: { only?: string; threads: number; batchSize: number; quick?: boolean; json?: boolean }) => {
      const only = (opts.only ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      const selected = selectBenchmarks(only);
      const log = (line: string) => process.stderr.write(line + '\n');
      const reports = [];
      for (const b of selected) {
        log(`perf: running ${b.name}`);
        const r = await b.run({ threads: opts.threads, batchSize: opts.batchSize, quick: !!opts.quick, log });
        reports.push(r);
        if (!opts.json) for (const l of r.lines) process.stdout.write(l + '\n');
      }
      if (opts.json) process.stdout.write(JSON.stringify({ benchmarks: reports.map((r) => ({ name: r.name, ...r.data })) }, null, 2) + '\n');
    });
}
