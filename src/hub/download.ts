/**
 * Resolve `hf:ORG/NAME@REVISION` to a local snapshot folder in the shared HF cache, downloading
 * what is missing. The Hub's API (revision -> commit, the file tree) goes through
 * `@huggingface/hub`; file bodies are fetched here, because a download must be resumable (HTTP
 * Range on `<blob>.incomplete`) and verified before use (size, then the LFS sha256 or the git
 * blob sha1 the tree promises): a truncated or corrupted file is never renamed into `blobs/`.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { datasetInfo, listFiles, modelInfo } from '@huggingface/hub';
import { UserError } from '../errors.ts';
import { COMMIT_RE, cachedCommit, cachedTree, hasFile, hubCacheDir, hubUrl, offlineMode, readToken, repoFolder, type RepoRef } from './cache.ts';

export interface HubFile {
  path: string;
  size: number;
  /** git blob sha1 of the file */
  oid: string;
  /** sha256 and size of the content, for files stored with LFS */
  lfs?: { oid: string; size: number };
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  /** Which of the repository's files are needed (default: everything a model is loaded from). */
  want?: (path: string) => boolean;
  /** Bytes done and total over all files to download, and the file now downloading. */
  onProgress?: (done: number, total: number, file: string) => void;
  fetch?: typeof fetch;
}

export interface Snapshot {
  dir: string;
  commit: string;
  /** Files downloaded now (0 when everything was in the cache). */
  downloaded: number;
}

/** What a causal LM is loaded from: config, weights (safetensors only), tokenizer, generation config. */
export function modelFiles(path: string): boolean {
  if (path.includes('/')) return false;
  return /^(config\.json|generation_config\.json|tokenizer(_config)?\.json|tokenizer\.model|special_tokens_map\.json|.*\.safetensors|model\.safetensors\.index\.json)$/.test(path);
}

const spec = (repo: RepoRef, revision: string) => `hf:${repo.type === 'dataset' ? 'datasets/' : ''}${repo.name}@${revision}`;

export async function resolveSnapshot(repo: RepoRef, revision: string, opts: ResolveOptions = {}): Promise<Snapshot> {
  const env = opts.env ?? process.env;
  const want = opts.want ?? (repo.type === 'model' ? modelFiles : () => true);
  const cache = hubCacheDir(env);
  const storage = repoFolder(cache, repo);
  const pinned = COMMIT_RE.test(revision);
  const local = cachedCommit(storage, revision);

  // A pinned commit that is complete in the cache needs no network at all; so does any
  // revision when offline, as huggingface_hub does.
  if (local && (pinned || offlineMode(env))) {
    const missing = missingLocally(storage, local, want, repo);
    if (missing.length === 0) return { dir: join(storage, 'snapshots', local), commit: local, downloaded: 0 };
    if (offlineMode(env)) {
      throw new UserError(`${spec(repo, revision)}: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''} missing from the HF cache (${cache}) and HF_HUB_OFFLINE=1; run 'bench fetch ${spec(repo, revision)}' where the Hub is reachable`);
    }
  } else if (offlineMode(env)) {
    throw new UserError(`${spec(repo, revision)} is not in the HF cache (${cache}) and HF_HUB_OFFLINE=1; run 'bench fetch ${spec(repo, revision)}' where the Hub is reachable`);
  }

  const token = readToken(env);
  const endpoint = hubUrl(env);
  const common = { hubUrl: endpoint, ...(token ? { accessToken: token } : {}), ...(opts.fetch ? { fetch: opts.fetch } : {}) };
  let commit: string;
  if (pinned) commit = revision;
  else {
    try {
      const info = repo.type === 'model'
        ? await modelInfo({ name: repo.name, revision, additionalFields: ['sha'], ...common })
        : await datasetInfo({ name: repo.name, revision, additionalFields: ['sha'], ...common });
      commit = String((info as { sha?: unknown }).sha ?? '');
    } catch (e) {
      throw hubError(e, repo, revision, !!token);
    }
    if (!COMMIT_RE.test(commit)) throw new UserError(`${spec(repo, revision)}: the Hub at ${endpoint} gave no commit for this revision`);
  }

  const files: HubFile[] = [];
  try {
    for await (const f of listFiles({ repo, revision: commit, recursive: true, ...common })) {
      if (f.type === 'file' && want(f.path)) files.push({ path: f.path, size: f.size, oid: f.oid ?? '', lfs: f.lfs ? { oid: f.lfs.oid, size: f.lfs.size } : undefined });
    }
  } catch (e) {
    throw hubError(e, repo, revision, !!token);
  }
  if (files.length === 0) throw new UserError(`${spec(repo, revision)}: the repository has no files to load (looked for config, safetensors weights and tokenizer files)`);
  if (repo.type === 'model' && !files.some((f) => f.path === 'config.json')) {
    throw new UserError(`${spec(repo, revision)}: no config.json at that revision; is it a transformers model repository?`);
  }

  const snapshot = join(storage, 'snapshots', commit);
  const todo = files.filter((f) => !hasFile(join(snapshot, f.path), fileSize(f)));
  const total = todo.reduce((a, f) => a + fileSize(f), 0);
  let done = 0;
  for (const f of todo) {
    const etag = f.lfs?.oid ?? f.oid;
    const blob = join(storage, 'blobs', etag);
    if (!hasFile(blob, fileSize(f))) {
      await downloadBlob(repo, commit, f, blob, { token, endpoint, fetch: opts.fetch, onBytes: (n) => opts.onProgress?.(done + n, total, f.path) });
    }
    link(blob, join(snapshot, f.path));
    done += fileSize(f);
    opts.onProgress?.(done, total, f.path);
  }
  if (!pinned) {
    mkdirSync(join(storage, 'refs'), { recursive: true });
    writeFileSync(join(storage, 'refs', revision), commit);
  }
  return { dir: snapshot, commit, downloaded: todo.length };
}

