import { UserError } from '../errors.ts';
import type { RepoRef } from './cache.ts';

/** `hf:ORG/NAME[@REV]` or `hf:datasets/ORG/NAME[@REV]` -> repo and revision (default main). */
export function parseHfSpec(s: string): { repo: RepoRef; revision: string } {
  const m = /^hf:(datasets\/)?([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*)(?:@([\w./-]+))?$/.exec(s);
  if (!m || m[3]?.includes('..')) throw new UserError(`'${s}' is not a Hub reference; expected hf:ORG/NAME[@REVISION] or hf:datasets/ORG/NAME[@REVISION]`);
  return { repo: { type: m[1] ? 'dataset' : 'model', name: m[2] }, revision: m[3] ?? 'main' };
}
