/**
 * Entry point of the `bench` CLI: builds the command tree from one file per command,
 * runs it, and turns user errors (exit 2) and tool or server failures (exit 3) into
 * one-line messages; anything else is a bug and keeps its stack.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_CODES_HELP, ToolError, UserError } from '../errors.ts';
import { COMMANDS } from './commands.ts';

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('bench')
    .description('lowbit-bench: quantize, evaluate and compare low-bit LLMs')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .addHelpText('after', `\n${EXIT_CODES_HELP}`);
  for (const register of COMMANDS) register(program);
  program.commands.forEach((c) => c.exitOverride());
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; parse errors were already printed by commander.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof UserError || e instanceof ToolError) {
      process.stderr.write(`bench: error: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
