/**
 * Named performance benchmarks for `bench perf`. Each entry measures one thing and reports
 * it beside a reference measured in the same run (never an absolute number alone: the
 * machine is shared and its speed varies). Add an entry to BENCHMARKS to extend it.
 */
import { UserError, didYouMean } from '../errors.ts';

export interface PerfOptions {
  /** onnxruntime / worker threads where a benchmark has a choice. */
  threads: number;
  batchSize: number;
  /** Shorter time budgets and smaller inputs (smoke runs, CI). */
  quick: boolean;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

export interface PerfReport {
  name: string;
  /** Human-readable summary lines. */
  lines: string[];
  /** Machine-readable numbers (for --json). */
  data: Record<string, unknown>;
}

export interface PerfBenchmark {
  name: string;
  description: string;
  run(opts: PerfOptions): Promise<PerfReport>;
}

const round = (x: number, d = 3) => Number(x.toPrecision(d + 1));

export const BENCHMARKS: PerfBenchmark[] = [
  {
    name: 'engine',
    description: 'ONNX engine scoring throughput (tokens/s) on TinyStories windows vs a large onnxruntime MatMul',
    run: async (o) => (await import('./engine.ts')).perfEngine(o),
  },
  {
    // Adapter for the quantization engineer's src/perf/rtn.ts (imported lazily so that a
    // problem there never breaks the other benchmarks).
    name: 'rtn',
    description: 'RTN quantization throughput (GB/s of float32 weights) vs a typed-array copy',
    run: async (o) => {
      const { perfRtn } = await import('./rtn.ts');
      const r = perfRtn({ bytes: o.quick ? 2 ** 26 : 2 ** 30, log: o.log });
      return {
        name: 'rtn',
        lines: [`rtn ${r.scheme} g${r.groupSize}: ${round(r.rtnGBps)} GB/s, copy ${round(r.copyGBps)} GB/s, ratio ${round(r.ratio)} (${r.tensors} tensors ${r.shape.join('x')})`],
        data: { ...r },
      };
    },
  },
  {
    name: 'autoround',
    description: 'AutoRound on stories260k W4A16 default recipe: seconds per block and total, GFLOP/s vs the SIMD matrix kernel peak (all cores unless --threads > 1; --quick: 1 block, 20 iters)',
    run: async (o) => {
      const { perfAutoRound } = await import('./autoround.ts');
      const modelDir = new URL('../../models/stories260k', import.meta.url).pathname;
      const r = await perfAutoRound(modelDir, { overrides: o.quick ? { iters: 20 } : {}, blocks: o.quick ? 1 : undefined, threads: o.threads > 1 ? o.threads : undefined, log: o.log });
      return {
        name: 'autoround',
        lines: [
          `autoround ${r.scheme} g32 default recipe (iters ${r.recipe.iters}, bs ${r.recipe.batchSize}, nsamples ${r.recipe.nsamples}), ${r.threads} threads, simd ${r.simd}: ${round(r.totalSeconds)} s total, per block ${r.secondsPerBlock.map((x) => round(x)).join(' ')} s`,
          `autoround: ${round(r.achievedGflops)} GFLOP/s achieved vs ${round(r.peakGflops)} GFLOP/s kernel peak (${round(100 * r.fractionOfPeak)}%)`,
        ],
        data: { ...r },
      };
    },
  },
];

/** The benchmarks named in `only` (all when empty), in registry order. */
export function selectBenchmarks(only: readonly string[] = []): PerfBenchmark[] {
  const names = BENCHMARKS.map((b) => b.name);
  for (const n of only) if (!names.includes(n)) throw new UserError(`unknown benchmark '${n}'; ${didYouMean(n, names)}`);
  return only.length ? BENCHMARKS.filter((b) => only.includes(b.name)) : BENCHMARKS;
}
