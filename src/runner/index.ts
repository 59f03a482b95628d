/** The runner's public face: run a plan with injected handlers; cache status for dry runs. */
export { runPlan, cacheStatus, latestRunId, newRunId } from './run.ts';
export type { Handlers, QuantizeContext, QuantizeResult, BaseContext, BaseResult, EvalContext, EvalResult, RunEvent, RunOptions, RunSummary } from './run.ts';
export { LocalExecutor, type Executor, type ExecuteOptions, type ExecuteOutcome } from './executor.ts';
export { JobBoard, type JobState, type FailureWhere } from './board.ts';
export { Cache, MARKER, type DirManifest, type CachedResult } from './cache.ts';
