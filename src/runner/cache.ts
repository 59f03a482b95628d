/**
 * The job cache, keyed by job identity:
 *   <cache>/ckpt/<id>/       quantized checkpoints      (directory outputs)
 *   <cache>/base/<id>/       base distributions (kld)   (directory outputs)
 *   <cache>/results/<id>.json  evaluation results
 * A directory output is written into `<kind>/.tmp-<id>-<pid>-<rand>/`, its files fsynced,
 * a marker `COMPLETE.json` (the manifest: every file with size and sha256) written last,
 * and the directory renamed into place. A directory without its marker, or whose files
 * do not match the manifest's sizes, is never used; before its bytes are read again
 * (`verifyDir`) every file is hashed against the manifest, once per process. Result files
 * are checked against the record schema when read. Temp directories of dead processes
 * are removed on open. Nothing is created on disk until something is written.
 *
 * Why content hashes and not size+mtime: a flipped bit on disk, or a copy that keeps
 * mtimes (cp -p, rsync -t), changes neither size nor mtime, so only a hash can tell. One
 * sha256 pass costs about 2 ms per MB here, once per checkpoint per process, and only for
 * checkpoints an eval is about to read; a run whose results are all cached hashes nothing.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../checkpoint/safetensors.ts';
import { z } from 'zod';
import { hashFile, listFiles } from '../matrix/identity.ts';
import { coverageSchema, metricValueSchema, type Coverage, type MetricValue } from '../results/record.ts';

export const MARKER = 'COMPLETE.json';

export type DirKind = 'ckpt' | 'base';

export interface DirManifest<T = unknown> {
  jobId: string;
  files: Record<string, { size: number; sha256: string }>;
  /** What the handler returned (quantizer report, base summary). */
  result: T;
  seconds: number;
  peakMemoryMB: number | null;
  run: string;
  createdAt: string;
}

export interface CachedResult {
  jobId: string;
  metrics: MetricValue[];
  /** The item set the metrics were computed over. */
  coverage: Coverage;
  provenance: Record<string, unknown>;
  seconds: number;
  peakMemoryMB: number | null;
  run: string;
  createdAt: string;
}

const cachedResultSchema = z.object({
  jobId: z.string(),
  metrics: z.array(metricValueSchema).min(1),
  coverage: coverageSchema,
  provenance: z.record(z.string(), z.unknown()),
  seconds: z.number().nonnegative(),
  peakMemoryMB: z.number().nullable(),
  run: z.string(),
  createdAt: z.string(),
});

