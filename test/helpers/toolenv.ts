/**
 * Tests against the real Python tools. The environments are built by `./bin/bench.js env`
 * (.ci/run does it before the tests); a test that needs one fails with that instruction when
 * it is missing, never skips: a test of a real tool that silently does not run proves nothing.
 */
import { envBin, toolEnvState, type ToolEnvState } from '../../src/toolenv/index.ts';

export interface ReadyToolEnv extends ToolEnvState {
  /** Absolute path of an executable in the environment. */
  bin(exe: string): string;
  python: string;
}

export async function requireToolEnv(name: string): Promise<ReadyToolEnv> {
  const s = await toolEnvState(name);
  if (!s.ready) throw new Error(`tool environment '${name}' is not built (${s.dir}); run: ./bin/bench.js env ${name}`);
  return { ...s, bin: (exe: string) => envBin(s, exe), python: envBin(s, 'python') };
}