const fileSize = (f: HubFile) => f.lfs?.size ?? f.size;

/** Files a cached snapshot lacks: against huggingface_hub's tree cache if there is one, else by the model's own index. */
function missingLocally(storage: string, commit: string, want: (p: string) => boolean, repo: RepoRef): string[] {
  const dir = join(storage, 'snapshots', commit);
  const tree = cachedTree(storage, commit);
  if (tree) return [...tree].filter(([p]) => want(p)).filter(([p, f]) => !hasFile(join(dir, p), f.size)).map(([p]) => p);
  if (!existsSync(dir)) return ['the snapshot'];
  if (repo.type === 'dataset') return [];
  const missing: string[] = [];
  if (!hasFile(join(dir, 'config.json'))) missing.push('config.json');
  const index = join(dir, 'model.safetensors.index.json');
  if (hasFile(index)) {
    try {
      const shards = new Set(Object.values((JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map));
      for (const s of shards) if (!hasFile(join(dir, s))) missing.push(s);
    } catch {
      missing.push('a readable model.safetensors.index.json');
    }
  } else if (!hasFile(join(dir, 'model.safetensors'))) missing.push('model.safetensors');
  return missing;
}


/** A relative symlink snapshots/<commit>/<path> -> blobs/<etag>, as huggingface_hub makes them. */
function link(blob: string, pointer: string): void {
  mkdirSync(dirname(pointer), { recursive: true });
  rmSync(pointer, { force: true });
  symlinkSync(relative(dirname(pointer), blob), pointer);
}

async function downloadBlob(
  repo: RepoRef, commit: string, f: HubFile, blob: string,
  o: { token?: string; endpoint: string; fetch?: typeof fetch; onBytes: (n: number) => void },
): Promise<void> {
  mkdirSync(dirname(blob), { recursive: true });
  const partial = `${blob}.incomplete`;
  const expected = fileSize(f);
  let have = existsSync(partial) ? statSync(partial).size : 0;
  if (have > expected) {
    rmSync(partial);
    have = 0;
  }
  const url = `${o.endpoint}/${repo.type === 'dataset' ? 'datasets/' : ''}${repo.name}/resolve/${commit}/${f.path.split('/').map(encodeURIComponent).join('/')}`;
  const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  if (have > 0) headers.Range = `bytes=${have}-`;
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { headers });
  } catch (e) {
    throw new UserError(`hf:${repo.name}: cannot reach ${o.endpoint} to download ${f.path}; check the network or set HF_HUB_OFFLINE=1 to use only the cache`, 2, { cause: e });
  }
  if (res.status === 401 || res.status === 403) throw new UserError(`hf:${repo.name}: ${f.path} needs a token with access to the repository; set HF_TOKEN (or run 'hf auth login')`);
  if (res.status !== 200 && res.status !== 206) throw new UserError(`hf:${repo.name}: downloading ${f.path} failed with HTTP ${res.status}`);
  if (res.status === 200) have = 0; // the server ignored the range: start over
  const fd = openSync(partial, have > 0 ? 'a' : 'w');
  let got = have;
  try {
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let off = 0;
      while (off < value.byteLength) off += writeSync(fd, value, off, value.byteLength - off);
      got += value.byteLength;
      o.onBytes(got);
    }
  } catch (e) {
    throw new UserError(`hf:${repo.name}: the download of ${f.path} broke off at ${got} of ${expected} bytes; run the command again to resume it`, 2, { cause: e });
  } finally {
    closeSync(fd);
  }
  if (got !== expected) {
    if (got > expected) rmSync(partial, { force: true });
    throw new UserError(`hf:${repo.name}: the download of ${f.path} ended at ${got} of ${expected} bytes; run the command again to resume it`);
  }
  const actual = await digest(partial, f.lfs ? createHash('sha256') : gitBlobHash(expected));
  const want = f.lfs ? f.lfs.oid : f.oid;
  if (actual !== want) {
    rmSync(partial, { force: true });
    throw new UserError(`hf:${repo.name}: ${f.path} does not match the hash the Hub lists for it (${f.lfs ? 'sha256' : 'git sha1'}); removed the download, run the command again`);
  }
  renameSync(partial, blob);
}

/** git's blob id: sha1("blob <size>\0" + content). */
function gitBlobHash(size: number): Hash {
  return createHash('sha1').update(`blob ${size}\0`);
}

function digest(path: string, h: Hash): Promise<string> {
  return new Promise((resolveP, reject) => {
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolveP(h.digest('hex')));
  });
}

/** One line for a Hub API failure; the token never appears (it travels only in a header). */
function hubError(e: unknown, repo: RepoRef, revision: string, hadToken: boolean): UserError {
  const status = (e as { statusCode?: number }).statusCode;
  const s = spec(repo, revision);
  if (status === 401 || status === 403) {
    return new UserError(`${s}: the Hub refused access (HTTP ${status}); the repository is gated or private: ${hadToken ? 'the token in use has no access to it' : 'set HF_TOKEN (or run \'hf auth login\')'}`, 2, { cause: e });
  }
  if (status === 404) return new UserError(`${s}: no such repository or revision on the Hub (check the name and the revision in models.json)`, 2, { cause: e });
  if (status === undefined) return new UserError(`${s}: cannot reach the Hub (${hubUrlOf(e)}); check the network, or set HF_HUB_OFFLINE=1 to use only the cache`, 2, { cause: e });
  return new UserError(`${s}: the Hub answered HTTP ${status}`, 2, { cause: e });
}

function hubUrlOf(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0].slice(0, 120) : 'network error';
}
