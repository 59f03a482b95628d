/** External quantizers (auto-round CLI, llm-compressor driver) run under src/process. */
export { buildAutoRoundArgv, autoRoundExportDir, autoRoundPreset, type AutoRoundJob, type AutoRoundRecipe } from './autoround.ts';
export { writeCalibrationJsonl, hfCalibrationSpec, type CalibrationJsonl } from './calibration.ts';
export { buildLlmCompressorArgv, llmCompressorPreset, type LlmCompressorJob } from './llmcompressor.ts';
export { parseProgress, type Progress } from './progress.ts';
export { validateQuantizedCheckpoint, activationMismatch, schemeMismatch, type ValidatedCheckpoint } from './validate.ts';
export { runAutoRound, runLlmCompressor, locateExport, configCorrections, pythonPackageVersion, type ExternalQuantResult, type ExternalRunOptions } from './job.ts';
