/**
 * The Hugging Face cache layout, shared with Python's huggingface_hub (and so with
 * transformers, vLLM, auto-round and lm-eval), so that a file either client downloaded is
 * found by the other:
 *
 *   <cache>/models--ORG--NAME/blobs/<etag>              file contents (etag: LFS sha256, else git blob sha1)
 *   <cache>/models--ORG--NAME/snapshots/<commit>/<path>  relative symlink to ../../blobs/<etag>
 *   <cache>/models--ORG--NAME/refs/<branch or tag>       the commit it pointed at when last resolved
 *   <cache>/models--ORG--NAME/trees/<commit>.json        huggingface_hub >= 2.x's tree listing (read if present)
 *
 * `<cache>` is HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (huggingface_hub's
 * constants.py resolves it the same way; XDG_CACHE_HOME replaces ~/.cache there too).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export type RepoType = 'model' | 'dataset';

export interface RepoRef {
  type: RepoType;
  /** ORG/NAME */
  name: string;
}

export const COMMIT_RE = /^[0-9a-f]{40}$/;

function hfHome(env: NodeJS.ProcessEnv): string {
  if (env.HF_HOME) return resolve(env.HF_HOME);
  const xdg = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return join(xdg, 'huggingface');
}

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return resolve(env.HF_HUB_CACHE);
  return join(hfHome(env), 'hub');
}

/** `models--ORG--NAME` / `datasets--ORG--NAME`. */
export function repoFolder(cache: string, repo: RepoRef): string {
  return join(cache, `${repo.type}s--${repo.name.split('/').join('--')}`);
}

/** The commit a revision names in the cache: itself if it is a commit hash, else refs/<rev>. */
export function cachedCommit(storage: string, revision: string): string | undefined {
  if (COMMIT_RE.test(revision)) return revision;
  try {
    const c = readFileSync(join(storage, 'refs', revision), 'utf8').trim();
    return COMMIT_RE.test(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

/** Files the tree cache of huggingface_hub lists for a commit, if it wrote one. */
export function cachedTree(storage: string, commit: string): Map<string, { size: number; blobId: string; lfsSha256?: string }> | undefined {
  try {
    const raw = JSON.parse(readFileSync(join(storage, 'trees', `${commit}.json`), 'utf8')) as {
      files?: Record<string, { size: number; blob_id: string; lfs_sha256?: string }>;
    };
    if (!raw.files) return undefined;
    return new Map(Object.entries(raw.files).map(([p, f]) => [p, { size: f.size, blobId: f.blob_id, lfsSha256: f.lfs_sha256 }]));
  } catch {
    return undefined;
  }
}

/** A regular file (following the snapshot's symlink) of the given size, or any size if size is undefined. */
export function hasFile(path: string, size?: number): boolean {
  try {
    const s = statSync(path);
    return s.isFile() && (size === undefined || s.size === size);
  } catch {
    return false;
  }
}

/**
 * The token, from HF_TOKEN, else the token file huggingface_hub's `hf auth login` writes
 * (HF_TOKEN_PATH, else HF_HOME/token). Only ever sent as an Authorization header; never
 * printed, logged or stored by us.
 */
export function readToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.HF_TOKEN) return env.HF_TOKEN.trim() || undefined;
  const path = env.HF_TOKEN_PATH ? resolve(env.HF_TOKEN_PATH) : join(hfHome(env), 'token');
  try {
    if (!existsSync(path)) return undefined;
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** HF_HUB_OFFLINE=1 (or true/yes/on, as huggingface_hub reads it). */
export function offlineMode(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'true', 'yes', 'on'].includes(String(env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

/** HF_ENDPOINT as huggingface_hub reads it (a mirror, or the loopback Hub in tests). */
export function hubUrl(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
}
