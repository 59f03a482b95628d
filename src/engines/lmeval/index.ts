/** lm-evaluation-harness as a subprocess: argv, tasks generated from our suites, run, results ingestion. */
export { buildLmEvalArgv, modelArgsString, sanitizeModelName, outputModelName, type LmEvalOptions, type LmEvalVllmOptions, type LmEvalHfOptions, type LmEvalLocalCompletionsOptions } from './argv.ts';
export { parseLmEvalResults, readLmEvalResults, findResultsFile, type LmEvalResults } from './results.ts';
export { runLmEval, type LmEvalRun, type LmEvalRunOptions } from './run.ts';
export { writeLmEvalTask, lmEvalTaskName, lmEvalAddBos, type LmEvalTaskFiles } from './tasks.ts';
export { runSuiteWithLmEval, lmEvalHfDtype, type LmEvalBackendOptions, type LmEvalSuiteOptions, type LmEvalSuiteResult } from './suite.ts';
