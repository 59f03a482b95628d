/** lm-evaluation-harness as a subprocess: argv, run, results ingestion. */
export { buildLmEvalArgv, modelArgsString, sanitizeModelName, outputModelName, type LmEvalOptions, type LmEvalVllmOptions, type LmEvalLocalCompletionsOptions } from './argv.ts';
export { parseLmEvalResults, readLmEvalResults, findResultsFile, type LmEvalResults } from './results.ts';
export { runLmEval, type LmEvalRun, type LmEvalRunOptions } from './run.ts';
