/** Every command of the CLI: each file registers one command on the program. */
import type { Command } from 'commander';
import { register as inspect } from './inspect.ts';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: RegisterCommand[] = [inspect];
