/**
 * `bench env [NAME...] [--check] [--rebuild] [--json]`: build (or only check) the Python tool
 * environments of harness/envs/, print each tool's version, and the LOWBIT_* variables that
 * point at them (the runner uses a built environment by itself; the variables are for
 * scripts and for overriding).
 */
import { rmSync } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../errors.ts';
import { TOOL_ENVS, ensureToolEnv, envBin, envHome, toolEnvState, type ToolEnvState } from '../toolenv/index.ts';

export function register(program: Command): void {
  program
    .command('env')
    .description(`build or check the Python tool environments (${TOOL_ENVS.map((e) => e.name).join(', ')}) under ${envHome()}`)
    .argument('[names...]', 'environments to build or check (default: all)')
    .option('--check', 'only report; build nothing (exit 1 if one is missing)')
    .option('--rebuild', 'remove and rebuild the named environments')
    .option('--json', 'print JSON on stdout')
    .action(async (names: string[], opts: { check?: boolean; rebuild?: boolean; json?: boolean }) => {
      const wanted = names.length ? names : TOOL_ENVS.map((e) => e.name);
      const states: ToolEnvState[] = [];
      for (const name of wanted) {
        let s = await toolEnvState(name);
        if (opts.rebuild && !opts.check) rmSync(s.dir, { recursive: true, force: true });
        if (!opts.check) s = await ensureToolEnv(name, { log: (l) => process.stderr.write(`bench env: ${l}\n`) });
        else s = await toolEnvState(name);
        states.push(s);
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify(states.map((s) => ({ name: s.spec.name, dir: s.dir, ready: s.ready, versions: s.versions, buildSeconds: s.buildSeconds ?? null, commands: commandsOf(s) })), null, 2) + '\n');
      } else {
        for (const s of states) {
          const v = Object.entries(s.versions).map(([k, x]) => `${k} ${x}`).join(', ');
          process.stdout.write(`${s.spec.name.padEnd(14)} ${s.ready ? 'ready  ' : 'MISSING'} ${s.dir}\n`);
          process.stdout.write(`${''.padEnd(14)} ${s.ready ? v : `build it with: bench env ${s.spec.name}`}\n`);
        }
        for (const s of states.filter((x) => x.ready)) {
          for (const [k, v] of Object.entries(commandsOf(s))) process.stdout.write(`export ${k}='${JSON.stringify(v)}'\n`);
        }
      }
      if (states.some((s) => !s.ready)) {
        if (!opts.check) throw new UserError('some tool environments could not be built');
        process.exitCode = 1;
      }
    });
}

function commandsOf(s: ToolEnvState): Record<string, string[]> {
  return Object.fromEntries(Object.entries(s.spec.commands).map(([k, exe]) => [k, [envBin(s, exe)]]));
}
