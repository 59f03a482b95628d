/**
 * Where runs live: `.bench/runs/<run-id>/` holds `ledger.jsonl` and `run.json`;
 * `.bench/runs/latest` names the most recent run. Commands that read results accept a run
 * directory, a run id, or nothing (the latest run).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { LEDGER_FILE } from './ledger.ts';

export const DEFAULT_RUNS_ROOT = join('.bench', 'runs');

export function resolveRunDir(arg: string | undefined, runsRoot = DEFAULT_RUNS_ROOT): string {
  if (arg) {
    if (existsSync(join(arg, LEDGER_FILE))) return arg;
    if (existsSync(join(runsRoot, arg, LEDGER_FILE))) return join(runsRoot, arg);
    if (existsSync(arg) && statSync(arg).isFile() && arg.endsWith('.jsonl')) return arg;
    throw new UserError(`run '${arg}' not found: pass a run directory containing ${LEDGER_FILE}, or a run id under ${runsRoot}`);
  }
  const latest = join(runsRoot, 'latest');
  if (!existsSync(latest)) throw new UserError(`no runs yet under ${runsRoot}; run 'bench run' first or name a run directory`);
  const id = readFileSync(latest, 'utf8').trim();
  if (!existsSync(join(runsRoot, id, LEDGER_FILE))) throw new UserError(`${latest} names run '${id}', which has no ${LEDGER_FILE}`);
  return join(runsRoot, id);
}
