/** Every command of the CLI: each file registers one command on the program. */
import type { Command } from 'commander';
import { register as run } from './run.ts';
import { register as quantize } from './quantize.ts';
import { register as evalCmd } from './eval.ts';
import { register as compare } from './compare.ts';
import { register as report } from './report.ts';
import { register as regress } from './regress.ts';
import { register as baseline } from './baseline.ts';
import { register as merge } from './merge.ts';
import { register as schemes } from './schemes.ts';
import { register as serve } from './serve.ts';
import { register as perf } from './perf.ts';
import { register as inspect } from './inspect.ts';
import { register as fetchCmd } from './fetch.ts';
import { register as publishCmd } from './publish.ts';
import { register as env } from './env.ts';
import { register as status } from './status.ts';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: RegisterCommand[] = [run, quantize, evalCmd, compare, report, regress, baseline, merge, schemes, serve, perf, inspect, status, env, fetchCmd, publishCmd];
