/**
 * `bench publish`: the static leaderboard site and the run ledgers, pushed to a Hub repository
 * in ONE commit through @huggingface/hub's commit API. Repository layout:
 *
 *   site/...                 the site `bench report` wrote (index.html, leaderboard.json/.md, charts)
 *   runs/<run-id>/ledger.jsonl, runs/<run-id>/run.json
 *
 * Before anything is sent, every file is scanned for the token in use: a file holding it is
 * refused (tokens are never stored, and never published).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { commit } from '@huggingface/hub';
import { UserError } from '../errors.ts';
import { hubUrl, readToken } from './cache.ts';

export interface PublishFile {
  /** Path in the repository ('/'-separated). */
  path: string;
  /** Local file. */
  source: string;
  size: number;
}

export function collectPublishFiles(siteDir: string, runDirs: readonly string[]): PublishFile[] {
  const out: PublishFile[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue; // swap folders and hidden markers stay home
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p, prefix);
      else if (e.isFile()) out.push({ path: `${prefix}/${relative(siteDir, p).split(sep).join('/')}`, source: p, size: statSync(p).size });
    }
  };
  let isDir = false;
  try {
    isDir = statSync(siteDir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir || !readdirSync(siteDir).includes('index.html')) {
    throw new UserError(`${siteDir}: no leaderboard site here (index.html missing); build it with 'bench report --out ${siteDir}' first`);
  }
  walk(siteDir, 'site');
  for (const run of runDirs) {
    const id = basename(run);
    for (const f of ['ledger.jsonl', 'run.json']) {
      const p = join(run, f);
      let size: number;
      try {
        size = statSync(p).size;
      } catch {
        if (f === 'ledger.jsonl') throw new UserError(`${run}: no ledger.jsonl; pass run directories written by 'bench run'`);
        continue;
      }
      out.push({ path: `runs/${id}/${f}`, source: p, size });
    }
  }
  const seen = new Set<string>();
  for (const f of out) {
    if (seen.has(f.path)) throw new UserError(`two runs would publish ${f.path}; pass runs with distinct ids`);
    seen.add(f.path);
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

export async function publish(
  repo: { type: 'dataset' | 'space' | 'model'; name: string },
  files: readonly PublishFile[],
  opts: { env?: NodeJS.ProcessEnv; title: string; fetch?: typeof fetch },
): Promise<{ commit: string; url?: string }> {
  const env = opts.env ?? process.env;
  const token = readToken(env);
  if (!token) throw new UserError('publishing needs a token with write access: set HF_TOKEN (or run \'hf auth login\')');
  for (const f of files) {
    if (readFileSync(f.source).includes(token)) throw new UserError(`${f.source} contains the Hub token; refusing to publish it (remove the token from that file)`);
  }
  try {
    const res = await commit({
      repo,
      accessToken: token,
      hubUrl: hubUrl(env),
      title: opts.title,
      operations: files.map((f) => ({ operation: 'addOrUpdate' as const, path: f.path, content: new Blob([readFileSync(f.source)]) })),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
    });
    return { commit: res?.commit.oid ?? '', url: res?.commit.url };
  } catch (e) {
    const status = (e as { statusCode?: number }).statusCode;
    const where = `${repo.type}s/${repo.name}`;
    if (status === 401 || status === 403) throw new UserError(`${where}: the Hub refused the commit (HTTP ${status}); the token needs write access to the repository`, 2, { cause: e });
    if (status === 404) throw new UserError(`${where}: no such repository; create it on the Hub first`, 2, { cause: e });
    if (status === undefined) throw new UserError(`${where}: cannot reach the Hub at ${hubUrl(env)}`, 2, { cause: e });
    throw new UserError(`${where}: the commit failed with HTTP ${status}`, 2, { cause: e });
  }
}
