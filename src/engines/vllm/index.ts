/** The vLLM engine's public face: server commands, the supervised process, the Engine. */
export { vllmServeCommand, benchServeCommand, buildServerArgv, parseServerCommand, type ServerCommand } from './config.ts';
export { ManagedServer, freePort, portInUse, errorLine, type ProcessExit } from './process.ts';
export { VllmEngine, type VllmStartOptions, type VllmClientOptions, type ScoringMode } from './engine.ts';
export { HttpClient, errorMessage } from './client.ts';
export { maxPositions, suiteWindowEngine } from './window.ts';
