/** The scoring server's supervision lives in src/process/ (one supervisor for servers and tools). */
export { ManagedServer, freePort, portInUse, type StartOptions } from '../../process/server.ts';
export { errorLine, type ProcessExit } from '../../process/index.ts';
