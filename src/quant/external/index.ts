/** External quantizers (auto-round CLI, llm-compressor driver) run through execa. */
export { buildAutoRoundArgv, autoRoundExportDir, autoRoundPreset, type AutoRoundJob, type AutoRoundRecipe } from './autoround.ts';
export { buildLlmCompressorArgv, llmCompressorPreset, type LlmCompressorJob } from './llmcompressor.ts';
export { parseProgress, type Progress } from './progress.ts';
export { validateQuantizedCheckpoint, type ValidatedCheckpoint } from './validate.ts';
export { runAutoRound, runLlmCompressor, pythonPackageVersion, type ExternalQuantResult, type ExternalRunOptions } from './job.ts';
export { runLogged, stripAnsi, lastErrorLine, type RunOptions, type RunOutcome } from './run.ts';
