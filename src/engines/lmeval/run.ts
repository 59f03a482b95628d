/** Run `lm_eval` as a subprocess and ingest its results (reference lm-eval.md §5). */
import { runTool } from '../../process/index.ts';
import { buildLmEvalArgv, outputModelName, type LmEvalOptions } from './argv.ts';
import { findResultsFile, readLmEvalResults, type LmEvalResults } from './results.ts';

export interface LmEvalRunOptions {
  logPath: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** e.g. `{ CUDA_VISIBLE_DEVICES: "0" }` (lm-eval's vllm backend ignores --device). */
  env?: Record<string, string>;
  onSpawn?: (pid: number) => void;
}

export interface LmEvalRun extends LmEvalResults {
  resultsPath: string;
  argv: string[];
  seconds: number;
}

export async function runLmEval(o: LmEvalOptions, run: LmEvalRunOptions): Promise<LmEvalRun> {
  const { command, args } = buildLmEvalArgv(o);
  const started = Date.now() - 1000;
  const r = await runTool({
    tool: 'lm_eval', command, args, env: run.env, logPath: run.logPath, timeoutMs: run.timeoutMs, signal: run.signal, onSpawn: run.onSpawn,
    fix: 'fix the cause above (task names, model args, GPU memory)',
  });
  const resultsPath = findResultsFile(o.outputPath, outputModelName(o), started);
  const parsed = readLmEvalResults(resultsPath);
  parsed.provenance.argv = [command, ...args];
  return { ...parsed, resultsPath, argv: [command, ...args], seconds: r.seconds };
}