const manifestSchema = z.object({
  jobId: z.string(),
  files: z.record(z.string(), z.object({ size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
  result: z.unknown(),
  seconds: z.number(),
  peakMemoryMB: z.number().nullable(),
  run: z.string(),
  createdAt: z.string(),
}).refine((m) => Object.keys(m.files).length > 0, { message: 'no files' });

/** zod's first problem as "path: message". */
function firstIssue(e: z.ZodError): string {
  const i = e.issues[0];
  return `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`;
}

/**
 * Checks a result as it will be read back from disk (after a JSON round trip, which
 * turns NaN into null); null when valid, else why not. The same check runs on write, so
 * a result that would be refused on read is never written.
 */
export function resultProblem(r: unknown, id: string): string | null {
  const p = cachedResultSchema.safeParse(r);
  if (!p.success) return firstIssue(p.error);
  if (p.data.jobId !== id) return `jobId is ${p.data.jobId}, expected ${id}`;
  return null;
}

/** Directories already hashed against their manifest in this process: path -> manifest createdAt. */
const verified = new Map<string, string>();

export function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class Cache {
  readonly dir: string;

  /** Opening a cache creates nothing; folders appear with the first write. */
  constructor(dir: string) {
    this.dir = dir;
  }

  private ensure(kind: DirKind | 'results'): string {
    const d = join(this.dir, kind);
    mkdirSync(d, { recursive: true });
    return d;
  }

  /**
   * Remove temp dirs and temp files left by processes that are gone (e.g. killed): the
   * staging dirs `.tmp-<id>-<pid>-<rand>`, and the checkpoint writer's own staging
   * `..tmp-<id>-<pid>-<rand>.tmp-*` and `.old-*` siblings of them. Call it under the run lock.
   */
  cleanStale(): string[] {
    const removed: string[] = [];
    const list = (k: string) => {
      try {
        return readdirSync(join(this.dir, k));
      } catch {
        return [];
      }
    };
    for (const k of ['ckpt', 'base']) {
      for (const name of list(k)) {
        const m = /^\.\.?tmp-[0-9a-f]+-(\d+)-[0-9a-f]+(?:\.(?:tmp|old)-[0-9]+-[0-9]+)?$/.exec(name);
        // Our own pid here is a stale leftover of an earlier process that had the same pid.
        if (m && (Number(m[1]) === process.pid || !isAlive(Number(m[1])))) {
          rmSync(join(this.dir, k, name), { recursive: true, force: true });
          removed.push(join(k, name));
        }
      }
    }
    for (const name of list('results')) {
      const m = /\.tmp-(\d+)$/.exec(name);
      if (m && (Number(m[1]) === process.pid || !isAlive(Number(m[1])))) {
        rmSync(join(this.dir, 'results', name), { force: true });
        removed.push(join('results', name));
      }
    }
    return removed;
  }

  dirPath(kind: DirKind, id: string): string {
    return join(this.dir, kind, id);
  }

  /** The manifest of a complete directory output, or null if there is none. */
  readDir<T = unknown>(kind: DirKind, id: string): DirManifest<T> | null {
    const dir = this.dirPath(kind, id);
    const marker = join(dir, MARKER);
    if (!existsSync(marker)) return null;
    let m: DirManifest<T>;
    try {
      const parsed = manifestSchema.safeParse(JSON.parse(readFileSync(marker, 'utf8')));
      if (!parsed.success) return null;
      m = parsed.data as DirManifest<T>;
    } catch {
      return null;
    }
    if (m.jobId !== id) return null;
    for (const [f, info] of Object.entries(m.files)) {
      // A manifest names files inside its own directory only.
      if (f.split('/').some((part) => part === '..' || part === '') || f.startsWith('/')) return null;
      try {
        if (statSync(join(dir, f)).size !== info.size) return null;
      } catch {
        return null;
      }
    }
    return m;
  }

  /**
   * Hash every file of a complete directory output against its manifest, once per
   * process (a re-made directory is hashed again). Null when intact, else what differs.
   */
  verifyDir(kind: DirKind, id: string): string | null {
    const m = this.readDir(kind, id);
    const dir = this.dirPath(kind, id);
    if (!m) return `${kind} ${id.slice(0, 12)} is not complete in the cache`;
    if (verified.get(dir) === m.createdAt) return null;
    for (const [f, info] of Object.entries(m.files)) {
      let h: string;
      try {
        h = hashFile(join(dir, f));
      } catch {
        return `${kind} ${id.slice(0, 12)}: ${f} cannot be read`;
      }
      if (h !== info.sha256) return `${kind} ${id.slice(0, 12)}: ${f} does not match its recorded sha256 (changed on disk since it was written)`;
    }
    verified.set(dir, m.createdAt);
    return null;
  }

  /** Remove a directory output (ours: the cache made it), e.g. one that failed verification. */
  discardDir(kind: DirKind, id: string): void {
    const dir = this.dirPath(kind, id);
    verified.delete(dir);
    // Out of the way first, so that no reader sees a half-removed directory under the id.
    const aside = join(this.dir, kind, `.tmp-${id.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(dir, aside);
    } catch {
      return;
    }
    rmSync(aside, { recursive: true, force: true });
  }

  /**
   * Produce a directory output: `write(tmpDir)` fills a fresh temp dir; on success the
   * files are fsynced, the manifest is written last, and the dir is renamed into place.
   * A directory without a valid marker at the target (left by hand, or by an older
   * layout) is replaced. On failure the temp dir is removed.
   */
  async produceDir<T>(
    kind: DirKind,
    id: string,
    run: string,
    write: (tmpDir: string) => Promise<{ result: T; seconds: number; peakMemoryMB: number | null }>,
  ): Promise<DirManifest<T>> {
    const tmp = join(this.ensure(kind), `.tmp-${id.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp);
    try {
      const out = await write(tmp);
      const files: DirManifest['files'] = {};
      for (const f of listFiles(tmp)) {
        if (f === MARKER) throw new Error(`a ${kind} handler must not write ${MARKER}`);
        const p = join(tmp, f);
        fsyncPath(p);
        files[f] = { size: statSync(p).size, sha256: hashFile(p) };
      }
      if (Object.keys(files).length === 0) throw new Error(`the ${kind} handler wrote no files into its output dir`);
      const manifest: DirManifest<T> = {
        jobId: id, files, result: out.result, seconds: out.seconds, peakMemoryMB: out.peakMemoryMB, run, createdAt: new Date().toISOString(),
      };
      writeAtomic(join(tmp, MARKER), [Buffer.from(JSON.stringify(manifest, null, 1) + '\n')]);
      fsyncPath(tmp);
      const target = this.dirPath(kind, id);
      if (existsSync(target)) {
        if (this.readDir(kind, id)) {
          // Another process finished the same job first; identical identity, so keep theirs.
          rmSync(tmp, { recursive: true, force: true });
          return this.readDir<T>(kind, id)!;
        }
        rmSync(target, { recursive: true, force: true });
      }
      renameSync(tmp, target);
      fsyncPath(join(this.dir, kind));
      // Hashed just now, from the bytes that were renamed into place.
      verified.set(target, manifest.createdAt);
      return manifest;
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  resultPath(id: string): string {
    return join(this.dir, 'results', `${id}.json`);
  }

  /** A cached result that passes the schema, or null (absent or unusable). */
  readResult(id: string): CachedResult | null {
    return this.checkResult(id).result;
  }

  /** A cached result, or null with why it is unusable (`problem` is null when the file is absent). */
  checkResult(id: string): { result: CachedResult | null; problem: string | null } {
    const p = this.resultPath(id);
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch {
      return { result: null, problem: null };
    }
    let r: unknown;
    try {
      r = JSON.parse(text);
    } catch (e) {
      return { result: null, problem: `${p}: not JSON (${(e as Error).message})` };
    }
    const problem = resultProblem(r, id);
    return problem ? { result: null, problem: `${p}: ${problem}` } : { result: r as CachedResult, problem: null };
  }

  /** Write a result; refuses (throws) one that would not pass `checkResult` when read back. */
  writeResult(r: CachedResult): void {
    const text = JSON.stringify(r);
    const problem = resultProblem(JSON.parse(text), r.jobId);
    if (problem) throw new Error(`result of job ${r.jobId.slice(0, 12)} is not a valid record: ${problem}`);
    this.ensure('results');
    writeAtomic(this.resultPath(r.jobId), [Buffer.from(text + '\n')]);
    fsyncPath(join(this.dir, 'results'));
  }
}
